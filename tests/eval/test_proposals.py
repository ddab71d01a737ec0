"""Proposal generation (docs/method.md sec. 5) against scipy and a slow plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import interp1d

from tests.reference.proposals import reference_detect_video, reference_proposals, reference_upsample
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
    assert got.shape == (t * scale, *shape[1:])
    assert got.dtype == torch.float64
    # Bit for bit: values sitting exactly on a threshold are decided as interp1d decides them.
    np.testing.assert_array_equal(got.numpy(), _scipy_upsample(x, scale))


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


# ------------------------------------------------------------------------------ slow reference (docs/method.md sec. 5)


def _check(loc_map, thresholds, class_score, seconds_per_step, score_map=None, **kw):
    """The vectorized proposals equal the literal CoLA reference, rows in the same order, to 1e-9."""
    want = reference_proposals(loc_map, thresholds, class_score, seconds_per_step, score_map=score_map, **kw)
    as_tensor = lambda x: None if x is None else torch.as_tensor(np.asarray(x, dtype=np.float64))  # noqa: E731
    got = proposals_from_scores(
        as_tensor(loc_map), thresholds, class_score, seconds_per_step, score_map=as_tensor(score_map), **kw
    )
    assert got.dtype == torch.float64
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)
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
            thresholds = sorted(rng.uniform(0.0, 1.1, size=int(rng.integers(1, 6))).tolist())
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
            # thr 0.6: run [2, 4], n = 3; outer [int(1.25)=1, 2) U (4, int(4.75)=4] = {1}: 0.5 < 0.6 is
            # zeroed in the thresholded copy the proposal is scored on -> outer 0 (was 0.5 before).
            [1.0, 2.5, 1.0 - 0.0 + 0.2],
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


# ------------------------------------------------------- thresholded scoring, actionness (CoLA's test_all)

CAS_THRESHOLDS = list(np.arange(0, 0.25, 0.025))  # CoLA THUMOS CAS thresholds
ACTIONNESS_THRESHOLDS = list(np.arange(0.1, 0.925, 0.025))  # CoLA's second source, 33 values
COPL_THRESHOLDS = list(np.linspace(0.0, 1.0, 11))  # COPL h_cs thresholds 0.0:0.1:1.0
assert len(ACTIONNESS_THRESHOLDS) == 33


def _map_of(rng, kind, t, thresholds):
    """Maps with the hard cases: ties (few distinct values), constant maps, plateaus exactly at a
    threshold value (min 0 and max 1 present, so normalization keeps the values bit for bit)."""
    if kind == "uniform":
        return rng.uniform(size=t)
    if kind == "smooth":
        return np.sin(np.linspace(0, rng.uniform(1, 40), t) + rng.uniform(0, 6)) + 0.3 * rng.normal(size=t)
    if kind == "ties":
        return rng.integers(0, 5, size=t) / 4.0
    if kind == "constant":
        return np.full(t, rng.uniform(-1, 2))
    if kind == "plateaus":
        values = [0.0, 1.0] + [float(v) for v in rng.choice(thresholds, size=3)]
        x = []
        while len(x) < t:
            x += [values[int(rng.integers(0, len(values)))]] * int(rng.integers(1, 6))
        x = np.asarray(x[:t])
        if t >= 2:
            x[int(rng.integers(0, t))], x[int(rng.integers(0, t))] = 0.0, 1.0
        return x
    raise AssertionError(kind)


MAP_KINDS = ["uniform", "smooth", "ties", "constant", "plateaus"]
LENGTHS = [1, 2, 5, 37, 750]


def _kinds_for(t, seed):
    # T = 750 is slow in the plain-Python reference: two kinds per seed, all five over the seeds.
    return MAP_KINDS if t < 750 else [MAP_KINDS[seed % 5], MAP_KINDS[(seed + 2) % 5]]


@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_threshold_proposals_scored_on_thresholded_copy_match_reference(t, seed, one_thread):
    rng = np.random.default_rng(10_000 + 100 * t + seed)
    for kind in _kinds_for(t, seed):
        for thresholds in (CAS_THRESHOLDS, COPL_THRESHOLDS):
            x = _map_of(rng, kind, t, thresholds)
            class_score = float(rng.uniform())
            got = _check(x, thresholds, class_score, 0.64)
            if kind == "constant" or t == 1:
                assert got.shape == (0, 3)  # normalized to zeros: nothing strictly above any threshold >= 0
            # The map of a plateau kept as it is (normalize=False), other scales and outer ratios.
            _check(
                x,
                thresholds,
                class_score,
                1.3,
                scale=int(rng.choice([1, 5])),
                normalize=False,
                outer_ratio=float(rng.choice([0.25, 0.6])),
                min_length=int(rng.choice([1, 2, 3])),
            )


@pytest.mark.parametrize("t", LENGTHS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_actionness_proposals_scored_on_unthresholded_class_map_match_reference(t, seed, one_thread):
    rng = np.random.default_rng(20_000 + 100 * t + seed)
    for kind in _kinds_for(t, seed):
        actionness = _map_of(rng, kind, t, ACTIONNESS_THRESHOLDS)
        class_map = _map_of(rng, MAP_KINDS[int(rng.integers(0, 5))], t, CAS_THRESHOLDS)
        _check(actionness, ACTIONNESS_THRESHOLDS, float(rng.uniform()), 0.64, score_map=class_map)
        _check(
            actionness,
            ACTIONNESS_THRESHOLDS,
            float(rng.uniform()),
            2.0,
            score_map=class_map,
            scale=3,
            normalize=False,
            outer_ratio=0.5,
        )


def test_reference_comparisons_are_not_vacuous():
    # Many rows, long runs and plateaus on a threshold: the randomized comparisons above see real work.
    rng = np.random.default_rng(5)
    x = _map_of(rng, "plateaus", 200, CAS_THRESHOLDS)
    assert np.isin(x, CAS_THRESHOLDS[1:]).sum() > 20  # values exactly on a (positive) threshold
    got = _check(x, CAS_THRESHOLDS, 0.5, 0.64)
    assert got.shape[0] > 50
    up = upsample_linear(torch.from_numpy(x), 24).numpy()
    np.testing.assert_array_equal(up, reference_upsample(x, 24))
    assert np.isin(up, CAS_THRESHOLDS[1:]).sum() > 20 * 24  # ties survive the upsampling exactly


def test_thresholded_scoring_hand_made():
    # scale 1, no normalization: runs above 0.1 are [3, 4] and [8, 9]; n = 2, outer = 1 step each side
    # ([max(0, int(s - 0.5)), s) U (e, int(e + 0.5)]: {s - 1} only, int() truncates e + 0.5 to e).
    x = torch.tensor([0.0, 0.1, 0.1, 1.0, 0.8, 0.1, 0.0, 0.05, 0.6, 0.4], dtype=torch.float64)
    got = proposals_from_scores(x, [0.1], 0.5, 1.0, scale=1, normalize=False)
    want = torch.tensor(
        [
            [3.0, 5.0, 0.9 - 0.1 + 0.1],  # outer {2}: 0.1 == threshold is kept (only values < thr are zeroed)
            [8.0, 10.0, 0.5 - 0.0 + 0.1],  # outer {7}: 0.05 < 0.1 is zeroed (unthresholded: 0.5 - 0.05)
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_thresholded_scoring_differs_from_unthresholded_scoring():
    # Sub-threshold values inside the outer windows: the old rule (outer mean on the unthresholded
    # map) and the new one (on the thresholded copy) must give different scores, the same runs.
    rng = np.random.default_rng(11)
    x = np.sin(np.linspace(0, 30, 120)) + 0.2 * rng.normal(size=120)
    new = reference_proposals(x, CAS_THRESHOLDS, 0.4, 0.64)
    old = reference_proposals(x, CAS_THRESHOLDS, 0.4, 0.64, thresholded_scoring=False)
    got = _check(x, CAS_THRESHOLDS, 0.4, 0.64)
    assert new.shape == old.shape and new.shape[0] > 20
    np.testing.assert_array_equal(new[:, :2], old[:, :2])
    differs = np.abs(new[:, 2] - old[:, 2]) > 1e-6
    assert differs.mean() > 0.5  # most proposals have some sub-threshold step in their outer window
    assert np.all(new[:, 2] >= old[:, 2] - 1e-12)  # zeroing values >= 0 only lowers the outer mean
    assert np.abs(got.numpy()[:, 2] - old[:, 2]).max() > 1e-3  # the implementation follows the new rule
    # Threshold 0 on a normalized map: nothing is below it, both rules agree.
    zero_new = reference_proposals(x, [0.0], 0.4, 0.64)
    zero_old = reference_proposals(x, [0.0], 0.4, 0.64, thresholded_scoring=False)
    np.testing.assert_allclose(zero_new, zero_old, rtol=0, atol=1e-12)


def test_negative_threshold_runs_are_above_the_map_not_the_zeroed_copy():
    # Documented divergence from CoLA's literal loop, only for thresholds < 0 (no method uses them):
    # runs are the steps > t of the map; the zeroed steps (0 > t) of the copy do not join them, but
    # they are scored as 0 in the outer window.
    x = torch.tensor([-0.5, 0.5, 0.5, -0.5], dtype=torch.float64)
    got = proposals_from_scores(x, [-0.2], 1.0, 1.0, scale=1, normalize=False, outer_ratio=0.5)
    torch.testing.assert_close(got, torch.tensor([[1.0, 3.0, 0.5 - 0.0 + 0.2]], dtype=torch.float64))


def test_actionness_scoring_hand_made():
    # Runs come from the actionness, the score from the class map, unthresholded, never the actionness.
    # scale 2: actionness upsampled [0, .5, 1, 1, 1, .5, 0, -.5] -> thr 0.6: run [2, 4], outer {1};
    # class map upsampled [1, .5, 0, 0, 0, .5, 1, 1.5]: inner 0, outer 0.5 (0.5 < 0.6 is not zeroed).
    actionness = torch.tensor([0.0, 1.0, 1.0, 0.0])
    class_map = torch.tensor([1.0, 0.0, 0.0, 1.0])
    got = proposals_from_scores(actionness, [0.6], 0.5, 1.0, scale=2, score_map=class_map)
    torch.testing.assert_close(got, torch.tensor([[1.0, 2.5, 0.0 - 0.5 + 0.1]], dtype=torch.float64))
    # The same runs without score_map are scored on the actionness's thresholded copy.
    alone = proposals_from_scores(actionness, [0.6], 0.5, 1.0, scale=2)
    torch.testing.assert_close(alone, torch.tensor([[1.0, 2.5, 1.0 - 0.0 + 0.1]], dtype=torch.float64))
    with pytest.raises(ValueError):
        proposals_from_scores(actionness, [0.6], 0.5, 1.0, score_map=torch.zeros(5))


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


def test_detect_video_with_actionness_concatenates_both_sources_per_class():
    g = torch.Generator().manual_seed(8)
    maps = torch.rand(15, 4, generator=g, dtype=torch.float64)
    actionness = torch.rand(15, generator=g, dtype=torch.float64)
    class_scores = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    keep = [2, 0]
    got = detect_video(
        maps,
        class_scores,
        keep,
        CAS_THRESHOLDS,
        0.64,
        actionness=actionness,
        actionness_thresholds=ACTIONNESS_THRESHOLDS,
        scale=6,
        outer_ratio=0.3,
    )
    parts = []
    for c in keep:
        kw = dict(scale=6, outer_ratio=0.3)
        p = proposals_from_scores(maps[:, c], CAS_THRESHOLDS, float(class_scores[c]), 0.64, **kw)
        q = proposals_from_scores(
            actionness, ACTIONNESS_THRESHOLDS, float(class_scores[c]), 0.64, score_map=maps[:, c], **kw
        )
        assert p.shape[0] > 0 and q.shape[0] > 0
        for rows in (p, q):  # map-threshold proposals of the class first, then its actionness ones
            parts.append(torch.cat([rows, torch.full((rows.shape[0], 1), float(c), dtype=torch.float64)], 1))
    torch.testing.assert_close(got, torch.cat(parts), rtol=0, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("t", [1, 2, 5, 37])
def test_detect_video_matches_reference(seed, t, one_thread):
    rng = np.random.default_rng(300 + 10 * t + seed)
    maps = np.stack([_map_of(rng, MAP_KINDS[(seed + i) % 5], t, CAS_THRESHOLDS) for i in range(5)], axis=1)
    actionness = _map_of(rng, MAP_KINDS[(seed + 3) % 5], t, ACTIONNESS_THRESHOLDS)
    class_scores = rng.uniform(size=5)
    keep = [int(c) for c in rng.permutation(5)[: int(rng.integers(1, 4))]]
    for kw in ({}, dict(scale=5, min_length=3, normalize=False), dict(thresholded_scoring=False)):
        want = reference_detect_video(
            maps,
            class_scores,
            keep,
            CAS_THRESHOLDS,
            0.64,
            actionness=actionness,
            actionness_thresholds=ACTIONNESS_THRESHOLDS,
            **kw,
        )
        got = detect_video(
            torch.from_numpy(maps),
            torch.from_numpy(class_scores),
            keep,
            CAS_THRESHOLDS,
            0.64,
            actionness=torch.from_numpy(actionness),
            actionness_thresholds=ACTIONNESS_THRESHOLDS,
            **kw,
        )
        assert got.shape == want.shape
        np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_unthresholded_scoring_of_map_runs_matches_reference(seed, one_thread):
    # COPL's h_cs runs (thresholds 0:0.1:0.9) scored on h_cs itself, as AICL's released inference does.
    rng = np.random.default_rng(700 + seed)
    maps = np.stack([_map_of(rng, MAP_KINDS[(seed + i) % 5], 120, COPL_THRESHOLDS) for i in range(3)], axis=1)
    scores = rng.uniform(size=3)
    want = reference_detect_video(maps, scores, [0, 2], COPL_THRESHOLDS, 0.64, thresholded_scoring=False)
    got = detect_video(
        torch.from_numpy(maps), torch.from_numpy(scores), [0, 2], COPL_THRESHOLDS, 0.64, thresholded_scoring=False
    )
    assert got.shape == want.shape and got.shape[0] > 0
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-9)
    thresholded = detect_video(torch.from_numpy(maps), torch.from_numpy(scores), [0, 2], COPL_THRESHOLDS, 0.64)
    np.testing.assert_array_equal(thresholded[:, :2].numpy(), got[:, :2].numpy())  # the same runs,
    assert not torch.allclose(thresholded[:, 2], got[:, 2])  # scored on another map


def test_detect_video_actionness_off_is_identical():
    g = torch.Generator().manual_seed(9)
    maps = torch.rand(20, 3, generator=g)
    actionness = torch.rand(20, generator=g)
    scores = torch.tensor([0.2, 0.5, 0.3])
    base = detect_video(maps, scores, [1, 2], CAS_THRESHOLDS, 0.64)
    assert base.shape[0] > 0
    for kw in (
        dict(actionness=None),
        dict(actionness=actionness),
        dict(actionness=actionness, actionness_thresholds=[]),
        dict(actionness=None, actionness_thresholds=ACTIONNESS_THRESHOLDS),
    ):
        assert torch.equal(detect_video(maps, scores, [1, 2], CAS_THRESHOLDS, 0.64, **kw), base)
    with_a = detect_video(
        maps, scores, [1, 2], CAS_THRESHOLDS, 0.64, actionness=actionness, actionness_thresholds=ACTIONNESS_THRESHOLDS
    )
    assert with_a.shape[0] > base.shape[0]
    # Only actionness proposals when there are no map thresholds.
    only = detect_video(maps, scores, [1], [], 0.64, actionness=actionness, actionness_thresholds=ACTIONNESS_THRESHOLDS)
    assert only.shape[0] > 0 and torch.all(only[:, 3] == 1)
    with pytest.raises(ValueError):
        detect_video(maps, scores, [1], CAS_THRESHOLDS, 0.64, actionness=actionness[:5], actionness_thresholds=[0.5])
    with pytest.raises(TypeError):
        detect_video(maps, scores, [1], CAS_THRESHOLDS, 0.64, sigma=0.5)


def test_select_classes_threshold_and_fallback():
    scores = torch.tensor([0.05, 0.3, 0.2, 0.45])
    assert select_classes(scores, 0.2).tolist() == [1, 2, 3]  # >= threshold
    assert select_classes(scores, 0.46).tolist() == [3]  # none: the argmax
    assert select_classes(torch.tensor([0.1, 0.4, 0.4, 0.1]), 0.5).tolist() == [1]  # argmax tie: first
    out = select_classes(scores, 0.9)
    assert out.dtype == torch.int64 and out.numel() == 1
