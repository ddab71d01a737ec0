"""CoLA's training losses (docs/method.md sec. 4.1) as pure functions: tensors in, tensors out, no Lightning.

``L = L_cls + lambda * L_ctr`` with ``L_cls`` the BCE between the video softmax and the normalized
label (CoLA's ``ActionLoss``; FEEL's text states a cross entropy instead: the "ce" variant) and
``L_ctr`` the snippet contrastive InfoNCE (CoLA's ``SniCoLoss``).

Normalization (as CoLA's released code): the embeddings of each snippet set are averaged *first*,
then the query and the positive are L2-normalized along the channel dim; each negative is
L2-normalized on its own. Nothing is normalized before averaging.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from utal_lightning.models.mining import MinedSnippets, mine_snippets, random_keep_mask
from utal_lightning.models.outputs import LocalizationOutput

__all__ = [
    "CLASSIFICATION_LOSSES",
    "CoLALoss",
    "cola_classification_loss",
    "cola_cross_entropy_loss",
    "cola_loss",
    "cola_mine",
    "cola_training_loss",
    "gather_snippets",
    "info_nce",
    "snippet_contrastive_loss",
]


def cola_classification_loss(video_scores: Tensor, labels: Tensor) -> Tensor:
    """docs/method.md sec. 4.1 ``L_cls``: BCE between the video softmax (B, K) and the label normalized to sum 1.

    ``labels`` is one-hot or multi-hot (B, K); each row is divided by its sum (a multi-label video
    with n classes gets target 1/n on each), then ``mean`` BCE over all B*K entries (``nn.BCELoss``).
    An all-zero label row stays all-zero (no division by zero).
    """
    labels = labels.to(video_scores.dtype)
    target = labels / labels.sum(dim=1, keepdim=True).clamp_min(torch.finfo(labels.dtype).tiny)
    return F.binary_cross_entropy(video_scores, target)


def cola_cross_entropy_loss(video_scores: Tensor, labels: Tensor) -> Tensor:
    """FEEL's text's ``L_cls``: cross entropy ``-sum_k y_k log p_k`` between the normalized label
    ``y`` (as :func:`cola_classification_loss`) and the video softmax ``p`` (B, K), mean over the B
    videos. An all-zero label row contributes 0; ``log`` is taken of ``p`` clamped to the dtype's
    smallest normal number (a finite loss and gradient when a score underflows)."""
    labels = labels.to(video_scores.dtype)
    target = labels / labels.sum(dim=1, keepdim=True).clamp_min(torch.finfo(labels.dtype).tiny)
    log_p = torch.log(video_scores.clamp_min(torch.finfo(video_scores.dtype).tiny))
    return -(target * log_p).sum(dim=1).mean()


CLASSIFICATION_LOSSES = {"bce": cola_classification_loss, "ce": cola_cross_entropy_loss}


def gather_snippets(embeddings: Tensor, idx: Tensor) -> Tensor:
    """``embeddings`` (B, T, E) at time indices ``idx`` (B, k) -> (B, k, E)."""
    return embeddings.gather(1, idx.unsqueeze(-1).expand(-1, -1, embeddings.shape[-1]))


def _masked_mean(x: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Mean of (B, k, E) over k using only ``valid`` (B, k) slots; also (B,) "has any valid"."""
    if valid is None:
        return x.mean(dim=1), None
    w = valid.to(x.dtype).unsqueeze(-1)
    count = w.sum(dim=1)
    return (x * w).sum(dim=1) / count.clamp_min(1.0), count.squeeze(-1) > 0


def info_nce(
    query: Tensor, positive: Tensor, negatives: Tensor, temperature: float = 0.07, row_valid: Tensor | None = None
) -> Tensor:
    """docs/method.md sec. 4.1 InfoNCE (CoLA's ``SniCoLoss.NCE``) for one direction of ``L_ctr``.

    query, positive (B, E); negatives (B, N, E). Each is L2-normalized along E; logits
    ``[q.k, q.n_1, ..., q.n_N] / temperature``; cross entropy with the positive as target, averaged
    over the videos with ``row_valid`` (all when None; 0 with a live graph when none is valid).
    """
    q = F.normalize(query, dim=-1)
    k = F.normalize(positive, dim=-1)
    n = F.normalize(negatives, dim=-1)
    l_pos = (q * k).sum(dim=-1, keepdim=True)  # (B, 1)
    l_neg = torch.einsum("be,bne->bn", q, n)  # (B, N)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    per_video = F.cross_entropy(logits, target, reduction="none")
    if row_valid is None:
        return per_video.mean()
    w = row_valid.to(per_video.dtype)
    return (per_video * w).sum() / w.sum().clamp_min(1.0)


def snippet_contrastive_loss(
    embeddings: Tensor,
    easy_act: Tensor,
    easy_bkg: Tensor,
    hard_act: Tensor,
    hard_bkg: Tensor,
    temperature: float = 0.07,
    hard_act_valid: Tensor | None = None,
    hard_bkg_valid: Tensor | None = None,
) -> Tensor:
    """docs/method.md sec. 4.1 ``L_ctr`` (CoLA's SniCoLoss): two InfoNCE terms, summed.

    * query = mean hard-action embedding, positive = mean easy-action embedding, negatives = each
      easy-background embedding;
    * query = mean hard-background embedding, positive = mean easy-background embedding, negatives =
      each easy-action embedding.

    ``embeddings`` (B, T, E); the four sets are (B, k) time indices (see ``mine_snippets``). The hard
    means use only the ``*_valid`` slots when given; a video whose band is empty is left out of that
    term's batch mean.
    """
    ea = gather_snippets(embeddings, easy_act)
    eb = gather_snippets(embeddings, easy_bkg)
    ha, ha_rows = _masked_mean(gather_snippets(embeddings, hard_act), hard_act_valid)
    hb, hb_rows = _masked_mean(gather_snippets(embeddings, hard_bkg), hard_bkg_valid)
    act_term = info_nce(ha, ea.mean(dim=1), eb, temperature, ha_rows)
    bkg_term = info_nce(hb, eb.mean(dim=1), ea, temperature, hb_rows)
    return act_term + bkg_term


def cola_loss(
    output: LocalizationOutput,
    labels: Tensor,
    mined: MinedSnippets,
    lambda_ctr: float = 0.01,
    temperature: float = 0.07,
    cls_loss: str = "bce",
) -> tuple[Tensor, dict[str, Tensor]]:
    """docs/method.md sec. 4.1 ``L = L_cls + lambda * L_ctr`` for one batch; ``mined`` from ``mine_snippets``;
    ``cls_loss`` picks ``L_cls`` from :data:`CLASSIFICATION_LOSSES` ("bce" CoLA's, "ce" FEEL's text).

    Returns ``(total, parts)`` with ``parts`` = detached ``{"cls", "ctr", "total"}`` for logging.
    """
    l_cls = CLASSIFICATION_LOSSES[cls_loss](output.video_scores, labels)
    l_ctr = snippet_contrastive_loss(
        output.embeddings,
        mined.easy_act,
        mined.easy_bkg,
        mined.hard_act,
        mined.hard_bkg,
        temperature=temperature,
        hard_act_valid=mined.hard_act_valid,
        hard_bkg_valid=mined.hard_bkg_valid,
    )
    total = l_cls + lambda_ctr * l_ctr
    return total, {"cls": l_cls.detach(), "ctr": l_ctr.detach(), "total": total.detach()}


@dataclass(frozen=True)
class CoLALoss:
    """CoLA's training objective (docs/method.md sec. 4.1): the snippet mining and ``L = L_cls + lambda_ctr * L_ctr``.

    Args:
        r_hard, m, M: hard snippets: ``T // r_hard`` of them from the bands between an erosion by ``m`` and a
            dilation by ``M`` of the foreground (THUMOS 20, 3, 6; ActivityNet 8, 3, 6). The easy count
            ``T // r_easy`` is the network's (its video scores use it too).
        drop_rate: fraction of snippets hidden from the easy mining in training (0.6).
        hard_threshold: None (CoLA's code: the foreground is ``actionness > median``) or FEEL's tau_c (0.5 in
            FEEL's text): ``attention > hard_threshold``.
        cls_loss: ``L_cls``: "bce" (CoLA's code: BCE against the normalized label) or "ce" (FEEL's text: cross
            entropy ``-sum_k y_k log p_k``).
        lambda_ctr: weight of the snippet contrastive loss (0.01 THUMOS, 0.005 ActivityNet).
        temperature: InfoNCE temperature (0.07).
    """

    r_hard: int = 20
    m: int = 3
    M: int = 6
    drop_rate: float = 0.6
    hard_threshold: float | None = None
    cls_loss: Literal["bce", "ce"] = "bce"
    lambda_ctr: float = 0.01
    temperature: float = 0.07

    def __post_init__(self) -> None:
        if min(self.r_hard, self.m, self.M) < 1:
            raise ValueError("r_hard, m and M must be >= 1")
        if self.hard_threshold is not None and not 0.0 < self.hard_threshold < 1.0:
            raise ValueError(f"hard_threshold is on the attention scale, must be in (0, 1): {self.hard_threshold}")
        if self.cls_loss not in CLASSIFICATION_LOSSES:
            raise ValueError(f"cls_loss must be one of {sorted(CLASSIFICATION_LOSSES)}, got {self.cls_loss!r}")


def cola_mine(
    actionness: Tensor,
    r_easy: int,
    loss: CoLALoss,
    training: bool,
    generator: torch.Generator | None = None,
    drop_mask: Tensor | None = None,
) -> MinedSnippets:
    """The four CoLA snippet sets (docs/method.md sec. 4.1) of an actionness (B, T) (``sum_k CAS``, detached here).

    The easy sets are drawn from a random ``1 - drop_rate`` subset of snippets: ``drop_mask`` (True = keep)
    when given, else a fresh mask from ``generator`` (on the actionness' device) in ``training``, else none.
    """
    actionness = actionness.detach()
    if drop_mask is None and training and loss.drop_rate > 0:
        drop_mask = random_keep_mask(actionness.shape, loss.drop_rate, generator=generator, device=actionness.device)
    threshold = None if loss.hard_threshold is None else math.log(loss.hard_threshold / (1 - loss.hard_threshold))
    return mine_snippets(actionness, r_easy, loss.r_hard, loss.m, loss.M, drop_mask, threshold)


def cola_training_loss(
    output: LocalizationOutput,
    labels: Tensor,
    r_easy: int,
    loss: CoLALoss,
    training: bool = True,
    generator: torch.Generator | None = None,
    drop_mask: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """docs/method.md sec. 4.1 ``L = L_cls + lambda_ctr * L_ctr`` of a CoLA output: :func:`cola_mine`, then
    :func:`cola_loss`; returns ``(total, parts)``."""
    mined = cola_mine(output.cas.sum(dim=2), r_easy, loss, training, generator=generator, drop_mask=drop_mask)
    return cola_loss(
        output, labels, mined, lambda_ctr=loss.lambda_ctr, temperature=loss.temperature, cls_loss=loss.cls_loss
    )
