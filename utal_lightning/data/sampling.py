"""Temporal sampling of a video's snippets to a fixed grid of T (docs/method.md sec. 1.2), batched, on any device."""

from __future__ import annotations

import torch
from torch import Tensor

from utal_lightning.data.layout import SNIPPET_SECONDS


def train_positions(lengths: Tensor, num_segments: int, generator: torch.Generator | None = None) -> Tensor:
    """docs/method.md sec. 1.2, train: exactly T snippet indices per video, one drawn uniformly from each bin.

    Draws the (B, T) uniforms with ``generator`` (on its device) and maps them with
    :func:`train_positions_from_uniform`. ``lengths`` is (B,); returns (B, T) int64 on its device.
    """
    device = lengths.device
    shape = (lengths.shape[0], num_segments)
    uniform = torch.rand(shape, generator=generator, device=device if generator is None else generator.device)
    return train_positions_from_uniform(lengths, uniform.to(device))


def train_positions_from_uniform(lengths: Tensor, uniform: Tensor) -> Tensor:
    """docs/method.md sec. 1.2, train: bin ``i`` of T has edges ``s_i = i*L/T`` and its index is drawn from
    ``[floor(s_i), floor(s_{i+1})]`` (both ends included), the last bin from ``[floor(s_{T-1}), L-1]``;
    ``uniform`` (B, T) in [0, 1) picks the index inside each bin. Videos shorter than T repeat snippets.

    Pure integer/elementwise maths on ``lengths``' device, so the loader can draw the uniforms on the
    host with a seeded generator and the device maps them: identical positions on every device.
    """
    lengths = lengths.to(torch.int64)
    device = lengths.device
    num_segments = uniform.shape[1]
    bins = torch.arange(num_segments + 1, device=device, dtype=torch.int64)
    # Integer arithmetic: floor(i * L / T) exactly, with no float rounding at bin edges.
    edges = torch.div(bins[None, :] * lengths[:, None], num_segments, rounding_mode="floor")  # (B, T+1)
    low, high = edges[:, :-1], edges[:, 1:].clone()
    high[:, -1] = lengths - 1
    high = torch.maximum(high, low)
    uniform = uniform.to(device)
    offsets = (uniform * (high - low + 1).to(uniform.dtype)).floor().to(torch.int64)
    return low + torch.minimum(offsets, high - low)


def test_positions(length: int, num_segments: int, device: torch.device | str | None = None) -> Tensor:
    """docs/method.md sec. 1.2, test: ``floor(i*L/T)`` for i < T when L > T; all L snippets when L <= T."""
    if length <= num_segments:
        return torch.arange(length, device=device, dtype=torch.int64)
    return torch.div(
        torch.arange(num_segments, device=device, dtype=torch.int64) * length, num_segments, rounding_mode="floor"
    )


def position_to_seconds(
    position: Tensor | float, length: int | Tensor, num_used: int | Tensor, seconds_per_feature: float = SNIPPET_SECONDS
) -> Tensor | float:
    """docs/method.md sec. 1.2: seconds spanned by ``p`` grid positions = ``p * L / T_used * seconds_per_feature``
    (L = the original length; ``16/25`` in the CoLA layout, the layout's :class:`FeatureClock` step otherwise,
    whose offset then locates position 0)."""
    return position * (length / num_used) * seconds_per_feature


def shard(num_items: int, rank: int, world_size: int) -> Tensor:
    """The item indices this rank handles: a strided share, at most ``ceil(n / world)`` long."""
    return torch.arange(rank, num_items, world_size)
