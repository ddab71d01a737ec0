"""CoLA snippet mining (docs/method.md sec. 4.1): easy/hard action and background snippets, on device.

Pure torch: tensors in, tensors out, on whatever device the input lives; no host-device sync, no
numpy/scipy. The 1-D binary morphology reproduces ``scipy.ndimage.binary_erosion`` /
``binary_dilation`` with ``structure=np.ones(size)`` (border value 0, origin 0) row by row, built on
max-pooling.

Decisions (see :func:`mine_snippets`):

* Median: the hard-mining threshold is the *lower* median over time (``torch.median``), and a snippet
  is foreground iff ``actionness > median``. CoLA's released code uses ``np.median`` (the average of
  the two middle values for even T); the set ``{a > median}`` is the same for both conventions (the
  average lies in ``[lower, upper]`` and is strictly below ``upper`` whenever ``lower < upper``), up
  to float rounding when the two middle values are adjacent floats.
* Short bands: out-of-band snippets get score ``-inf`` before the top-k, so an in-band snippet always
  wins over an out-of-band one; when a band has fewer than ``k_hard`` members the remaining slots hold
  arbitrary indices and are flagged ``False`` in ``hard_act_valid`` / ``hard_bkg_valid``. Losses use
  only valid members (CoLA's code instead multiplies by the band mask and lets zero-scored snippets
  from anywhere fill the slots silently).
* Random drop: ``keep`` (True = keep) removes snippets from the *easy* top-k (CoLA multiplies the
  actionness by ``Dropout(0.6)(ones)``). Dropped snippets rank below every kept one (ordered among
  themselves by their score), so they are only chosen when fewer than ``k_easy`` snippets are kept.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "MinedSnippets",
    "binary_dilation_1d",
    "binary_erosion_1d",
    "hard_bands",
    "mine_snippets",
    "num_selected",
    "random_keep_mask",
]


def num_selected(T: int, r: int) -> int:
    """``max(1, T // r)`` (docs/method.md sec. 4.1: every ``T // r`` never selects nothing), capped at T."""
    return max(1, min(T, T // r))


def _check_mask(mask: Tensor, size: int) -> None:
    if mask.dim() != 2:
        raise ValueError(f"expected a (B, T) mask, got shape {tuple(mask.shape)}")
    if size < 1:
        raise ValueError(f"structure size must be >= 1, got {size}")


def _window_max(x: Tensor, left: int, right: int, border: float) -> Tensor:
    """out[:, i] = max(x[:, i - left .. i + right]), positions outside the row = ``border``; x float (B, T)."""
    padded = F.pad(x.unsqueeze(1), (left, right), value=border)
    return F.max_pool1d(padded, kernel_size=left + right + 1, stride=1).squeeze(1)


def binary_erosion_1d(mask: Tensor, size: int) -> Tensor:
    """Row-wise ``scipy.ndimage.binary_erosion(row, structure=np.ones(size))`` (border value 0).

    ``out[i] = all(mask[i + j] for j in [-(size // 2), size - 1 - size // 2])``, positions outside the
    row counting as False (size 6 covers offsets -3..+2).
    """
    _check_mask(mask, size)
    c = size // 2
    # all(window) == not any(not x in window); outside the row counts as "not x" (border value 0).
    inv = (~mask.bool()).float()
    return _window_max(inv, c, size - 1 - c, border=1.0) == 0


def binary_dilation_1d(mask: Tensor, size: int) -> Tensor:
    """Row-wise ``scipy.ndimage.binary_dilation(row, structure=np.ones(size))`` (border value 0).

    scipy reflects the structure for dilation, so the window mirrors the erosion's:
    ``out[i] = any(mask[i + j] for j in [-(size - 1 - size // 2), size // 2])`` (size 6: -2..+3).
    """
    _check_mask(mask, size)
    c = size // 2
    return _window_max(mask.bool().float(), size - 1 - c, c, border=0.0) > 0


class MinedSnippets(NamedTuple):
    """Indices (B, k) int64 into the time axis of the four CoLA snippet sets (docs/method.md sec. 4.1)."""

    easy_act: Tensor  # (B, k_easy)
    easy_bkg: Tensor  # (B, k_easy)
    hard_act: Tensor  # (B, k_hard)
    hard_bkg: Tensor  # (B, k_hard)
    hard_act_valid: Tensor  # (B, k_hard) bool: the slot holds an inner-band snippet
    hard_bkg_valid: Tensor  # (B, k_hard) bool: the slot holds an outer-band snippet


def random_keep_mask(
    shape: tuple[int, int] | torch.Size,
    drop_rate: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Bernoulli keep mask (True = keep, probability ``1 - drop_rate``), as CoLA's Dropout(ones).

    ``generator`` must live on ``device`` (a CUDA generator for CUDA tensors).
    """
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate must be in [0, 1), got {drop_rate}")
    return torch.rand(tuple(shape), generator=generator, device=device) >= drop_rate


def _topk_keep_first(scores: Tensor, keep: Tensor | None, k: int) -> Tensor:
    """Top-k indices of ``scores`` where kept snippets rank above dropped ones."""
    if keep is not None:
        lo = scores.amin(dim=1, keepdim=True)
        hi = scores.amax(dim=1, keepdim=True)
        # Shift dropped scores below every kept one, preserving their own order (finite, no sync).
        scores = torch.where(keep, scores, scores - (hi - lo + 1.0))
    return scores.topk(k, dim=1).indices


def hard_bands(actionness: Tensor, m: int, M: int, threshold: float | None = None) -> tuple[Tensor, Tensor]:
    """Inner and outer bands (B, T) bool of CoLA's hard mining (docs/method.md sec. 4.1).

    ``bin = actionness > t`` with ``t`` the lower median over time (or ``threshold`` when given);
    inner = ``erode(bin, m) & ~erode(bin, M)``, outer = ``dilate(bin, M) & ~dilate(bin, m)``
    (equal to the set differences CoLA computes, since erosion/dilation are monotone in size).
    """
    a = actionness.detach()
    if threshold is None:
        t = a.median(dim=1, keepdim=True).values
    else:
        t = torch.as_tensor(threshold, dtype=a.dtype, device=a.device)
    fg = a > t
    inner = binary_erosion_1d(fg, m) & ~binary_erosion_1d(fg, M)
    outer = binary_dilation_1d(fg, M) & ~binary_dilation_1d(fg, m)
    return inner, outer


def mine_snippets(
    actionness: Tensor,
    r_easy: int,
    r_hard: int,
    m: int,
    M: int,
    drop_mask: Tensor | None = None,
    threshold: float | None = None,
) -> MinedSnippets:
    """CoLA's easy and hard snippet mining (docs/method.md sec. 4.1) from ``actionness`` (B, T).

    * easy action: top ``max(1, T // r_easy)`` by actionness; easy background: top by
      ``max_t(actionness) - actionness``; both restricted to ``drop_mask`` (True = keep; None = no
      drop, as at evaluation) with dropped snippets ranked last.
    * hard action: top ``max(1, T // r_hard)`` by actionness within the inner band; hard background:
      top by actionness within the outer band (:func:`hard_bands`; ``threshold`` replaces the median
      when given, in actionness units). Slots a band cannot fill are flagged invalid.

    Runs under no-grad (indices only); returns int64 indices on the input's device.
    """
    if actionness.dim() != 2:
        raise ValueError(f"actionness must be (B, T), got shape {tuple(actionness.shape)}")
    with torch.no_grad():
        a = actionness.detach()
        T = a.shape[1]
        k_easy = num_selected(T, r_easy)
        k_hard = num_selected(T, r_hard)
        keep = None
        if drop_mask is not None:
            if drop_mask.shape != a.shape:
                raise ValueError(f"drop_mask shape {tuple(drop_mask.shape)} != actionness {tuple(a.shape)}")
            keep = drop_mask.to(device=a.device, dtype=torch.bool)

        easy_act = _topk_keep_first(a, keep, k_easy)
        rev = a.amax(dim=1, keepdim=True) - a
        easy_bkg = _topk_keep_first(rev, keep, k_easy)

        inner, outer = hard_bands(a, m, M, threshold)
        neg_inf = torch.tensor(float("-inf"), dtype=a.dtype, device=a.device)
        inner_scores = torch.where(inner, a, neg_inf).topk(k_hard, dim=1)  # in-band first
        outer_scores = torch.where(outer, a, neg_inf).topk(k_hard, dim=1)
        hard_act = inner_scores.indices
        hard_bkg = outer_scores.indices
        return MinedSnippets(
            easy_act=easy_act,
            easy_bkg=easy_bkg,
            hard_act=hard_act,
            hard_bkg=hard_bkg,
            hard_act_valid=inner.gather(1, hard_act),
            hard_bkg_valid=outer.gather(1, hard_bkg),
        )
