"""Write small datasets in the docs/method.md sec. 1.1 layout by hand (independently of ``utal synth``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

CLASSES = ["Walk", "Jump", "Swim"]

# vid -> (split, length, annotations or None for "no gt.json entry")
VIDEOS: dict[str, tuple[str, int, list[dict] | None]] = {
    "video_validation_1": ("train", 10, [{"segment": ["0.64", "3.2"], "label": "Walk"}]),
    "video_validation_2": (
        "train",
        7,
        [
            {"segment": [0.0, 1.28], "label": "Jump"},
            {"segment": [1.5, 4.0], "label": "Swim"},
            {"segment": [2.0, 2.5], "label": "Jump"},
        ],
    ),
    "video_validation_3": ("train", 5, None),  # UTAL: training videos need no annotation
    "video_test_1": ("test", 12, [{"segment": [1.0, 5.0], "label": "Walk"}]),
    "video_test_2": ("test", 3, [{"segment": ["0", "1.9"], "label": "Swim"}]),
}
SUBSETS = {"train": "validation", "test": "test"}


def features(vid: str, length: int, dim: int, modality: str) -> np.ndarray:
    """Deterministic, distinguishable features: value encodes (video, snippet, channel, modality)."""
    seed = sum(map(ord, vid + modality))
    rng = np.random.default_rng(seed)
    return rng.random((length, dim)).astype(np.float32) + (0.0 if modality == "rgb" else 10.0)


def write_dataset(
    root: Path,
    videos: dict | None = None,
    classes: list[str] | None = CLASSES,
    rgb_dim: int = 4,
    flow_dim: int = 3,
    file_prefix: str = "",
    subsets: dict[str, str] = SUBSETS,
    write_splits: bool = True,
) -> Path:
    videos = VIDEOS if videos is None else videos
    root = Path(root)
    database = {}
    for vid, (split, length, segments) in videos.items():
        for modality, dim in (("rgb", rgb_dim), ("flow", flow_dim)):
            folder = root / "features" / split / modality
            folder.mkdir(parents=True, exist_ok=True)
            np.save(folder / f"{file_prefix}{vid}.npy", features(vid, length, dim, modality))
        if segments is not None:
            database[vid] = {"subset": subsets[split], "duration": length * 0.64, "annotations": segments}
    (root / "gt.json").write_text(json.dumps({"database": database}))
    if write_splits:
        for split in ("train", "test"):
            ids = [vid for vid, (s, _, _) in videos.items() if s == split]
            (root / f"split_{split}.txt").write_text("\n".join(ids) + "\n")
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root
