"""Input transforms of the localization networks: the temporal feature shift of IOCNet's student (docs/method.md
sec. 4.2, COPL after TSM) and the per-video centering of every network's input (sec. 4.3).

Pure torch, on the input's device; no Lightning.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["center_over_time", "temporal_shift"]


def center_over_time(features: Tensor, lengths: Tensor | None = None) -> Tensor:
    """docs/method.md sec. 4.3: each video's snippets minus its mean snippet, ``x_t - mean_t x``, over its real
    positions; a new (B, T, D) tensor. A per-video offset shared by all snippets (camera, lighting, a static
    scene) shifts every class logit of a video by a per-video constant; centred, the network sees only what changes
    within the video. ``lengths`` (B,): real positions of a zero-padded batch (the padding stays 0)."""
    if lengths is None:
        return features - features.mean(dim=1, keepdim=True)
    valid = torch.arange(features.shape[1], device=features.device)[None, :] < lengths.to(features.device)[:, None]
    valid = valid.to(features.dtype)[..., None]
    mean = (features * valid).sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp(min=1)
    return (features - mean) * valid


def temporal_shift(features: Tensor, num_channels: int = 512, generator: torch.Generator | None = None) -> Tensor:
    """docs/method.md sec. 4.2 temporal feature shift of the student's input; returns a new (B, T, D) tensor.

    Once per call (= per batch), ``num_channels`` of the D channels are drawn at random without
    replacement (``torch.randperm(D, generator=generator)[:num_channels]``, drawn on the generator's
    device, CPU when ``generator`` is None); the first ``num_channels // 2`` drawn are shifted one
    step *forward* in time (``out[:, t] = x[:, t - 1]``, so ``out[:, 0] = 0``), the remaining
    ``num_channels - num_channels // 2`` one step *backward* (``out[:, t] = x[:, t + 1]``, so
    ``out[:, T - 1] = 0``). All other channels are copied unchanged. The same channels are used for
    every video of the batch. ``num_channels = 0`` returns a copy; ``T = 1`` zeroes the drawn channels.
    """
    if features.dim() != 3:
        raise ValueError(f"features must be (B, T, D), got shape {tuple(features.shape)}")
    D = features.shape[2]
    if not 0 <= num_channels <= D:
        raise ValueError(f"num_channels must be in [0, D={D}], got {num_channels}")
    out = features.clone()
    if num_channels == 0:
        return out
    device = generator.device if generator is not None else torch.device("cpu")
    channels = torch.randperm(D, generator=generator, device=device)[:num_channels].to(features.device)
    n_fwd = num_channels // 2
    fwd, bwd = channels[:n_fwd], channels[n_fwd:]
    if fwd.numel():
        shifted = torch.zeros_like(features[:, :, fwd])
        shifted[:, 1:] = features[:, :-1, fwd]
        out[:, :, fwd] = shifted
    if bwd.numel():
        shifted = torch.zeros_like(features[:, :, bwd])
        shifted[:, :-1] = features[:, 1:, bwd]
        out[:, :, bwd] = shifted
    return out
