"""Temporal IoU, hard NMS and Soft-NMS against slow plain-Python references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utal_lightning.eval.nms import nms, soft_nms, temporal_iou_matrix


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def _reference_nms(segments, scores, thr, labels=None):
    n = len(scores)
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    removed = [False] * n
    keep = []
    for i in order:
        if removed[i]:
            continue
        keep.append(i)
        removed[i] = True
        for j in order:
            if removed[j]:
                continue
            if labels is not None and labels[j] != labels[i]:
                continue
            if _iou(segments[i], segments[j]) > thr:
                removed[j] = True
    return keep


def _reference_soft_nms(segments, scores, thr, sigma, method, min_score, labels=None):
    current = list(scores)
    remaining = [i for i in range(len(scores)) if current[i] >= min_score]
    keep, new_scores = [], []
    while remaining:
        best = max(remaining, key=lambda i: (current[i], -i))
        keep.append(best)
        new_scores.append(current[best])
        remaining.remove(best)
        for j in remaining:
            if labels is not None and labels[j] != labels[best]:
                continue
            iou = _iou(segments[best], segments[j])
            if method == "gaussian":
                current[j] *= math.exp(-(iou * iou) / sigma)
            elif iou > thr:
                current[j] *= 1.0 - iou
        remaining = [j for j in remaining if current[j] >= min_score]
    return keep, new_scores


def _random_case(rng, n, quantized):
    starts = rng.uniform(0, 20, size=n)
    lengths = rng.uniform(0.5, 6, size=n)
    if quantized:  # coarse grids: exact IoU values, score ties and duplicate segments
        starts, lengths = np.round(starts), np.round(lengths) + 1
        scores = np.round(rng.uniform(size=n), 1)
    else:
        scores = rng.uniform(size=n)
    segments = np.stack([starts, starts + lengths], axis=1)
    labels = rng.integers(0, 3, size=n)
    return segments, scores, labels


# -------------------------------------------------------------------------------------------- IoU


def test_temporal_iou_matrix_matches_reference():
    rng = np.random.default_rng(0)
    a, _, _ = _random_case(rng, 7, False)
    b, _, _ = _random_case(rng, 5, True)
    b[0] = [3.0, 3.0]  # zero length
    got = temporal_iou_matrix(torch.from_numpy(a), torch.from_numpy(b))
    assert got.shape == (7, 5)
    want = np.array([[_iou(x, y) for y in b] for x in a])
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_temporal_iou_matrix_edge_cases():
    seg = torch.tensor([[0.0, 2.0], [1.0, 3.0], [5.0, 5.0], [2.0, 4.0]], dtype=torch.float64)
    m = temporal_iou_matrix(seg, seg)
    assert m[0, 0] == 1.0 and m[0, 1] == pytest.approx(1 / 3) and m[0, 3] == 0.0  # touching: 0
    assert m[2, 2] == 0.0  # union 0 -> 0, not NaN
    assert not torch.isnan(m).any()
    assert temporal_iou_matrix(torch.zeros(0, 2), seg).shape == (0, 4)


# --------------------------------------------------------------------------------------------- NMS


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("use_labels", [False, True])
def test_nms_matches_reference(quantized, use_labels):
    rng = np.random.default_rng(10 + 2 * quantized + use_labels)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        segments, scores, labels = _random_case(rng, n, quantized)
        for thr in (0.0, 0.3, 0.5, 0.7, 1.0):
            lab = labels if use_labels else None
            got = nms(
                torch.from_numpy(segments),
                torch.from_numpy(scores),
                thr,
                labels=None if lab is None else torch.from_numpy(lab),
            )
            assert got.dtype == torch.int64
            assert got.tolist() == _reference_nms(segments.tolist(), scores.tolist(), thr, lab)


def test_nms_strict_threshold_ties_and_labels():
    seg = torch.tensor([[0.0, 2.0], [0.0, 1.0], [0.0, 2.0], [10.0, 12.0]])
    scores = torch.tensor([0.5, 0.9, 0.5, 0.5])
    # IoU([0,2],[0,1]) = 0.5: suppressed only when strictly greater than the threshold.
    assert nms(seg[:2], scores[:2], 0.5).tolist() == [1, 0]
    assert nms(seg[:2], scores[:2], 0.49).tolist() == [1]
    # Equal scores: lower index first; the duplicate 2 of 0 goes.
    assert nms(seg, scores, 0.7).tolist() == [1, 0, 3]
    # Different labels never suppress each other.
    assert nms(seg, scores, 0.1, labels=torch.tensor([0, 1, 2, 0])).tolist() == [1, 0, 2, 3]
    assert nms(seg, scores, 0.1, labels=torch.tensor([0, 0, 0, 0])).tolist() == [1, 3]


def test_nms_empty_and_bad_shapes():
    out = nms(torch.zeros(0, 2), torch.zeros(0), 0.5)
    assert out.dtype == torch.int64 and out.shape == (0,)
    assert nms(torch.tensor([[1.0, 2.0]]), torch.tensor([0.3]), 0.5).tolist() == [0]
    with pytest.raises(ValueError):
        nms(torch.zeros(3, 3), torch.zeros(3), 0.5)
    with pytest.raises(ValueError):
        nms(torch.zeros(3, 2), torch.zeros(2), 0.5)


# ---------------------------------------------------------------------------------------- Soft-NMS


@pytest.mark.parametrize("method", ["gaussian", "linear"])
@pytest.mark.parametrize("use_labels", [False, True])
def test_soft_nms_matches_reference(method, use_labels):
    rng = np.random.default_rng(20 + 2 * (method == "linear") + use_labels)
    for _ in range(25):
        n = int(rng.integers(1, 30))
        segments, scores, labels = _random_case(rng, n, False)
        for thr, sigma, min_score in ((0.3, 0.5, 1e-3), (0.0, 0.1, 0.05), (0.7, 1.0, 0.2)):
            lab = labels if use_labels else None
            keep, new_scores = soft_nms(
                torch.from_numpy(segments),
                torch.from_numpy(scores),
                thr,
                sigma=sigma,
                method=method,
                min_score=min_score,
                labels=None if lab is None else torch.from_numpy(lab),
            )
            want_keep, want_scores = _reference_soft_nms(
                segments.tolist(), scores.tolist(), thr, sigma, method, min_score, lab
            )
            assert keep.dtype == torch.int64 and new_scores.dtype == torch.float64
            assert keep.tolist() == want_keep
            np.testing.assert_allclose(new_scores.numpy(), np.array(want_scores).reshape(-1), rtol=1e-9, atol=1e-12)
            assert bool((new_scores[1:] <= new_scores[:-1]).all())
            assert bool((new_scores >= min_score).all())


def test_soft_nms_hand_made():
    seg = torch.tensor([[0.0, 2.0], [0.0, 1.0], [5.0, 6.0], [0.0, 2.0]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.0005], dtype=torch.float64)
    # Linear, threshold 0.4: [0,1] has IoU 0.5 with [0,2] -> 0.8 * 0.5 = 0.4; the far one is untouched;
    # the last starts below min_score and is dropped.
    keep, s = soft_nms(seg, scores, 0.4, method="linear")
    assert keep.tolist() == [0, 2, 1]
    torch.testing.assert_close(s, torch.tensor([0.9, 0.7, 0.4], dtype=torch.float64))
    # Linear, threshold 0.5: IoU 0.5 is not above it: no decay.
    keep, s = soft_nms(seg, scores, 0.5, method="linear")
    assert keep.tolist() == [0, 1, 2]
    # Gaussian: decays regardless of the threshold.
    keep, s = soft_nms(seg, scores, 0.9, sigma=0.5, method="gaussian")
    assert keep.tolist() == [0, 2, 1]
    assert s[2].item() == pytest.approx(0.8 * math.exp(-0.25 / 0.5))
    # Labels: no decay across labels. Ties: lower index first.
    keep, s = soft_nms(seg[:2], torch.tensor([0.5, 0.5]), 0.0, method="linear", labels=torch.tensor([0, 1]))
    assert keep.tolist() == [0, 1] and s.tolist() == [0.5, 0.5]
    keep, s = soft_nms(seg[:2], torch.tensor([0.5, 0.5]), 0.0, method="linear")
    assert keep.tolist() == [0, 1] and s.tolist() == [0.5, 0.25]


def test_soft_nms_empty_and_bad_method():
    keep, s = soft_nms(torch.zeros(0, 2), torch.zeros(0), 0.5)
    assert keep.shape == (0,) and s.shape == (0,) and keep.dtype == torch.int64
    with pytest.raises(ValueError):
        soft_nms(torch.zeros(1, 2), torch.ones(1), 0.5, method="hard")
