"""The ActionFormer layout (docs/method.md sec. 1.1)::

    <root>/annotations/<name>.json     {"database": {vid: {"subset", "duration", "fps", "annotations":
                                         [{"segment", "label", "label_id"}]}}}
    <root>/<feature folder>/<prefix><vid>.npy   (L, D_rgb + D_flow), RGB first
    <root>/classes.txt                 optional; else the labels ordered by label_id

Feature ``i`` covers frames ``[i*stride, i*stride + window)`` of the video.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path

from utal_lightning.data.layouts.base import FeatureClock, FileLayout
from utal_lightning.errors import DatasetError


class ActionFormerLayout(FileLayout):
    """ActionFormer's layout.

    Args:
        annotation_file: the annotation json relative to the root (default: the one ``annotations/*.json``).
        feature_folder: the folder of ``<prefix><vid>.npy`` files (default: the one folder of .npy files).
        feature_prefix: file name prefix of every feature file (e.g. "v_").
        feature_stride: frames between consecutive features (4).
        feature_window: frames one feature covers (16).
        default_fps: fps of a video whose json entry has none (30).
    """

    name = "actionformer"
    combined_modalities = True

    def __init__(
        self,
        annotation_file: str | None = None,
        feature_folder: str | None = None,
        feature_prefix: str = "",
        feature_stride: int = 4,
        feature_window: int = 16,
        default_fps: float = 30.0,
    ) -> None:
        if feature_stride <= 0 or feature_window <= 0:
            raise ValueError(
                f"feature_stride and feature_window must be positive, got {feature_stride}, {feature_window}"
            )
        if not (math.isfinite(default_fps) and default_fps > 0):
            raise ValueError(f"default_fps must be a positive number, got {default_fps}")
        self.annotation_file, self.feature_folder, self.feature_prefix = annotation_file, feature_folder, feature_prefix
        self.feature_stride, self.feature_window, self.default_fps = feature_stride, feature_window, default_fps

    @classmethod
    def holds(cls, root: Path) -> bool:
        return (root / "annotations").is_dir() and any((root / "annotations").glob("*.json"))

    def resolve(self, root: Path) -> ActionFormerLayout:
        changes = {}
        if self.annotation_file is None:
            jsons = sorted((root / "annotations").glob("*.json")) if (root / "annotations").is_dir() else []
            if len(jsons) != 1:
                found = ", ".join(p.name for p in jsons) or "none"
                raise DatasetError(
                    f"{root / 'annotations'}: expected one annotation json, found {found} (set annotation_file)"
                )
            changes["annotation_file"] = str(jsons[0].relative_to(root))
        if self.feature_folder is None:
            folders = sorted(
                d.name for d in root.iterdir() if d.is_dir() and d.name != "annotations" and any(d.glob("*.npy"))
            )
            if len(folders) != 1:
                found = ", ".join(folders) or "none"
                raise DatasetError(
                    f"{root}: expected one folder of <video>.npy feature files, found {found} (set feature_folder)"
                )
            changes["feature_folder"] = folders[0]
        resolved = copy.copy(self)
        resolved.__dict__.update(changes)
        return resolved

    def annotation_path(self, root: Path) -> Path:
        return root / (self.annotation_file or "annotations/<name>.json")

    def feature_files(self, root: Path, split: str, video_id: str) -> tuple[Path, ...]:
        return (root / (self.feature_folder or "features") / f"{self.feature_prefix}{video_id}.npy",)

    def feature_clock(self, fps: float | None) -> FeatureClock:
        fps = fps if fps is not None else self.default_fps
        return FeatureClock(self.feature_stride / fps, self.feature_window / 2 / fps)
