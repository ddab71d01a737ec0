"""COPL / IOCNet training losses (docs/method.md sec. 4.2, paper Eq. 15-22) as pure functions: tensors in, tensors out.

One function per equation; :func:`iocnet_loss` assembles ``L = L_sup (set P) + L_un (P and U)``:

* ``L_sup = L_cls + L_asl^R + L_asl^F`` (Eq. 15-17), on the pseudolabeled rows only;
* ``L_un = L_CI + lambda1 * L_C + lambda2 * L_CO`` (Eq. 18-22), on every row.

Decisions (docs/method.md sec. 4.2 where it decides, stated here where it does not):

* Medians (``L_C``): the *lower* median over time (``torch.median``), foreground iff ``A > median``.
  With ``>`` the set equals the one for the average-of-middles (numpy) median, up to float rounding
  when the two middle values are adjacent floats.
* NCE (``L_C``): ``-log softmax([q.k+, q.n_1, ..., q.n_N] / temperature)[0]``, i.e. cross entropy
  over [positive, negatives] logits with the positive as target; ``q`` and ``k+`` are the
  L2-normalized *means* of their snippet sets (mean first, then normalize), each negative is
  L2-normalized on its own (as CoLA's ``SniCoLoss``, see ``losses.info_nce``).
* ``L_asl``: ``A`` is clamped to ``[eps, 1 - eps]`` (``eps = max(1e-6, finfo.eps)``) before the
  power, so a saturated sigmoid (exactly 0 or 1 in float32) never gives an infinite ``A^(q-1)``
  gradient (which becomes NaN through the sigmoid); values inside the clamp are unaffected.
* Batch reductions: ``L_cls`` and ``L_asl`` average over the rows they are given (``iocnet_loss``
  gives them the supervised rows); the MSE terms average over all B*T elements; each ``L_C`` term
  averages over the videos that have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from utal_lightning.models.iocnet import IOCNetOutput

__all__ = [
    "IOCNetLoss",
    "actionness_contrastive_loss",
    "asymmetric_actionness_loss",
    "classification_loss",
    "co_training_loss",
    "consistency_loss",
    "contrastive_sets",
    "iocnet_loss",
    "positives_from_top_l",
]


# ------------------------------------------------------------------------------------ L_sup


def _classification_per_video(video_logits: Tensor, labels: Tensor) -> Tensor:
    """(B,) ``-sum_k target_k * log softmax(video_logits)_k``, target = label row / its sum (0 row -> 0)."""
    if video_logits.shape != labels.shape or video_logits.dim() != 2:
        raise ValueError(f"video_logits {tuple(video_logits.shape)} and labels {tuple(labels.shape)} must be (B, K)")
    target = labels.to(video_logits.dtype)
    target = target / target.sum(dim=1, keepdim=True).clamp_min(torch.finfo(target.dtype).tiny)
    return -(target * torch.log_softmax(video_logits, dim=1)).sum(dim=1)


def classification_loss(video_logits: Tensor, labels: Tensor) -> Tensor:
    """docs/method.md sec. 4.2 ``L_cls`` (paper Eq. 15): soft-target cross entropy of the video logits (B, K).

    Target = ``labels`` (one-/multi-hot, any dtype) with each row divided by its sum; per video
    ``-sum_k target_k * log softmax(video_logits)_k``, then the mean over the B rows. A row with no
    label has an all-zero target and contributes 0 (it still counts in the divisor B, as
    ``F.cross_entropy`` with probability targets).
    """
    return _classification_per_video(video_logits, labels).mean()


def positives_from_top_l(top_l_index: Tensor, labels: Tensor, T: int) -> Tensor:
    """docs/method.md sec. 4.2 ``L_asl`` positive set: (B, T) bool, True where snippet t is in the top-l set (by
    ``h_cs``) of any class the video is labelled with.

    ``top_l_index`` (B, l, K) as :attr:`IOCNetOutput.top_l_index`; ``labels`` (B, K), a class counts
    when its label is > 0. A video with no label has no positives.
    """
    B, _, K = top_l_index.shape
    if labels.shape != (B, K):
        raise ValueError(f"labels must be (B={B}, K={K}), got {tuple(labels.shape)}")
    member = torch.zeros(B, T, K, dtype=torch.bool, device=top_l_index.device)
    member.scatter_(1, top_l_index, True)
    return (member & (labels > 0).unsqueeze(1)).any(dim=2)


def _asl_per_video(agnostic: Tensor, positives: Tensor, q: float) -> Tensor:
    """(B,) per-video ``L_asl`` (see :func:`asymmetric_actionness_loss`)."""
    if agnostic.shape != positives.shape or agnostic.dim() != 2:
        raise ValueError(f"agnostic {tuple(agnostic.shape)} and positives {tuple(positives.shape)} must be (B, T)")
    if not q > 0:
        raise ValueError(f"q must be > 0, got {q}")
    eps = max(1e-6, torch.finfo(agnostic.dtype).eps)
    a = agnostic.clamp(eps, 1.0 - eps)
    pos = positives.to(a.dtype)
    neg = 1.0 - pos
    pos_term = ((1.0 - a.pow(q)) / q * pos).sum(dim=1) / pos.sum(dim=1).clamp_min(1.0)
    neg_term = ((1.0 - (1.0 - a).pow(q)) / q * neg).sum(dim=1) / neg.sum(dim=1).clamp_min(1.0)
    return pos_term + neg_term


def asymmetric_actionness_loss(agnostic: Tensor, positives: Tensor, q: float = 0.7) -> Tensor:
    """docs/method.md sec. 4.2 ``L_asl`` (paper Eq. 16) on one modality's class-agnostic attention ``A`` (B, T).

    Per video: mean over the positive snippets of ``(1 - A^q) / q`` plus mean over the negative
    (= all non-positive) snippets of ``(1 - (1 - A)^q) / q``; an empty positive or negative set
    contributes 0. Then the mean over the B videos. ``positives`` (B, T) bool (see
    :func:`positives_from_top_l`). ``A`` is clamped to ``[eps, 1 - eps]`` (module docstring).
    """
    return _asl_per_video(agnostic, positives, q).mean()


# ------------------------------------------------------------------------------------- L_un


def consistency_loss(
    a_rgb: Tensor, a_flow: Tensor, a_cs: Tensor, a_ca: Tensor, mu1: float = 5.0, mu2: float = 0.1
) -> Tensor:
    """docs/method.md sec. 4.2 ``L_CI`` (paper Eq. 18-20): ``mu1 * MSE(A_ca^R, A_ca^F) + mu2 * MSE(A_cs, A_ca)``.

    All (B, T); MSE = mean over all elements. No side is detached (both branches are pulled together).
    """
    return mu1 * F.mse_loss(a_rgb, a_flow) + mu2 * F.mse_loss(a_cs, a_ca)


def co_training_loss(h_student: Tensor, h_teacher: Tensor, a_student: Tensor, a_teacher: Tensor) -> Tensor:
    """docs/method.md sec. 4.2 ``L_CO`` (paper Eq. 21): ``MSE(h_cs, h_cs~) + MSE(A_ca, A_ca~)``.

    ``h_*`` (B, T, K), ``a_*`` = ``A_ca`` (B, T); the teacher's tensors are detached (the teacher is
    an EMA of the student, never trained by gradient).
    """
    return F.mse_loss(h_student, h_teacher.detach()) + F.mse_loss(a_student, a_teacher.detach())


def _top_k_in_region(score: Tensor, region: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` time indices (B, k) of ``score`` restricted to ``region`` (B, T) bool, and their
    validity (B, k): slots beyond the region's size hold arbitrary indices flagged False."""
    masked = score.masked_fill(~region, float("-inf"))
    idx = masked.topk(k, dim=1).indices
    return idx, region.gather(1, idx)


def contrastive_sets(a_cs: Tensor, a_ca: Tensor, k_divisor: int = 20) -> dict[str, tuple[Tensor, Tensor]]:
    """docs/method.md sec. 4.2 ``L_C`` snippet sets: ``{"CA", "CB", "IA", "IB"} -> (index (B, k), valid (B, k))``.

    ``bin = A > lower median over time``; ``s = bin_cs + bin_ca``; ``k = max(1, T // k_divisor)``;
    CA = top-k of ``A_cs`` on s = 2, CB = top-k of ``max_t A_cs - A_cs`` on s = 0, IA = top-k of
    ``A_cs`` on s = 1, IB = top-k of ``max_t A_cs - A_cs`` on s = 1. A region with fewer than k
    members fills the rest with ``valid = False`` slots (never arbitrary snippets). No gradient.
    """
    if a_cs.shape != a_ca.shape or a_cs.dim() != 2:
        raise ValueError(f"a_cs {tuple(a_cs.shape)} and a_ca {tuple(a_ca.shape)} must be (B, T)")
    a_cs, a_ca = a_cs.detach(), a_ca.detach()
    T = a_cs.shape[1]
    k = max(1, min(T, T // k_divisor))
    bin_cs = a_cs > a_cs.median(dim=1, keepdim=True).values
    bin_ca = a_ca > a_ca.median(dim=1, keepdim=True).values
    s = bin_cs.long() + bin_ca.long()
    low = a_cs.max(dim=1, keepdim=True).values - a_cs
    return {
        "CA": _top_k_in_region(a_cs, s == 2, k),
        "CB": _top_k_in_region(low, s == 0, k),
        "IA": _top_k_in_region(a_cs, s == 1, k),
        "IB": _top_k_in_region(low, s == 1, k),
    }


def _set_mean(embeddings: Tensor, idx: Tensor, valid: Tensor) -> Tensor:
    """Mean embedding (B, E) of the valid slots of (B, k) indices into (B, T, E); zeros when none."""
    members = embeddings.gather(1, idx.unsqueeze(-1).expand(-1, -1, embeddings.shape[-1]))
    w = valid.to(embeddings.dtype).unsqueeze(-1)
    return (members * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0)


def _masked_nce(
    embeddings: Tensor,
    query: tuple[Tensor, Tensor],
    positive: tuple[Tensor, Tensor],
    negatives: tuple[Tensor, Tensor],
    temperature: float,
) -> Tensor:
    """One NCE term of ``L_C`` on (B, T, E) embeddings: each set is (index, valid). Cross entropy over
    ``[q.k+, q.n_1..] / temperature`` (positive = target), averaged over the videos whose query,
    positive and negative sets are all non-empty; 0 (with a live graph) when no video has them."""
    q = F.normalize(_set_mean(embeddings, *query), dim=-1)
    k = F.normalize(_set_mean(embeddings, *positive), dim=-1)
    neg_idx, neg_valid = negatives
    n = F.normalize(embeddings.gather(1, neg_idx.unsqueeze(-1).expand(-1, -1, embeddings.shape[-1])), dim=-1)
    l_pos = (q * k).sum(dim=-1, keepdim=True)  # (B, 1)
    l_neg = torch.einsum("be,bne->bn", q, n).masked_fill(~neg_valid, float("-inf"))  # (B, N)
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    per_video = -torch.log_softmax(logits, dim=1)[:, 0]
    rows = query[1].any(dim=1) & positive[1].any(dim=1) & neg_valid.any(dim=1)
    per_video = torch.where(rows, per_video, torch.zeros_like(per_video))
    return per_video.sum() / rows.sum().clamp_min(1).to(per_video.dtype)


def actionness_contrastive_loss(
    embeddings: Sequence[Tensor] | Tensor,
    a_cs: Tensor,
    a_ca: Tensor,
    k_divisor: int = 20,
    temperature: float = 0.1,
) -> Tensor:
    """docs/method.md sec. 4.2 ``L_C`` (AICL's actionness-inconsistency contrastive loss; paper Eq. 22's ``L_C``).

    Sets from :func:`contrastive_sets` (CA, CB, IA, IB; ``A_cs`` / ``A_ca`` (B, T) are not
    differentiated through). Per embedding space (B, T, E):
    ``NCE(IA, CA, CB) + NCE(IB, CB, CA) + NCE(CA, IA, CB) + NCE(CB, IB, CA)`` with ``NCE(q, k+, N)``
    as in the module docstring (temperature 0.1); each term skips the videos where one of its sets is
    empty and averages over the rest (0 when none has it). Summed over the given embedding spaces
    (IOCNet: fused, RGB, flow). Only valid set members are used: a region with fewer than k snippets
    contributes just its members (as query/positive mean and as negatives).
    """
    if isinstance(embeddings, Tensor):
        embeddings = [embeddings]
    if len(embeddings) == 0:
        raise ValueError("actionness_contrastive_loss needs at least one embedding tensor")
    sets = contrastive_sets(a_cs, a_ca, k_divisor)
    ca, cb, ia, ib = sets["CA"], sets["CB"], sets["IA"], sets["IB"]
    total = None
    for emb in embeddings:
        if emb.dim() != 3 or emb.shape[:2] != a_cs.shape:
            raise ValueError(f"embeddings must be (B, T, E) matching a_cs {tuple(a_cs.shape)}, got {tuple(emb.shape)}")
        term = (
            _masked_nce(emb, ia, ca, cb, temperature)
            + _masked_nce(emb, ib, cb, ca, temperature)
            + _masked_nce(emb, ca, ia, cb, temperature)
            + _masked_nce(emb, cb, ib, ca, temperature)
        )
        total = term if total is None else total + term
    return total


# ------------------------------------------------------------------------------------ total


@dataclass(frozen=True)
class IOCNetLoss:
    """The weights and switches of IOCNet's objective (docs/method.md sec. 4.2, :func:`iocnet_loss`).

    Args:
        asl_q: q of ``L_asl`` (0.7).
        ci_mu1, ci_mu2: ``L_CI`` weights (5, 0.1).
        lambda_c: weight of ``L_C`` (0.01).
        lambda_co: weight of ``L_CO`` (10 THUMOS, 1 ActivityNet).
        use_ci, use_c, use_co: the unsupervised terms on or off (ablations, COPL Table 7); without ``L_CO``
            there is no EMA teacher and no temporal shift either (the LightningModule's reading).
    """

    asl_q: float = 0.7
    ci_mu1: float = 5.0
    ci_mu2: float = 0.1
    lambda_c: float = 0.01
    lambda_co: float = 10.0
    use_ci: bool = True
    use_c: bool = True
    use_co: bool = True


def iocnet_loss(
    student: IOCNetOutput,
    teacher: IOCNetOutput | None,
    labels: Tensor,
    supervised: Tensor,
    weights: IOCNetLoss = IOCNetLoss(),
    *,
    contrast_k_divisor: int = 20,
    temperature: float = 0.1,
) -> tuple[Tensor, dict[str, Tensor]]:
    """docs/method.md sec. 4.2 ``L = L_sup (P) + L_un (P and U)`` (paper Eq. 17 and 22) for one batch.

    * ``L_sup = L_cls + L_asl^R + L_asl^F`` on the rows with ``supervised`` (B,) True (set P; labels
      = their pseudolabels), averaged over those rows; positives from the student's top-l sets of
      the row's labels; labels of the other rows are ignored. No supervised row: ``L_sup = 0``
      (attached to the graph). No host-device synchronization.
    * ``L_un = L_CI + lambda_c * L_C + lambda_co * L_CO`` on all rows; ``L_C`` over the fused, RGB and
      flow embeddings. ``weights`` (:class:`IOCNetLoss`) also switches terms off (ablations); ``L_CO``
      also needs a ``teacher`` output (the EMA teacher on the unshifted features): with ``teacher``
      None there is no ``L_CO``.

    Defaults = THUMOS (``lambda_co = 1`` for ActivityNet). Returns ``(total, parts)``, ``parts`` =
    detached ``{"cls", "asl_rgb", "asl_flow", "sup", "ci", "c", "co", "un", "total"}`` (0 for terms
    that are off).
    """
    B, T, _ = student.cas.shape
    supervised = supervised.to(device=student.cas.device, dtype=torch.bool).reshape(-1)
    if supervised.shape[0] != B:
        raise ValueError(f"supervised must be (B={B},), got {tuple(supervised.shape)}")
    if labels.shape != student.video_logits.shape:
        raise ValueError(f"labels must be (B, K) = {tuple(student.video_logits.shape)}, got {tuple(labels.shape)}")
    zero = student.video_logits.sum() * 0.0  # differentiable 0 on the right device/dtype

    # L_sup on the supervised rows, without indexing (no host-device sync): per-row terms, masked mean.
    n_sup = supervised.sum().clamp_min(1).to(student.video_logits.dtype)

    def sup_mean(per_video: Tensor) -> Tensor:
        return torch.where(supervised, per_video, torch.zeros_like(per_video)).sum() / n_sup

    y = torch.where(supervised.unsqueeze(1), labels, torch.zeros_like(labels))
    positives = positives_from_top_l(student.top_l_index, y, T)
    l_cls = sup_mean(_classification_per_video(student.video_logits, y))
    l_asl_r = sup_mean(_asl_per_video(student.agnostic_rgb, positives, weights.asl_q))
    l_asl_f = sup_mean(_asl_per_video(student.agnostic_flow, positives, weights.asl_q))
    l_sup = l_cls + l_asl_r + l_asl_f

    a_ca = student.agnostic_attention
    l_ci = (
        consistency_loss(
            student.agnostic_rgb, student.agnostic_flow, student.attention, a_ca, weights.ci_mu1, weights.ci_mu2
        )
        if weights.use_ci
        else zero
    )
    l_c = (
        actionness_contrastive_loss(
            [student.embeddings, student.embeddings_rgb, student.embeddings_flow],
            student.attention,
            a_ca,
            k_divisor=contrast_k_divisor,
            temperature=temperature,
        )
        if weights.use_c
        else zero
    )
    l_co = (
        co_training_loss(student.h_cs, teacher.h_cs, a_ca, teacher.agnostic_attention)
        if weights.use_co and teacher is not None
        else zero
    )
    l_un = l_ci + weights.lambda_c * l_c + weights.lambda_co * l_co
    total = l_sup + l_un
    parts = {
        "cls": l_cls,
        "asl_rgb": l_asl_r,
        "asl_flow": l_asl_f,
        "sup": l_sup,
        "ci": l_ci,
        "c": l_c,
        "co": l_co,
        "un": l_un,
        "total": total,
    }
    return total, {name: value.detach() for name, value in parts.items()}
