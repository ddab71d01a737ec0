"""ActivityNet-format files: ground truth for evaluation and detection results (docs/method.md sec. 5)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utal_lightning.data.layout import (
    SubsetNames,
    VideoAnnotation,
    parse_seconds,
    quoted,
    read_annotations,
    subset_matches,
    subset_names,
)
from utal_lightning.errors import DatasetError
from utal_lightning.utils import atomic_write_json, read_json


@dataclass(frozen=True)
class SegmentTable:
    """Flat columns of temporal segments: one row per segment (ground truth or detection)."""

    videos: list[str]
    segments: np.ndarray  # (n, 2) float64 seconds
    labels: list[str]
    scores: np.ndarray  # (n,) float64; ones for ground truth

    def __len__(self) -> int:
        return len(self.videos)


def discovered_class_name(cluster: int) -> str:
    """``cluster_03``: the name detections give pseudo-class 3 where the data has no classes (discovery), and how
    ``utal view`` names every pseudo-class."""
    return f"cluster_{cluster:02d}"


def discovered_class_names(num_clusters: int) -> list[str]:
    """:func:`discovered_class_name` of each of K pseudo-classes."""
    return [discovered_class_name(k) for k in range(num_clusters)]


def _table(rows: list[tuple[str, float, float, str, float]]) -> SegmentTable:
    return SegmentTable(
        videos=[r[0] for r in rows],
        segments=np.asarray([(r[1], r[2]) for r in rows], dtype=np.float64).reshape(-1, 2),
        labels=[r[3] for r in rows],
        scores=np.asarray([r[4] for r in rows], dtype=np.float64),
    )


def ground_truth_table(
    annotations: Mapping[str, VideoAnnotation], video_ids: Iterable[str] | None = None
) -> SegmentTable:
    """Ground-truth segments of ``video_ids`` (default: all) in file order."""
    ids = annotations.keys() if video_ids is None else video_ids
    rows = [
        (vid, float(start), float(end), label, 1.0)
        for vid in ids
        for (start, end), label in zip(annotations[vid].segments, annotations[vid].labels, strict=True)
    ]
    return _table(rows)


def read_ground_truth(
    gt_path: str | Path, subset: SubsetNames = None, ignored_labels: Iterable[str] = ()
) -> SegmentTable:
    """Segments of the gt.json videos whose ``subset`` is one of ``subset`` (case-insensitive; all videos
    when None)."""
    annotations = read_annotations(gt_path, ignored_labels)
    names = subset_names(subset)
    ids = [vid for vid, a in annotations.items() if names is None or subset_matches(a.subset, names)]
    wanted = quoted(names or (), " or ")
    if not ids:
        subsets = sorted({str(a.subset) for a in annotations.values()})
        raise DatasetError(f"{gt_path}: no video has subset {wanted} (subsets present: {', '.join(subsets)})")
    table = ground_truth_table(annotations, ids)
    if len(table) == 0:
        of = f" of subset {wanted}" if names else ""
        raise DatasetError(f"{gt_path}: the videos{of} have no ground-truth segments: nothing to evaluate")
    return table


def read_detections(pred_path: str | Path) -> SegmentTable:
    """Detections from ``{"results": {vid: [{"segment": [s, e], "label": name, "score": x}]}}``."""
    pred_path = Path(pred_path)
    data = read_json(pred_path)
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, dict):
        raise DatasetError(
            f'{pred_path}: expected an object with a "results" object mapping video ids to detection lists'
        )
    rows = []
    for vid, detections in results.items():
        if not isinstance(detections, list):
            raise DatasetError(f'{pred_path}: video "{vid}": detections are not a list')
        for j, d in enumerate(detections):
            where = f'{pred_path}: video "{vid}" detection {j}'
            if not isinstance(d, dict) or not {"segment", "label", "score"} <= d.keys():
                raise DatasetError(f'{where}: expected {{"segment": [start, end], "label": name, "score": number}}')
            segment, label, score = d["segment"], d["label"], d["score"]
            if not isinstance(segment, (list, tuple)) or len(segment) != 2:  # a string "12" is not [1, 2]
                raise DatasetError(f"{where}: segment {segment!r} is not a [start, end] pair")
            start, end = (parse_seconds(v, f"{where} segment") for v in segment)
            if end < start:
                raise DatasetError(f"{where}: segment ends before it starts ({start} > {end})")
            if not isinstance(label, str) or not label:
                raise DatasetError(f"{where}: label {label!r} is not a class name")
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
                raise DatasetError(f"{where}: score {score!r} is not a finite number")
            rows.append((vid, start, end, label, float(score)))
    return _table(rows)


def detections_to_json(
    video_ids: Sequence[str], detections: Sequence[np.ndarray], classes: Sequence[str]
) -> dict[str, object]:
    """ActivityNet result JSON from per-video arrays of rows ``[start, end, score, class_index]``."""
    results = {
        vid: [
            {"segment": [round(float(s), 4), round(float(e), 4)], "label": classes[int(c)], "score": float(score)}
            for s, e, score, c in np.asarray(rows, dtype=np.float64).reshape(-1, 4)
        ]
        for vid, rows in zip(video_ids, detections, strict=True)
    }
    return {"version": "utal-lightning", "results": results, "external_data": {}}


def write_detections(
    path: str | Path, video_ids: Sequence[str], detections: Sequence[np.ndarray], classes: Sequence[str]
) -> Path:
    """Write ActivityNet-format detections atomically."""
    return atomic_write_json(path, detections_to_json(video_ids, detections, classes), indent=None)
