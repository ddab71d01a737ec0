"""Tests of the ActivityNet-protocol detection mAP (utal_lightning.eval.detection_map)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.reference.detection_map import reference_detection_map, reference_iou
from utal_lightning.eval.detection_map import (
    ANET_TIOUS,
    THUMOS_TIOUS,
    DetectionMAP,
    detection_map,
    segment_iou,
)


def _map(gt, preds, tious=(0.5,)):
    """gt: [(video, start, end, label)], preds: [(video, start, end, label, score)]."""
    return detection_map(
        [g[0] for g in gt],
        np.array([g[1:3] for g in gt], dtype=float).reshape(-1, 2),
        [g[3] for g in gt],
        [p[0] for p in preds],
        np.array([p[1:3] for p in preds], dtype=float).reshape(-1, 2),
        [p[3] for p in preds],
        [p[4] for p in preds],
        tious,
    )


# --------------------------------------------------------------------------------------------------
# Constants and IoU
# --------------------------------------------------------------------------------------------------
def test_threshold_constants():
    assert THUMOS_TIOUS.tolist() == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert ANET_TIOUS.tolist() == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


def test_segment_iou_values():
    cands = np.array([[0.0, 10.0], [5.0, 15.0], [20.0, 30.0], [2.0, 4.0], [10.0, 12.0]])
    # [0,10] vs: itself 1; [5,15] 5/15; disjoint 0; inside 2/10; touching at 10 -> 0
    np.testing.assert_array_equal(segment_iou(np.array([0.0, 10.0]), cands), [1.0, 5 / 15, 0.0, 0.2, 0.0])


def test_segment_iou_zero_length_is_zero_not_nan():
    cands = np.array([[5.0, 5.0], [3.0, 3.0], [0.0, 10.0]])
    out = segment_iou(np.array([5.0, 5.0]), cands)
    assert not np.isnan(out).any()
    np.testing.assert_array_equal(out, [0.0, 0.0, 0.0])


# --------------------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------------------
def test_tp_fp_tp():
    # 2 GT; ranked TP, FP, TP: prec 1, 1/2, 2/3; rec 1/2, 1/2, 1.
    # Interpolated prec at the recall steps: 1 (rec 0 -> 1/2) and 2/3 (1/2 -> 1): AP = (1 + 2/3) / 2.
    gt = [("v", 0, 10, "a"), ("v", 20, 30, "a")]
    preds = [("v", 0, 10, "a", 0.9), ("v", 50, 60, "a", 0.8), ("v", 20, 30, "a", 0.7)]
    res = _map(gt, preds, ANET_TIOUS)
    np.testing.assert_allclose(res.mAP, (1 + 2 / 3) / 2, rtol=0, atol=1e-12)
    assert res.average_mAP == pytest.approx(5 / 6, abs=1e-12)


def test_input_order_of_predictions_is_irrelevant_without_ties():
    gt = [("v", 0, 10, "a"), ("v", 20, 30, "a")]
    preds = [("v", 20, 30, "a", 0.7), ("v", 50, 60, "a", 0.8), ("v", 0, 10, "a", 0.9)]
    assert _map(gt, preds).mAP[0] == pytest.approx(5 / 6, abs=1e-12)


def test_iou_exactly_at_threshold_counts():
    # IoU([0,5], [0,10]) = 5/10 = 0.5 exactly: TP at 0.5 (AP 1), FP at 0.55 (AP 0).
    # IoU([0,1], [0,10]) = 1/10 == 0.1 in floats: TP at THUMOS 0.1, FP at 0.2.
    res = _map([("v", 0, 10, "a")], [("v", 0, 5, "a", 1.0)], ANET_TIOUS)
    assert res.mAP.tolist() == [1.0] + [0.0] * 9
    res = _map([("v", 0, 10, "a")], [("v", 0, 1, "a", 1.0)], THUMOS_TIOUS)
    assert res.mAP.tolist() == [1.0] + [0.0] * 6


def test_one_prediction_cannot_match_two_gts():
    # Two identical GTs, one perfect prediction: 1 TP of 2 -> rec 1/2 at prec 1 -> AP 1/2.
    res = _map([("v", 0, 10, "a"), ("v", 0, 10, "a")], [("v", 0, 10, "a", 1.0)])
    assert res.mAP[0] == pytest.approx(0.5, abs=1e-12)


def test_two_predictions_cannot_share_one_gt():
    # GT [0,10] and [100,110]; A=[0,10] TP, B=[0,10] again -> its GT is taken -> FP, C TP.
    # Same ranks as test_tp_fp_tp: AP = (1 + 2/3)/2 (sharing would give 1).
    gt = [("v", 0, 10, "a"), ("v", 100, 110, "a")]
    preds = [("v", 0, 10, "a", 0.9), ("v", 0, 10, "a", 0.8), ("v", 100, 110, "a", 0.7)]
    assert _map(gt, preds).mAP[0] == pytest.approx(5 / 6, abs=1e-12)


def test_second_best_gt_is_taken_when_best_is_locked():
    # GT1 [0,10], GT2 [2,10]. P1=[0,10] takes GT1 (IoU 1). P2=[1,10]: IoU 9/10 with GT1 (locked),
    # 8/9 with GT2 -> TP. Two TPs -> AP 1.
    gt = [("v", 0, 10, "a"), ("v", 2, 10, "a")]
    preds = [("v", 0, 10, "a", 0.9), ("v", 1, 10, "a", 0.8)]
    assert _map(gt, preds).mAP[0] == 1.0


def test_prediction_on_unannotated_video_is_fp():
    # Ranked: FP (video w has no GT), TP: prec 0, 1/2; rec 0, 1 -> AP = 1 * 1/2.
    gt = [("v", 0, 10, "a")]
    preds = [("w", 0, 10, "a", 0.9), ("v", 0, 10, "a", 0.8)]
    assert _map(gt, preds).mAP[0] == pytest.approx(0.5, abs=1e-12)
    # Also when the video has GT of another class only.
    gt = [("v", 0, 10, "a"), ("w", 0, 10, "b")]
    preds = [("w", 0, 10, "a", 0.9), ("v", 0, 10, "a", 0.8), ("w", 0, 10, "b", 0.5)]
    assert _map(gt, preds).per_class() == {"a": {"0.5": 0.5}, "b": {"0.5": 1.0}}


def test_unknown_labels_are_ignored():
    gt = [("v", 0, 10, "a")]
    base = _map(gt, [("v", 0, 10, "a", 0.5)])
    res = _map(gt, [("v", 0, 10, "zzz", 0.9), ("v", 0, 10, "a", 0.5), ("x", 3, 4, "yyy", 1.0)])
    assert res.classes == ["a"]
    assert res.ap.tolist() == base.ap.tolist() == [[1.0]]
    # Only unknown labels: like no predictions at all.
    assert _map(gt, [("v", 0, 10, "zzz", 0.9)]).ap.tolist() == [[0.0]]
    # int labels in the ground truth, str labels in the predictions: nothing matches, no crash.
    res = detection_map(["v"], [[0, 10]], [1], ["v"], [[0, 10]], ["1"], [1.0], [0.5])
    assert res.ap.tolist() == [[0.0]]


def test_class_without_predictions_has_ap_zero():
    gt = [("v", 0, 10, "a"), ("w", 0, 10, "b")]
    res = _map(gt, [("v", 0, 10, "a", 0.9)], THUMOS_TIOUS)
    assert res.classes == ["a", "b"]
    np.testing.assert_array_equal(res.ap, np.tile([[1.0, 0.0]], (7, 1)))
    np.testing.assert_array_equal(res.mAP, 0.5)


@pytest.mark.parametrize("swap", [False, True])
def test_equal_iou_tie_takes_last_gt(swap):
    # GT [0,10] and [5,15]; P1=[5,10] has IoU 5/10 = 0.5 with both -> takes the LAST in input order.
    # P2=[0,10] then has IoU 1 with [0,10] and 5/15 < 0.5 with [5,15].
    # Order ([0,10], [5,15]): P1 takes [5,15], P2 takes [0,10] -> TP, TP -> AP 1.
    # Order ([5,15], [0,10]): P1 takes [0,10], P2 is left with [5,15] -> TP, FP -> AP 1/2.
    gt = [("v", 0, 10, "a"), ("v", 5, 15, "a")]
    if swap:
        gt = gt[::-1]
    preds = [("v", 5, 10, "a", 0.9), ("v", 0, 10, "a", 0.8)]
    assert _map(gt, preds).mAP[0] == pytest.approx(0.5 if swap else 1.0, abs=1e-12)


@pytest.mark.parametrize("fp_first", [True, False])
def test_score_ties_keep_input_order(fp_first):
    # Equal scores: ranked in input order. FP then TP -> AP 1/2; TP then FP -> AP 1.
    fp, tp = ("v", 50, 60, "a", 0.5), ("v", 0, 10, "a", 0.5)
    preds = [fp, tp] if fp_first else [tp, fp]
    assert _map([("v", 0, 10, "a")], preds).mAP[0] == pytest.approx(0.5 if fp_first else 1.0, abs=1e-12)


def test_zero_length_pair_is_not_a_match():
    # Official code: 0/0 = NaN counts as a match. Here IoU 0 -> FP at any positive threshold.
    res = _map([("v", 5, 5, "a")], [("v", 5, 5, "a", 1.0)], THUMOS_TIOUS)
    np.testing.assert_array_equal(res.ap, 0.0)


def test_result_api():
    gt = [("v", 0, 10, 2), ("w", 0, 10, 1)]
    res = _map(gt, [("v", 0, 10, 2, 0.9), ("w", 0, 5, 1, 0.3)], THUMOS_TIOUS)
    assert isinstance(res, DetectionMAP)
    assert res.classes == [1, 2] and all(type(c) is int for c in res.classes)
    assert res.ap.shape == (7, 2)
    d = res.as_dict()
    assert list(d) == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "average_mAP"]
    # class 1: IoU 0.5 -> AP 1 up to 0.5, 0 above; class 2: AP 1 everywhere.
    assert [d[k] for k in list(d)[:7]] == [1.0] * 5 + [0.5] * 2
    assert d["average_mAP"] == pytest.approx(6 / 7)
    assert all(type(v) is float for v in d.values())
    assert res.per_class()[1] == {"0.1": 1.0, "0.2": 1.0, "0.3": 1.0, "0.4": 1.0, "0.5": 1.0, "0.6": 0.0, "0.7": 0.0}
    assert list(_map(gt, [], ANET_TIOUS).as_dict())[:2] == ["0.5", "0.55"]
    with pytest.raises(ValueError):
        res.ap[0, 0] = 3.0  # read-only


def test_empty_predictions_and_numpy_inputs():
    res = detection_map(
        np.array(["v", "w"]),
        np.array([[0.0, 1.0], [2.0, 3.0]]),
        np.array([3, 4]),
        np.array([], dtype=str),
        np.zeros((0, 2)),
        np.array([], dtype=int),
        np.zeros(0),
        ANET_TIOUS,
    )
    assert res.classes == [3, 4]
    np.testing.assert_array_equal(res.ap, np.zeros((10, 2)))


def test_invalid_inputs():
    with pytest.raises(ValueError, match="no ground truth"):
        detection_map([], np.zeros((0, 2)), [], ["v"], [[0, 1]], ["a"], [1.0], ANET_TIOUS)
    with pytest.raises(ValueError):
        detection_map(["v"], [[0, 1]], ["a", "b"], [], [], [], [], ANET_TIOUS)
    with pytest.raises(ValueError):
        detection_map(["v"], [[0, 1]], ["a"], ["v"], [[0, 1]], ["a"], [1.0, 2.0], ANET_TIOUS)
    with pytest.raises(ValueError):
        detection_map(["v"], [[0, 1, 2]], ["a"], [], [], [], [], ANET_TIOUS)
    with pytest.raises(ValueError):
        detection_map(["v"], [[0, 1]], ["a"], ["v"], [[0, 1]], ["a"], [np.nan], ANET_TIOUS)
    with pytest.raises(ValueError):
        detection_map(["v"], [[0, 1]], ["a"], [], [], [], [], [])


# --------------------------------------------------------------------------------------------------
# Randomized comparison with the reference
# --------------------------------------------------------------------------------------------------
TIOU_SETS = [THUMOS_TIOUS, ANET_TIOUS, np.array([0.0, 0.25, 1 / 3, 0.5, 0.75, 1.0])]


def _random_case(seed: int):
    """Small case on a coarse grid: IoU ties, IoU == threshold, duplicates, zero lengths, score ties."""
    rng = np.random.default_rng(seed)
    videos = [f"v{i}" for i in range(rng.integers(1, 4))]
    span = int(rng.choice([6, 12]))  # a narrow span makes overlapping, competing segments common
    str_labels = seed % 2 == 0
    label = (lambda c: f"c{c}") if str_labels else (lambda c: int(c))

    n_gt = int(rng.integers(1, 10))
    gt_v = [videos[i] for i in rng.integers(0, len(videos), n_gt)]
    gt_l = [label(c) for c in rng.integers(0, 3, n_gt)]
    start = rng.integers(0, span, n_gt) * 0.5
    gt_s = np.stack([start, start + rng.integers(0, 7, n_gt) * 0.5], axis=1)  # includes zero lengths
    for _ in range(int(rng.integers(0, 3))):  # duplicate GT rows
        i = int(rng.integers(n_gt))
        gt_v.append(gt_v[i])
        gt_l.append(gt_l[i])
        gt_s = np.vstack([gt_s, gt_s[i]])

    n_pred = int(rng.integers(0, 30))
    pred_v = [([*videos, "unannotated"])[i] for i in rng.integers(0, len(videos) + 1, n_pred)]
    pred_l = [label(c) for c in rng.integers(0, 4, n_pred)]  # label 3 never in the GT
    start = rng.integers(0, span, n_pred) * 0.5
    pred_s = np.stack([start, start + rng.integers(0, 7, n_pred) * 0.5], axis=1).reshape(-1, 2)
    copy = rng.random(n_pred) < 0.3  # exact copies of a GT segment (IoU 1, often tied)
    if copy.any():
        src = rng.integers(0, len(gt_v), int(copy.sum()))
        pred_s[copy] = gt_s[src]
        for k, i in zip(np.flatnonzero(copy), src, strict=True):
            pred_v[k], pred_l[k] = gt_v[i], gt_l[i]
    scores = rng.integers(0, 6, n_pred) / 5.0  # many score ties
    if rng.random() < 0.5:
        # Equal-IoU competition: GTs a=[s, s+L], b=[s+1, s+1+L]; a prediction halfway between has the
        # same IoU with both, and a lower-scored copy of one of them then depends on which was taken.
        i = int(rng.integers(len(gt_v)))
        s0, length = gt_s[i, 0], max(gt_s[i, 1] - gt_s[i, 0], 1.0)
        pair = [[s0, s0 + length], [s0 + 1, s0 + 1 + length]][:: int(rng.choice([-1, 1]))]
        gt_v += [gt_v[i]] * 2
        gt_l += [gt_l[i]] * 2
        gt_s = np.vstack([gt_s, pair])
        extra = [[s0 + 0.5, s0 + 0.5 + length], pair[int(rng.integers(2))]]
        pred_v += [gt_v[i]] * 2
        pred_l += [gt_l[i]] * 2
        pred_s = np.vstack([pred_s, extra])
        scores = np.append(scores, [1.0, rng.integers(0, 5) / 5.0])
        n_pred += 2
    for _ in range(int(rng.integers(0, 3)) if n_pred else 0):  # duplicate predictions
        i = int(rng.integers(n_pred))
        pred_v.append(pred_v[i])
        pred_l.append(pred_l[i])
        pred_s = np.vstack([pred_s, pred_s[i]])
        scores = np.append(scores, scores[i])
    tious = TIOU_SETS[seed % len(TIOU_SETS)]
    return gt_v, gt_s, gt_l, pred_v, pred_s, pred_l, scores, tious


def test_random_cases_cover_the_edge_cases():
    """The generator must actually produce the situations the comparison is meant to exercise."""
    seen = dict(score_tie=0, iou_at_threshold=0, equal_iou_gt=0, zero_length=0, no_gt_video=0, unknown=0)
    for seed in range(300):
        gt_v, gt_s, gt_l, pred_v, pred_s, pred_l, scores, tious = _random_case(seed)
        seen["score_tie"] += len(set(scores.tolist())) < len(scores)
        seen["zero_length"] += bool((gt_s[:, 0] == gt_s[:, 1]).any() or (pred_s[:, 0] == pred_s[:, 1]).any())
        seen["no_gt_video"] += "unannotated" in pred_v
        seen["unknown"] += bool(set(pred_l) - set(gt_l))
        for pv, (ps, pe), pl in zip(pred_v, pred_s, pred_l, strict=True):
            ious = [
                reference_iou(ps, pe, gs, ge)
                for gv, (gs, ge), gl in zip(gt_v, gt_s, gt_l, strict=True)
                if gv == pv and gl == pl
            ]
            seen["iou_at_threshold"] += any(i == t and i > 0 for i in ious for t in tious)
            seen["equal_iou_gt"] += any(ious.count(i) > 1 and i > 0 for i in ious)
    assert min(seen.values()) >= 20, seen


@pytest.mark.parametrize("block", range(6))
def test_matches_reference_on_random_cases(block):
    for seed in range(block * 50, (block + 1) * 50):
        case = _random_case(seed)
        classes, ref_ap = reference_detection_map(*case)
        res = detection_map(*case)
        assert res.classes == classes, seed
        np.testing.assert_allclose(
            res.ap, np.array(ref_ap).reshape(res.ap.shape), rtol=0, atol=1e-9, err_msg=f"seed {seed}"
        )
