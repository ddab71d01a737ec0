"""Features of one split, read from disk once per process into one contiguous tensor.

Videos are validated before anything is kept: the ``.npy`` headers of every video are scanned first
(missing file, not 2-D, not floating point, rgb/flow length mismatch, width mismatch across videos,
zero length), then each video's data is read once and checked for NaN/Inf. Batches are gathered by
index (``gather``), so loaders carry video indices and positions, never features.

The store may keep its features in float16/bfloat16 (half the memory and bandwidth; I3D features
lose ~3 significant digits) and may live on the training device (``to``) or in pinned host memory
(``pin_memory``); ``gather`` always returns float32.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from utal_lightning.data.layout import (
    COLA_CLOCK,
    MODALITIES,
    DatasetIndex,
    DatasetLayout,
    FeatureClock,
    resolve_layout,
)
from utal_lightning.data.sampling import position_to_seconds, test_positions
from utal_lightning.errors import DatasetError
from utal_lightning.pseudo.pooling import label_free_background

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class SplitScan:
    """What the ``.npy`` headers of a split say, before any data is read."""

    video_ids: list[str]
    paths: list[tuple[Path, ...]]  # (rgb, flow) per video, or (one file,) with both (ActionFormer layout)
    lengths: np.ndarray  # (N,) int64 snippets per video
    rgb_dim: int
    flow_dim: int

    @property
    def feature_dim(self) -> int:
        return self.rgb_dim + self.flow_dim


def _read_header(path: Path, vid: str) -> tuple[int, ...]:
    if not path.is_file():
        raise DatasetError(f'{path}: feature file of video "{vid}" not found')
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # numpy raises ValueError/OSError/EOFError on damaged files
        raise DatasetError(f'{path}: cannot read feature file of video "{vid}" ({type(e).__name__}: {e})') from None
    if not np.issubdtype(array.dtype, np.floating):
        raise DatasetError(f'{path}: features of video "{vid}" have dtype {array.dtype}, expected floating point')
    if array.ndim != 2:
        raise DatasetError(f'{path}: features of video "{vid}" have shape {array.shape}, expected (snippets, channels)')
    return array.shape


def scan_split(layout: DatasetLayout, split: str, video_ids: Sequence[str]) -> SplitScan:
    """Check every video's feature headers of ``split``: presence, 2-D float, equal rgb/flow lengths, equal
    widths across videos. A single (L, D) file per video (ActionFormer layout) holds RGB in its first D/2 channels."""
    if layout.files is None:  # not read yet: its file layout from the root's files
        layout = resolve_layout(layout)
    paths, lengths = [], []
    parts = ("features",) if layout.single_file else MODALITIES
    dims: dict[str, tuple[int, str]] = {}  # part -> (width, first video)
    for vid in video_ids:
        files = layout.feature_files(split, vid)
        shapes = [_read_header(path, vid) for path in files]
        for part, path, shape in zip(parts, files, shapes, strict=True):
            width, first = dims.setdefault(part, (shape[1], vid))
            if shape[1] != width:
                raise DatasetError(
                    f'{path}: video "{vid}" has {part} width {shape[1]}, but video "{first}" has {width}'
                )
        if len(files) == 2 and shapes[0][0] != shapes[1][0]:
            raise DatasetError(
                f'video "{vid}": rgb has {shapes[0][0]} snippets but flow has {shapes[1][0]} ({files[0]}, {files[1]})'
            )
        if shapes[0][0] == 0:
            raise DatasetError(f'{files[0]}: video "{vid}" has zero snippets')
        paths.append(files)
        lengths.append(shapes[0][0])
    if not paths:
        raise DatasetError(f"{layout.root}: the {split} split has no videos")
    if layout.single_file:
        width = dims["features"][0]
        if width % 2:
            raise DatasetError(
                f"{paths[0][0]}: width {width} is odd; expected RGB and flow concatenated (e.g. 1024 + 1024)"
            )
        rgb_dim = flow_dim = width // 2
    else:
        rgb_dim, flow_dim = dims["rgb"][0], dims["flow"][0]
    return SplitScan(
        video_ids=list(video_ids),
        paths=paths,
        lengths=np.asarray(lengths, dtype=np.int64),
        rgb_dim=rgb_dim,
        flow_dim=flow_dim,
    )


def check_same_widths(train: SplitScan, test: SplitScan) -> None:
    """The test features must have the training features' widths (the model is built for those)."""
    for modality, a, b in (("rgb", train.rgb_dim, test.rgb_dim), ("flow", train.flow_dim, test.flow_dim)):
        if a != b:
            part = min(MODALITIES.index(modality), len(test.paths[0]) - 1)
            raise DatasetError(
                f'{test.paths[0][part]}: test video "{test.video_ids[0]}" has {modality} width {b}, '
                f"but the training videos have {a} (e.g. {train.paths[0][part]})"
            )


def iter_video_features(scan: SplitScan) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, features)`` per video: (L, D_rgb + D_flow) float32, RGB first, all finite."""
    for i, (vid, files) in enumerate(zip(scan.video_ids, scan.paths, strict=True)):
        parts = []
        for path in files:
            array = np.load(path, allow_pickle=False)
            with np.errstate(over="ignore"):  # an overflow is reported below, in one line, not as a warning
                as_float32 = array.astype(np.float32, copy=False)  # one conversion; no copy for float32 files
            if not np.isfinite(as_float32).all():  # NaN/Inf, or finite float64 beyond float32's range
                bad = np.argwhere(~np.isfinite(as_float32))[0]
                value = array[bad[0], bad[1]]
                if not np.isfinite(value):
                    raise DatasetError(
                        f'{path}: video "{vid}" has NaN/Inf features (first at snippet {bad[0]}, channel {bad[1]})'
                    )
                raise DatasetError(
                    f'{path}: video "{vid}" has values beyond float32\'s range (first at snippet {bad[0]}, '
                    f"channel {bad[1]}: {value:g}); features are used as float32"
                )
            parts.append(as_float32)
        yield i, np.concatenate(parts, axis=1)


class FeatureStore:
    """All videos of one split in a contiguous ``(sum L, D)`` tensor, with per-video offsets and lengths.

    Keeps every video's original length L and its :class:`FeatureClock` (the layout's seconds-per-feature
    rule), so grid positions convert to seconds (docs/method.md sec. 1.1-1.2).
    """

    def __init__(
        self,
        video_ids: Sequence[str],
        features: Tensor,
        lengths: Tensor,
        rgb_dim: int,
        clocks: Sequence[FeatureClock] | None = None,
        video_offsets: Tensor | None = None,
    ) -> None:
        if features.ndim != 2 or int(lengths.sum()) != features.shape[0]:
            raise ValueError("features must be (sum of lengths, D)")
        if video_offsets is not None and video_offsets.shape != (len(video_ids), features.shape[1]):
            raise ValueError("video_offsets must be (videos, D)")
        self.video_offsets = video_offsets
        self.video_ids = list(video_ids)
        self.features = features
        self.lengths = lengths.to(torch.int64)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.rgb_dim = rgb_dim
        self.clocks = list(clocks) if clocks is not None else [COLA_CLOCK] * len(self.video_ids)
        if len(self.clocks) != len(self.video_ids):
            raise ValueError("one clock per video")
        self.index = {vid: i for i, vid in enumerate(self.video_ids)}

    @classmethod
    def load(
        cls,
        layout: DatasetLayout,
        split: str,
        video_ids: Sequence[str],
        dtype: torch.dtype = torch.float32,
        clocks: Sequence[FeatureClock] | None = None,
    ) -> FeatureStore:
        """Validate, then read each video of ``split`` exactly once into one preallocated tensor."""
        scan = scan_split(layout, split, video_ids)
        features = torch.empty((int(scan.lengths.sum()), scan.feature_dim), dtype=dtype)
        offsets = np.concatenate([[0], np.cumsum(scan.lengths)])
        for i, array in iter_video_features(scan):
            features[offsets[i] : offsets[i + 1]] = torch.from_numpy(array)
        return cls(scan.video_ids, features, torch.from_numpy(scan.lengths), scan.rgb_dim, clocks)

    @classmethod
    def from_index(cls, index: DatasetIndex, split: str, dtype: torch.dtype = torch.float32) -> FeatureStore:
        """The features of one split of a read dataset, with each video's clock."""
        ids = index.splits[split]
        return cls.load(index.layout, split, ids, dtype, index.feature_clocks(ids))

    def __len__(self) -> int:
        return len(self.video_ids)

    @property
    def feature_dim(self) -> int:
        return self.features.shape[1]

    @property
    def nbytes(self) -> int:
        return self.features.numel() * self.features.element_size()

    @property
    def device(self) -> torch.device:
        return self.features.device

    def to(self, device: torch.device | str) -> FeatureStore:
        offsets = None if self.video_offsets is None else self.video_offsets.to(device)
        return FeatureStore(
            self.video_ids, self.features.to(device), self.lengths.to(device), self.rgb_dim, self.clocks, offsets
        )

    def pin_memory(self) -> FeatureStore:
        """The same store in page-locked host memory (asynchronous host-to-device copies)."""
        offsets = None if self.video_offsets is None else self.video_offsets.pin_memory()
        return FeatureStore(
            self.video_ids, self.features.pin_memory(), self.lengths, self.rgb_dim, self.clocks, offsets
        )

    def with_video_offsets(self, offsets: Tensor | None) -> FeatureStore:
        """The same features, with ``offsets`` (videos, D) subtracted from every snippet of each video by
        :meth:`gather` (the data stay as read)."""
        return FeatureStore(self.video_ids, self.features, self.lengths, self.rgb_dim, self.clocks, offsets)

    def without_backgrounds(self, reference: Tensor) -> FeatureStore:
        """This store with each video's label-free background (:func:`~utal_lightning.pseudo.pooling.
        label_free_background` from ``reference``, the mean training snippet as read) subtracted by :meth:`gather`
        (docs/method.md sec. 4.3)."""
        reference = reference.to(self.features.device)
        backgrounds = [label_free_background(self.video(i).float(), reference) for i in range(len(self))]
        return self.with_video_offsets(torch.stack(backgrounds) if backgrounds else None)

    def mean_snippet(self) -> Tensor:
        """(D,) the mean of every snippet as :meth:`gather` returns it (offsets subtracted), accumulated in float64."""
        mean = self.features.double().mean(0)
        if self.video_offsets is not None:
            mean = mean - (self.lengths.to(mean) / self.lengths.sum()) @ self.video_offsets.double()
        return mean.float()

    def video(self, index: int) -> Tensor:
        """All snippets of one video as read, (L, D) (without :attr:`video_offsets`)."""
        start = int(self.offsets[index])
        return self.features[start : start + int(self.lengths[index])]

    def gather(self, video_index: Tensor, positions: Tensor) -> Tensor:
        """Features at ``positions`` (B, T) of videos ``video_index`` (B,): (B, T, D) float32, one
        indexing op on the store's device."""
        device = self.features.device
        video_index = video_index.to(device)
        flat = self.offsets.to(device)[video_index][:, None] + positions.to(device)
        if self.video_offsets is None:
            return self.features[flat].float()
        return self.features[flat].float() - self.video_offsets[video_index][:, None].float()

    def test_grid(self, index: int, num_segments: int) -> Tensor:
        """Deterministic test positions (T_used,) of docs/method.md sec. 1.2 for one video."""
        return test_positions(int(self.lengths[index]), num_segments, device=self.lengths.device)

    def seconds_per_position(self, index: int, num_used: int) -> float:
        """Seconds spanned by one grid step of video ``index`` sampled to ``num_used`` positions."""
        return float(position_to_seconds(1.0, int(self.lengths[index]), num_used, self.clocks[index].step))

    def seconds_offset(self, index: int) -> float:
        """Seconds of grid position 0 of video ``index`` (its clock's offset; 0 in the CoLA layout)."""
        return float(self.clocks[index].offset)
