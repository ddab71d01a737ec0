"""Which pseudolabeled videos to train on (SPEC 3.4)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def iis_beta(iteration: int, max_iterations: int, schedule: str = "variable", mu: float = 1.05) -> float:
    """FEEL Eq. 11-12: the fraction of each cluster selected at ``iteration`` (1-based).

    ``constant``: ``i / I_max`` (Eq. 11); ``variable``: ``(mu^i - 1) / (mu^I_max - 1)`` (Eq. 12);
    ``none``: 1 (every video, the CoLA-UTAL baseline).
    """
    if schedule == "none":
        return 1.0
    if schedule == "constant":
        return iteration / max_iterations
    if schedule == "variable":
        if mu == 1.0:
            return iteration / max_iterations  # the limit of Eq. 12 as mu -> 1
        return (mu**iteration - 1) / (mu**max_iterations - 1)
    raise ValueError(f"unknown IIS schedule {schedule!r} (none, constant, variable)")


def iis_select(labels: Tensor, rank: Tensor, beta: float) -> Tensor:
    """FEEL Eq. 10 (SPEC 3.4): in every non-empty cluster keep its ``max(1, floor(beta * n_k))``
    top-ranked members. ``rank`` (N,) is each video's 0-based rank inside its cluster. Returns (N,) bool."""
    sizes = torch.bincount(labels, minlength=int(labels.max()) + 1)
    quota = torch.clamp(torch.floor(beta * sizes.double()).long(), min=1)
    return rank < quota[labels]


def adaptive_epochs(max_epochs: int, num_selected: int, num_videos: int) -> int:
    """FEEL: ``E_i = max(1, round(E_max * |P_i| / N))`` (SPEC 2), rounding halves up."""
    return max(1, math.floor(max_epochs * num_selected / num_videos + 0.5))
