"""COPL HAS: high-actionness snippet selection, cross-epoch voting and pooling (docs/method.md sec. 3.1, COPL Eq. 1-5).

Pure torch, no Lightning. The intended use (docs/method.md sec. 3.1): once per epoch, a no-grad teacher pass over each
video's deterministic test-style grid gives ``A_cs = sigmoid(sum_k CAS)`` and ``A_ca = (A_R + A_F) / 2``;
:func:`has_attention` turns them into that epoch's HAS attention, :func:`vote` accumulates the epochs
of the iteration, and :func:`has_pool` makes the global video feature for spectral clustering.

Conventions:

* **Median (Eq. 1):** ``a_bin = a > median(A)`` over the video's valid snippets, with the *lower*
  median (``torch.median``: the element at sorted index ``(L - 1) // 2``). For a strict ``>`` this is
  the same binarization as the textbook median (mean of the two middle values for even L): no value
  lies strictly between two consecutive order statistics, so both thresholds split the sequence
  identically (and the lower median avoids the float rounding of the average). Ties at the median
  are 0. All-equal input: nothing is above the median, every snippet is filtered out.
* **Filter (Eq. 2):** keep ``a_c = (a_ca + a_cs) / 2`` where both binarized branches are 1, else 0.
* **Top-k (Eq. 3):** ``k = max(1, floor(L / gamma))`` with L the video's valid length (T without
  ``lengths``): the k largest entries of the filtered sequence keep their value, the rest are 0. Ties
  at the k-th place go to the lowest snippet index (stable descending sort). Filtered-out entries
  count as 0 in that ranking (literal Eq. 3); attentions are sigmoid outputs (>= 0), so this never
  prefers a filtered-out snippet over a kept one with a positive score.
* **Ablations (COPL Table 3):** ``branch="cs"`` / ``"ca"`` use that branch alone as the score and the
  only binarized branch ("single branch"); ``use_filter=False`` skips the binarization filter and
  takes the top-k of the score directly ("w/o filter").
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from utal_lightning.pseudo.pooling import valid_mask

__all__ = ["has_attention", "has_k", "has_pool", "vote"]

_BRANCHES = ("both", "cs", "ca")


def has_k(length: int, gamma: float) -> int:
    """Eq. 3: ``k = max(1, floor(length / gamma))`` (37 at T = 750, gamma = 20; 25 at T = 50, gamma = 2)."""
    return max(1, math.floor(length / gamma))  # true division then floor, as the batched version


def _above_median(a: Tensor, valid: Tensor) -> Tensor:
    """``a > lower_median(a[valid])`` per row; False at invalid positions and in empty rows."""
    t = a.shape[1]
    n = valid.sum(1)
    sorted_a = torch.sort(torch.where(valid, a, torch.full_like(a, float("inf"))), dim=1).values
    idx = ((n - 1).clamp(min=0) // 2).clamp(max=max(t - 1, 0))
    median = sorted_a.gather(1, idx[:, None])
    return valid & (a > median) & (n[:, None] > 0)


def has_attention(
    a_cs: Tensor,
    a_ca: Tensor,
    gamma: float,
    lengths: Tensor | None = None,
    branch: str = "both",
    use_filter: bool = True,
) -> Tensor:
    """COPL Eq. 1-3: one epoch's HAS attention.

    ``a_cs``, ``a_ca`` (B, T) (or (T,)): class-specific and class-agnostic actionness. ``gamma`` > 0:
    keep ``k = max(1, floor(L / gamma))`` snippets. ``lengths`` (B,) optional valid lengths of a padded
    batch: positions >= length take no part in the median or the top-k and come out 0, and k uses
    the video's own length. ``branch`` in {"both", "cs", "ca"}, ``use_filter``: ablations (module
    docstring). Returns (B, T) (or (T,)) in the inputs' dtype: the kept values of the score, 0 elsewhere.
    """
    if branch not in _BRANCHES:
        raise ValueError(f"unknown HAS branch {branch!r} ({', '.join(_BRANCHES)})")
    if gamma <= 0:
        raise ValueError(f"has gamma must be > 0, got {gamma}")
    if a_cs.shape != a_ca.shape:
        raise ValueError(f"a_cs {tuple(a_cs.shape)} and a_ca {tuple(a_ca.shape)} differ in shape")
    squeeze = a_cs.dim() == 1
    if squeeze:
        a_cs, a_ca = a_cs[None], a_ca[None]
        if lengths is not None:
            lengths = torch.as_tensor(lengths).reshape(1)
    if a_cs.dim() != 2:
        raise ValueError(f"expected (B, T) attentions, got {tuple(a_cs.shape)}")
    b, t = a_cs.shape
    valid = valid_mask(a_cs.shape, lengths, a_cs.device)
    a_ca = a_ca.to(a_cs.dtype)

    if branch == "both":
        score = (a_ca + a_cs) / 2
        branches = (a_cs, a_ca)
    elif branch == "cs":
        score, branches = a_cs, (a_cs,)
    else:
        score, branches = a_ca, (a_ca,)

    keep = valid.clone()
    if use_filter:
        for a in branches:
            keep &= _above_median(a, valid)
    filtered = torch.where(keep, score, torch.zeros_like(score))

    # Top-k over the valid positions (filtered-out ones rank as 0), ties -> lowest index.
    n = valid.sum(1)
    k = torch.floor(n.to(torch.float64) / float(gamma)).long().clamp(min=1)  # = has_k(n, gamma)
    k = torch.minimum(k, n)  # an empty row keeps nothing
    ranked = torch.where(valid, filtered, torch.full_like(filtered, float("-inf")))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(t, device=order.device).expand(b, t))
    out = torch.where(valid & (rank < k[:, None]), filtered, torch.zeros_like(filtered))
    return out[0] if squeeze else out


def vote(previous: Tensor | None, current: Tensor, alpha: float) -> Tensor:
    """COPL Eq. 4, the cross-epoch voting: returns ``alpha * previous + current``.

    Eq. 4 writes ``a_HAS = sum_k alpha^k a_HAS_k`` over the epochs; read (docs/method.md sec. 3.1) with the exponent
    counted back from the newest epoch, ``a_HAS = sum_{e=1..E} alpha^(E-e) a_HAS_e``, so the newest
    epoch has weight 1 and older ones decay geometrically (alpha in (0, 1): 0.9 THUMOS, 0.5 ANet).
    Accumulated recursively, ``v_e = alpha * v_{e-1} + a_HAS_e``, ``v_1 = a_HAS_1`` (``previous=None``).
    The scale of the sum is irrelevant downstream (:func:`has_pool` L2-normalizes).
    """
    if previous is None:
        return current.clone()
    if previous.shape != current.shape:
        raise ValueError(f"vote shapes differ: {tuple(previous.shape)} vs {tuple(current.shape)}")
    return alpha * previous.to(current.dtype) + current


def has_pool(features: Tensor, weights: Tensor, lengths: Tensor | None = None) -> Tensor:
    """COPL Eq. 5: ``F = L2Norm(X^T a_HAS)``. ``features`` (B, T, D), ``weights`` (B, T) -> (B, D).

    A video whose weights are all zero (over its valid positions) falls back to the mean of its valid
    snippet features, then L2-normalized (never NaN; the reference code divides by zero here).
    ``lengths`` (B,) optional: positions >= length are ignored (their weights and features).
    A zero pooled vector stays zero (``normalize``'s epsilon), never NaN.
    """
    if features.dim() != 3 or weights.shape != features.shape[:2]:
        raise ValueError(
            f"expected features (B, T, D) and weights (B, T), got {tuple(features.shape)}, {tuple(weights.shape)}"
        )
    valid = valid_mask(weights.shape, lengths, features.device)
    zero = torch.zeros((), dtype=features.dtype, device=features.device)
    w = torch.where(valid, weights.to(features.dtype), zero)
    if lengths is not None:
        features = torch.where(valid[..., None], features, zero)  # padding may hold anything
    empty = ~(w != 0).any(1)
    if bool(empty.any()):
        mean_w = valid.to(features.dtype) / valid.sum(1, keepdim=True).clamp(min=1).to(features.dtype)
        w = torch.where(empty[:, None], mean_w, w)
    pooled = torch.einsum("bt,btd->bd", w, features)
    return torch.nn.functional.normalize(pooled, dim=1)
