"""Which pseudolabeled videos to train on (docs/method.md sec. 3.4); how many epochs: ``loop/schedule.py``."""

from __future__ import annotations

from fractions import Fraction
from numbers import Rational

import torch
from torch import Tensor


def iis_beta(
    iteration: int, max_iterations: int, schedule: str = "variable", mu: float | str | Fraction = 1.05
) -> Fraction:
    """FEEL Eq. 11-12: the fraction of each cluster selected at ``iteration`` (1-based), as an exact rational.

    ``constant``: ``i / I_max`` (Eq. 11); ``variable``: ``(mu^i - 1) / (mu^I_max - 1)`` (Eq. 12) with
    ``mu`` read as the decimal it is written as (``1.05`` is 21/20, not the nearest binary float);
    ``none``: 1 (every video, the CoLA-UTAL baseline).
    """
    if schedule == "none":
        return Fraction(1)
    if schedule == "constant":
        return Fraction(iteration, max_iterations)
    if schedule == "variable":
        speed = Fraction(str(mu))  # str of a float is its shortest repr: the decimal the user wrote
        if speed <= 0:
            raise ValueError(f"the IIS speed mu must be > 0, got {mu}")
        if speed == 1:
            return Fraction(iteration, max_iterations)  # the limit of Eq. 12 as mu -> 1
        return (speed**iteration - 1) / (speed**max_iterations - 1)
    raise ValueError(f"unknown IIS schedule {schedule!r} (none, constant, variable)")


def iis_select(labels: Tensor, rank: Tensor, beta: Rational) -> Tensor:
    """FEEL Eq. 10 (docs/method.md sec. 3.4): in every non-empty cluster keep its ``max(1, floor(beta * n_k))``
    top-ranked members. ``rank`` (N,) is each video's 0-based rank inside its cluster; ``beta`` is
    exact (a ``Fraction`` from :func:`iis_beta`, or an int), so the floor is taken in integers
    (7/10 of 90 is 63). Returns (N,) bool."""
    if not isinstance(beta, Rational):
        raise TypeError(f"beta must be an exact rational (fractions.Fraction), got {type(beta).__name__} {beta!r}")
    sizes = torch.bincount(labels, minlength=int(labels.max()) + 1).tolist()
    quota = [max(1, beta.numerator * n // beta.denominator) for n in sizes]
    return rank < torch.tensor(quota, dtype=torch.long, device=labels.device)[labels]
