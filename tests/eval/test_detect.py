"""Detections of one video: proposals (both sources), cluster -> class map, NMS per class."""

import numpy as np
import pytest
import torch

import utal_lightning.eval.detect as detect_module
from tests.reference.proposals import reference_detect_video
from utal_lightning.eval.detect import _nms_by_label, detect_with_mapping
from utal_lightning.eval.nms import nms
from utal_lightning.eval.proposals import select_classes


def _video():
    # T = 8, K = 2 clusters: cluster 0 fires on snippets 2-4, cluster 1 on 6-7
    cas = torch.zeros(8, 2)
    cas[2:5, 0] = 1.0
    cas[6:8, 1] = 1.0
    return cas, torch.tensor([0.6, 0.4])


def test_hungarian_mapping_relabels_clusters():
    cas, scores = _video()
    mapping = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # cluster 0 -> class 2, cluster 1 -> class 0
    rows = detect_with_mapping(cas, scores, mapping, 0.64, [0.5], class_threshold=0.3, nms_iou=0.5, scale=1)
    by_class = {int(r[3]): r for r in rows}
    assert set(by_class) == {0, 2}  # both kept clusters give detections: all predicted classes are kept
    assert by_class[2][0].item() == 2 * 0.64 and by_class[2][1].item() == 5 * 0.64
    assert by_class[0][0].item() == 6 * 0.64


def test_majority_soft_mapping_emits_once_per_class_with_weights():
    cas, scores = _video()
    mapping = torch.tensor([[1.0, 0.5, 0.0], [0.0, 0.0, 0.0]])
    rows = detect_with_mapping(cas, scores, mapping, 0.64, [0.5], class_threshold=0.5, nms_iou=0.5, scale=1)
    assert sorted(rows[:, 3].tolist()) == [0.0, 1.0]
    full, half = (rows[rows[:, 3] == c][0] for c in (0.0, 1.0))
    assert torch.allclose(half[2], 0.5 * full[2]) and torch.equal(half[:2], full[:2])


# --------------------------------------------------------------------------- actionness, fast NMS

CAS_THRESHOLDS = list(np.arange(0, 0.25, 0.025))
ACTIONNESS_THRESHOLDS = list(np.arange(0.1, 0.925, 0.025))


def _random_segments(rng, n, n_labels):
    """Segments with the hard cases: duplicates, nested, touching, zero-length, tied scores."""
    start = rng.uniform(0, 50, n).round(int(rng.integers(0, 3)))
    length = rng.exponential(rng.uniform(0.5, 10), n).round(int(rng.integers(0, 3)))
    seg = np.stack([start, start + length], 1)
    dup = rng.integers(0, n, n // 5)
    seg[dup] = seg[rng.integers(0, n, dup.size)]
    seg[rng.integers(0, n, n // 10), 1] = seg[rng.integers(0, n, n // 10), 0]  # touching / zero length
    seg[:, 1] = np.maximum(seg[:, 1], seg[:, 0])
    scores = rng.integers(0, 8, n) / 8.0 if rng.integers(0, 2) else rng.uniform(size=n)
    labels = rng.integers(0, n_labels, n).astype(np.float64)
    return torch.from_numpy(seg), torch.from_numpy(scores), torch.from_numpy(labels)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("iou", [0.0, 0.3, 0.5, 0.7, 1.0, -0.1])
def test_fast_nms_is_nms(seed, iou, monkeypatch, one_thread):
    rng = np.random.default_rng(seed)
    for n in (0, 1, 2, 7, 150, 600):
        seg, scores, labels = _random_segments(rng, n, int(rng.integers(1, 4)))
        want = nms(seg, scores, iou, labels=labels)
        assert torch.equal(_nms_by_label(seg, scores, iou, labels), want)
        if n == 600:  # small pair budget: many chunks, one row at a time where a window is larger
            monkeypatch.setattr(detect_module, "_PAIR_BUDGET", 37)
            assert torch.equal(_nms_by_label(seg, scores, iou, labels), want)
            monkeypatch.undo()


def _reference_detect_with_mapping(
    cas, scores, mapping, sps, thresholds, class_threshold, nms_iou, scale=24, actionness=None, actionness_thresholds=()
):
    keep = select_classes(scores, class_threshold).tolist()
    rows = torch.from_numpy(
        reference_detect_video(
            cas.double().numpy(),
            scores.double().numpy(),
            keep,
            thresholds,
            sps,
            actionness=None if actionness is None else actionness.double().numpy(),
            actionness_thresholds=actionness_thresholds,
            scale=scale,
        )
    )
    out = []
    for r in rows:
        for c in range(mapping.shape[1]):
            w = float(mapping[int(r[3]), c])
            if w > 0:
                out.append([float(r[0]), float(r[1]), float(r[2]) * w, float(c)])
    out = torch.tensor(out, dtype=torch.float64).reshape(-1, 4)
    return out[nms(out[:, :2], out[:, 2], nms_iou, labels=out[:, 3])] if out.shape[0] else out


@pytest.mark.parametrize("seed", range(3))
def test_detect_with_mapping_with_actionness_matches_reference(seed, one_thread):
    g = torch.Generator().manual_seed(seed)
    t, k = 30, 4
    cas = torch.softmax(3 * torch.randn(t, k, generator=g), dim=1)
    actionness = torch.rand(t, generator=g)
    scores = torch.tensor([0.5, 0.1, 0.3, 0.1])
    mapping = torch.tensor([[1.0, 0.5, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    args = (cas, scores, mapping, 0.64, CAS_THRESHOLDS, 0.25, 0.5)
    for kw in ({}, dict(actionness=actionness, actionness_thresholds=ACTIONNESS_THRESHOLDS)):
        got = detect_with_mapping(*args, scale=6, **kw)
        want = _reference_detect_with_mapping(*args, scale=6, **kw)
        assert got.shape == want.shape and got.shape[0] > 0
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-9)
    plain = detect_with_mapping(*args, scale=6)
    more = detect_with_mapping(*args, scale=6, actionness=actionness, actionness_thresholds=ACTIONNESS_THRESHOLDS)
    assert more.shape[0] > plain.shape[0]


def test_detect_with_mapping_actionness_off_is_identical():
    cas, scores = _video()
    mapping = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    base = detect_with_mapping(cas, scores, mapping, 0.64, [0.5], class_threshold=0.3, nms_iou=0.5, scale=1)
    actionness = torch.rand(8, generator=torch.Generator().manual_seed(0))
    off = (dict(actionness=None), dict(actionness=actionness), dict(actionness=actionness, actionness_thresholds=[]))
    for kw in off:
        got = detect_with_mapping(cas, scores, mapping, 0.64, [0.5], class_threshold=0.3, nms_iou=0.5, scale=1, **kw)
        assert torch.equal(got, base)
