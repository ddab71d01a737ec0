"""Temporal action detection mAP under the ActivityNet protocol (vectorized).

This reproduces ``compute_average_precision_detection`` and ``interpolated_prec_rec`` of the official
ActivityNet evaluator (``Evaluation/eval_detection.py``) without pandas and without a Python loop per
prediction. It agrees with the official code to floating-point rounding (about 1e-15) on any input
without score ties or zero-length pairs (equal IoUs: see below). Where the official behaviour is
undefined or surprising we pick a rule and keep it fixed:

* **Score ties** are broken by input order (stable sort by descending score). The official code uses
  ``score.argsort()[::-1]``, whose order among ties depends on the numpy build and the array size.
* **Equal-IoU ground truths**: a prediction takes, among the not-yet-matched ground truths of its
  video and class with the highest IoU (>= threshold), the one that comes *last* in input order. This
  is what the official ``iou.argsort()[::-1]`` walk does when that argsort happens to be stable;
  numpy's default argsort is not guaranteed stable (the order among equal IoUs depends on the numpy
  build and the array size).
* **Zero-length pairs**: when the union is 0 (two zero-length segments) the IoU is 0. The official code
  divides 0/0 = NaN, and ``NaN < thr`` is False, so it counts such a pair as a match at every threshold.

Everything else is the official protocol: classes are the labels present in the ground truth given
(the caller filters to the evaluated subset), mAP is the mean AP over them, predictions of other
labels are ignored, a prediction on a video without ground truth of its class is a false positive,
and AP is the all-points interpolated area under the precision/recall curve.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ANET_TIOUS", "THUMOS_TIOUS", "DetectionMAP", "detection_map", "segment_iou"]

THUMOS_TIOUS = np.round(np.arange(1, 8) / 10, 2)  # 0.1, 0.2, ..., 0.7
ANET_TIOUS = np.round(np.arange(50, 100, 5) / 100, 2)  # 0.5, 0.55, ..., 0.95
THUMOS_TIOUS.setflags(write=False)
ANET_TIOUS.setflags(write=False)


# --------------------------------------------------------------------------------------------------
# IoU
# --------------------------------------------------------------------------------------------------
def _iou(seg_start, seg_end, cand_start, cand_end) -> np.ndarray:
    """IoU with broadcasting; the single place where the formula lives.

    Same float operations as the official ``segment_iou`` (segment = prediction, candidates = ground
    truth), so ``iou >= threshold`` is decided identically; union == 0 gives 0 instead of NaN.
    """
    inter = np.clip(np.minimum(seg_end, cand_end) - np.maximum(seg_start, cand_start), 0, None)
    union = (cand_end - cand_start) + (seg_end - seg_start) - inter
    out = np.zeros(np.shape(union), dtype=np.float64)
    np.divide(inter, union, out=out, where=union != 0)
    return out


def segment_iou(segment: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Temporal IoU between one ``[start, end]`` segment and ``n`` candidate segments.

    Args:
        segment: ``(2,)`` ``[start, end]`` (the prediction, in the official evaluator).
        candidates: ``(n, 2)`` ``[start, end]`` rows (the ground truth).

    Returns:
        ``(n,)`` IoU, computed with the official formula: ``inter = clip(min(e1, e2) - max(s1, s2), 0)``,
        ``union = (cand_e - cand_s) + (seg_e - seg_s) - inter``, ``iou = inter / union``.
        Deviation: a pair with ``union == 0`` (two zero-length segments) has IoU 0, not NaN (the
        official code divides 0/0 and then counts that pair as a match at every threshold).
    """
    segment = np.asarray(segment, dtype=np.float64).reshape(2)
    candidates = np.asarray(candidates, dtype=np.float64).reshape(-1, 2)
    return _iou(segment[0], segment[1], candidates[:, 0], candidates[:, 1])


# --------------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DetectionMAP:
    """Average precision per (threshold, class); fractions in [0, 1]."""

    tious: np.ndarray  # (n_thr,)
    classes: list  # labels present in the ground truth, sorted
    ap: np.ndarray  # (n_thr, n_classes)

    @property
    def mAP(self) -> np.ndarray:
        """``(n_thr,)`` mean AP over the classes."""
        return self.ap.mean(axis=1)

    @property
    def average_mAP(self) -> float:
        """Mean of :attr:`mAP` over the thresholds."""
        return float(self.mAP.mean())

    def as_dict(self) -> dict:
        """``{"%g" % tiou: mAP, ..., "average_mAP": mean}`` with Python floats."""
        out = {f"{t:g}": float(m) for t, m in zip(self.tious, self.mAP, strict=True)}
        out["average_mAP"] = self.average_mAP
        return out

    def per_class(self) -> dict:
        """``{label: {"%g" % tiou: ap}}`` for a per-class table."""
        keys = [f"{t:g}" for t in self.tious]
        return {c: {k: float(a) for k, a in zip(keys, self.ap[:, i], strict=True)} for i, c in enumerate(self.classes)}


# --------------------------------------------------------------------------------------------------
# Input handling
# --------------------------------------------------------------------------------------------------
_NUMERIC_KINDS = "biuf"


def _key_array(values) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"expected a 1-D sequence of ids or labels, got shape {arr.shape}")
    return arr


def _factorize(values) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values and the code of every element."""
    arr = _key_array(values)
    if arr.dtype.kind in _NUMERIC_KINDS + "US":
        uniques, codes = np.unique(arr, return_inverse=True)
        return uniques, codes.reshape(-1).astype(np.int64)
    # Object arrays (mixed or exotic hashables): Python sort and dictionary.
    uniques_list = sorted(set(arr.tolist()))
    lut = {v: i for i, v in enumerate(uniques_list)}
    uniques = np.empty(len(uniques_list), dtype=object)
    uniques[:] = uniques_list
    return uniques, np.fromiter((lut[v] for v in arr.tolist()), dtype=np.int64, count=len(arr))


def _lookup(uniques: np.ndarray, values) -> np.ndarray:
    """Code of every element of ``values`` in ``uniques`` (sorted), -1 where absent."""
    arr = _key_array(values)
    if len(arr) == 0 or len(uniques) == 0:
        return np.full(len(arr), -1, dtype=np.int64)
    kinds = {uniques.dtype.kind, arr.dtype.kind}
    if kinds <= set(_NUMERIC_KINDS) or kinds in ({"U"}, {"S"}):
        pos = np.searchsorted(uniques, arr).clip(0, len(uniques) - 1)
        return np.where(uniques[pos] == arr, pos, -1).astype(np.int64)
    if "O" not in kinds:  # e.g. str vs int: nothing can be equal
        return np.full(len(arr), -1, dtype=np.int64)
    lut = {v: i for i, v in enumerate(uniques.tolist())}
    return np.fromiter((lut.get(v, -1) for v in arr.tolist()), dtype=np.int64, count=len(arr))


def _segments(segments, n: int, name: str) -> np.ndarray:
    seg = np.asarray(segments, dtype=np.float64)
    if seg.size == 0 and n == 0:
        return seg.reshape(0, 2)
    if seg.shape != (n, 2):
        raise ValueError(f"{name} must have shape ({n}, 2), got {seg.shape}")
    if not np.isfinite(seg).all():
        raise ValueError(f"{name} contains non-finite values")
    return seg


# --------------------------------------------------------------------------------------------------
# Matching and AP
# --------------------------------------------------------------------------------------------------
def _greedy_match(p_start, p_end, p_group, g_start, g_end, g_valid, tious) -> np.ndarray:
    """True-positive flags ``(m, n_thr)`` for predictions given in descending-score order.

    ``p_group`` is the (video, class) group of each prediction; ``g_start/g_end/g_valid`` are the
    ground truths of every group padded to ``(n_groups, G)`` in input order. Step ``k`` processes the
    ``k``-th prediction of every group at once (groups are independent), for all thresholds at once.
    """
    m = len(p_group)
    n_groups, width = g_start.shape
    tp = np.zeros((m, len(tious)), dtype=bool)
    if m == 0:
        return tp
    # Rank of each prediction within its group (input is already in score order).
    by_group = np.argsort(p_group, kind="stable")
    sorted_groups = p_group[by_group]
    rank = np.empty(m, dtype=np.int64)
    rank[by_group] = np.arange(m) - np.searchsorted(sorted_groups, sorted_groups, side="left")
    # Step-major layout: step k is a contiguous slice of `steps`.
    steps = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[steps], np.arange(rank.max() + 2))

    locked = np.zeros((n_groups, len(tious), width), dtype=bool)
    thr = tious[None, :, None]
    for k in range(len(bounds) - 1):
        sel = steps[bounds[k] : bounds[k + 1]]
        grp = p_group[sel]  # distinct within a step
        iou = _iou(p_start[sel, None], p_end[sel, None], g_start[grp], g_end[grp])
        iou = np.where(g_valid[grp], iou, -np.inf)[:, None, :]  # (n_k, 1, G)
        free = (iou >= thr) & ~locked[grp]  # (n_k, n_thr, G)
        hit = free.any(axis=2)
        # Highest IoU among the free ones; among equal IoUs the last ground truth in input order.
        best = width - 1 - np.argmax(np.where(free, iou, -np.inf)[:, :, ::-1], axis=2)
        rows, cols = np.nonzero(hit)
        locked[grp[rows], cols, best[rows, cols]] = True
        tp[sel] = hit
    return tp


def _average_precision(cls: np.ndarray, tp: np.ndarray, n_pos: np.ndarray) -> np.ndarray:
    """All-points interpolated AP ``(n_thr, n_classes)``.

    ``cls`` (sorted) is the class of each prediction and ``tp`` ``(n, n_thr)`` its flags, in
    descending-score order within each class. Equals the official ``interpolated_prec_rec`` applied
    to each class: AP = sum_i (rec_i - rec_{i-1}) * max_{j >= i} prec_j (the terms where the recall
    does not change are exactly 0, the trailing sentinel 0 of ``mprec`` never wins the max).
    """
    n, n_thr = tp.shape
    ap = np.zeros((n_thr, len(n_pos)))
    if n == 0:
        return ap
    present, start, count = np.unique(cls, return_index=True, return_counts=True)
    cum = np.cumsum(tp, axis=0, dtype=np.int64)
    before = np.vstack([np.zeros((1, n_thr), dtype=np.int64), cum])[start]  # TP count before class
    tp_cum = (cum - np.repeat(before, count, axis=0)).astype(np.float64)
    seen = (np.arange(n) - np.repeat(start, count) + 1).astype(np.float64)[:, None]
    rec = tp_cum / n_pos[cls].astype(np.float64)[:, None]
    prec = tp_cum / seen  # == tp_cum / (tp_cum + fp_cum), exactly
    rec_prev = np.vstack([np.zeros((1, n_thr)), rec[:-1]])
    rec_prev[start] = 0.0
    # Running max from the end within each class, exact and in one call: numpy orders complex
    # numbers lexicographically, so with real part -class (increasing along the reversed array)
    # the max never crosses into the next class, and the imaginary part carries prec unchanged.
    key = np.empty(prec.shape, dtype=np.complex128)
    key.real = -cls.astype(np.float64)[:, None]
    key.imag = prec
    env = np.maximum.accumulate(key[::-1], axis=0)[::-1].imag
    ap[:, present] = np.add.reduceat((rec - rec_prev) * env, start, axis=0).T
    return ap


# --------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------
def detection_map(
    gt_videos,
    gt_segments,
    gt_labels,
    pred_videos,
    pred_segments,
    pred_labels,
    pred_scores,
    tious,
) -> DetectionMAP:
    """ActivityNet-protocol detection AP for every class and threshold.

    Args:
        gt_videos, gt_labels: ``(n_gt,)`` video ids and class labels (hashable: str or int).
        gt_segments: ``(n_gt, 2)`` ``[start, end]`` in seconds.
        pred_videos, pred_labels, pred_scores: ``(n_pred,)``; may be empty.
        pred_segments: ``(n_pred, 2)`` ``[start, end]``.
        tious: thresholds, e.g. :data:`THUMOS_TIOUS` or :data:`ANET_TIOUS`.

    Ids and labels are compared as numpy values of their arrays (``np.asarray``): do not mix
    ``1`` and ``"1"`` within one sequence. Classes are the labels present in the ground truth; a
    prediction with another label is ignored. Per class, predictions are ranked by descending score,
    ties in input order (stable), and each takes the unmatched ground truth of its video and class
    with the highest IoU if that IoU >= threshold (equal IoUs: the last in input order); see the
    module docstring for the two deviations from the official code.

    Raises:
        ValueError: no ground truth, inconsistent lengths, non-finite segments or NaN scores.
    """
    tious = np.asarray(tious, dtype=np.float64).reshape(-1)
    if len(tious) == 0 or not np.isfinite(tious).all():
        raise ValueError(f"tious must be a non-empty list of finite thresholds, got {tious!r}")
    n_gt = len(gt_videos)
    if n_gt == 0:
        raise ValueError("detection_map: there is no ground truth, the mAP is undefined")
    if len(gt_labels) != n_gt:
        raise ValueError(f"gt_labels has {len(gt_labels)} entries, gt_videos {n_gt}")
    gt_seg = _segments(gt_segments, n_gt, "gt_segments")
    n_pred = len(pred_videos)
    if len(pred_labels) != n_pred:
        raise ValueError(f"pred_labels has {len(pred_labels)} entries, pred_videos {n_pred}")
    pred_seg = _segments(pred_segments, n_pred, "pred_segments")
    scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    if len(scores) != n_pred:
        raise ValueError(f"pred_scores has {len(scores)} entries, pred_videos {n_pred}")
    if np.isnan(scores).any():
        raise ValueError("pred_scores contains NaN")

    classes, gt_cls = _factorize(gt_labels)
    videos, gt_vid = _factorize(gt_videos)
    n_classes = len(classes)
    n_pos = np.bincount(gt_cls, minlength=n_classes)

    # Ground truth padded per (video, class) group, input order kept inside a group.
    gt_key = gt_vid * n_classes + gt_cls
    gt_order = np.argsort(gt_key, kind="stable")
    group_keys, group_first, group_size = np.unique(gt_key[gt_order], return_index=True, return_counts=True)
    gt_group = np.repeat(np.arange(len(group_keys)), group_size)
    gt_col = np.arange(n_gt) - np.repeat(group_first, group_size)
    shape = (len(group_keys), int(group_size.max()))
    g_start, g_end, g_valid = np.zeros(shape), np.zeros(shape), np.zeros(shape, dtype=bool)
    g_start[gt_group, gt_col] = gt_seg[gt_order, 0]
    g_end[gt_group, gt_col] = gt_seg[gt_order, 1]
    g_valid[gt_group, gt_col] = True

    # Predictions of the evaluated classes, by class then descending score (stable).
    pred_cls = _lookup(classes, pred_labels)
    pred_vid = _lookup(videos, pred_videos)
    keep = np.flatnonzero(pred_cls >= 0)
    order = keep[np.lexsort((-scores[keep], pred_cls[keep]))]
    cls_sorted = pred_cls[order]
    tp = np.zeros((len(order), len(tious)), dtype=bool)

    # Their (video, class) group; none (=> false positive everywhere) for videos without such GT.
    key = pred_vid[order] * n_classes + cls_sorted
    pos = np.searchsorted(group_keys, key).clip(0, len(group_keys) - 1)
    in_group = np.flatnonzero((pred_vid[order] >= 0) & (group_keys[pos] == key))
    group = pos[in_group]
    p_start, p_end = pred_seg[order[in_group], 0], pred_seg[order[in_group], 1]

    # Predictions below the lowest threshold against every GT of their group are false positives
    # everywhere and never lock a GT: drop them before the sequential matching (fewer steps).
    if len(in_group):
        size = group_size[group]
        offsets = np.cumsum(size) - size
        gt_index = np.repeat(group_first[group] - offsets, size) + np.arange(size.sum())
        pair_iou = _iou(
            np.repeat(p_start, size),
            np.repeat(p_end, size),
            gt_seg[gt_order[gt_index], 0],
            gt_seg[gt_order[gt_index], 1],
        )
        live = np.maximum.reduceat(pair_iou, offsets) >= tious.min()
        in_group, group, p_start, p_end = in_group[live], group[live], p_start[live], p_end[live]

    tp[in_group] = _greedy_match(p_start, p_end, group, g_start, g_end, g_valid, tious)
    ap = _average_precision(cls_sorted, tp, n_pos)

    tious_out = tious.copy()
    tious_out.setflags(write=False)
    ap.setflags(write=False)
    return DetectionMAP(tious=tious_out, classes=classes.tolist(), ap=ap)
