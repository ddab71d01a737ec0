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


def deviation_actionness(features: Tensor, reference: Tensor, lengths: Tensor | None = None) -> Tensor:
    """Label-free actionness (docs/method.md sec. 3.1.1): ``||x_t - r||``, each snippet's Euclidean distance from
    ``reference`` (the mean training snippet). Background fills most of an untrimmed video, so the mean
    snippet is mostly background and snippets far from it are more often actions. ``features`` (B, T, D),
    ``reference`` (D,) or one per video (B, D); returns (B, T), 0 at padded positions (``lengths``)."""
    valid = valid_mask(features.shape[:2], lengths, features.device)
    reference = reference.to(features.device, features.dtype)
    distance = (features - (reference[:, None] if reference.dim() == 2 else reference)).norm(dim=2)
    return torch.where(valid, distance, torch.zeros_like(distance))


def top_fraction_weights(scores: Tensor, fraction: float, lengths: Tensor | None = None) -> Tensor:
    """(B, T) weights 1 on each video's ``max(1, floor(fraction * L))`` highest ``scores`` among its L real
    positions, 0 elsewhere (docs/method.md sec. 3.1.1); ties go to the lowest index, as in HAS's top-k."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    b, t = scores.shape
    valid = valid_mask(scores.shape, lengths, scores.device)
    n = valid.sum(1)
    # floor(fraction * L) in exact arithmetic for the usual fractions (0.1 * 30 is 3.0000000000000004 in floats).
    k = torch.floor(n.to(torch.float64) * fraction + 1e-9).long().clamp(min=1)
    k = torch.minimum(k, n)
    ranked = torch.where(valid, scores, torch.full_like(scores, float("-inf")))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(t, device=scores.device).expand(b, t))
    return (valid & (rank < k[:, None])).to(scores.dtype)


def background_subtracted_pool(features: Tensor, weights: Tensor, lengths: Tensor | None = None) -> Tensor:
    """docs/method.md sec. 3.1.2: ``F = L2Norm(mean_w(x) - mean_{1-w}(x))``, the attention-weighted mean of a video's
    snippets minus the mean of the rest weighted by ``1 - w``, with ``w`` rescaled to [0, 1] over the video
    (:func:`minmax_over_time`: its lowest snippet counts as background only, its highest as attended only).

    What a video shows in all its snippets (camera, lighting, scene: a per-video offset) cancels, what its
    attended snippets add remains. ``features`` (B, T, D), ``weights`` (B, T); ``lengths`` (B,) optional real
    lengths. A video whose weights are constant falls back to the plain mean of its snippets. Returns (B, D),
    unit L2 norm.
    """
    valid = valid_mask(features.shape[:2], lengths, features.device).to(features.dtype)
    w = minmax_over_time(weights.to(features.dtype), lengths)
    rest = (1 - w) * valid
    mass, rest_mass = w.sum(1, keepdim=True), rest.sum(1, keepdim=True)
    fallback = (mass <= 0) | (rest_mass <= 0)
    contrast = w / mass.clamp(min=1e-12) - rest / rest_mass.clamp(min=1e-12)
    mean = valid / valid.sum(1, keepdim=True).clamp(min=1)
    pooled = torch.einsum("bt,btd->bd", torch.where(fallback, mean, contrast), features)
    return torch.nn.functional.normalize(pooled, dim=1)


def anchored_blend(pooled: Tensor, anchor: Tensor, weight: float) -> Tensor:
    """docs/method.md sec. 3.1.4: ``F = L2Norm((1 - w) F_model + w F_anchor)``, each iteration's pooled video features
    (B, D) held towards the label-free ones ``anchor`` (B, D), both unit L2 norm, by ``weight`` ``w`` in [0, 1]
    (0: the model's pooling alone, 1: the anchor alone). Returns (B, D), unit L2 norm."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    return torch.nn.functional.normalize((1.0 - weight) * pooled + weight * anchor, dim=1)


def label_free_background(features: Tensor, reference: Tensor) -> Tensor:
    """(D,) one video's label-free background (docs/method.md sec. 4.3): the mean of its snippets ``features`` (L, D)
    weighted by ``1 - w``, ``w`` the :func:`deviation_actionness` from ``reference`` rescaled to [0, 1] over the
    video (its most action-like snippet weighs 0); the plain mean when every snippet is as far."""
    w = minmax_over_time(deviation_actionness(features[None], reference))[0]
    rest = 1 - w
    if float(rest.sum()) <= 0 or float(w.max()) <= 0:
        return features.mean(0)
    return (rest[:, None] * features).sum(0) / rest.sum()


def within_video_correlation(scores: Tensor, reference: Tensor, lengths: Tensor | None = None) -> Tensor:
    """(B,) Pearson correlation of ``scores`` and ``reference`` (B, T) over each video's real positions
    (``lengths``); NaN for a video where either is constant (docs/method.md sec. 4.2.2)."""
    valid = valid_mask(scores.shape, lengths, scores.device).double()
    n = valid.sum(1).clamp(min=1)
    x, y = scores.double() * valid, reference.double() * valid
    x = (x - x.sum(1, keepdim=True) / n[:, None]) * valid
    y = (y - y.sum(1, keepdim=True) / n[:, None]) * valid
    denominator = (x.square().sum(1) * y.square().sum(1)).sqrt()
    correlation = (x * y).sum(1) / denominator.clamp(min=1e-300)
    return torch.where(denominator > 1e-12, correlation, torch.full_like(correlation, float("nan")))


def orientation_sign(correlations: Tensor) -> int:
    """Label-free orientation of a trained actionness (docs/method.md sec. 4.2.2): -1 when its per-video correlations
    with the label-free actionness (:func:`within_video_correlation`) are negative on average, else +1 (also when
    none is defined: nothing says the network runs backwards)."""
    defined = correlations[~torch.isnan(correlations)]
    return -1 if defined.numel() and float(defined.double().mean()) < 0 else 1
