"""Global video features from snippet features and a model's attention (SPEC 3.1)."""

from __future__ import annotations

import torch
from torch import Tensor


def attention_pool(features: Tensor, attention: Tensor | None = None) -> Tensor:
    """FEEL Eq. 1 (SPEC 3.1): ``F_n = L2Norm(sum_t s_t x_t)``.

    ``features`` (B, T, D); ``attention`` (B, T) is the previous model's class-agnostic attention,
    or None for iteration 1, where ``s = 1/T`` (mean pooling). Returns (B, D), unit L2 norm.
    """
    if attention is None:
        pooled = features.mean(dim=1)
    else:
        pooled = torch.einsum("bt,btd->bd", attention.to(features.dtype), features)
    return torch.nn.functional.normalize(pooled, dim=1)
