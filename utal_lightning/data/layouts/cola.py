"""The CoLA / FEEL layout (docs/method.md sec. 1.1)::

    <root>/gt.json                     {"database": {vid: {"subset", "duration"?,
                                                         "annotations": [{"segment", "label"}]}}}
    <root>/split_<split>.txt           optional: one video id per line (else the gt.json subsets)
    <root>/features/<split>/{rgb,flow}/<vid>.npy   (L, D_rgb) and (L, D_flow); "v_<vid>.npy" is found for <vid>
    <root>/classes.txt                 optional: class names, one a line

A feature is one 16-frame snippet at 25 fps.
"""

from __future__ import annotations

from pathlib import Path

from utal_lightning.data.layouts.base import COLA_CLOCK, MODALITIES, FeatureClock, FileLayout


class CoLALayout(FileLayout):
    """CoLA's layout.

    Args:
        annotation_file: the annotation json, relative to the root (gt.json).
    """

    name = "cola"

    def __init__(self, annotation_file: str = "gt.json") -> None:
        self.annotation_file = annotation_file

    @classmethod
    def holds(cls, root: Path) -> bool:
        return (root / "gt.json").is_file()

    def annotation_path(self, root: Path) -> Path:
        return root / self.annotation_file

    def split_file(self, root: Path, split: str) -> Path:
        return root / f"split_{split}.txt"

    def feature_files(self, root: Path, split: str, video_id: str) -> tuple[Path, ...]:
        return tuple(self.feature_path(root, split, modality, video_id) for modality in MODALITIES)

    @staticmethod
    def feature_path(root: Path, split: str, modality: str, video_id: str) -> Path:
        """``features/<split>/<modality>/<vid>.npy``, else the ``v_<vid>.npy`` ActivityNet convention; the first
        candidate when neither exists (the caller reports it as missing)."""
        folder = root / "features" / split / modality
        candidates = [folder / f"{video_id}.npy", folder / f"v_{video_id}.npy"]
        for path in candidates:
            if path.is_file():
                return path
        return candidates[0]

    def feature_clock(self, fps: float | None) -> FeatureClock:
        return COLA_CLOCK
