"""Proposals from class activation sequences (docs/method.md sec. 5): normalize, upsample, threshold, score (OIC).

Pure torch, no Lightning. Every function runs on the input's device. Proposal arithmetic is done in
float64 and proposals are returned as float64 (seconds of long videos keep their precision, and the
class index column of :func:`detect_video` is exact).

The scoring follows CoLA's ``get_proposal_oic``: for a run ``[s, e]`` (inclusive, upsampled indices,
``n = e - s + 1``) on a scoring map ``m`` the score is
``mean(m[s..e]) - mean(m[outer]) + class_score_weight * class_score``, with
``outer = [max(0, int(s - r*n)), s) U (e, min(Tup - 1, int(e + r*n))]`` (one mean over both sides,
0 when empty; ``int`` truncates toward zero) and ``r = outer_ratio``.

Two kinds of proposals, scored on different maps exactly as CoLA's released ``test_all`` does (every
reported CoLA / FEEL number depends on it):

* **map-threshold proposals** (runs of the class's normalized, upsampled localization map strictly
  above a threshold ``t``, e.g. CoLA's CAS thresholds or COPL's ``h_cs`` ones) are scored on the
  *thresholded copy* of that map, where values ``< t`` are set to 0 (CoLA zeroes ``cas_temp`` before
  calling ``get_proposal_oic`` on it). The inner mean is unaffected (the run is above ``t``); the
  outer mean counts sub-threshold steps as 0.
* **actionness-threshold proposals** (CoLA's second source): runs of the class-agnostic actionness,
  normalized and upsampled the same way, strictly above a second list of thresholds, repeated for
  every kept class and scored on that class's *unthresholded* normalized, upsampled map (CoLA passes
  ``cas_pred``, not the thresholded actionness, to ``get_proposal_oic``), never on the actionness.

Runs are always the positions strictly above the threshold on the (unthresholded) map. CoLA takes
them on its zeroed copy, which is the same for thresholds ``>= 0`` (the only ones any method uses);
for a negative threshold CoLA's zeroed steps (``0 > t``) would join the runs, here they do not.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "detect_video",
    "minmax_normalize",
    "proposals_from_scores",
    "select_classes",
    "upsample_linear",
]


def _float_dtype(x: Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.get_default_dtype()


def upsample_linear(scores: Tensor, scale: int) -> Tensor:
    """Linear upsampling along dim 0 by an integer ``scale``: (T, ...) -> (T*scale, ...).

    Output ``j`` is the value at position ``x = j/scale`` (``j = 0 .. T*scale-1``) of the piecewise
    linear curve through the snippets, extrapolated past the last snippet with the slope of the last
    two samples: ``scipy.interpolate.interp1d(arange(T), y, kind="linear", fill_value="extrapolate")``
    at those positions (CoLA's ``upgrade_resolution``), bit for bit: ``x`` is the float64 ``j / scale``,
    the segment is the one ``searchsorted(arange(T), x)`` picks (clipped to ``[1, T-1]``, so a sample
    ``x = i >= 1`` is reached from the left segment), and the value is
    ``(y_hi - y_lo) / (x_hi - x_lo) * (x - x_lo) + y_lo``. Equal bits decide values that sit exactly
    on a threshold (plateaus, 0/1 maps) as interp1d does. The positions are ``j / scale`` rather than
    CoLA's ``np.arange(0, T, 1/scale)``, whose length can be off by one through float rounding.
    T == 1: the constant repeated (interp1d needs two samples). T == 0: empty.
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
    y = scores.to(torch.float64)
    grid = torch.arange(t, device=scores.device, dtype=torch.float64)
    x = torch.arange(t * scale, device=scores.device, dtype=torch.float64) / scale
    hi = torch.searchsorted(grid, x, side="left").clamp(1, t - 1)
    lo = hi - 1
    shape = (-1,) + (1,) * (y.dim() - 1)
    slope = (y[hi] - y[lo]) / (grid[hi] - grid[lo]).reshape(shape)
    return (slope * (x - grid[lo]).reshape(shape) + y[lo]).to(out_dtype)


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


def _prepare(x: Tensor, normalize: bool, scale: int) -> Tensor:
    """(T, ...) -> (T*scale, ...) float64: min-max normalized over time (if ``normalize``), then upsampled."""
    x = x.detach().to(torch.float64)
    if normalize:
        x = minmax_normalize(x, dim=0)
    return upsample_linear(x, scale)


def _runs(up: Tensor, thr: Tensor, min_length: int) -> tuple[Tensor, Tensor, Tensor]:
    """Maximal runs of ``up > thr[k]`` (strictly) of length ``>= min_length``, for every threshold at once.

    Returns ``(k, start, stop)`` (int64, ``stop`` exclusive) ordered by threshold index, then start.
    """
    mask = torch.zeros((thr.numel(), up.shape[0] + 2), dtype=torch.bool, device=up.device)
    mask[:, 1:-1] = up[None, :] > thr[:, None]  # padded with False on both sides
    # Changes between positions i-1 and i (padded): nonzero is row-major and every row alternates
    # start, stop, start, stop, ... (even count), so the flat list alternates too.
    change = torch.nonzero(mask[:, 1:] != mask[:, :-1])  # (2 * runs, 2)
    k, start, stop = change[0::2, 0], change[0::2, 1], change[1::2, 1]
    keep = (stop - start) >= int(min_length)
    return k[keep], start[keep], stop[keep]


def _padded_cumsum(x: Tensor) -> Tensor:
    """Cumulative sum along the last dim with a leading 0: ``out[..., i] = sum(x[..., :i])``."""
    zero = torch.zeros((*x.shape[:-1], 1), dtype=x.dtype, device=x.device)
    return torch.cat([zero, torch.cumsum(x, dim=-1)], dim=-1)


def _oic_rows(
    csum: Tensor,
    k: Tensor,
    start: Tensor,
    stop: Tensor,
    outer_ratio: float,
    class_term: float,
    step_seconds: float,
) -> Tensor:
    """Rows ``[start_s, end_s, score]`` (n, 3) of runs ``[start, stop)``, OIC-scored on the map whose
    padded cumulative sum is ``csum``: (Tup+1,) for one map, or (K, Tup+1) for one map per threshold
    (run ``i`` is scored on row ``k[i]``)."""
    t_up = csum.shape[-1] - 1

    def window_sum(lo: Tensor, hi: Tensor) -> Tensor:  # sum of map[lo:hi]
        if csum.dim() == 1:
            return csum[hi] - csum[lo]
        return csum[k, hi] - csum[k, lo]

    e = stop - 1
    nf = (stop - start).to(torch.float64)
    inner = window_sum(start, stop) / nf
    # Python int() on a double == torch.trunc on float64.
    outer_s = torch.clamp(torch.trunc(start.to(torch.float64) - outer_ratio * nf).to(torch.int64), min=0)
    outer_e = torch.clamp(torch.trunc(e.to(torch.float64) + outer_ratio * nf).to(torch.int64), max=t_up - 1)
    outer_count = (start - outer_s) + (outer_e - e)
    outer_sum = window_sum(outer_s, start) + window_sum(stop, outer_e + 1)
    outer = torch.where(
        outer_count > 0, outer_sum / outer_count.clamp(min=1).to(torch.float64), torch.zeros_like(outer_sum)
    )
    score = inner - outer + class_term
    return torch.stack([start.to(torch.float64) * step_seconds, stop.to(torch.float64) * step_seconds, score], dim=1)


def _map_threshold_rows(
    up: Tensor,
    thr: Tensor,
    min_length: int,
    outer_ratio: float,
    class_term: float,
    step_seconds: float,
    thresholded_scoring: bool = True,
) -> Tensor:
    """Rule 1: runs of ``up`` (Tup,) above ``thr``, scored on the thresholded copies of ``up`` (or on
    ``up`` itself without ``thresholded_scoring``)."""
    k, start, stop = _runs(up, thr, min_length)
    if start.numel() == 0:
        return torch.zeros((0, 3), dtype=torch.float64, device=up.device)
    if not thresholded_scoring:
        return _oic_rows(_padded_cumsum(up), k, start, stop, outer_ratio, class_term, step_seconds)
    # One thresholded copy per threshold that has runs: values < thr set to 0; run i scored on row k[i].
    used, k = torch.unique(k, return_inverse=True)
    t = thr[used][:, None]
    csum = _padded_cumsum(torch.where(up[None, :] < t, torch.zeros((), dtype=up.dtype, device=up.device), up[None, :]))
    return _oic_rows(csum, k, start, stop, outer_ratio, class_term, step_seconds)


def _check_options(outer_ratio: float) -> None:
    if outer_ratio < 0:
        raise ValueError(f"outer_ratio must be >= 0, got {outer_ratio}")


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
    score_map: Tensor | None = None,
) -> Tensor:
    """docs/method.md sec. 5: proposals of one class of one video. ``loc_map`` (T,) -> (n, 3) float64.

    The map is min-max normalized over time (if ``normalize``), upsampled ``x scale`` with
    :func:`upsample_linear`, and for each threshold every maximal run of upsampled steps with value
    ``> threshold`` (strictly, as CoLA) and length ``>= min_length`` (upsampled steps) is a proposal.
    Rows are ``[start_seconds, end_seconds, score]`` with ``start = s * step``, ``end = (e + 1) * step``,
    ``step = seconds_per_step / scale`` (``seconds_per_step`` = seconds of one input step,
    ``L / T_used * 16/25``); the score is the OIC score of the module docstring on:

    * ``score_map=None`` (map-threshold proposals): the thresholded copy of the normalized, upsampled
      ``loc_map``, values below the run's threshold set to 0 (CoLA's released code);
    * ``score_map`` (T,) given (actionness-threshold proposals: ``loc_map`` is then the actionness): the
      unthresholded ``score_map``, normalized (if ``normalize``) and upsampled the same way.

    Proposals of all thresholds are returned together, ordered by threshold (input order) then by
    start; duplicates across thresholds are kept (NMS removes them). Vectorized over thresholds and
    runs.
    """
    if loc_map.dim() != 1:
        raise ValueError(f"loc_map must be 1-D (T,), got shape {tuple(loc_map.shape)}")
    if score_map is not None and tuple(score_map.shape) != tuple(loc_map.shape):
        raise ValueError(f"score_map must have loc_map's shape {tuple(loc_map.shape)}, got {tuple(score_map.shape)}")
    _check_options(outer_ratio)
    device = loc_map.device
    empty = torch.zeros((0, 3), dtype=torch.float64, device=device)
    thr = _thresholds_tensor(thresholds, device)
    if loc_map.numel() == 0 or thr.numel() == 0:
        return empty
    up = _prepare(loc_map, normalize, scale)  # (Tup,) float64
    class_term = float(class_score_weight) * float(class_score)
    step_seconds = float(seconds_per_step) / scale
    if score_map is None:
        return _map_threshold_rows(up, thr, min_length, float(outer_ratio), class_term, step_seconds)
    k, start, stop = _runs(up, thr, min_length)
    if start.numel() == 0:
        return empty
    csum = _padded_cumsum(_prepare(score_map.to(device), normalize, scale))
    return _oic_rows(csum, k, start, stop, float(outer_ratio), class_term, step_seconds)


# detect_video's ``**kw``: these options of proposals_from_scores, with its defaults.
_OPTIONS = {
    name: p.default
    for name, p in inspect.signature(proposals_from_scores).parameters.items()
    if name in ("scale", "min_length", "outer_ratio", "class_score_weight", "normalize")
}


def detect_video(
    loc_maps: Tensor,
    class_scores: Tensor,
    keep_classes: Tensor | Sequence[int],
    thresholds: Sequence[float] | Tensor,
    seconds_per_step: float,
    actionness: Tensor | None = None,
    actionness_thresholds: Sequence[float] | Tensor = (),
    thresholded_scoring: bool = True,
    seconds_offset: float = 0.0,
    **kw,
) -> Tensor:
    """Proposals of the kept classes of one video: ``loc_maps`` (T, C) -> (n, 4) float64.

    ``seconds_offset`` is the time of grid position 0 (the layout's clock offset, docs/method.md sec. 1.1: 0 in
    the CoLA layout, half a feature window in the ActionFormer one); it shifts every row, which leaves scores
    and IoUs unchanged.

    Rows ``[start_seconds, end_seconds, score, class_index]``, class by class in ``keep_classes``
    order; ``class_scores[c]`` is the class score of class ``c``. Per class: its map-threshold
    proposals (``thresholds`` on its own map, scored on the thresholded copy; on the unthresholded
    map without ``thresholded_scoring``, as AICL's released inference scores ``h_cs`` runs), then, when
    ``actionness`` (T,) is given and ``actionness_thresholds`` is non-empty, its actionness-threshold
    proposals (runs of the normalized actionness, scored on the class's unthresholded map); see the
    module docstring. The same rows as :func:`proposals_from_scores` class by class (without, then
    with ``score_map``); the actionness runs are found once for all classes. ``kw``: ``scale``,
    ``min_length``, ``outer_ratio``, ``class_score_weight``, ``normalize`` of
    :func:`proposals_from_scores` (the same for both kinds).
    """
    unknown = set(kw) - set(_OPTIONS)
    if unknown:
        raise TypeError(f"detect_video() got unexpected keyword arguments {sorted(unknown)}")
    opts = {**_OPTIONS, **kw}
    scale, min_length, normalize = opts["scale"], opts["min_length"], opts["normalize"]
    outer_ratio, weight = float(opts["outer_ratio"]), float(opts["class_score_weight"])
    _check_options(outer_ratio)
    if loc_maps.dim() != 2:
        raise ValueError(f"loc_maps must be (T, C), got shape {tuple(loc_maps.shape)}")
    device = loc_maps.device
    empty = torch.zeros((0, 4), dtype=torch.float64, device=device)
    classes = torch.as_tensor(keep_classes, dtype=torch.int64).reshape(-1).tolist()
    if not classes:
        return empty
    thr = _thresholds_tensor(thresholds, device)
    a_thr = _thresholds_tensor(actionness_thresholds, device)
    with_actionness = actionness is not None and a_thr.numel() > 0 and loc_maps.shape[0] > 0
    if with_actionness and tuple(actionness.shape) != (loc_maps.shape[0],):
        raise ValueError(f"actionness must be (T,) = ({loc_maps.shape[0]},), got shape {tuple(actionness.shape)}")
    step_seconds = float(seconds_per_step) / scale
    # All kept maps at once (normalization and upsampling are per column: the same values as one by one).
    ups = _prepare(loc_maps[:, classes], normalize, scale).T.contiguous()  # (n_keep, Tup)
    if with_actionness:
        a_k, a_start, a_stop = _runs(_prepare(actionness.to(device), normalize, scale), a_thr, min_length)
        with_actionness = a_start.numel() > 0
    class_scores = class_scores.detach().reshape(-1)
    parts = []
    for up, c in zip(ups, classes, strict=True):
        class_term = weight * float(class_scores[c])
        if loc_maps.shape[0] == 0 or thr.numel() == 0:
            props = torch.zeros((0, 3), dtype=torch.float64, device=device)
        else:
            props = _map_threshold_rows(up, thr, min_length, outer_ratio, class_term, step_seconds, thresholded_scoring)
        if with_actionness:
            extra = _oic_rows(_padded_cumsum(up), a_k, a_start, a_stop, outer_ratio, class_term, step_seconds)
            props = torch.cat([props, extra], dim=0)
        label = torch.full((props.shape[0], 1), float(c), dtype=torch.float64, device=device)
        parts.append(torch.cat([props, label], dim=1))
    rows = torch.cat(parts, dim=0)
    if seconds_offset:
        rows[:, :2] += float(seconds_offset)
    return rows


def select_classes(class_scores: Tensor, threshold: float) -> Tensor:
    """docs/method.md sec. 5: indices (int64, ascending) of the classes with score ``>= threshold``; if none, the
    argmax alone (first index on ties). Never empty for C >= 1."""
    class_scores = class_scores.reshape(-1)
    if class_scores.numel() == 0:
        return torch.zeros(0, dtype=torch.int64, device=class_scores.device)
    kept = torch.nonzero(class_scores >= threshold).reshape(-1)
    if kept.numel() == 0:
        kept = torch.argmax(class_scores).reshape(1)
    return kept.to(torch.int64)
