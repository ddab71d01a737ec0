"""From one video's model output to class-labelled detections (SPEC 5), with the cluster-to-class map."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from utal_lightning.data.layout import VideoAnnotation
from utal_lightning.eval.detection_map import DetectionMAP, detection_map
from utal_lightning.eval.io import ground_truth_table
from utal_lightning.eval.nms import nms
from utal_lightning.eval.proposals import detect_video, select_classes


def detect_with_mapping(
    cas: Tensor,
    video_scores: Tensor,
    mapping: Tensor,
    seconds_per_step: float,
    thresholds: Sequence[float],
    class_threshold: float,
    nms_iou: float,
    scale: int = 24,
) -> Tensor:
    """Detections ``[start_s, end_s, score, class]`` (n, 4) of one video.

    ``cas`` (T, K) and ``video_scores`` (K,) are over the model's K (pseudo-)classes; ``mapping``
    (K, C) holds cluster -> class weights (SPEC 3.5: one-hot rows for Hungarian, 1.0 / 0.5 for
    majority-soft). Kept clusters (score >= ``class_threshold``, else the argmax; SPEC 5) give
    proposals; each is emitted once per class its cluster maps to, with score x weight; then NMS
    per class. Every kept class is kept (not only the first).
    """
    keep = select_classes(video_scores, class_threshold)
    rows = detect_video(cas, video_scores, keep, thresholds, seconds_per_step, scale=scale)
    if rows.shape[0] == 0:
        return rows
    weights = mapping.to(rows.dtype).to(rows.device)[rows[:, 3].long()]  # (n, C)
    row_index, classes = torch.nonzero(weights > 0, as_tuple=True)
    out = rows[row_index].clone()
    out[:, 2] *= weights[row_index, classes]
    out[:, 3] = classes.to(out.dtype)
    return out[nms(out[:, :2], out[:, 2], nms_iou, labels=out[:, 3])]


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
    pred_videos = [vid for vid, r in zip(video_ids, rows) for _ in range(len(r))]
    pred_labels = [classes[int(c)] for c in flat[:, 3]]
    return detection_map(gt.videos, gt.segments, gt.labels, pred_videos, flat[:, :2], pred_labels, flat[:, 2], tious)
