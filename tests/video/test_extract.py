"""`utal extract` (issue 24, items 1 and 4) on a few seconds of generated video, with a random-weight backbone
(tests/helpers/backbones.py: torchvision's video models do not install beside this CPU torch wheel)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.backbones import TinyBackbone
from utal_lightning.cli import main
from utal_lightning.video.backbones import clip_features
from utal_lightning.video.extract import ANNOTATION_FILE, FEATURE_FOLDER, open_video, sliding_clips

BACKBONE = "tests.helpers.backbones.TinyBackbone"
VIDEOS = {"walk.webm": (25, 2.4), "jump.mp4": (30, 3.0), "short.mp4": (25, 0.4)}  # name: (fps, seconds)


def write_video(path: Path, fps: int, seconds: float, seed: int) -> None:
    """Moving blocks of colour (a different pattern per seed): VP8 for .webm, MPEG-4 part 2 for .mp4."""
    import av

    rng = np.random.default_rng(seed)
    colours = rng.integers(0, 255, size=(8, 3))
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libvpx" if path.suffix == ".webm" else "mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(round(fps * seconds)):
            frame = np.zeros((64, 96, 3), dtype=np.uint8)
            frame[:, (3 * i) % 96 :] = colours[(i // 10) % 8]
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    for seed, (name, (fps, seconds)) in enumerate(VIDEOS.items()):
        write_video(folder / name, fps, seconds, seed)
    return folder


def extract(*args: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["extract", *args, "--backbone", BACKBONE, "--no-progress"]) == 0
    return out.getvalue()


@pytest.mark.parametrize("clip_length, stride", [(16, 4), (4, 4), (3, 5), (8, 1), (5, 2)])
def test_clips_start_every_stride_frames(clip_length, stride):
    # every video length around the clip length: the clips are the windows [i*stride, i*stride + clip_length)
    for n in range(1, 3 * clip_length + 2 * stride):
        frames = [np.full((1, 1, 3), i, dtype=np.uint8) for i in range(n)]
        got = [clip[:, 0, 0, 0].tolist() for clip in sliding_clips(iter(frames), clip_length, stride)]
        if n < clip_length:  # one clip, the last frame repeated
            expected = [list(range(n)) + [n - 1] * (clip_length - n)]
        else:
            expected = [list(range(s, s + clip_length)) for s in range(0, n - clip_length + 1, stride)]
        assert got == expected, (n, clip_length, stride)


def test_frames_are_decoded_at_the_backbone_s_size(videos):
    with open_video(videos / "walk.webm", (40, 30)) as video:  # (height, width)
        assert next(video.frames).shape == (40, 30, 3)
    with open_video(videos / "walk.webm", 32) as video:  # the short side: 96 x 64 -> 48 x 32, the aspect kept
        frames = list(video.frames)
    assert frames[0].shape == (32, 48, 3) and len(frames) == 60 and video.fps == 25


def test_each_feature_is_the_backbone_on_its_clip(videos, tmp_path):
    extract(str(videos), "--out", str(tmp_path / "root"), "--weights", "none", "--stride", "4")
    backbone = TinyBackbone().eval()
    for name, (fps, seconds) in VIDEOS.items():
        features = np.load(tmp_path / "root" / FEATURE_FOLDER / f"{Path(name).stem}.npy")
        with open_video(videos / name, backbone.frame_size) as video:  # the slow way: every frame, then windows
            frames = list(video.frames)
        n = len(frames)
        assert n == round(fps * seconds)
        starts = range(0, n - 16 + 1, 4) if n >= 16 else [0]
        assert features.shape == (len(starts), 24) and features.dtype == np.float32
        for i in (0, len(starts) // 2, len(starts) - 1):
            window = frames[starts[i] : starts[i] + 16]
            window += [window[-1]] * (16 - len(window))
            expected = clip_features(backbone, torch.from_numpy(np.stack(window))[None], torch.device("cpu"))[0]
            np.testing.assert_allclose(features[i], expected.numpy(), rtol=1e-5, atol=1e-6)
    database = json.loads((tmp_path / "root" / ANNOTATION_FILE).read_text())["database"]
    assert set(database) == {"walk", "jump", "short"}
    for name, (fps, seconds) in VIDEOS.items():
        entry = database[Path(name).stem]
        assert entry["subset"] == "unlabeled" and entry["annotations"] == [] and entry["fps"] == fps
        assert entry["duration"] == pytest.approx(seconds, abs=0.1) and Path(entry["source"]).name == name


def test_an_undecodable_video_is_one_line_and_skip_bad_goes_on(videos, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in VIDEOS:
        (folder / name).write_bytes((videos / name).read_bytes())
    (folder / "broken.mp4").write_bytes(b"this is not a video" * 50)
    out = tmp_path / "root"
    with pytest.raises(SystemExit) as info:
        main(["extract", str(folder), "--out", str(out), "--backbone", BACKBONE, "--no-progress"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mp4" in err[0] and "cannot decode" in err[0]
    assert not (out / ANNOTATION_FILE).exists()  # "broken" sorts first: nothing written before it
    said = extract(str(folder), "--out", str(out), "--skip-bad")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mp4" in err[0] and "--skip-bad" in err[0]
    assert "wrote 3 videos" in said and "1 left out" in said
    assert sorted(p.stem for p in (out / FEATURE_FOLDER).glob("*.npy")) == ["jump", "short", "walk"]


def test_a_second_run_skips_what_is_written(videos, tmp_path):
    out = tmp_path / "root"
    extract(str(videos), "--out", str(out), "--weights", "none")
    walk = out / FEATURE_FOLDER / "walk.npy"
    written = walk.stat().st_mtime_ns
    walk.with_name("jump.npy").unlink()  # as if stopped while extracting "jump"
    said = extract(str(videos), "--out", str(out), "--weights", "none")
    assert "wrote 1 videos" in said and "2 already there" in said
    assert walk.stat().st_mtime_ns == written and (out / FEATURE_FOLDER / "jump.npy").is_file()
    # another stride would mix two kinds of features in one root: refused, nothing touched
    with pytest.raises(SystemExit) as info:
        main(["extract", str(videos), "--out", str(out), "--backbone", BACKBONE, "--stride", "8", "--no-progress"])
    assert info.value.code == 2 and walk.stat().st_mtime_ns == written


def test_a_backbone_that_cannot_be_built_is_one_line(videos, tmp_path, capsys):
    cases = (("no_such_module.Backbone", "cannot import"), ("torch.nn.Identity", "not a ClipBackbone"))
    for backbone, message in cases:
        with pytest.raises(SystemExit) as info:
            main(["extract", str(videos), "--out", str(tmp_path / "root"), "--backbone", backbone])
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and backbone in err[0] and message in err[0]
    assert not (tmp_path / "root").exists()


def test_the_folder_is_checked_before_anything_is_written(tmp_path, capsys):
    for folder, message in ((tmp_path / "absent", "video folder not found"), (tmp_path, "no video files")):
        with pytest.raises(SystemExit) as info:
            main(["extract", str(folder), "--out", str(tmp_path / "root"), "--backbone", BACKBONE])
        assert info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


@pytest.mark.slow
def test_from_videos_to_the_page_of_discovered_actions(videos, tmp_path):
    """extract -> check -> fit -> predict -> view, the four commands of the README on a folder of videos."""
    root = tmp_path / "my_videos"
    extract(str(videos), "--out", str(root), "--weights", "none")
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", "--root", str(root)]) == 0  # the subsets of configs/discover.yaml, found
        fast = [
            "--data.init_args.num_clusters=2",
            "--data.init_args.num_segments=16",
            "--data.init_args.batch_size=2",
            "--loop.max_iterations=2",
            "--loop.epochs_per_iteration=2",
            "--model.init_args.network.init_args.hidden_dim=16",
            "--model.init_args.shift_channels=4",
        ]
        run = tmp_path / "run"
        args = ["fit", "--config", "discover", "--data.init_args.root", str(root)]
        assert main([*args, "--trainer.default_root_dir", str(run), "--trainer.enable_progress_bar=false", *fast]) == 0
        assert main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 0
        assert main(["view", str(run)]) == 0
    results = json.loads((run / "detections.json").read_text())["results"]
    assert set(results) == {"walk", "jump", "short"}
    assert {d["label"] for rows in results.values() for d in rows} <= {"cluster_00", "cluster_01"}
    text = (run / "view.html").read_text()
    data = json.loads(text.split('<script type="application/json" id="data">')[1].split("</script>")[0])
    files = {v["id"]: v["file"] for v in data["videos"]}
    assert all(Path(files[vid]).name == name for vid, name in zip(("walk", "jump", "short"), VIDEOS, strict=True))
    assert {v["id"]: v["duration"] for v in data["videos"]} == pytest.approx(
        {Path(name).stem: seconds for name, (_, seconds) in VIDEOS.items()}, abs=0.1
    )
    # every video of the folder has its pseudo-class
    assert sorted(itertools.chain.from_iterable(c["members"] for c in data["classes"])) == ["jump", "short", "walk"]
