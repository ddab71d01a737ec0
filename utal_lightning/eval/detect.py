"""From one video's model output to class-labelled detections (docs/method.md sec. 5), with the cluster-to-class map.

Proposals come from :mod:`utal_lightning.eval.proposals` (map-threshold proposals scored on the
thresholded map, optional actionness-threshold proposals scored on the unthresholded map: CoLA's
released code); NMS per class gives :func:`~utal_lightning.eval.nms.nms`'s result, block-wise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from utal_lightning.data.layout import VideoAnnotation
from utal_lightning.eval.detection_map import DetectionMAP, detection_map
from utal_lightning.eval.io import ground_truth_table
from utal_lightning.eval.nms import nms
from utal_lightning.eval.proposals import detect_video, select_classes

COLA_THUMOS_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.0, 0.25, 0.025), 3))
COLA_ACTIONNESS_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.1, 0.925, 0.025), 3))  # 33 values


@dataclass(frozen=True)
class DetectionSettings:
    """How a localization map becomes detections (docs/method.md sec. 5): a model config's
    ``model.init_args.evaluator.detection``, so a label-free detector can run exactly the inference of a dataset's model
    config (:meth:`from_config`).

    Args:
        class_threshold: keep classes with video score >= this (0.2 THUMOS, 0.1 ActivityNet), else the argmax.
        proposal_thresholds: thresholds on the normalized localization map (docs/method.md sec. 5).
        proposal_scoring: the map a run of ``proposal_thresholds`` is OIC-scored on: "thresholded" (its copy
            with values below the threshold set to 0: CoLA's released code, for CAS thresholds) or
            "unthresholded" (the map itself: AICL's released code, which COPL follows, for ``h_cs`` thresholds).
        actionness_thresholds: thresholds on the normalized class-agnostic actionness (CoLA's second proposal
            source, ``arange(0.1, 0.925, 0.025)`` in its code; empty = off); each run is scored on the
            unthresholded localization map of every kept class.
        nms_iou: per-class NMS IoU (0.6 CoLA's code, 0.7 FEEL's text).
        upsample_scale: linear upsampling factor before thresholding.
    """

    class_threshold: float = 0.2
    proposal_thresholds: tuple[float, ...] = COLA_THUMOS_THRESHOLDS
    proposal_scoring: Literal["thresholded", "unthresholded"] = "thresholded"
    actionness_thresholds: tuple[float, ...] = ()
    nms_iou: float = 0.6
    upsample_scale: int = 24

    def __post_init__(self) -> None:
        if self.proposal_scoring not in ("thresholded", "unthresholded"):
            raise ValueError(
                f"proposal_scoring must be 'thresholded' or 'unthresholded', got {self.proposal_scoring!r}"
            )
        for name in ("proposal_thresholds", "actionness_thresholds"):
            object.__setattr__(self, name, tuple(float(t) for t in getattr(self, name)))

    @classmethod
    def from_config(cls, detection: Mapping[str, Any]) -> DetectionSettings:
        """The settings of a model config's ``model.init_args.evaluator.detection``; fields it leaves out keep their
        defaults."""
        return cls(**{f.name: detection[f.name] for f in fields(cls) if f.name in detection})


_PAIR_BUDGET = 1 << 21  # candidate (row, column) pairs scored at once in _nms_by_label


def _nms_by_label(segments: Tensor, scores: Tensor, iou_threshold: float, labels: Tensor) -> Tensor:
    """:func:`~utal_lightning.eval.nms.nms` with ``labels``: the same indices in the same order, faster.

    ``nms`` runs one round of small torch ops per kept segment (~0.25 ms each on a CPU: ~0.2 s for the
    ~700 kept proposals of a THUMOS video, seconds for noisy maps). Here, per label, segments are
    ranked in ``nms``'s order (descending score, stable sort). A segment ``a`` can only suppress (IoU
    ``> t >= 0``) a segment ``b`` whose start lies in a window: IoU ``<= 1 - (start_a - start_b) /
    len_b`` and ``<= len_a / len_b`` give ``start_b > start_a - len_a (1 - t) / t``; IoU ``<= (end_a -
    start_b) / len_a`` gives ``start_b < end_a - t len_a`` (``t = 0``: any overlap, ``start_b <
    end_a``). The windows, widened by a margin against rounding, of the segments sorted by start give
    the candidate pairs; their IoU is ``nms``'s formula (``_iou_one``: the same operations, the same
    bits) and the greedy pass is a host loop over the ranked segments. At most ``_PAIR_BUDGET`` pairs
    at a time. ``t < 0`` (everything suppresses everything): ``nms`` itself.
    """
    device = segments.device
    if segments.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    if not iou_threshold >= 0:
        return nms(segments, scores, iou_threshold, labels=labels)
    segments = segments.to(torch.float64)
    order = torch.sort(scores.reshape(-1), descending=True, stable=True).indices
    ranked_labels = labels.reshape(-1).to(device)[order]
    kept = []
    for label in torch.unique(ranked_labels):
        ranks = torch.nonzero(ranked_labels == label).reshape(-1)  # ascending: processing order
        seg = segments[order[ranks]]
        start, end = seg[:, 0].contiguous(), seg[:, 1].contiguous()
        length = end - start
        by_start = torch.sort(start, stable=True).indices
        sorted_start = start[by_start].contiguous()
        slack = 1e-9 * (start.abs() + end.abs() + 1) + 1e-6 * length
        if iou_threshold > 0:
            t = float(iou_threshold)
            lower = start - length * ((1 - t) / t) - slack
            upper = torch.minimum(end, end - t * length + slack)
            lo = torch.searchsorted(sorted_start, lower, side="left")  # start_b >= lower
            hi = torch.searchsorted(sorted_start, upper, side="left")  # start_b < upper
        else:
            lo = torch.zeros(start.shape, dtype=torch.int64, device=device)
            hi = torch.searchsorted(sorted_start, end, side="left")  # start_b < end_a: overlap
        counts = (hi - lo).clamp(min=0)
        m = ranks.numel()
        removed = np.zeros(m, dtype=bool)
        local = []
        r0 = 0
        while r0 < m:
            # Rows r0 .. r1-1, as many as fit in the pair budget (at least one); only undecided ones.
            budget = torch.cumsum(counts[r0:], dim=0)
            r1 = r0 + max(1, int(torch.searchsorted(budget, torch.tensor(_PAIR_BUDGET, device=device), side="right")))
            rows = r0 + np.flatnonzero(~removed[r0:r1])
            hits_ptr, hits_col = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64)
            if rows.size:
                rows_t = torch.from_numpy(rows).to(device)
                n_pairs = counts[rows_t]
                row = torch.repeat_interleave(rows_t, n_pairs)
                first = torch.repeat_interleave(torch.cumsum(n_pairs, 0) - n_pairs, n_pairs)
                col = by_start[lo[row] + torch.arange(row.numel(), device=device) - first]
                later = col > row  # only later segments can still be suppressed
                row, col = row[later], col[later]
                # nms's _iou_one(segment=row, others=col), elementwise.
                inter = (torch.minimum(end[row], end[col]) - torch.maximum(start[row], start[col])).clamp(min=0)
                union = length[row] + length[col] - inter
                positive = union > 0
                safe_union = torch.where(positive, union, torch.ones_like(union))
                iou = torch.where(positive, inter / safe_union, torch.zeros_like(union))
                hit = iou > iou_threshold
                row, col = row[hit], col[hit]
                # Hits grouped by row (row is ascending): a CSR over ``rows``.
                hits_col = col.cpu().numpy()
                hits_ptr = np.searchsorted(row.cpu().numpy(), np.append(rows, m), side="left")
            for j, r in enumerate(rows.tolist()):
                if not removed[r]:
                    local.append(r)
                    removed[hits_col[hits_ptr[j] : hits_ptr[j + 1]]] = True
            r0 = r1
        kept.append(ranks[torch.as_tensor(local, dtype=torch.int64, device=device)])
    return order[torch.sort(torch.cat(kept)).values]


def detect_with_mapping(
    cas: Tensor,
    video_scores: Tensor,
    mapping: Tensor,
    seconds_per_step: float,
    thresholds: Sequence[float],
    class_threshold: float,
    nms_iou: float,
    scale: int = 24,
    actionness: Tensor | None = None,
    actionness_thresholds: Sequence[float] = (),
    thresholded_scoring: bool = True,
    seconds_offset: float = 0.0,
) -> Tensor:
    """Detections ``[start_s, end_s, score, class]`` (n, 4) of one video (position 0 at ``seconds_offset``).

    ``cas`` (T, K) and ``video_scores`` (K,) are over the model's K (pseudo-)classes; ``mapping``
    (K, C) holds cluster -> class weights (docs/method.md sec. 3.5: one-hot rows for Hungarian, 1.0 / 0.5 for
    majority-soft). Kept clusters (score >= ``class_threshold``, else the argmax; docs/method.md sec. 5) give
    proposals (:func:`~utal_lightning.eval.proposals.detect_video`): ``thresholds`` on the cluster's
    normalized map, scored on its thresholded copy (or the map itself without ``thresholded_scoring``),
    and, when ``actionness`` (T,) is given with non-empty ``actionness_thresholds``, runs of the
    normalized actionness scored on the cluster's unthresholded map (CoLA's two sources). Each
    proposal is emitted once per class its cluster maps to, with score x weight; then NMS per class
    (:func:`~utal_lightning.eval.nms.nms`'s result, computed block-wise). Every kept class is kept (not only the first).
    """
    keep = select_classes(video_scores, class_threshold)
    rows = detect_video(
        cas,
        video_scores,
        keep,
        thresholds,
        seconds_per_step,
        actionness=actionness,
        actionness_thresholds=actionness_thresholds,
        thresholded_scoring=thresholded_scoring,
        seconds_offset=seconds_offset,
        scale=scale,
    )
    if rows.shape[0] == 0:
        return rows
    weights = mapping.to(rows.dtype).to(rows.device)[rows[:, 3].long()]  # (n, C)
    row_index, classes = torch.nonzero(weights > 0, as_tuple=True)
    out = rows[row_index].clone()
    out[:, 2] *= weights[row_index, classes]
    out[:, 3] = classes.to(out.dtype)
    return out[_nms_by_label(out[:, :2], out[:, 2], nms_iou, out[:, 3])]


def detection_map_on_videos(
    annotations: Mapping[str, VideoAnnotation],
    video_ids: Sequence[str],
    detections: Sequence[Tensor | np.ndarray],
    classes: Sequence[str],
    tious: Sequence[float],
) -> DetectionMAP:
    """mAP of per-video detection rows ``[start, end, score, class]`` against these videos' ground truth."""
    gt = ground_truth_table(annotations, video_ids)
    rows = [np.asarray(d, dtype=np.float64).reshape(-1, 4) for d in detections]
    flat = np.concatenate(rows) if rows else np.zeros((0, 4))
    pred_videos = [vid for vid, r in zip(video_ids, rows, strict=True) for _ in range(len(r))]
    pred_labels = [classes[int(c)] for c in flat[:, 3]]
    return detection_map(gt.videos, gt.segments, gt.labels, pred_videos, flat[:, :2], pred_labels, flat[:, 2], tious)
