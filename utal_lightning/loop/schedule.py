"""The outer loop's schedule (docs/method.md sec. 2): how many epochs an iteration trains, where an epoch lies in
its iteration, and the seed a restarting iteration's weights come from. Plain functions: the refresh Callback
asks them and decides nothing else about epochs."""

from __future__ import annotations

import numpy as np


def iteration_epochs(max_epochs: int, videos_per_epoch: int, num_videos: int, batch_size: int, adaptive: bool) -> int:
    """Epochs of an outer iteration (FEEL sec. 3.6 / 4.1.2, adaptive epochs).

    The baseline trains ``E_max`` epochs over all N videos: ``E_max * ceil(N / B)`` batches.
    ``adaptive``: FEEL's ``E_i = E_max |V_i| / |V|`` counts epochs in units of N videos' worth of
    batches, i.e. ``E_max`` epochs over the ``videos_per_epoch`` videos an epoch covers (|P_i|):
    ``E_max * ceil(|P_i| / B)`` batches, the baseline's budget scaled by about |P_i| / N. Else the
    baseline's budget whatever |P_i| is: ``ceil(E_max * ceil(N / B) / ceil(|P_i| / B))`` epochs.
    Models whose epochs cover all N videos (P and U) get ``E_max`` either way.
    """
    if not 1 <= videos_per_epoch <= num_videos:
        raise ValueError(f"videos_per_epoch must be in [1, num_videos={num_videos}], got {videos_per_epoch}")
    if max_epochs < 1 or batch_size < 1:
        raise ValueError(f"max_epochs and batch_size must be >= 1, got {max_epochs} and {batch_size}")
    if adaptive:
        return max_epochs
    budget = max_epochs * _ceil_div(num_videos, batch_size)
    return _ceil_div(budget, _ceil_div(videos_per_epoch, batch_size))


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def restart_seed(seed: int, iteration: int) -> int:
    """Seed of the weights an iteration restarts from: a function of the data seed and the (1-based) iteration
    only, so every rank builds the same network."""
    return int(np.random.SeedSequence((seed, iteration)).generate_state(1)[0])


def epochs_into_iteration(current_epoch: int, iteration_end_epoch: int, epochs: int, finished: bool) -> int:
    """How many of its ``epochs`` the iteration ending at ``iteration_end_epoch`` has done at ``current_epoch``
    (counting that epoch when ``finished``)."""
    return current_epoch + int(finished) - (iteration_end_epoch - epochs)
