"""Discovery in videos without labels (issue 24, item 2): `utal fit --config discover` with K, then `utal predict`.

The data: `small` in the ActionFormer layout with every annotation removed and every video in the subset
"unlabeled" (what `utal extract` writes). The run never sees a label; the hidden ground truth only scores it here.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.fit import fit, run_utal
from utal_lightning.cli import main
from utal_lightning.eval.clustering import cluster_to_class_map, clustering_scores
from utal_lightning.eval.detection_map import detection_map

K = 5  # small's classes
FAST = (
    f"--data.init_args.num_clusters={K}",
    "--data.init_args.num_segments=64",
    "--loop.max_iterations=2",
    "--loop.epochs_per_iteration=20",
    "--model.init_args.network.init_args.hidden_dim=64",
    "--model.init_args.shift_channels=32",
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def unlabeled(tmp_path_factory) -> tuple[Path, dict[str, list[dict]]]:
    """``small`` without labels, and its hidden annotations by video."""
    root = tmp_path_factory.mktemp("data") / "my_videos"
    with contextlib.redirect_stdout(io.StringIO()):
        main(["synth", "--preset", "small", "--out", str(root), "--layout", "actionformer"])
    (annotation,) = (root / "annotations").glob("*.json")
    data = json.loads(annotation.read_text())
    hidden = {}
    for vid, entry in data["database"].items():
        hidden[vid] = entry["annotations"]
        entry["annotations"], entry["subset"] = [], "unlabeled"
    annotation.write_text(json.dumps(data))
    return root, hidden


@pytest.fixture(scope="module")
def discovered(unlabeled, tmp_path_factory) -> tuple[dict, dict, Path]:
    root, _ = unlabeled
    run = tmp_path_factory.mktemp("run")
    summary = fit("discover.yaml", root, run, *FAST)
    with contextlib.redirect_stdout(io.StringIO()):
        main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--output", str(run / "found.json")])
    return summary, json.loads((run / "found.json").read_text())["results"], run


def test_nothing_is_scored_without_labels(discovered):
    summary, _, _ = discovered
    assert [h["iteration"] for h in summary["iterations"]] == [1, 2]
    assert all(math.isnan(h["nmi"]) and "test" not in h for h in summary["iterations"])


def test_every_video_gets_detections_of_the_discovered_actions(discovered, unlabeled):
    _, results, _ = discovered
    _, hidden = unlabeled
    assert set(results) == set(hidden)  # trained on and localized: the same videos
    labels = {d["label"] for rows in results.values() for d in rows}
    assert labels <= {f"cluster_{k:02d}" for k in range(K)} and len(labels) >= K - 1


def test_the_discovered_actions_are_the_hidden_ones(discovered, unlabeled):
    # scored against the ground truth the run never saw: the pseudo-classes match the classes, and the detections,
    # once each pseudo-class is named by its best class, find the actions
    _, results, run = discovered
    _, hidden = unlabeled
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["UTALDataModule"]
    classes = sorted({a["label"] for rows in hidden.values() for a in rows})
    main_class = [classes.index(hidden[vid][0]["label"]) for vid in state["train_ids"]]
    assert clustering_scores(state["labels"], np.array(main_class), num_clusters=K)["nmi"] > 0.8
    mapping = cluster_to_class_map(state["labels"], np.array(main_class), K, len(classes)).argmax(1)
    gt = [(vid, a["segment"], a["label"]) for vid, rows in hidden.items() for a in rows]
    found = [
        (vid, d["segment"], classes[int(mapping[int(d["label"][-2:])])], d["score"])
        for vid, rows in results.items()
        for d in rows
    ]
    result = detection_map(
        [v for v, _, _ in gt],
        np.array([s for _, s, _ in gt]),
        [c for _, _, c in gt],
        [v for v, _, _, _ in found],
        np.array([s for _, s, _, _ in found]),
        [c for _, _, c, _ in found],
        np.array([p for _, _, _, p in found]),
        [0.5],
    )
    # the label-free baseline's level on small's test videos is ~0.79 (make demo); the trained discovery ~0.96
    assert float(result.mAP[0]) > 0.85


def test_k_must_be_given_when_no_video_has_a_label(unlabeled, tmp_path):
    root, _ = unlabeled
    args = ["fit", "--config", "discover", "--data.init_args.root", str(root)]
    done = run_utal([*args, "--trainer.default_root_dir", str(tmp_path / "run")])
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("error")]
    assert len(lines) == 1 and "num_clusters" in lines[0] and "annotations" in lines[0], done.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()  # refused before training


def test_the_page_of_the_run_shows_each_training_video_s_pseudo_class(discovered, unlabeled):
    _, results, run = discovered
    root, _ = unlabeled
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["predict", "--ckpt_path", str(run / "checkpoints" / "last.ckpt")]) == 0  # -> run/detections.json
        assert main(["view", str(run)]) == 0
    text = (run / "view.html").read_text()
    data = json.loads(text.split('<script type="application/json" id="data">')[1].split("</script>")[0])
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["UTALDataModule"]
    members = {vid: cls["name"] for cls in data["classes"] for vid in cls["members"]}
    assert members == {vid: f"cluster_{int(k):02d}" for vid, k in zip(state["train_ids"], state["labels"], strict=True)}
    # the durations come from the run's own data (its config.yaml's root), not from the detections
    (annotation,) = (root / "annotations").glob("*.json")
    durations = {vid: entry["duration"] for vid, entry in json.loads(annotation.read_text())["database"].items()}
    assert {v["id"]: v["duration"] for v in data["videos"]} == {vid: durations[vid] for vid in results}
