import math

import pytest
import torch

from utal_lightning.data.sampling import position_to_seconds, train_positions
from utal_lightning.data.sampling import test_positions as grid_positions


def reference_bins(length: int, t: int) -> list[tuple[int, int]]:
    """docs/method.md sec. 1.2 written out.

    Bin i draws from [floor(i*L/T), floor((i+1)*L/T)], the last from [floor(s), L-1].
    """
    bins = []
    for i in range(t):
        low = math.floor(i * length / t)
        high = math.floor((i + 1) * length / t) if i < t - 1 else length - 1
        bins.append((low, max(low, high)))
    return bins


@pytest.mark.parametrize("length,t", [(1, 4), (3, 8), (8, 8), (9, 8), (100, 7), (750, 750), (6001, 750), (37, 50)])
def test_train_positions_stay_in_their_bins_and_cover_them(length, t):
    generator = torch.Generator().manual_seed(0)
    draws = train_positions(torch.full((400,), length), t, generator)
    assert draws.shape == (400, t) and draws.dtype == torch.int64
    bins = reference_bins(length, t)
    low = torch.tensor([b[0] for b in bins])
    high = torch.tensor([b[1] for b in bins])
    assert bool(((draws >= low) & (draws <= high)).all())
    assert bool((draws[:, 1:] >= draws[:, :-1]).all())  # bins are ordered, so positions are too
    # every allowed index of a few bins shows up over 400 draws (uniform over <= 10 values)
    for i in range(min(t, 5)):
        if bins[i][1] - bins[i][0] < 10:
            assert set(draws[:, i].tolist()) == set(range(bins[i][0], bins[i][1] + 1))


def test_train_positions_mixed_lengths_in_one_batch():
    lengths = torch.tensor([1, 5, 50, 1000])
    draws = train_positions(lengths, 16, torch.Generator().manual_seed(1))
    for row, length in zip(draws, lengths.tolist(), strict=True):
        bins = reference_bins(length, 16)
        assert all(lo <= p <= hi for p, (lo, hi) in zip(row.tolist(), bins, strict=True))


def test_train_positions_are_seeded():
    a = train_positions(torch.tensor([300, 40]), 32, torch.Generator().manual_seed(5))
    b = train_positions(torch.tensor([300, 40]), 32, torch.Generator().manual_seed(5))
    c = train_positions(torch.tensor([300, 40]), 32, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("length,t", [(1, 4), (4, 4), (5, 4), (751, 750), (6000, 750)])
def test_test_positions(length, t):
    positions = grid_positions(length, t).tolist()
    expected = list(range(length)) if length <= t else [math.floor(i * length / t) for i in range(t)]
    assert positions == expected


def test_position_to_seconds_uses_original_length():
    # 1500 snippets sampled to 750: grid step = 2 snippets = 1.28 s
    assert position_to_seconds(10, 1500, 750) == pytest.approx(10 * 2 * 16 / 25)
    assert position_to_seconds(3, 40, 40) == pytest.approx(3 * 0.64)
