"""What a dataset's file layout answers (docs/method.md sec. 1.1): where its annotations, split lists and feature
files are, and what a feature index means in seconds. One file per layout in this folder; the readers in
``data/layout.py`` (annotations, classes, splits) and ``data/store.py`` (features) ask a :class:`FileLayout`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SNIPPET_SECONDS = 16 / 25
"""One I3D snippet is 16 frames at 25 fps (docs/method.md sec. 1)."""

MODALITIES = ("rgb", "flow")
"""Feature modalities, in concatenation order: RGB first (docs/method.md sec. 1)."""


@dataclass(frozen=True)
class FeatureClock:
    """Where feature index ``x`` (fractional: a grid position scaled to the video's length) lies in seconds:
    ``offset + x * step``. CoLA layout: ``step = 16/25``, ``offset = 0`` (docs/method.md sec. 1.2);
    ActionFormer layout: feature ``i`` covers frames ``[i*stride, i*stride + window)``, so ``step = stride/fps``
    and ``offset = window / 2 / fps`` (docs/method.md sec. 1.1)."""

    step: float
    offset: float = 0.0

    def seconds(self, index: float | np.ndarray) -> float | np.ndarray:
        return self.offset + index * self.step


COLA_CLOCK = FeatureClock(SNIPPET_SECONDS, 0.0)


class FileLayout:
    """Interface of an on-disk dataset layout; chosen by ``class_path`` (``data.init_args.layout``) or found from
    the files of a root among the shipped ones (:func:`utal_lightning.data.layouts.find_layout`).

    Paths are relative to the dataset root, given to every method: a layout holds only its own options.
    """

    name: str = "custom"  # what `utal check` reports
    combined_modalities: bool = False  # True: one (L, D_rgb + D_flow) file per video, RGB first

    @classmethod
    def holds(cls, root: Path) -> bool:
        """Whether ``root``'s files are in this layout (for ``layout: null``, found from the files)."""
        return False

    def resolve(self, root: Path) -> FileLayout:
        """This layout with the options it leaves open found from ``root``'s files (one-line DatasetError if
        they are ambiguous or missing); itself by default."""
        return self

    def annotation_path(self, root: Path) -> Path:
        """The annotation json (ActivityNet-style ``{"database": {vid: {...}}}``)."""
        raise NotImplementedError

    def split_file(self, root: Path, split: str) -> Path | None:
        """A file listing a split's video ids, one a line, if this layout has such files (else the splits come
        from the annotation subsets only)."""
        return None

    def feature_files(self, root: Path, split: str, video_id: str) -> tuple[Path, ...]:
        """One video's feature files in concatenation order: (rgb, flow), or the one combined file."""
        raise NotImplementedError

    def feature_clock(self, fps: float | None) -> FeatureClock:
        """The seconds-per-feature rule of a video (``fps``: its annotation's frame rate, where it has one)."""
        raise NotImplementedError
