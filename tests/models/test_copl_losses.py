"""COPL / IOCNet losses (docs/method.md sec. 4.2, paper Eq. 15-22) against plain-Python references; a toy fit."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.helpers.models import randomize_agnostic_heads
from utal_lightning.models.augment import temporal_shift
from utal_lightning.models.copl_losses import (
    IOCNetLoss,
    actionness_contrastive_loss,
    asymmetric_actionness_loss,
    classification_loss,
    co_training_loss,
    consistency_loss,
    contrastive_sets,
    iocnet_loss,
    positives_from_top_l,
)
from utal_lightning.models.iocnet import IOCNet

pytestmark = pytest.mark.usefixtures("one_thread")


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------------------------ L_cls


def _ref_cls(logits, labels):
    total = 0.0
    for row, y in zip(logits, labels, strict=True):
        s = sum(y)
        if s == 0:
            continue
        mx = max(row)
        lse = mx + math.log(sum(math.exp(v - mx) for v in row))
        total += -sum((yi / s) * (v - lse) for v, yi in zip(row, y, strict=True))
    return total / len(logits)


def test_classification_loss_reference_multilabel_and_empty_row():
    logits = torch.randn(4, 5, dtype=torch.float64, generator=_g(0), requires_grad=True)
    y = torch.tensor([[1, 0, 0, 0, 0], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 1, 1, 0, 0]])
    got = classification_loss(logits, y)
    assert got.item() == pytest.approx(_ref_cls(logits.tolist(), y.tolist()), rel=1e-12)
    # same as torch's probability-target cross entropy (a zero row contributes 0, divisor B)
    yn = y.double() / y.double().sum(1, keepdim=True).clamp_min(1)
    assert got.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, yn).item(), rel=1e-12)
    got.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[2].abs().sum() == 0
    assert logits.grad[0].abs().sum() > 0


# ------------------------------------------------------------------------------------ L_asl


def _ref_asl(a, pos, q):
    total = 0.0
    for arow, prow in zip(a, pos, strict=True):
        p = [v for v, m in zip(arow, prow, strict=True) if m]
        n = [v for v, m in zip(arow, prow, strict=True) if not m]
        term = 0.0
        if p:
            term += sum((1 - v**q) / q for v in p) / len(p)
        if n:
            term += sum((1 - (1 - v) ** q) / q for v in n) / len(n)
        total += term
    return total / len(a)


@pytest.mark.parametrize("q", [0.7, 0.3, 1.0])
def test_asymmetric_loss_reference_and_empty_sets(q):
    a = (torch.rand(4, 11, dtype=torch.float64, generator=_g(1)) * 0.98 + 0.01).requires_grad_()
    pos = torch.rand(4, 11, generator=_g(2)) > 0.6
    pos[1] = False  # no positives: only the negative mean
    pos[2] = True  # no negatives: only the positive mean
    got = asymmetric_actionness_loss(a, pos, q)
    assert got.item() == pytest.approx(_ref_asl(a.tolist(), pos.tolist(), q), rel=1e-12)
    got.backward()
    assert torch.isfinite(a.grad).all()
    # positives are pushed up, negatives down
    assert (a.grad[pos] <= 0).all() and (a.grad[~pos] >= 0).all()


def test_asymmetric_loss_saturated_attention_has_finite_gradient():
    logits = torch.tensor([[-200.0, 40.0, 0.0, 200.0]], requires_grad=True)  # sigmoid -> exactly 0 / 1
    a = torch.sigmoid(logits)
    assert a[0, 0] == 0 and a[0, 3] == 1
    loss = asymmetric_actionness_loss(a, torch.tensor([[True, True, False, False]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_positives_from_top_l_reference():
    B, T, K, top_l = 3, 10, 4, 3
    idx = torch.stack(
        [torch.stack([torch.randperm(T, generator=_g(10 * b + k))[:top_l] for k in range(K)], 1) for b in range(B)]
    )
    assert idx.shape == (B, top_l, K)
    labels = torch.tensor([[1, 0, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    got = positives_from_top_l(idx, labels, T)
    for b in range(B):
        want = set()
        for k in range(K):
            if labels[b, k]:
                want |= set(idx[b, :, k].tolist())
        assert {t for t in range(T) if got[b, t]} == want
    assert not got[2].any()


# -------------------------------------------------------------------------- L_CI, L_CO


def _mse(x, y):
    x, y = torch.as_tensor(x).flatten().tolist(), torch.as_tensor(y).flatten().tolist()
    return sum((a - b) ** 2 for a, b in zip(x, y, strict=True)) / len(x)


def test_consistency_loss_reference():
    r, f, cs, ca = (torch.rand(3, 9, dtype=torch.float64, generator=_g(s)) for s in range(4))
    got = consistency_loss(r, f, cs, ca, mu1=5.0, mu2=0.1)
    assert got.item() == pytest.approx(5.0 * _mse(r, f) + 0.1 * _mse(cs, ca), rel=1e-12)
    assert consistency_loss(r, f, cs, ca, mu1=2.0, mu2=0.0).item() == pytest.approx(2.0 * _mse(r, f), rel=1e-12)


def test_co_training_loss_reference_and_teacher_detached():
    hs = torch.rand(2, 7, 3, dtype=torch.float64, generator=_g(0), requires_grad=True)
    ht = torch.rand(2, 7, 3, dtype=torch.float64, generator=_g(1), requires_grad=True)
    a_s = torch.rand(2, 7, dtype=torch.float64, generator=_g(2), requires_grad=True)
    a_t = torch.rand(2, 7, dtype=torch.float64, generator=_g(3), requires_grad=True)
    got = co_training_loss(hs, ht, a_s, a_t)
    assert got.item() == pytest.approx(_mse(hs.detach(), ht.detach()) + _mse(a_s.detach(), a_t.detach()), rel=1e-12)
    got.backward()
    assert hs.grad.abs().sum() > 0 and a_s.grad.abs().sum() > 0
    assert ht.grad is None and a_t.grad is None


# ------------------------------------------------------------------------------------- L_C


def _norm(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / max(n, 1e-12) for x in v]


def _ref_nce(q, k, negs, tau):
    q, k = _norm(q), _norm(k)
    logits = [sum(a * b for a, b in zip(q, k, strict=True)) / tau] + [
        sum(a * b for a, b in zip(q, _norm(n), strict=True)) / tau for n in negs
    ]
    mx = max(logits)
    return -(logits[0] - mx - math.log(sum(math.exp(x - mx) for x in logits)))


def _ref_sets(acs, aca, k_div):
    T = len(acs)
    k = max(1, T // k_div)
    med_cs = sorted(acs)[(T - 1) // 2]  # lower median
    med_ca = sorted(aca)[(T - 1) // 2]
    s = [(acs[t] > med_cs) + (aca[t] > med_ca) for t in range(T)]
    mx = max(acs)

    def top(score, region):
        return sorted([t for t in range(T) if region[t]], key=lambda t: -score[t])[:k]

    low = [mx - v for v in acs]
    return {
        "CA": top(acs, [v == 2 for v in s]),
        "CB": top(low, [v == 0 for v in s]),
        "IA": top(acs, [v == 1 for v in s]),
        "IB": top(low, [v == 1 for v in s]),
    }


def _ref_mean(rows, idx):
    return [sum(rows[t][e] for t in idx) / len(idx) for e in range(len(rows[0]))]


def _ref_lc(embs, acs, aca, k_div=20, tau=0.1):
    B = len(acs)
    sets = [_ref_sets(acs[b], aca[b], k_div) for b in range(B)]
    total = 0.0
    for emb in embs:
        for qn, pn, nn in (("IA", "CA", "CB"), ("IB", "CB", "CA"), ("CA", "IA", "CB"), ("CB", "IB", "CA")):
            vals = []
            for b in range(B):
                S = sets[b]
                if not (S[qn] and S[pn] and S[nn]):
                    continue
                q, k = _ref_mean(emb[b], S[qn]), _ref_mean(emb[b], S[pn])
                vals.append(_ref_nce(q, k, [emb[b][t] for t in S[nn]], tau))
            if vals:
                total += sum(vals) / len(vals)
    return total


def _valid_members(sets, name, b):
    idx, valid = sets[name]
    return sorted(int(i) for i, v in zip(idx[b], valid[b], strict=True) if v)


@pytest.mark.parametrize("T, k_div", [(45, 10), (60, 20), (8, 20)])
def test_contrastive_loss_reference_three_spaces(T, k_div):
    B, E = 3, 4
    acs = torch.rand(B, T, dtype=torch.float64, generator=_g(T))
    aca = torch.rand(B, T, dtype=torch.float64, generator=_g(T + 1))
    embs = [torch.randn(B, T, E, dtype=torch.float64, generator=_g(T + 2 + i), requires_grad=True) for i in range(3)]
    sets = contrastive_sets(acs, aca, k_div)
    for b in range(B):
        ref = _ref_sets(acs[b].tolist(), aca[b].tolist(), k_div)
        for name in ("CA", "CB", "IA", "IB"):
            assert _valid_members(sets, name, b) == sorted(ref[name]), name
    got = actionness_contrastive_loss(embs, acs, aca, k_divisor=k_div, temperature=0.1)
    want = _ref_lc([e.tolist() for e in embs], acs.tolist(), aca.tolist(), k_div, 0.1)
    assert got.item() == pytest.approx(want, rel=1e-10)
    got.backward()
    for e in embs:
        assert torch.isfinite(e.grad).all() and e.grad.abs().sum() > 0
    # one space = that space's share; a bare tensor is accepted
    one = actionness_contrastive_loss(embs[0], acs, aca, k_divisor=k_div)
    assert one.item() == pytest.approx(_ref_lc([embs[0].tolist()], acs.tolist(), aca.tolist(), k_div), rel=1e-10)


def test_contrastive_loss_masks_short_regions():
    """s = 2 holds only 2 snippets while k = 8: CA must be those 2, never 6 arbitrary others."""
    T, k_div = 40, 5  # k = 8
    acs = torch.linspace(0.01, 0.99, T, dtype=torch.float64).unsqueeze(0)
    aca = 1.0 - acs  # anti-correlated: s is 1 almost everywhere
    aca[0, 30] = 0.995  # two snippets with high A_cs and high A_ca -> s = 2
    aca[0, 35] = 0.996
    aca[0, 5] = 0.001  # and two with low both -> s = 0
    aca[0, 3] = 0.002
    sets = contrastive_sets(acs, aca, k_div)
    assert _valid_members(sets, "CA", 0) == [30, 35]
    assert _valid_members(sets, "CB", 0) == [3, 5]
    assert len(_valid_members(sets, "IA", 0)) == 8 and len(_valid_members(sets, "IB", 0)) == 8

    emb = torch.randn(1, T, 6, dtype=torch.float64, generator=_g(5))
    got = actionness_contrastive_loss([emb], acs, aca, k_divisor=k_div)
    want = _ref_lc([emb.tolist()], acs.tolist(), aca.tolist(), k_div)
    assert got.item() == pytest.approx(want, rel=1e-10)
    # snippets outside every valid set do not matter
    used = set()
    for name in ("CA", "CB", "IA", "IB"):
        used |= set(_valid_members(sets, name, 0))
    unused = [t for t in range(T) if t not in used]
    assert unused
    emb2 = emb.clone()
    emb2[0, unused] = torch.randn(len(unused), 6, dtype=torch.float64, generator=_g(6)) * 10
    assert actionness_contrastive_loss([emb2], acs, aca, k_divisor=k_div).item() == pytest.approx(got.item(), rel=1e-12)


def test_contrastive_loss_skips_empty_terms_per_video():
    T, E = 30, 5
    acs = torch.rand(2, T, dtype=torch.float64, generator=_g(0))
    aca = torch.rand(2, T, dtype=torch.float64, generator=_g(1))
    aca[1] = acs[1]  # video 1: branches agree everywhere -> no inconsistent snippet, IA = IB = {}
    emb = torch.randn(2, T, E, dtype=torch.float64, generator=_g(2), requires_grad=True)
    sets = contrastive_sets(acs, aca)
    assert not sets["IA"][1][1].any() and not sets["IB"][1][1].any()
    got = actionness_contrastive_loss([emb], acs, aca)
    only0 = actionness_contrastive_loss([emb[:1]], acs[:1], aca[:1])
    assert got.item() == pytest.approx(only0.item(), rel=1e-12)  # mean over the videos that have each term
    assert got.item() == pytest.approx(_ref_lc([emb.tolist()], acs.tolist(), aca.tolist()), rel=1e-10)
    # no video has any term: 0, finite, backward works
    none = actionness_contrastive_loss([emb[1:]], acs[1:], aca[1:])
    assert none.item() == 0.0
    none.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() == 0


def test_contrastive_loss_does_not_differentiate_attention():
    acs = torch.rand(2, 25, dtype=torch.float64, generator=_g(0), requires_grad=True)
    aca = torch.rand(2, 25, dtype=torch.float64, generator=_g(1), requires_grad=True)
    emb = torch.randn(2, 25, 3, dtype=torch.float64, generator=_g(2), requires_grad=True)
    actionness_contrastive_loss([emb], acs, aca).backward()
    assert acs.grad is None and aca.grad is None and emb.grad.abs().sum() > 0


# ---------------------------------------------------------------------------- iocnet_loss


def _outputs(B=4, T=24, K=3, seed=0):
    torch.manual_seed(seed)
    m = randomize_agnostic_heads(IOCNet(K, feature_dim=10, rgb_dim=6, hidden_dim=8).double())
    teacher = copy.deepcopy(m)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(B, T, 10, dtype=torch.float64, generator=_g(seed + 1))
    return m, teacher, x


def test_iocnet_loss_supervised_mask_restricts_l_sup():
    m, teacher, x = _outputs()
    labels = torch.tensor([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0]], dtype=torch.float64)
    sup = torch.tensor([True, False, True, False])
    s, t = m(x), teacher(x)
    total, parts = iocnet_loss(s, t, labels, sup)
    # L_sup = the three terms on the supervised sub-batch only
    rows = sup.nonzero().flatten()
    pos = positives_from_top_l(s.top_l_index[rows], labels[rows], x.shape[1])
    cls = classification_loss(s.video_logits[rows], labels[rows])
    asl_r = asymmetric_actionness_loss(s.agnostic_rgb[rows], pos)
    asl_f = asymmetric_actionness_loss(s.agnostic_flow[rows], pos)
    assert parts["cls"].item() == pytest.approx(cls.item(), rel=1e-12)
    assert parts["asl_rgb"].item() == pytest.approx(asl_r.item(), rel=1e-12)
    assert parts["asl_flow"].item() == pytest.approx(asl_f.item(), rel=1e-12)
    assert parts["sup"].item() == pytest.approx((cls + asl_r + asl_f).item(), rel=1e-12)
    # L_un on all rows, assembled with the default weights
    ci = consistency_loss(s.agnostic_rgb, s.agnostic_flow, s.attention, s.agnostic_attention, 5.0, 0.1)
    spaces = [s.embeddings, s.embeddings_rgb, s.embeddings_flow]
    c = actionness_contrastive_loss(spaces, s.attention, s.agnostic_attention)
    co = co_training_loss(s.h_cs, t.h_cs, s.agnostic_attention, t.agnostic_attention)
    assert parts["ci"].item() == pytest.approx(ci.item(), rel=1e-12)
    assert parts["c"].item() == pytest.approx(c.item(), rel=1e-12)
    assert parts["co"].item() == pytest.approx(co.item(), rel=1e-12)
    assert parts["un"].item() == pytest.approx((ci + 0.01 * c + 10.0 * co).item(), rel=1e-12)
    assert total.item() == pytest.approx((cls + asl_r + asl_f + ci + 0.01 * c + 10.0 * co).item(), rel=1e-12)
    assert all(not v.requires_grad for v in parts.values())
    # the labels of unsupervised rows are ignored
    other = labels.clone()
    other[1] = torch.tensor([1.0, 0.0, 0.0])
    other[3] = 0.0
    total2, _ = iocnet_loss(s, t, other, sup)
    assert total2.item() == pytest.approx(total.item(), rel=1e-12)
    # flipping a row to supervised changes L_sup
    _, parts3 = iocnet_loss(s, t, labels, torch.tensor([True, True, True, False]))
    assert parts3["sup"].item() != pytest.approx(parts["sup"].item())


def test_iocnet_loss_no_supervised_row_is_zero_and_differentiable():
    m, teacher, x = _outputs()
    labels = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]]
    s = m(x)
    total, parts = iocnet_loss(s, teacher(x), labels, torch.zeros(4, dtype=torch.bool))
    assert parts["sup"].item() == 0.0 and parts["cls"].item() == 0.0
    assert total.item() == pytest.approx(parts["un"].item(), rel=1e-12)
    total.backward()
    grads = [p.grad for p in m.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_iocnet_loss_switches():
    m, teacher, x = _outputs()
    labels = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]]
    sup = torch.tensor([True, True, False, False])
    s, t = m(x), teacher(x)
    _, full = iocnet_loss(s, t, labels, sup, IOCNetLoss(lambda_c=0.5, lambda_co=2.0))
    assert all(full[k].item() > 0 for k in ("ci", "c", "co"))

    def total_of(**kw):
        teacher = kw.pop("teacher", t)
        tot, parts = iocnet_loss(s, teacher, labels, sup, IOCNetLoss(lambda_c=0.5, lambda_co=2.0, **kw))
        return tot.item(), parts

    sup_part = full["sup"].item()
    tot, parts = total_of(use_ci=False)
    assert parts["ci"].item() == 0 and tot == pytest.approx(sup_part + 0.5 * full["c"].item() + 2.0 * full["co"].item())
    tot, parts = total_of(use_c=False)
    assert parts["c"].item() == 0 and tot == pytest.approx(sup_part + full["ci"].item() + 2.0 * full["co"].item())
    tot, parts = total_of(use_co=False)
    assert parts["co"].item() == 0 and tot == pytest.approx(sup_part + full["ci"].item() + 0.5 * full["c"].item())
    tot, parts = total_of(teacher=None)
    assert parts["co"].item() == 0 and tot == pytest.approx(sup_part + full["ci"].item() + 0.5 * full["c"].item())
    tot, parts = total_of(use_ci=False, use_c=False, use_co=False)
    assert tot == pytest.approx(sup_part) and parts["un"].item() == 0
    # the weights are applied
    tot, _ = total_of(ci_mu1=0.0, ci_mu2=0.0)
    assert tot == pytest.approx(sup_part + 0.5 * full["c"].item() + 2.0 * full["co"].item())


def test_iocnet_loss_teacher_gets_no_gradient():
    m, teacher, x = _outputs()
    labels = torch.eye(3, dtype=torch.float64)[[0, 1, 2, 0]]
    total, _ = iocnet_loss(m(x), teacher(x), labels, torch.ones(4, dtype=torch.bool))
    total.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in m.parameters())


def test_iocnet_loss_toy_overfit():
    """2 classes, action snippets carry a class prototype in both modalities; 100 Adam steps."""
    gen = _g(123)
    B, T, Dm = 8, 32, 16
    protos = torch.rand(2, Dm, generator=gen) * 3
    x = torch.rand(B, T, Dm, generator=gen) * 0.3
    labels = torch.zeros(B, 2)
    for b in range(B):
        c = b % 2
        labels[b, c] = 1
        start = int(torch.randint(0, T - 8, (1,), generator=gen))
        x[b, start : start + 8] += protos[c]
    sup = torch.tensor([True] * 6 + [False] * 2)
    torch.manual_seed(0)
    student = IOCNet(2, feature_dim=Dm, rgb_dim=8, hidden_dim=16)
    teacher = copy.deepcopy(student).requires_grad_(False)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)

    def loss_at(seed):
        xs = temporal_shift(x, 4, _g(seed))
        return iocnet_loss(student(xs), teacher(x), labels, sup, IOCNetLoss(lambda_co=1.0))

    with torch.no_grad():
        start_loss = loss_at(999)[0].item()
    for step in range(100):
        total, _ = loss_at(step)
        opt.zero_grad()
        total.backward()
        opt.step()
        with torch.no_grad():
            decay = min(0.99, (1 + step) / (10 + step))
            for pt, ps in zip(teacher.parameters(), student.parameters(), strict=True):
                pt.mul_(decay).add_(ps, alpha=1 - decay)
    with torch.no_grad():
        end_total, end_parts = loss_at(999)
        pred = student(x).video_scores.argmax(1)
    assert math.isfinite(end_total.item())
    assert end_total.item() < 0.5 * start_loss
    assert end_parts["cls"].item() < 0.1
    assert (pred == labels.argmax(1)).all()
