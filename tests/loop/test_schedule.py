"""The outer loop's schedule: epochs per iteration (FEEL's adaptive batches), epochs into an iteration, restart
seeds."""

from __future__ import annotations

import pytest
import torch

from utal_lightning.loop.schedule import epochs_into_iteration, iteration_epochs, restart_seed


@pytest.mark.parametrize(
    "e_max,per_epoch,n,batch,adaptive,expected",
    [
        # adaptive: E_max epochs over P (100 x ceil(30/16) = 200 of the baseline's 100 x 8 = 800 batches)
        (100, 30, 120, 16, True, 100),
        (460, 37, 200, 16, True, 460),
        # fixed budget: E_max x ceil(N/B) batches; 100 x 8 = 800 batches of 2 per epoch = 400 epochs
        (100, 30, 120, 16, False, 400),
        # THUMOS: 460 x 13 = 5980 batches, 3 per epoch over 37 videos: 1993.3 -> 1994 epochs
        (460, 37, 200, 16, False, 1994),
        # ActivityNet: 30 x 38 = 1140 batches, 4 per epoch over 500 videos: 285 epochs
        (30, 500, 4819, 128, False, 285),
        # fewer videos than a batch: one batch per epoch, the baseline's 20 x 1 batches
        (20, 5, 8, 16, False, 20),
        # an epoch over all N videos (P and U): E_max either way
        (40, 120, 120, 16, True, 40),
        (40, 120, 120, 16, False, 40),
    ],
)
def test_iteration_epochs(e_max, per_epoch, n, batch, adaptive, expected):
    assert iteration_epochs(e_max, per_epoch, n, batch, adaptive) == expected


def test_iteration_epochs_rejects_empty_or_oversized_epochs():
    for bad in (0, 121):
        with pytest.raises(ValueError):
            iteration_epochs(10, bad, 120, 16, True)


def test_epochs_into_an_iteration_count_from_its_first_epoch():
    # iteration 2 of a plan [6, 3] ends at epoch 9 and trains epochs 6, 7, 8
    assert [epochs_into_iteration(e, 9, 3, finished=False) for e in (6, 7, 8)] == [0, 1, 2]
    assert [epochs_into_iteration(e, 9, 3, finished=True) for e in (6, 7, 8)] == [1, 2, 3]


def test_restart_seed_depends_on_data_seed_and_iteration_only():
    seeds = {restart_seed(s, i) for s in (0, 1) for i in (2, 3)}
    assert len(seeds) == 4
    assert restart_seed(0, 2) == restart_seed(0, 2)
    torch.manual_seed(restart_seed(0, 2))  # a valid torch seed
