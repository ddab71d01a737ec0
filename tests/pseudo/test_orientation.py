"""Label-free orientation of a trained actionness (docs/method.md sec. 4.2.2): the per-video correlation with the
label-free actionness against numpy's, and the sign it gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from utal_lightning.pseudo.pooling import orientation_sign, within_video_correlation


def test_within_video_correlation_is_pearsons_over_the_real_positions():
    generator = torch.Generator().manual_seed(0)
    scores, reference = torch.rand(6, 11, generator=generator), torch.rand(6, 11, generator=generator)
    lengths = torch.tensor([11, 3, 7, 2, 11, 5])
    scores[2, 7:] = 100.0  # padding takes no part
    got = within_video_correlation(scores, reference, lengths)
    for b, n in enumerate(lengths.tolist()):
        expected = np.corrcoef(scores[b, :n].numpy(), reference[b, :n].numpy())[0, 1]
        assert float(got[b]) == pytest.approx(expected, abs=1e-9)
    # a video of two snippets correlates perfectly, one way or the other
    assert abs(float(got[3])) == pytest.approx(1.0)


def test_within_video_correlation_is_undefined_on_a_constant_video():
    scores = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.1, 0.4, 0.2, 0.3]])
    reference = torch.tensor([[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0]])
    assert torch.isnan(within_video_correlation(scores, reference)).all()
    # a single real position is constant too
    single = within_video_correlation(scores[1:], reference[:1] * torch.arange(4.0), torch.tensor([1]))
    assert math.isnan(float(single[0]))


def test_orientation_sign_follows_the_mean_correlation():
    assert orientation_sign(torch.tensor([0.9, -0.2, 0.1])) == 1
    assert orientation_sign(torch.tensor([-0.9, 0.2, 0.1])) == -1
    assert orientation_sign(torch.tensor([float("nan"), -0.1])) == -1  # undefined videos take no part
    assert orientation_sign(torch.tensor([float("nan")])) == 1  # nothing says the network runs backwards
    assert orientation_sign(torch.zeros(0)) == 1
    assert orientation_sign(torch.tensor([0.0])) == 1
