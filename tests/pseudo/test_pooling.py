"""The label-free actionness, top-fraction weights and background-subtracted pooling (docs/method.md sec. 3.1.1-3.1.2),
each against a slow per-video loop written from its definition."""

from __future__ import annotations

import math

import pytest
import torch

from utal_lightning.pseudo.pooling import (
    background_subtracted_pool,
    deviation_actionness,
    label_free_background,
    top_fraction_weights,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _batch(seed: int = 0, b: int = 5, t: int = 23, d: int = 7):
    g = torch.Generator().manual_seed(seed)
    features = torch.rand((b, t, d), generator=g, dtype=torch.float64) * 3
    lengths = torch.tensor([t, 1, 9, t - 4, 2][:b])
    return features, lengths


def test_deviation_actionness_is_the_distance_from_the_reference_on_real_positions():
    features, lengths = _batch()
    reference = torch.linspace(0, 1, features.shape[2], dtype=torch.float64)
    out = deviation_actionness(features, reference, lengths)
    for b in range(len(features)):
        for t in range(features.shape[1]):
            expected = math.sqrt(
                sum((float(x) - float(r)) ** 2 for x, r in zip(features[b, t], reference, strict=True))
            )
            assert out[b, t].item() == pytest.approx(expected if t < lengths[b] else 0.0, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_top_fraction_weights_keep_the_highest_floor_fraction_of_each_video(fraction):
    features, lengths = _batch(1)
    scores = features[..., 0]
    scores[0, 3] = scores[0, 4]  # a tie: the lower index wins
    out = top_fraction_weights(scores, fraction, lengths)
    for b in range(len(scores)):
        n = int(lengths[b])
        k = max(1, math.floor(round(fraction * n, 9)))
        ranked = sorted(range(n), key=lambda t: (-float(scores[b, t]), t))[:k]
        expected = [1.0 if t in ranked else 0.0 for t in range(scores.shape[1])]
        assert out[b].tolist() == expected, (b, fraction)


def test_top_fraction_weights_use_exact_floors():
    # 0.1 * 30 is 3.0000000000000004 and 0.7 * 10 is 7.000000000000001 in floats: still 3 and 7 snippets
    assert int(top_fraction_weights(torch.rand(1, 30), 0.1).sum()) == 3
    assert int(top_fraction_weights(torch.rand(1, 10), 0.7).sum()) == 7
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_weights(torch.rand(1, 10), 0.0)


def _background_subtracted_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """One video (L, D) with weights (L,): min-max scaled weights, attended mean minus the (1 - w) mean."""
    low, high = float(w.min()), float(w.max())
    if high - low <= 1e-12:
        pooled = x.mean(0)
    else:
        scaled = [(float(v) - low) / (high - low) for v in w]
        attended = sum(s * x[t] for t, s in enumerate(scaled)) / sum(scaled)
        rest = sum((1 - s) * x[t] for t, s in enumerate(scaled)) / sum(1 - s for s in scaled)
        pooled = attended - rest
    return pooled / pooled.norm()


def test_background_subtracted_pool_matches_its_definition_per_video():
    features, lengths = _batch(2)
    weights = torch.rand(features.shape[:2], generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    weights[2, : int(lengths[2])] = 0.25  # constant: the plain mean
    features[:, -1] += 100.0  # padding of the short videos must not leak in
    out = background_subtracted_pool(features, weights, lengths)
    for b in range(len(features)):
        n = int(lengths[b])
        torch.testing.assert_close(out[b], _background_subtracted_reference(features[b, :n], weights[b, :n]))


def test_background_subtracted_pool_cancels_a_per_video_offset():
    # Two videos showing the same action over different backgrounds pool to the same feature.
    g = torch.Generator().manual_seed(0)
    base = torch.rand((1, 12, 4), generator=g, dtype=torch.float64)
    weights = torch.rand((1, 12), generator=g, dtype=torch.float64)
    offset = torch.tensor([5.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    torch.testing.assert_close(
        background_subtracted_pool(base + offset, weights), background_subtracted_pool(base, weights)
    )


def test_label_free_background_weighs_each_snippet_by_one_minus_its_rescaled_deviation():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [4.0, 3.0], [0.0, 1.0]], dtype=torch.float64)
    reference = torch.zeros(2, dtype=torch.float64)
    # distances 0, 1, 5, 1 -> rescaled 0, 0.2, 1, 0.2 -> background weights 1, 0.8, 0, 0.8
    expected = (1.0 * x[0] + 0.8 * x[1] + 0.8 * x[3]) / 2.6
    torch.testing.assert_close(label_free_background(x, reference), expected)
    torch.testing.assert_close(label_free_background(x[:1].repeat(3, 1), reference), x[0])  # all alike: the mean
