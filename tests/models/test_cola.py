"""CoLA model (docs/method.md sec. 4.1) and its losses: shapes, reference computations, gradients, a toy fit."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch import nn

from utal_lightning.models import cola as cola_module
from utal_lightning.models import losses as losses_module
from utal_lightning.models.cola import CoLA, glorot_uniform_
from utal_lightning.models.losses import (
    CoLALoss,
    cola_classification_loss,
    cola_cross_entropy_loss,
    cola_loss,
    cola_mine,
    cola_training_loss,
    snippet_contrastive_loss,
)
from utal_lightning.models.mining import MinedSnippets, mine_snippets
from utal_lightning.models.outputs import LocalizationOutput

# ---------------------------------------------------------------- losses vs plain references


def _ref_bce(p: list[list[float]], y: list[list[float]]) -> float:
    total, n = 0.0, 0
    for prow, yrow in zip(p, y, strict=True):
        s = sum(yrow)
        for pi, yi in zip(prow, yrow, strict=True):
            t = yi / s
            total += -(t * math.log(pi) + (1 - t) * math.log(1 - pi))
            n += 1
    return total / n


def test_classification_loss_matches_reference_multilabel():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)  # row 2: targets 0.5 / 0.5
    got = cola_classification_loss(p, y)
    assert got.item() == pytest.approx(_ref_bce(p.tolist(), y.tolist()), rel=1e-12)
    # multi-label normalization matters: unnormalized BCE is different
    plain = torch.nn.functional.binary_cross_entropy(p, y)
    assert abs(plain.item() - got.item()) > 1e-3
    # integer / bool labels are accepted
    assert cola_classification_loss(p, y.bool()).item() == pytest.approx(got.item())


def test_classification_loss_gradient_and_zero_row():
    logits = torch.randn(3, 4, requires_grad=True)
    y = torch.tensor([[0, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]])
    loss = cola_classification_loss(torch.softmax(logits, 1), y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_cross_entropy_classification_loss_matches_hand_computation():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 1.0]], dtype=torch.float64)  # row 2: targets 0.5 / 0.5
    # -sum_k y_k log p_k per video, mean over the 2 videos
    hand = (-math.log(0.7) + -(0.5 * math.log(0.3) + 0.5 * math.log(0.4))) / 2
    assert cola_cross_entropy_loss(p, y).item() == pytest.approx(hand, rel=1e-12)
    assert cola_cross_entropy_loss(p, y.bool()).item() == pytest.approx(hand, rel=1e-12)
    assert abs(cola_classification_loss(p, y).item() - hand) > 1e-3  # a different loss from CoLA's BCE


def test_cross_entropy_loss_zero_row_and_underflow_are_finite():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]], requires_grad=True)
    y = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # row 2 unlabeled: contributes 0
    loss = cola_cross_entropy_loss(p, y)
    loss.backward()
    assert loss.item() == pytest.approx(0.0, abs=1e-7) and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("cls_loss,reference", [("bce", cola_classification_loss), ("ce", cola_cross_entropy_loss)])
def test_training_loss_uses_its_classification_loss(cls_loss, reference):
    model = _model(3).eval()
    out = model(torch.randn(2, 30, 16))
    labels = torch.tensor([[1, 0, 0], [0, 1, 1]])
    _, parts = cola_training_loss(out, labels, model.r_easy, CoLALoss(cls_loss=cls_loss), training=False)
    assert parts["cls"].item() == pytest.approx(reference(out.video_scores, labels).item(), rel=1e-6)
    with pytest.raises(ValueError):
        CoLALoss(cls_loss="focal")


def _ref_nce(q, k, negs, tau):
    def norm(v):
        n = math.sqrt(sum(x * x for x in v))
        return [x / max(n, 1e-12) for x in v]

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b, strict=True))

    q, k = norm(q), norm(k)
    logits = [dot(q, k) / tau] + [dot(q, norm(n)) / tau for n in negs]
    mx = max(logits)
    return -(logits[0] - mx - math.log(sum(math.exp(x - mx) for x in logits)))


def _mean(rows):
    return [sum(c) / len(rows) for c in zip(*rows, strict=True)]


def _ref_snico(emb, ea, eb, ha, hb, tau=0.07, ha_valid=None, hb_valid=None):
    act_terms, bkg_terms = [], []
    for b in range(len(emb)):
        e = emb[b]
        ea_rows = [e[i] for i in ea[b]]
        eb_rows = [e[i] for i in eb[b]]
        ha_rows = [e[i] for j, i in enumerate(ha[b]) if ha_valid is None or ha_valid[b][j]]
        hb_rows = [e[i] for j, i in enumerate(hb[b]) if hb_valid is None or hb_valid[b][j]]
        if ha_rows:
            act_terms.append(_ref_nce(_mean(ha_rows), _mean(ea_rows), eb_rows, tau))
        if hb_rows:
            bkg_terms.append(_ref_nce(_mean(hb_rows), _mean(eb_rows), ea_rows, tau))
    avg = lambda xs: sum(xs) / len(xs) if xs else 0.0  # noqa: E731
    return avg(act_terms) + avg(bkg_terms)


def _random_sets(B, T, ke, kh, seed):
    g = torch.Generator().manual_seed(seed)
    sets = [torch.stack([torch.randperm(T, generator=g)[:k] for _ in range(B)]) for k in (ke, ke, kh, kh)]
    return sets


def test_contrastive_loss_matches_reference():
    B, T, E = 3, 20, 5
    emb = torch.randn(B, T, E, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    ea, eb, ha, hb = _random_sets(B, T, 4, 2, 1)
    got = snippet_contrastive_loss(emb, ea, eb, ha, hb, temperature=0.07)
    want = _ref_snico(emb.tolist(), ea.tolist(), eb.tolist(), ha.tolist(), hb.tolist(), 0.07)
    assert got.item() == pytest.approx(want, rel=1e-10)
    got_t = snippet_contrastive_loss(emb, ea, eb, ha, hb, temperature=0.5)
    assert got_t.item() == pytest.approx(
        _ref_snico(emb.tolist(), ea.tolist(), eb.tolist(), ha.tolist(), hb.tolist(), 0.5), rel=1e-10
    )


def test_contrastive_loss_validity_masks():
    B, T, E = 3, 16, 4
    emb = torch.randn(B, T, E, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    ea, eb, ha, hb = _random_sets(B, T, 3, 3, 3)
    all_true = torch.ones(B, 3, dtype=torch.bool)
    base = snippet_contrastive_loss(emb, ea, eb, ha, hb)
    assert snippet_contrastive_loss(emb, ea, eb, ha, hb, hard_act_valid=all_true, hard_bkg_valid=all_true).item() == (
        pytest.approx(base.item(), rel=1e-12)
    )
    ha_valid = torch.tensor([[True, False, False], [False, False, False], [True, True, False]])
    hb_valid = torch.tensor([[True, True, True], [True, False, True], [False, False, False]])
    got = snippet_contrastive_loss(emb, ea, eb, ha, hb, hard_act_valid=ha_valid, hard_bkg_valid=hb_valid)
    want = _ref_snico(
        emb.tolist(), ea.tolist(), eb.tolist(), ha.tolist(), hb.tolist(), 0.07, ha_valid.tolist(), hb_valid.tolist()
    )
    assert got.item() == pytest.approx(want, rel=1e-10)
    # nothing valid: that term is 0 but the graph stays usable
    emb_g = emb.clone().requires_grad_(True)
    none = torch.zeros(B, 3, dtype=torch.bool)
    loss = snippet_contrastive_loss(emb_g, ea, eb, ha, hb, hard_act_valid=none, hard_bkg_valid=none)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(emb_g.grad).all()


def test_contrastive_loss_gradient_flows_to_all_sets():
    B, T, E = 2, 24, 6
    emb = torch.randn(B, T, E, requires_grad=True, generator=torch.Generator().manual_seed(4))
    ea = torch.tensor([[0, 1, 2], [3, 4, 5]])
    eb = torch.tensor([[6, 7, 8], [9, 10, 11]])
    ha = torch.tensor([[12], [13]])
    hb = torch.tensor([[14], [15]])
    loss = snippet_contrastive_loss(emb, ea, eb, ha, hb)
    loss.backward()
    touched = emb.grad.abs().sum(-1) > 0
    assert touched[0, [0, 1, 2, 6, 7, 8, 12, 14]].all()
    assert touched[1, [3, 4, 5, 9, 10, 11, 13, 15]].all()
    assert not touched[:, 16:].any()


def test_cola_loss_composition():
    B, T, K, E = 2, 30, 3, 8
    g = torch.Generator().manual_seed(5)
    cas = torch.rand(B, T, K, generator=g)
    out = LocalizationOutput(
        cas=cas,
        attention=torch.sigmoid(cas.sum(-1)),
        video_scores=torch.softmax(torch.randn(B, K, generator=g), 1),
        embeddings=torch.randn(B, T, E, generator=g),
    )
    labels = torch.tensor([[1, 0, 0], [0, 1, 1]])
    mined = mine_snippets(cas.sum(-1), 5, 20, 3, 6)
    total, parts = cola_loss(out, labels, mined, lambda_ctr=0.01)
    assert isinstance(mined, MinedSnippets)
    assert set(parts) == {"cls", "ctr", "total"}
    assert parts["cls"].item() == pytest.approx(cola_classification_loss(out.video_scores, labels).item())
    assert total.item() == pytest.approx(parts["cls"].item() + 0.01 * parts["ctr"].item(), rel=1e-6)
    assert parts["ctr"].item() > 0


def test_training_loss_is_mining_then_the_loss():
    model = _model(3).eval()
    x = torch.randn(2, 30, 16)
    labels = torch.tensor([[1, 0, 0], [0, 1, 1]])
    out = model(x)
    total_m, _ = cola_training_loss(out, labels, model.r_easy, CoLALoss(lambda_ctr=0.01, temperature=0.1), False)
    mined = mine_snippets(out.cas.sum(-1), 5, 20, 3, 6)
    total_p, _ = cola_loss(out, labels, mined, lambda_ctr=0.01, temperature=0.1)
    assert torch.allclose(total_m, total_p)


# ---------------------------------------------------------------- the model


def _model(K, D=16, hidden=32, **kw):
    torch.manual_seed(0)
    return CoLA(num_classes=K, feature_dim=D, hidden_dim=hidden, **kw)


@pytest.mark.parametrize("T", [7, 32, 750])
@pytest.mark.parametrize("K", [1, 5, 20])
def test_output_shapes_and_ranges(T, K):
    model = _model(K)
    x = torch.randn(2, T, 16)
    out = model(x)
    assert isinstance(out, LocalizationOutput)
    assert out.cas.shape == (2, T, K)
    assert out.attention.shape == (2, T)
    assert out.video_scores.shape == (2, K)
    assert out.embeddings.shape == (2, T, 32)
    assert out.agnostic_attention is None
    assert torch.allclose(out.video_scores.sum(1), torch.ones(2), atol=1e-5)
    assert (out.attention >= 0).all() and (out.attention <= 1).all()
    assert (out.cas >= 0).all()
    assert torch.allclose(out.attention, torch.sigmoid(out.cas.sum(-1)))
    # training step runs: mining + loss on every shape
    model.train()
    labels = torch.zeros(2, K)
    labels[:, 0] = 1
    total, _parts = cola_training_loss(
        model(x), labels, model.r_easy, CoLALoss(), model.training, generator=torch.Generator().manual_seed(0)
    )
    assert torch.isfinite(total)
    total.backward()


def test_video_scores_are_softmax_of_topk_mean():
    model = _model(4).eval()
    x = torch.randn(3, 32, 16)
    out = model(x)
    k = 32 // 5
    want = torch.softmax(out.cas.sort(dim=1, descending=True).values[:, :k].mean(1), dim=1)
    assert torch.allclose(out.video_scores, want, atol=1e-6)
    # T < r_easy still selects one snippet: the per-class max
    out7 = model(torch.randn(1, 4, 16))
    assert torch.allclose(out7.video_scores, torch.softmax(out7.cas.max(1).values, 1), atol=1e-6)


def test_embeddings_precede_dropout_and_eval_is_deterministic():
    model = _model(3)
    x = torch.randn(2, 20, 16)
    model.train()
    a, b = model(x), model(x)
    assert torch.equal(a.embeddings, b.embeddings)  # no dropout on the embeddings
    assert not torch.equal(a.cas, b.cas)  # dropout before the classifier
    model.eval()
    assert torch.equal(model(x).cas, model(x).cas)


def test_batch_of_one():
    model = _model(2)
    out = model(torch.randn(1, 9, 16))
    assert out.cas.shape == (1, 9, 2)
    mined = cola_mine(out.cas.sum(2), model.r_easy, CoLALoss(), True, generator=torch.Generator().manual_seed(0))
    assert mined.easy_act.shape == (1, 1) and mined.hard_act.shape == (1, 1)


def test_anet_variant_builds_and_runs():
    model = _model(5, embed_kernel=9, cls_kernel=9, cls_depthwise_kernel=7, cls_depthwise_dilation=2, r_easy=10)
    convs = [m for m in model.classifier if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 2
    assert convs[0].kernel_size == (9,) and convs[0].bias is None
    assert convs[1].groups == 5 and convs[1].kernel_size == (7,) and convs[1].dilation == (2,)
    assert model.embed[0].kernel_size == (9,)
    for T in (5, 50, 100):
        out = model(torch.randn(2, T, 16))
        assert out.cas.shape == (2, T, 5)
        assert torch.allclose(out.video_scores.sum(1), torch.ones(2), atol=1e-5)
    labels = torch.eye(5)[:2]
    anet = CoLALoss(r_hard=8, lambda_ctr=0.005)
    total, _ = cola_training_loss(model.train()(torch.randn(2, 50, 16)), labels, model.r_easy, anet, model.training)
    total.backward()
    assert convs[1].weight.grad is not None and convs[1].weight.grad.abs().sum() > 0


def test_mine_uses_drop_only_in_training_and_is_seeded():
    loss = CoLALoss()
    actionness = torch.rand(2, 60, generator=torch.Generator().manual_seed(7))
    m1 = cola_mine(actionness, 5, loss, True, generator=torch.Generator().manual_seed(1))
    m2 = cola_mine(actionness, 5, loss, True, generator=torch.Generator().manual_seed(1))
    for x, y in zip(m1, m2, strict=True):
        assert torch.equal(x, y)
    plain = cola_mine(actionness, 5, loss, False)
    ref = mine_snippets(actionness, 5, 20, 3, 6)
    for x, y in zip(plain, ref, strict=True):
        assert torch.equal(x, y)
    assert not torch.equal(m1.easy_act.sort(1).values, plain.easy_act.sort(1).values)
    # an explicit mask wins over the generator
    keep = torch.ones(2, 60, dtype=torch.bool)
    keep[:, ::2] = False
    masked = cola_mine(actionness, 5, loss, True, drop_mask=keep)
    assert (masked.easy_act % 2 == 1).all() and (masked.easy_bkg % 2 == 1).all()


def test_hard_threshold_variant():
    a = torch.tensor([[0.0] * 10 + [1.0] * 10 + [0.0] * 10])
    mined = cola_mine(a, 5, CoLALoss(hard_threshold=0.5), False)
    assert mined.hard_act_valid.any()
    with pytest.raises(ValueError):
        CoLALoss(hard_threshold=1.5)


def test_tiny_overfit():
    """2 classes with class-specific snippet patterns: 100 Adam steps clearly reduce the loss."""
    torch.manual_seed(0)
    B, T, D = 8, 32, 8
    patterns = torch.randn(2, D) * 2
    x = torch.randn(B, T, D) * 0.5
    labels = torch.zeros(B, 2)
    for b in range(B):
        c = b % 2
        start = 4 + 3 * b
        x[b, start : start + 10] += patterns[c]
        labels[b, c] = 1
    model = CoLA(num_classes=2, feature_dim=D, hidden_dim=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    model.train()
    first = None
    for _ in range(100):
        total, _ = cola_training_loss(model(x), labels, model.r_easy, CoLALoss(), model.training, generator=gen)
        opt.zero_grad()
        total.backward()
        opt.step()
        first = total.item() if first is None else first
    model.eval()
    final, _parts = cola_training_loss(model(x), labels, model.r_easy, CoLALoss(), model.training)
    assert final.item() < 0.3 * first, (first, final.item())
    assert (model(x).video_scores.argmax(1) == labels.argmax(1)).all()


def test_production_modules_import_no_lightning():
    for mod in (cola_module, losses_module):
        imports = [ln for ln in inspect.getsource(mod).splitlines() if ln.startswith(("import ", "from "))]
        assert not any("lightning" in ln.replace("utal_lightning", "") for ln in imports)
        assert not any("numpy" in ln or "scipy" in ln for ln in imports)


def test_glorot_init_equals_xavier_without_groups():
    conv = nn.Conv1d(12, 7, kernel_size=3, bias=False)
    expected = torch.empty_like(conv.weight)
    torch.manual_seed(3)
    nn.init.xavier_uniform_(expected)
    torch.manual_seed(3)
    glorot_uniform_(conv)
    assert torch.equal(conv.weight, expected)


def test_activitynet_depthwise_conv_starts_at_glorot_scale_of_one_group():
    # Glorot's fans of a depthwise conv (one input and one output channel per group, k taps) are
    # k and k: bound sqrt(6 / 14) at k = 7. nn.init.xavier_uniform_ counts every output channel in
    # fan_out (K * k), which left the ActivityNet CoLA at chance on 100 classes.
    torch.manual_seed(0)
    model = CoLA(num_classes=100, feature_dim=16, hidden_dim=32, embed_kernel=9, cls_kernel=9, cls_depthwise_kernel=7)
    depthwise = model.classifier[1]
    assert depthwise.groups == 100 and depthwise.weight.shape == (100, 1, 7)
    bound = (6 / (7 + 7)) ** 0.5
    w = depthwise.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound
    assert abs(w.std().item() - bound / 3**0.5) < 0.05 * bound  # uniform on [-b, b]: std b / sqrt(3)
