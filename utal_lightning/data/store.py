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

from utal_lightning.data.layout import MODALITIES, DatasetLayout
from utal_lightning.data.sampling import position_to_seconds, test_positions
from utal_lightning.errors import DatasetError

STORE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class SplitScan:
    """What the ``.npy`` headers of a split say, before any data is read."""

    video_ids: list[str]
    paths: list[tuple[Path, Path]]  # (rgb, flow) per video
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
    """Check every video's rgb/flow headers of ``split``: presence, 2-D float, equal lengths, equal widths."""
    paths, lengths = [], []
    dims: dict[str, tuple[int, str]] = {}  # modality -> (width, first video)
    for vid in video_ids:
        pair = tuple(layout.feature_path(split, modality, vid) for modality in MODALITIES)
        shapes = [_read_header(path, vid) for path in pair]
        for modality, path, shape in zip(MODALITIES, pair, shapes):
            width, first = dims.setdefault(modality, (shape[1], vid))
            if shape[1] != width:
                raise DatasetError(
                    f'{path}: video "{vid}" has {modality} width {shape[1]}, but video "{first}" has {width}'
                )
        if shapes[0][0] != shapes[1][0]:
            raise DatasetError(
                f'video "{vid}": rgb has {shapes[0][0]} snippets but flow has {shapes[1][0]} ({pair[0]}, {pair[1]})'
            )
        if shapes[0][0] == 0:
            raise DatasetError(f'{pair[0]}: video "{vid}" has zero snippets')
        paths.append(pair)
        lengths.append(shapes[0][0])
    if not paths:
        raise DatasetError(f"{layout.root}: the {split} split has no videos")
    return SplitScan(
        video_ids=list(video_ids),
        paths=paths,
        lengths=np.asarray(lengths, dtype=np.int64),
        rgb_dim=dims["rgb"][0],
        flow_dim=dims["flow"][0],
    )


def check_same_widths(train: SplitScan, test: SplitScan) -> None:
    """The test features must have the training features' widths (the model is built for those)."""
    for modality, a, b in (("rgb", train.rgb_dim, test.rgb_dim), ("flow", train.flow_dim, test.flow_dim)):
        if a != b:
            raise DatasetError(
                f'{test.paths[0][MODALITIES.index(modality)]}: test video "{test.video_ids[0]}" has {modality} width {b}, '
                f'but the training videos have {a} (e.g. {train.paths[0][MODALITIES.index(modality)]})'
            )


def iter_video_features(scan: SplitScan) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(index, features)`` per video: (L, D_rgb + D_flow) float32, RGB first, all finite."""
    for i, (vid, pair) in enumerate(zip(scan.video_ids, scan.paths)):
        parts = []
        for path in pair:
            array = np.load(path, allow_pickle=False)
            as_float32 = array.astype(np.float32, copy=False)  # one conversion; no copy for float32 files
            if not np.isfinite(as_float32).all():  # NaN/Inf, or finite float64 beyond float32's range
                bad = np.argwhere(~np.isfinite(as_float32))[0]
                value = array[bad[0], bad[1]]
                if not np.isfinite(value):
                    raise DatasetError(f'{path}: video "{vid}" has NaN/Inf features (first at snippet {bad[0]}, channel {bad[1]})')
                raise DatasetError(
                    f'{path}: video "{vid}" has values beyond float32\'s range (first at snippet {bad[0]}, '
                    f"channel {bad[1]}: {value:g}); features are used as float32"
                )
            parts.append(as_float32)
        yield i, np.concatenate(parts, axis=1)


class FeatureStore:
    """All videos of one split in a contiguous ``(sum L, D)`` tensor, with per-video offsets and lengths.

    Keeps every video's original length L, so grid positions convert to seconds (docs/method.md sec. 1.2).
    """

    def __init__(self, video_ids: Sequence[str], features: Tensor, lengths: Tensor, rgb_dim: int) -> None:
        if features.ndim != 2 or int(lengths.sum()) != features.shape[0]:
            raise ValueError("features must be (sum of lengths, D)")
        self.video_ids = list(video_ids)
        self.features = features
        self.lengths = lengths.to(torch.int64)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.rgb_dim = rgb_dim
        self.index = {vid: i for i, vid in enumerate(self.video_ids)}

    @classmethod
    def load(
        cls, layout: DatasetLayout, split: str, video_ids: Sequence[str], dtype: torch.dtype = torch.float32
    ) -> FeatureStore:
        """Validate, then read each video of ``split`` exactly once into one preallocated tensor."""
        scan = scan_split(layout, split, video_ids)
        features = torch.empty((int(scan.lengths.sum()), scan.feature_dim), dtype=dtype)
        offsets = np.concatenate([[0], np.cumsum(scan.lengths)])
        for i, array in iter_video_features(scan):
            features[offsets[i] : offsets[i + 1]] = torch.from_numpy(array)
        return cls(scan.video_ids, features, torch.from_numpy(scan.lengths), scan.rgb_dim)

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
        return FeatureStore(self.video_ids, self.features.to(device), self.lengths.to(device), self.rgb_dim)

    def pin_memory(self) -> FeatureStore:
        """The same store in page-locked host memory (asynchronous host-to-device copies)."""
        return FeatureStore(self.video_ids, self.features.pin_memory(), self.lengths, self.rgb_dim)

    def video(self, index: int) -> Tensor:
        """All snippets of one video, (L, D)."""
        start = int(self.offsets[index])
        return self.features[start : start + int(self.lengths[index])]

    def gather(self, video_index: Tensor, positions: Tensor) -> Tensor:
        """Features at ``positions`` (B, T) of videos ``video_index`` (B,): (B, T, D) float32, one
        indexing op on the store's device."""
        device = self.features.device
        flat = self.offsets.to(device)[video_index.to(device)][:, None] + positions.to(device)
        return self.features[flat].float()

    def test_grid(self, index: int, num_segments: int) -> Tensor:
        """Deterministic test positions (T_used,) of docs/method.md sec. 1.2 for one video."""
        return test_positions(int(self.lengths[index]), num_segments, device=self.lengths.device)

    def seconds_per_position(self, index: int, num_used: int) -> float:
        """Seconds spanned by one grid step of video ``index`` sampled to ``num_used`` positions."""
        return float(position_to_seconds(1.0, int(self.lengths[index]), num_used))
