"""Slow, obvious reference for proposal generation (docs/method.md sec. 5).

It follows CoLA's released test loop literally.

CoLA (``test_all`` + ``utils.get_proposal_oic`` + ``utils.grouping``), per threshold ``t``:

1. copy the normalized, upsampled map, set the values ``< t`` to 0;
2. take the positions of that copy strictly above ``t`` and group consecutive ones into runs;
3. drop runs shorter than ``min_length``; score each with the outer-inner contrast on the map it is
   scored on: the thresholded copy for map-threshold proposals, the class's *unthresholded* map for
   actionness-threshold proposals (the runs then come from the actionness).

numpy / plain Python loops only; the upsampling is ``scipy.interpolate.interp1d(kind="linear",
fill_value="extrapolate")`` at positions ``j / scale`` (CoLA's ``upgrade_resolution``), independent of
the code under test. ``interp1d`` needs two samples: a one-step map is the constant repeated.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import interp1d


def reference_normalize(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    low, high = x.min(), x.max()
    if high - low <= 1e-12:
        return np.zeros_like(x)
    return np.clip((x - low) / (high - low), 0.0, 1.0)


def reference_upsample(x, scale: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    t = len(x)
    if t == 1:
        return np.repeat(x, scale)
    f = interp1d(np.arange(t), x, kind="linear", fill_value="extrapolate")
    return f(np.array([j / scale for j in range(t * scale)]))


def _prepare(x, scale: int, normalize: bool) -> list[float]:
    x = np.asarray(x, dtype=np.float64)
    if normalize:
        x = reference_normalize(x)
    return [float(v) for v in reference_upsample(x, scale)]


def _grouping(positions: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for p in positions:
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def _oic(run: list[int], scored: list[float], outer_ratio: float) -> float:
    n = len(run)
    inner = sum(scored[p] for p in run) / n
    outer_s = max(0, int(run[0] - outer_ratio * n))
    outer_e = min(len(scored) - 1, int(run[-1] + outer_ratio * n))
    outer_idx = list(range(outer_s, run[0])) + list(range(run[-1] + 1, outer_e + 1))
    outer = sum(scored[p] for p in outer_idx) / len(outer_idx) if outer_idx else 0.0
    return inner - outer


def reference_proposals(
    loc_map,
    thresholds,
    class_score,
    seconds_per_step,
    scale=24,
    min_length=2,
    outer_ratio=0.25,
    class_score_weight=0.2,
    normalize=True,
    score_map=None,
    thresholded_scoring=True,
) -> np.ndarray:
    """Rows ``[start_s, end_s, score]`` (n, 3), by threshold then start.

    ``score_map=None``: runs of ``loc_map``, scored on its thresholded copy (``thresholded_scoring``;
    ``False`` gives the old rule, scored on the unthresholded map, kept for a test that the rules
    differ). ``score_map`` given: runs of ``loc_map`` (the actionness), scored on ``score_map``
    normalized and upsampled the same way, unthresholded.
    """
    up = _prepare(loc_map, scale, normalize)
    class_up = None if score_map is None else _prepare(score_map, scale, normalize)
    step = float(seconds_per_step) / scale
    rows = []
    for thr in thresholds:
        thr = float(thr)
        copy = list(up)
        for j in range(len(copy)):
            if copy[j] < thr:
                copy[j] = 0.0
        positions = [j for j in range(len(copy)) if copy[j] > thr]
        if class_up is not None:
            scored = class_up
        elif thresholded_scoring:
            scored = copy
        else:
            scored = up
        for run in _grouping(positions):
            if len(run) < min_length:
                continue
            score = _oic(run, scored, outer_ratio) + class_score_weight * float(class_score)
            rows.append([run[0] * step, (run[-1] + 1) * step, score])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def reference_detect_video(
    loc_maps,
    class_scores,
    keep_classes,
    thresholds,
    seconds_per_step,
    actionness=None,
    actionness_thresholds=(),
    **kw,
) -> np.ndarray:
    """Rows ``[start_s, end_s, score, class]``: per kept class, map-threshold then actionness proposals."""
    loc_maps = np.asarray(loc_maps, dtype=np.float64)
    rows = []
    for c in keep_classes:
        c = int(c)
        score = float(class_scores[c])
        parts = [reference_proposals(loc_maps[:, c], thresholds, score, seconds_per_step, **kw)]
        if actionness is not None and len(actionness_thresholds) > 0:
            parts.append(
                reference_proposals(
                    actionness, actionness_thresholds, score, seconds_per_step, score_map=loc_maps[:, c], **kw
                )
            )
        for part in parts:
            for r in part:
                rows.append([r[0], r[1], r[2], float(c)])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)
