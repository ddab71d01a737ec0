"""Global video features from snippet features and a model's attention (docs/method.md sec. 3.1)."""

from __future__ import annotations

import torch
from torch import Tensor


def valid_mask(shape: torch.Size | tuple[int, int], lengths: Tensor | None, device: torch.device) -> Tensor:
    """(B, T) bool: position t of video b is real (t < lengths[b]); all True when ``lengths`` is None."""
    b, t = shape
    if lengths is None:
        return torch.ones((b, t), dtype=torch.bool, device=device)
    lengths = torch.as_tensor(lengths, device=device).long().clamp(0, t)
    if lengths.shape != (b,):
        raise ValueError(f"lengths must have shape ({b},), got {tuple(lengths.shape)}")
    return torch.arange(t, device=device)[None, :] < lengths[:, None]


def attention_pool(features: Tensor, attention: Tensor | None = None, lengths: Tensor | None = None) -> Tensor:
    """FEEL Eq. 1 (docs/method.md sec. 3.1): ``F_n = L2Norm(sum_t s_t x_t)``.

    ``features`` (B, T, D); ``attention`` (B, T) is the previous model's class-agnostic attention,
    or None for iteration 1, where ``s = 1/L`` (mean pooling). ``lengths`` (B,) optional valid lengths
    of a zero-padded batch: positions ``>= length`` take no part. Returns (B, D), unit L2 norm.
    """
    valid = valid_mask(features.shape[:2], lengths, features.device).to(features.dtype)
    if attention is None:
        weights = valid / valid.sum(dim=1, keepdim=True).clamp(min=1)
    else:
        weights = attention.to(features.dtype) * valid
    pooled = torch.einsum("bt,btd->bd", weights, features)
    return torch.nn.functional.normalize(pooled, dim=1)


def minmax_over_time(x: Tensor, lengths: Tensor | None = None, eps: float = 1e-12) -> Tensor:
    """(B, T) rescaled to [0, 1] per video over its real positions (``lengths``): ``(x - min) / (max - min)``;
    0 at padded positions and on a constant video."""
    valid = valid_mask(x.shape, lengths, x.device)
    inf = torch.tensor(float("inf"), dtype=x.dtype, device=x.device)
    low = torch.where(valid, x, inf).amin(dim=1, keepdim=True)
    high = torch.where(valid, x, -inf).amax(dim=1, keepdim=True)
    span = high - low
    out = (x - low) / torch.where(span > eps, span, torch.ones_like(span))
    return torch.where(valid & (span > eps), out, torch.zeros_like(out)).clamp(0.0, 1.0)
