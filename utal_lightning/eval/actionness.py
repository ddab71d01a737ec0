"""How well a snippet score finds the actions: per-video ROC AUC against the ground-truth action snippets.

A diagnostic of the pseudolabel stage (docs/method.md sec. 2.1): the AUC of the pooling attention and of the
label-free deviation signal, on the training videos. Metrics only, never read by a decision.
"""

from __future__ import annotations

import torch
from torch import Tensor

from utal_lightning.pseudo.pooling import valid_mask


def snippet_auc(scores: Tensor, positives: Tensor, lengths: Tensor | None = None) -> Tensor:
    """(B,) ROC AUC of ``scores`` (B, T) for ``positives`` (B, T) bool over each video's real positions
    (``lengths``): the probability that a random action snippet scores above a random background one, ties
    counting one half (the Mann-Whitney statistic with average ranks, as ``sklearn.metrics.roc_auc_score``).
    NaN for a video without action or without background snippets."""
    valid = valid_mask(scores.shape, lengths, scores.device)
    x = torch.where(valid, scores.double(), torch.full_like(scores, float("inf"), dtype=torch.float64))
    ordered = torch.sort(x, dim=1).values
    below = torch.searchsorted(ordered, x, right=False)  # valid values strictly smaller
    not_above = torch.searchsorted(ordered, x, right=True)  # smaller or equal (padding is +inf: never counted)
    rank = (below + not_above + 1).double() / 2  # 1-based average rank among the valid positions
    pos = positives.bool() & valid
    n_pos = pos.sum(1).double()
    n_neg = valid.sum(1).double() - n_pos
    rank_sum = torch.where(pos, rank, torch.zeros_like(rank)).sum(1)
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, float("nan")))


def mean_auc(auc: Tensor) -> float | None:
    """The mean over the videos where the AUC is defined, or None if none is."""
    defined = auc[~torch.isnan(auc)]
    return float(defined.mean()) if defined.numel() else None
