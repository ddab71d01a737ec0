"""Proposals from class activation sequences (SPEC 5): normalize, upsample, threshold, score (OIC).

Pure torch, no Lightning. Every function runs on the input's device. Proposal arithmetic is done in
float64 and proposals are returned as float64 (seconds of long videos keep their precision, and the
class index column of :func:`detect_video` is exact).

The scoring follows CoLA's ``get_proposal_oic``: for a run ``[s, e]`` (inclusive, upsampled indices,
``n = e - s + 1``) the score is ``mean(map[s..e]) - mean(outer) + class_score_weight * class_score``,
with ``outer = [max(0, int(s - r*n)), s) U (e, min(Tup - 1, int(e + r*n))]`` (one mean over both sides,
0 when empty; ``int`` truncates toward zero) and ``r = outer_ratio``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "upsample_linear",
    "minmax_normalize",
    "proposals_from_scores",
    "detect_video",
    "select_classes",
]


def _float_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def upsample_linear(scores: Tensor, scale: int) -> Tensor:
    """Linear upsampling along dim 0 by an integer ``scale``: (T, ...) -> (T*scale, ...).

    Output ``j`` is the value at position ``j/scale`` (``j = 0 .. T*scale-1``) of the piecewise linear
    curve through the snippets, extrapolated past the last snippet with the slope of the last two
    samples: what ``scipy.interpolate.interp1d(arange(T), x, kind="linear", fill_value="extrapolate")``
    gives at those positions (CoLA's ``upgrade_resolution``). The positions are computed exactly as
    ``j // scale`` + ``(j % scale) / scale`` rather than with ``np.arange(0, T, 1/scale)``, whose
    length can be off by one through float rounding. T == 1: the constant repeated. T == 0: empty.
    Computed in float64, returned in the input's float dtype (the default dtype for integer input).
    """
    scale = int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    if scores.dim() < 1:
        raise ValueError("scores must have a time dimension (dim 0)")
    out_dtype = _float_dtype(scores)
    t = scores.shape[0]
    if t <= 1:
        return scores.to(out_dtype).repeat_interleave(scale, dim=0)
    x = scores.to(torch.float64)
    j = torch.arange(t * scale, device=scores.device, dtype=torch.int64)
    lo = torch.clamp(torch.div(j, scale, rounding_mode="floor"), max=t - 2)  # left sample of the segment
    frac = (j - lo * scale).to(torch.float64) / scale  # in [0, 2): > 1 only past the last snippet
    frac = frac.reshape((-1,) + (1,) * (x.dim() - 1))
    y_lo, y_hi = x[lo], x[lo + 1]
    return (y_lo + frac * (y_hi - y_lo)).to(out_dtype)


def minmax_normalize(x: Tensor, dim: int = 0, eps: float = 1e-12) -> Tensor:
    """Rescale to [0, 1] along ``dim`` (time): ``(x - min) / (max - min)``.

    Where ``max - min <= eps`` (a constant sequence) the result is all zeros, never NaN. The result is
    clamped to [0, 1] against rounding. Same dtype as ``x`` (floating; integer input -> default dtype).
    """
    x = x.to(_float_dtype(x))
    if x.numel() == 0:
        return x.clone()
    low = x.amin(dim=dim, keepdim=True)
    delta = x.amax(dim=dim, keepdim=True) - low
    flat = delta <= eps
    out = (x - low) / torch.where(flat, torch.ones_like(delta), delta)
    out = torch.where(flat, torch.zeros_like(out), out)
    return out.clamp(0.0, 1.0)


def _thresholds_tensor(thresholds: Sequence[float] | Tensor, device: torch.device) -> Tensor:
    if isinstance(thresholds, Tensor):
        return thresholds.detach().to(device=device, dtype=torch.float64).reshape(-1)
    return torch.as_tensor([float(v) for v in thresholds], dtype=torch.float64, device=device)


def proposals_from_scores(
    loc_map: Tensor,
    thresholds: Sequence[float] | Tensor,
    class_score: float | Tensor,
    seconds_per_step: float,
    scale: int = 24,
    min_length: int = 2,
    outer_ratio: float = 0.25,
    class_score_weight: float = 0.2,
    normalize: bool = True,
) -> Tensor:
    """SPEC 5: proposals of one class of one video. ``loc_map`` (T,) -> (n, 3) float64.

    The map is min-max normalized over time (if ``normalize``), upsampled ``x scale`` with
    :func:`upsample_linear`, and for each threshold every maximal run of upsampled steps with value
    ``> threshold`` (strictly, as CoLA) and length ``>= min_length`` (upsampled steps) is a proposal.
    Rows are ``[start_seconds, end_seconds, score]`` with ``start = s * step``, ``end = (e + 1) * step``,
    ``step = seconds_per_step / scale`` (``seconds_per_step`` = seconds of one input step,
    ``L / T_used * 16/25``); the score is the OIC score of the module docstring. Proposals of all
    thresholds are returned together, ordered by threshold (input order) then by start; duplicates
    across thresholds are kept (NMS removes them). Vectorized over thresholds and runs.
    """
    if loc_map.dim() != 1:
        raise ValueError(f"loc_map must be 1-D (T,), got shape {tuple(loc_map.shape)}")
    if outer_ratio < 0:
        raise ValueError(f"outer_ratio must be >= 0, got {outer_ratio}")
    device = loc_map.device
    empty = torch.zeros((0, 3), dtype=torch.float64, device=device)
    thr = _thresholds_tensor(thresholds, device)
    if loc_map.numel() == 0 or thr.numel() == 0:
        return empty
    x = loc_map.detach().to(torch.float64)
    if normalize:
        x = minmax_normalize(x, dim=0)
    up = upsample_linear(x, scale)  # (Tup,) float64
    t_up = up.shape[0]

    # Run boundaries for every threshold at once: pad the mask with False on both sides and diff.
    mask = up[None, :] > thr[:, None]  # (K, Tup)
    pad = torch.zeros((thr.numel(), 1), dtype=torch.int8, device=device)
    edges = torch.diff(torch.cat([pad, mask.to(torch.int8), pad], dim=1), dim=1)  # (K, Tup+1)
    # nonzero is row-major: starts and ends of the same threshold come in the same order, and pair up.
    starts = torch.nonzero(edges == 1)[:, 1]
    stops = torch.nonzero(edges == -1)[:, 1]  # exclusive ends (e + 1)
    length = stops - starts
    keep = length >= int(min_length)
    s, stop, n = starts[keep], stops[keep], length[keep]
    if s.numel() == 0:
        return empty
    e = stop - 1

    csum = torch.cat([torch.zeros(1, dtype=torch.float64, device=device), torch.cumsum(up, dim=0)])
    nf = n.to(torch.float64)
    inner = (csum[stop] - csum[s]) / nf
    # Python int() on a double == torch.trunc on float64.
    outer_s = torch.clamp(torch.trunc(s.to(torch.float64) - outer_ratio * nf).to(torch.int64), min=0)
    outer_e = torch.clamp(torch.trunc(e.to(torch.float64) + outer_ratio * nf).to(torch.int64), max=t_up - 1)
    outer_count = (s - outer_s) + (outer_e - e)
    outer_sum = (csum[s] - csum[outer_s]) + (csum[outer_e + 1] - csum[stop])
    outer = torch.where(
        outer_count > 0, outer_sum / outer_count.clamp(min=1).to(torch.float64), torch.zeros_like(outer_sum)
    )
    score = inner - outer + float(class_score_weight) * float(class_score)

    step_seconds = float(seconds_per_step) / scale
    return torch.stack([s.to(torch.float64) * step_seconds, stop.to(torch.float64) * step_seconds, score], dim=1)


def detect_video(
    loc_maps: Tensor,
    class_scores: Tensor,
    keep_classes: Tensor | Sequence[int],
    thresholds: Sequence[float] | Tensor,
    seconds_per_step: float,
    **kw,
) -> Tensor:
    """Proposals of the kept classes of one video: ``loc_maps`` (T, C) -> (n, 4) float64.

    Rows ``[start_seconds, end_seconds, score, class_index]``, class by class in ``keep_classes``
    order; ``class_scores[c]`` is the class score of class ``c``. ``kw`` goes to
    :func:`proposals_from_scores` (``scale``, ``min_length``, ``outer_ratio``, ``class_score_weight``,
    ``normalize``).
    """
    if loc_maps.dim() != 2:
        raise ValueError(f"loc_maps must be (T, C), got shape {tuple(loc_maps.shape)}")
    device = loc_maps.device
    classes = torch.as_tensor(keep_classes, dtype=torch.int64).reshape(-1).tolist()
    class_scores = class_scores.detach().reshape(-1)
    parts = []
    for c in classes:
        props = proposals_from_scores(loc_maps[:, c], thresholds, float(class_scores[c]), seconds_per_step, **kw)
        label = torch.full((props.shape[0], 1), float(c), dtype=torch.float64, device=device)
        parts.append(torch.cat([props, label], dim=1))
    if not parts:
        return torch.zeros((0, 4), dtype=torch.float64, device=device)
    return torch.cat(parts, dim=0)


def select_classes(class_scores: Tensor, threshold: float) -> Tensor:
    """SPEC 5: indices (int64, ascending) of the classes with score ``>= threshold``; if none, the
    argmax alone (first index on ties). Never empty for C >= 1."""
    class_scores = class_scores.reshape(-1)
    if class_scores.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=class_scores.device)
    kept = torch.nonzero(class_scores >= threshold).reshape(-1)
    if kept.numel() == 0:
        kept = torch.argmax(class_scores).reshape(1)
    return kept.to(torch.int64)
