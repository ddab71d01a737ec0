"""Proposal generation (SPEC 5) against scipy and a slow plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d

from utal_lightning.eval.proposals import (
    detect_video,
    minmax_normalize,
    proposals_from_scores,
    select_classes,
    upsample_linear,
)

# ----------------------------------------------------------------------------------------- upsample


def _scipy_upsample(x: np.ndarray, scale: int) -> np.ndarray:
    t = x.shape[0]
    if t == 1:
        return np.repeat(x, scale, axis=0)
    f = interp1d(np.arange(t), x, kind="linear", axis=0, fill_value="extrapolate")
    return f(np.arange(t * scale) / scale)


@pytest.mark.parametrize("t", [1, 2, 3, 7, 20])
@pytest.mark.parametrize("scale", [1, 2, 5, 24])
@pytest.mark.parametrize("channels", [None, 4])
def test_upsample_linear_matches_scipy(t, scale, channels):
    rng = np.random.default_rng(1000 * t + 10 * scale + (channels or 0))
    shape = (t,) if channels is None else (t, channels)
    x = rng.normal(size=shape)
    got = upsample_linear(torch.from_numpy(x), scale)
    assert got.shape == (t * scale,) + shape[1:]
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), _scipy_upsample(x, scale), rtol=0, atol=1e-6)


def test_upsample_linear_extrapolates_and_keeps_samples():
    x = torch.tensor([0.0, 1.0, 3.0])
    up = upsample_linear(x, 4)
    assert up.dtype == torch.float32
    # Original samples sit at j = i * scale; past the last one the slope (3 - 1) continues.
    torch.testing.assert_close(up[::4], x)
    torch.testing.assert_close(up[-3:], torch.tensor([3.5, 4.0, 4.5]))


def test_upsample_linear_constant_for_single_step():
    torch.testing.assert_close(upsample_linear(torch.tensor([[2.0, -1.0]]), 3), torch.tensor([[2.0, -1.0]] * 3))


# ---------------------------------------------------------------------------------------- normalize


def test_minmax_normalize_constant_is_zero():
    out = minmax_normalize(torch.full((10,), 3.7))
    assert not torch.isnan(out).any()
    torch.testing.assert_close(out, torch.zeros(10))
    out2 = minmax_normalize(torch.stack([torch.full((5,), -2.0), torch.arange(5.0)], dim=1), dim=0)
    torch.testing.assert_close(out2[:, 0], torch.zeros(5))
    torch.testing.assert_close(out2[:, 1], torch.arange(5.0) / 4)


def test_minmax_normalize_range():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = minmax_normalize(x, dim=0)
    torch.testing.assert_close(out.amin(0), torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(out.amax(0), torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(out, (x - x.amin(0)) / (x.amax(0) - x.amin(0)))


# ------------------------------------------------------------------------------ slow reference (SPEC 5)


def _reference_proposals(
    loc_map,
    thresholds,
    class_score,
    seconds_per_step,
    scale=24,
    min_length=2,
    outer_ratio=0.25,
    class_score_weight=0.2,
    normalize=True,
):
    x = np.asarray(loc_map, dtype=np.float64)
    if normalize:
        low, high = x.min(), x.max()
        x = np.zeros_like(x) if high - low <= 1e-12 else (x - low) / (high - low)
    # Upsampling (checked against scipy above) at positions j / scale, with the fraction computed
    # exactly, so that values on the threshold grid (a 0/1 map at scale 5 gives 0.2, 0.4, ...) are
    # decided the same way as in the implementation.
    t = len(x)
    up = []
    for j in range(t * scale):
        if t == 1:
            up.append(float(x[0]))
            continue
        lo = min(j // scale, t - 2)
        frac = (j - lo * scale) / scale
        up.append(float(x[lo] + frac * (x[lo + 1] - x[lo])))
    t_up = len(up)
    step = seconds_per_step / scale
    rows = []
    for thr in thresholds:
        j = 0
        while j < t_up:
            if not up[j] > thr:
                j += 1
                continue
            s = j
            while j + 1 < t_up and up[j + 1] > thr:
                j += 1
            e = j
            j += 1
            n = e - s + 1
            if n < min_length:
                continue
            inner = sum(up[s : e + 1]) / n
            outer_s = max(0, int(s - outer_ratio * n))
            outer_e = min(t_up - 1, int(e + outer_ratio * n))
            outer_idx = list(range(outer_s, s)) + list(range(e + 1, outer_e + 1))
            outer = sum(up[k] for k in outer_idx) / len(outer_idx) if outer_idx else 0.0
            rows.append([s * step, (e + 1) * step, inner - outer + class_score_weight * class_score])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def _check(loc_map, thresholds, class_score, seconds_per_step, **kw):
    want = _reference_proposals(loc_map, thresholds, class_score, seconds_per_step, **kw)
    got = proposals_from_scores(torch.as_tensor(np.asarray(loc_map, dtype=np.float64)), thresholds, class_score, seconds_per_step, **kw)
    assert got.dtype == torch.float64
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)
    return got


SPEC_THRESHOLDS = list(np.arange(0, 0.25, 0.025))


def _random_map(rng, kind, t):
    if kind == "uniform":
        return rng.uniform(size=t)
    if kind == "constant":
        return np.full(t, rng.uniform(-1, 2))
    if kind == "spikes":  # isolated peaks: short runs, length 1 after upsampling at high thresholds
        x = np.zeros(t)
        x[rng.integers(0, t, size=max(1, t // 4))] = rng.uniform(0.5, 1.0)
        return x
    if kind == "borders":  # high at both ends: runs touching index 0 and Tup - 1
        x = rng.uniform(0.0, 0.3, size=t)
        x[0] = x[-1] = 1.0
        if t > 2:
            x[1] = x[-2] = 0.9
        return x
    if kind == "smooth":
        return np.sin(np.linspace(0, rng.uniform(1, 12), t) + rng.uniform(0, 6)) + 0.1 * rng.normal(size=t)
    raise AssertionError(kind)


KINDS = ["uniform", "constant", "spikes", "borders", "smooth"]


@pytest.mark.parametrize("kind", KINDS)
def test_proposals_match_reference_randomized(kind):
    rng = np.random.default_rng(100 + KINDS.index(kind))
    nonempty = 0
    for _ in range(40):
        t = int(rng.integers(1, 14))
        scale = int(rng.choice([1, 2, 3, 5, 24]))
        normalize = bool(rng.integers(0, 2))
        if rng.integers(0, 2):
            thresholds = SPEC_THRESHOLDS
        else:
            thresholds = sorted(rng.uniform(-0.2, 1.1, size=int(rng.integers(1, 6))).tolist())
        got = _check(
            _random_map(rng, kind, t),
            thresholds,
            float(rng.uniform()),
            float(rng.uniform(0.1, 5.0)),
            scale=scale,
            min_length=int(rng.choice([1, 2, 3])),
            outer_ratio=float(rng.choice([0.0, 0.25, 0.5, 1.3])),
            class_score_weight=float(rng.choice([0.0, 0.2, 1.0])),
            normalize=normalize,
        )
        nonempty += got.shape[0] > 0
    if kind != "constant":
        assert nonempty > 10  # the comparison is not vacuous


def test_proposals_all_above_and_all_below():
    # Constant map, not normalized: every step is above thresholds below it, none above the others.
    got = _check([0.6] * 5, [0.1, 0.5, 0.6, 0.9], 0.3, 1.0, scale=4, normalize=False)
    assert got.shape[0] == 2  # 0.6 > 0.6 is false (strict), as for 0.9
    torch.testing.assert_close(got[:, :2], torch.tensor([[0.0, 5.0], [0.0, 5.0]], dtype=torch.float64))
    # Whole video above: no outer region, score = inner + weight * class score.
    torch.testing.assert_close(got[:, 2], torch.full((2,), 0.6 + 0.2 * 0.3, dtype=torch.float64))
    # Normalized constant map: all zeros, nothing strictly above 0.
    assert _check([0.6] * 5, SPEC_THRESHOLDS, 0.3, 1.0).shape == (0, 3)
    assert _check([0.0, 0.1, 0.0], [0.5], 0.3, 1.0, normalize=False).shape == (0, 3)


def test_proposals_length_one_runs_and_min_length():
    x = [0.0, 0.0, 1.0, 0.0, 0.0]
    got1 = _check(x, [0.5], 1.0, 2.0, scale=1, min_length=1)
    torch.testing.assert_close(got1[:, :2], torch.tensor([[4.0, 6.0]], dtype=torch.float64))
    assert _check(x, [0.5], 1.0, 2.0, scale=1, min_length=2).shape == (0, 3)
    # scale 2: the peak's neighbours are at 0.5, so only the peak step is > 0.6.
    assert _check(x, [0.6], 1.0, 2.0, scale=2, min_length=1).shape == (1, 3)
    assert _check(x, [0.6], 1.0, 2.0, scale=2, min_length=2).shape == (0, 3)


def test_proposals_hand_made():
    # scale 1: run [2, 3] of a 6-step map, 2 s a step.
    got = proposals_from_scores(torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]), [0.5], 0.5, 2.0, scale=1)
    # outer = [max(0, int(2 - 0.5)), 2) U (3, min(5, int(3 + 0.5))] = {1}: value 0.
    torch.testing.assert_close(got, torch.tensor([[4.0, 8.0, 1.0 + 0.2 * 0.5]], dtype=torch.float64))

    # scale 2: upsampled map [0, .5, 1, 1, 1, .5, 0, -.5] (the last step extrapolated), 1 s an input step.
    x = torch.tensor([0.0, 1.0, 1.0, 0.0])
    got = proposals_from_scores(x, torch.tensor([0.6, 0.4]), 1.0, 1.0, scale=2)
    want = torch.tensor(
        [
            # thr 0.6: run [2, 4], n = 3; outer [int(1.25)=1, 2) U (4, int(4.75)=4] = {1} -> 0.5
            [1.0, 2.5, 1.0 - 0.5 + 0.2],
            # thr 0.4: run [1, 5], n = 5; outer [max(0, int(-0.25)) = 0, 1) U (5, int(6.25) = 6] = {0, 6} -> 0
            [0.5, 3.0, 0.8 - 0.0 + 0.2],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, want)


def test_proposals_threshold_tensor_and_empty_inputs():
    x = torch.rand(9, generator=torch.Generator().manual_seed(3))
    a = proposals_from_scores(x, [0.1, 0.2], 0.4, 0.64)
    b = proposals_from_scores(x, torch.tensor([0.1, 0.2]), torch.tensor(0.4), 0.64)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert proposals_from_scores(x, [], 0.4, 0.64).shape == (0, 3)
    assert proposals_from_scores(torch.zeros(0), [0.1], 0.4, 0.64).shape == (0, 3)
    with pytest.raises(ValueError):
        proposals_from_scores(torch.zeros(3, 2), [0.1], 0.4, 0.64)


# ----------------------------------------------------------------------------------- detect / select


def test_detect_video_concatenates_classes():
    g = torch.Generator().manual_seed(7)
    maps = torch.rand(12, 5, generator=g)
    class_scores = torch.softmax(torch.randn(5, generator=g), 0)
    keep = torch.tensor([3, 1])
    got = detect_video(maps, class_scores, keep, SPEC_THRESHOLDS, 0.64, scale=6)
    parts = []
    for c in (3, 1):
        p = proposals_from_scores(maps[:, c], SPEC_THRESHOLDS, float(class_scores[c]), 0.64, scale=6)
        parts.append(torch.cat([p, torch.full((p.shape[0], 1), float(c), dtype=torch.float64)], 1))
    want = torch.cat(parts)
    assert got.shape == want.shape and got.shape[1] == 4 and got.shape[0] > 0
    torch.testing.assert_close(got, want)
    assert detect_video(maps, class_scores, torch.zeros(0, dtype=torch.long), [0.1], 0.64).shape == (0, 4)


def test_select_classes_threshold_and_fallback():
    scores = torch.tensor([0.05, 0.3, 0.2, 0.45])
    assert select_classes(scores, 0.2).tolist() == [1, 2, 3]  # >= threshold
    assert select_classes(scores, 0.46).tolist() == [3]  # none: the argmax
    assert select_classes(torch.tensor([0.1, 0.4, 0.4, 0.1]), 0.5).tolist() == [1]  # argmax tie: first
    out = select_classes(scores, 0.9)
    assert out.dtype == torch.int64 and out.numel() == 1
