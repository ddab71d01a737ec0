"""``utal extract``: a folder of videos -> the ActionFormer layout the project reads (docs/data.md).

Each video is decoded with PyAV (frames streamed at the backbone's frame size, never the whole video in memory),
cut into clips of the backbone's length every ``stride`` frames, and each clip becomes one feature:

    <out>/features/<video id>.npy          float32 (L, D): clip i covers frames [i*stride, i*stride + clip_length)
    <out>/annotations/videos.json          {"extractor": {backbone, clip_length, frame_size, stride},
                                            "database": {id: {"subset": "unlabeled", "duration": s, "fps": f,
                                             "annotations": [], "source": the video file}}}

Feature i then sits at ``(i*stride + clip_length/2) / fps`` seconds: the ActionFormer layout's rule, with its
``feature_stride`` = ``stride`` and ``feature_window`` = ``clip_length`` (4 and 16 by default: the layout's own
defaults, so nothing needs saying to ``utal fit``). Resumable: a video whose feature file and entry exist is
skipped (an output written by another backbone or stride is refused); every file is written atomically, the
annotation file after each video.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from utal_lightning.errors import DatasetError
from utal_lightning.utils import atomic_write, atomic_write_json, read_json
from utal_lightning.video import find_videos
from utal_lightning.video.backbones import ClipBackbone, clip_features

FEATURE_FOLDER = "features"
ANNOTATION_FILE = Path("annotations") / "videos.json"
SUBSET = "unlabeled"


@dataclass
class DecodedVideo:
    """A video's frames as they are decoded (an iterator of (H, W, 3) uint8 arrays), its fps and duration (s)."""

    frames: Iterator[np.ndarray]
    fps: float
    duration: float | None


@contextmanager
def open_video(path: Path, frame_size: tuple[int, int] | int) -> Iterator[DecodedVideo]:
    """``path`` opened with PyAV: a :class:`DecodedVideo` whose frames are resized to ``frame_size`` (height, width;
    one number: the short side, the aspect ratio kept) as they are decoded; a file PyAV cannot read is a
    :class:`DatasetError` naming it."""
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, ValueError, OSError) as error:
        raise DatasetError(f"{path}: cannot decode this video ({error})") from None
    with container:
        if not container.streams.video:
            raise DatasetError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        height, width = _decoded_size(frame_size, stream.codec_context.height, stream.codec_context.width)
        rate = stream.average_rate or stream.guessed_rate
        if not rate or float(rate) <= 0:
            raise DatasetError(f"{path}: the video stream has no frame rate")
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / av.time_base

        def frames() -> Iterator[np.ndarray]:
            try:
                for frame in container.decode(stream):
                    yield frame.to_ndarray(format="rgb24", width=width, height=height)
            except (av.FFmpegError, ValueError) as error:
                raise DatasetError(f"{path}: cannot decode this video ({error})") from None

        yield DecodedVideo(frames(), float(rate), duration)


def _decoded_size(frame_size: tuple[int, int] | int, height: int, width: int) -> tuple[int, int]:
    """(height, width) to decode at: ``frame_size``, or the video's aspect with that short side."""
    if not isinstance(frame_size, int):
        return int(frame_size[0]), int(frame_size[1])
    if not (height and width):
        return frame_size, frame_size
    scale = frame_size / min(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def sliding_clips(frames: Iterator[np.ndarray], clip_length: int, stride: int) -> Iterator[np.ndarray]:
    """(clip_length, H, W, 3) clips starting every ``stride`` frames. A video shorter than one clip gives one clip,
    its last frame repeated; frames after the last full clip are left out (as ActionFormer's features)."""
    buffer: list[np.ndarray] = []  # the frames from the next clip's start on
    start, emitted = 0, False
    for index, frame in enumerate(frames):
        if index >= start:  # frames between two clips (stride > clip_length) are not needed
            buffer.append(frame)
        if index == start + clip_length - 1:
            yield np.stack(buffer)
            emitted = True
            del buffer[: min(stride, len(buffer))]
            start += stride
    if not emitted and buffer:
        yield np.stack(buffer + [buffer[-1]] * (clip_length - len(buffer)))


def video_features(
    path: Path, backbone: ClipBackbone, stride: int, batch_size: int, device: torch.device
) -> tuple[np.ndarray, float, float]:
    """(L, D) features of one video, its fps and its duration (s)."""
    with open_video(path, backbone.frame_size) as video:
        counted = _Counted(video.frames)
        rows, batch = [], []
        for clip in sliding_clips(iter(counted), backbone.clip_length, stride):
            batch.append(clip)
            if len(batch) == batch_size:
                rows.append(clip_features(backbone, torch.from_numpy(np.stack(batch)), device))
                batch = []
        if batch:
            rows.append(clip_features(backbone, torch.from_numpy(np.stack(batch)), device))
    if not rows:
        raise DatasetError(f"{path}: no frame could be decoded")
    duration = video.duration if video.duration else counted.count / video.fps
    return torch.cat(rows).numpy().astype(np.float32), video.fps, duration


class _Counted:
    """An iterator that counts what passes through it."""

    def __init__(self, items: Iterator[np.ndarray]) -> None:
        self.items, self.count = items, 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for item in self.items:
            self.count += 1
            yield item


@dataclass
class ExtractionReport:
    """What one ``utal extract`` run did."""

    written: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # the error line of each video left out (--skip-bad)
    clips: int = 0
    seconds: float = 0.0


def extract_folder(
    videos_dir: Path,
    out: Path,
    backbone: ClipBackbone,
    stride: int = 4,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    skip_bad: bool = False,
    progress: bool = True,
) -> ExtractionReport:
    """Features of every video in ``videos_dir`` into ``out`` (module docstring)."""
    if stride <= 0 or batch_size <= 0:
        raise ValueError(f"stride and batch_size must be positive, got {stride}, {batch_size}")
    videos = find_videos(Path(videos_dir))
    out, device = Path(out), torch.device(device)
    backbone = backbone.eval().to(device)
    annotation_path = out / ANNOTATION_FILE
    extractor = {**backbone.describe(), "stride": stride}
    database = {}
    if annotation_path.is_file():  # a resumed extraction: the same features or none
        written = read_json(annotation_path)
        if written.get("extractor", extractor) != extractor:
            raise DatasetError(
                f"{annotation_path}: written by another extractor ({written['extractor']}, now {extractor}): "
                "give another --out, or the same backbone and stride"
            )
        database = written["database"]
    report = ExtractionReport()
    started = time.perf_counter()
    bar = _progress(videos, progress)
    for path in bar:
        vid, feature_path = path.stem, out / FEATURE_FOLDER / f"{path.stem}.npy"
        if vid in database and feature_path.is_file():
            report.already_there.append(vid)
            continue
        try:
            features, fps, duration = video_features(path, backbone, stride, batch_size, device)
        except DatasetError as error:
            if not skip_bad:
                raise
            print(f"error: {error} (left out: --skip-bad)", file=sys.stderr)
            report.bad.append(str(error))
            continue
        atomic_write(feature_path, lambda f, a=features: np.save(f, a))
        database[vid] = {
            "subset": SUBSET,
            "duration": round(duration, 3),
            "fps": fps,
            "annotations": [],
            "source": str(path.resolve()),
        }
        atomic_write_json(annotation_path, {"extractor": extractor, "database": database})
        report.written.append(vid)
        report.clips += len(features)
        seconds = time.perf_counter() - started
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{report.clips / max(seconds, 1e-9):.1f} clips/s")
    report.seconds = time.perf_counter() - started
    return report


def _progress(videos: list[Path], enabled: bool):
    """A progress bar over the videos (tqdm, on stderr), or the plain list."""
    if not enabled:
        return videos
    from tqdm import tqdm

    return tqdm(videos, unit="video", desc="extracting", file=sys.stderr)
