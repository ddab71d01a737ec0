"""Slow, obviously correct reference for the ActivityNet detection AP (tests and benchmark only).

Plain Python, one prediction at a time, one threshold at a time, written independently of
``utal_lightning.eval.detection_map`` (it imports nothing from it). Same rules:

* classes = labels present in the ground truth (sorted); predictions with other labels are ignored;
* per class, predictions in descending score order, ties in input order (Python's sort is stable);
* each prediction takes, among the unmatched ground truths of its class and video, the one with the
  highest IoU if IoU >= threshold; among equal IoUs the one that comes last in input order;
* IoU with the official float formula; 0 when the union is 0;
* AP = official ``interpolated_prec_rec`` written out with loops; a class without predictions has AP 0.
"""

from __future__ import annotations


def reference_iou(pred_start, pred_end, gt_start, gt_end) -> float:
    """IoU of one prediction and one ground truth, same operations as the official code."""
    inter = min(pred_end, gt_end) - max(pred_start, gt_start)
    if inter < 0:
        inter = 0.0
    union = (gt_end - gt_start) + (pred_end - pred_start) - inter
    if union == 0:
        return 0.0
    return inter / union


def reference_interpolated_ap(is_tp: list, n_pos: int) -> float:
    """All-points interpolated AP of a ranked list of TP/FP flags, as ``interpolated_prec_rec``."""
    if not is_tp:
        return 0.0
    precision, recall = [], []
    n_tp = n_fp = 0
    for flag in is_tp:
        if flag:
            n_tp += 1
        else:
            n_fp += 1
        recall.append(n_tp / n_pos)
        precision.append(n_tp / (n_tp + n_fp))
    mprec = [0.0, *precision, 0.0]
    mrec = [0.0, *recall, 1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    ap = 0.0
    for i in range(1, len(mrec)):
        if mrec[i] != mrec[i - 1]:
            ap += (mrec[i] - mrec[i - 1]) * mprec[i]
    return ap


def _as_list(values) -> list:
    return values.tolist() if hasattr(values, "tolist") else list(values)


def reference_detection_map(
    gt_videos, gt_segments, gt_labels, pred_videos, pred_segments, pred_labels, pred_scores, tious
):
    """Returns ``(classes, ap)`` with ``ap[t][c]`` a list of lists (thresholds x classes)."""
    gt_videos, gt_labels = _as_list(gt_videos), _as_list(gt_labels)
    gt_segments = [(float(s), float(e)) for s, e in _as_list(gt_segments)]
    pred_videos, pred_labels = _as_list(pred_videos), _as_list(pred_labels)
    pred_segments = [(float(s), float(e)) for s, e in _as_list(pred_segments)]
    pred_scores = [float(x) for x in _as_list(pred_scores)]
    tious = [float(t) for t in _as_list(tious)]
    if not gt_videos:
        raise ValueError("no ground truth")

    classes = sorted(set(gt_labels))
    ap = [[0.0] * len(classes) for _ in tious]
    for c_idx, label in enumerate(classes):
        # Ground truth of this class by video, in input order: list of (start, end).
        gt_by_video = {}
        n_pos = 0
        for video, segment, gt_label in zip(gt_videos, gt_segments, gt_labels, strict=True):
            if gt_label == label:
                gt_by_video.setdefault(video, []).append(segment)
                n_pos += 1
        preds = [
            (score, video, segment)
            for video, segment, pred_label, score in zip(
                pred_videos, pred_segments, pred_labels, pred_scores, strict=True
            )
            if pred_label == label
        ]
        preds.sort(key=lambda p: -p[0])  # stable: ties keep input order

        for t_idx, threshold in enumerate(tious):
            matched = set()  # (video, index of the GT within its video)
            is_tp = []
            for _score, video, (p_start, p_end) in preds:
                best_j, best_iou = None, None
                for j, (g_start, g_end) in enumerate(gt_by_video.get(video, [])):
                    if (video, j) in matched:
                        continue
                    iou = reference_iou(p_start, p_end, g_start, g_end)
                    if iou < threshold:
                        continue
                    if best_iou is None or iou >= best_iou:  # ">=": the last of equal IoUs wins
                        best_j, best_iou = j, iou
                if best_j is None:
                    is_tp.append(False)
                else:
                    matched.add((video, best_j))
                    is_tp.append(True)
            ap[t_idx][c_idx] = reference_interpolated_ap(is_tp, n_pos)
    return classes, ap
