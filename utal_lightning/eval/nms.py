"""Temporal IoU, greedy NMS and Soft-NMS for 1-D segments (docs/method.md sec. 5). Pure torch, no Lightning.

Conventions (all functions):

* segments are ``(n, 2)`` ``[start, end]`` in continuous time; the length is ``end - start`` (no ``+1``
  as in CoLA's frame-style ``nms``); IoU is 0 where the union is not positive;
* processing order is descending score, ties broken by the lower index;
* with ``labels``, only segments of the same label interact.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["nms", "soft_nms", "temporal_iou_matrix"]


def _check_segments(segments: Tensor, name: str = "segments") -> Tensor:
    if segments.dim() != 2 or segments.shape[1] != 2:
        raise ValueError(f"{name} must be (n, 2), got shape {tuple(segments.shape)}")
    return segments if segments.is_floating_point() else segments.to(torch.get_default_dtype())


def _check_inputs(segments: Tensor, scores: Tensor, labels: Tensor | None) -> tuple[Tensor, Tensor, Tensor | None]:
    segments = _check_segments(segments)
    scores = scores.reshape(-1)
    if scores.shape[0] != segments.shape[0]:
        raise ValueError(f"{segments.shape[0]} segments but {scores.shape[0]} scores")
    if labels is not None:
        labels = labels.reshape(-1).to(segments.device)
        if labels.shape[0] != segments.shape[0]:
            raise ValueError(f"{segments.shape[0]} segments but {labels.shape[0]} labels")
    return segments, scores, labels


def _iou_one(segment: Tensor, others: Tensor) -> Tensor:
    """IoU of one segment (2,) with others (m, 2) -> (m,)."""
    inter = (torch.minimum(segment[1], others[:, 1]) - torch.maximum(segment[0], others[:, 0])).clamp(min=0)
    union = (segment[1] - segment[0]) + (others[:, 1] - others[:, 0]) - inter
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(union))


def temporal_iou_matrix(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise temporal IoU: ``a`` (n, 2), ``b`` (m, 2) -> (n, m); 0 where the union is not positive."""
    a = _check_segments(a, "a")
    b = _check_segments(b, "b").to(device=a.device, dtype=torch.promote_types(a.dtype, b.dtype))
    a = a.to(b.dtype)
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    positive = union > 0
    return torch.where(positive, inter / torch.where(positive, union, torch.ones_like(union)), torch.zeros_like(union))


def nms(segments: Tensor, scores: Tensor, iou_threshold: float, labels: Tensor | None = None) -> Tensor:
    """Greedy hard NMS. Returns the kept indices (int64) in descending score order (ties: lower index).

    Repeatedly keep the best remaining segment and drop every remaining one (of the same label when
    ``labels`` is given) whose IoU with it is strictly greater than ``iou_threshold``; IoU equal to the
    threshold survives. (CoLA's code drops at ``>=``; with continuous scores and times the difference
    is immaterial.) One IoU row per kept segment.
    """
    segments, scores, labels = _check_inputs(segments, scores, labels)
    device = segments.device
    if segments.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    order = torch.sort(scores, descending=True, stable=True).indices.to(device)
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        if rest.numel() == 0:
            break
        suppress = _iou_one(segments[best], segments[rest]) > iou_threshold
        if labels is not None:
            suppress &= labels[rest] == labels[best]
        order = rest[~suppress]
    return torch.stack(keep).to(torch.int64)


def soft_nms(
    segments: Tensor,
    scores: Tensor,
    iou_threshold: float,
    sigma: float = 0.5,
    method: str = "gaussian",
    min_score: float = 1e-3,
    labels: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Soft-NMS (Bodla et al. 2017). Returns ``(kept_indices int64, new_scores)``, aligned, in selection
    order (which is non-increasing in ``new_scores``).

    Segments with score ``< min_score`` are dropped from the start. Then, repeatedly: select the
    remaining segment with the highest current score (ties: lower index), record its current score,
    and decay every other remaining one (of the same label when ``labels`` is given) by its IoU with
    the selected one:

    * ``"gaussian"``: ``s *= exp(-iou**2 / sigma)`` for every such segment (``iou_threshold`` unused,
      as in the paper and its reference code);
    * ``"linear"``: ``s *= 1 - iou`` where ``iou > iou_threshold``.

    Segments whose decayed score falls below ``min_score`` are dropped. ``new_scores`` keep the
    dtype of ``scores`` (floating).
    """
    segments, scores, labels = _check_inputs(segments, scores, labels)
    if method not in ("gaussian", "linear"):
        raise ValueError(f"method must be 'gaussian' or 'linear', got {method!r}")
    if method == "gaussian" and not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    device = segments.device
    current = scores.to(device=device, dtype=scores.dtype if scores.is_floating_point() else torch.get_default_dtype())
    current = current.detach().clone()
    remaining = torch.nonzero(current >= min_score).reshape(-1)  # ascending: argmax picks the lower index
    keep, new_scores = [], []
    while remaining.numel() > 0:
        pos = torch.argmax(current[remaining])
        best = remaining[pos]
        keep.append(best)
        new_scores.append(current[best])
        rest = torch.cat([remaining[:pos], remaining[pos + 1 :]])
        if rest.numel() == 0:
            break
        iou = _iou_one(segments[best], segments[rest]).to(current.dtype)
        if method == "gaussian":
            weight = torch.exp(-(iou * iou) / sigma)
        else:
            weight = torch.where(iou > iou_threshold, 1.0 - iou, torch.ones_like(iou))
        if labels is not None:
            weight = torch.where(labels[rest] == labels[best], weight, torch.ones_like(weight))
        current[rest] = current[rest] * weight
        remaining = rest[current[rest] >= min_score]
    if not keep:
        return torch.zeros(0, dtype=torch.int64, device=device), torch.zeros(0, dtype=current.dtype, device=device)
    return torch.stack(keep).to(torch.int64), torch.stack(new_scores)
