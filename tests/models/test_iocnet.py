"""IOCNet (docs/method.md sec. 4.2) model and the temporal feature shift: shapes, plain references, determinism."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.helpers.models import randomize_agnostic_heads
from utal_lightning.models.augment import temporal_shift
from utal_lightning.models.iocnet import IOCNet, IOCNetOutput
from utal_lightning.models.outputs import LocalizationOutput

pytestmark = pytest.mark.usefixtures("one_thread")

D, RGB, H = 12, 5, 8  # small dims; rgb_dim deliberately not D/2


def _model(K: int, **kw) -> IOCNet:
    """A model whose class-agnostic heads are random too (they start at zero), so the forward
    arithmetic of every branch is exercised."""
    torch.manual_seed(0)
    return randomize_agnostic_heads(IOCNet(K, feature_dim=D, rgb_dim=RGB, hidden_dim=H, **kw).double())


def test_class_agnostic_heads_start_uninformative():
    # A_ca = 0.5 at initialization, so h_cs's first top-l sets (L_asl's positives) are chosen by the
    # class-specific branch alone; a random head would rank snippets by a random feature direction and
    # L_asl would reinforce that ordering, inverted on background-heavy videos (docs/method.md, 4.2).
    torch.manual_seed(3)
    m = IOCNet(20, feature_dim=D, rgb_dim=RGB, hidden_dim=H)
    out = m(torch.rand(2, 40, D) * 5)
    assert torch.equal(out.agnostic_rgb, torch.full_like(out.agnostic_rgb, 0.5))
    assert torch.equal(out.agnostic_flow, torch.full_like(out.agnostic_flow, 0.5))
    by_softmax = torch.softmax(out.cas, dim=2).topk(m.top_l(40), dim=1).indices
    assert torch.equal(out.top_l_index.sort(dim=1).values, by_softmax.sort(dim=1).values)


def _ref_forward(m: IOCNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """A straight re-statement of docs/method.md sec. 4.2 with functional convs on explicitly split inputs."""
    xt = x.transpose(1, 2)
    emb = F.relu(F.conv1d(xt, m.embed[0].weight, m.embed[0].bias, padding=1))
    cas = F.conv1d(emb, m.classifier.weight, m.classifier.bias).transpose(1, 2)
    xr, xf = xt[:, : m.rgb_dim], xt[:, m.rgb_dim :]
    er = F.relu(F.conv1d(xr, m.embed_rgb[0].weight, m.embed_rgb[0].bias, padding=1))
    ef = F.relu(F.conv1d(xf, m.embed_flow[0].weight, m.embed_flow[0].bias, padding=1))
    ar = torch.sigmoid(F.conv1d(er, m.attention_rgb.weight, m.attention_rgb.bias))[:, 0]
    af = torch.sigmoid(F.conv1d(ef, m.attention_flow.weight, m.attention_flow.bias))[:, 0]
    return {
        "cas": cas,
        "emb": emb.transpose(1, 2),
        "emb_rgb": er.transpose(1, 2),
        "emb_flow": ef.transpose(1, 2),
        "a_rgb": ar,
        "a_flow": af,
        "a_cs": torch.sigmoid(cas.sum(2)),
    }


# ------------------------------------------------------------------------------------ model


@pytest.mark.parametrize("T", [7, 64, 750])
@pytest.mark.parametrize("K", [1, 5, 20])
def test_forward_shapes_ranges_and_reference(T, K):
    m = _model(K)
    B = 2
    x = torch.rand(B, T, D, dtype=torch.float64, generator=torch.Generator().manual_seed(T * 100 + K))
    out = m(x)
    assert isinstance(out, IOCNetOutput) and isinstance(out, LocalizationOutput)
    top_l = max(1, T // 8)
    assert out.cas.shape == (B, T, K)
    assert out.attention.shape == out.agnostic_attention.shape == (B, T)
    assert out.agnostic_rgb.shape == out.agnostic_flow.shape == (B, T)
    assert out.video_scores.shape == out.video_logits.shape == (B, K)
    assert out.h_cs.shape == (B, T, K)
    assert out.embeddings.shape == out.embeddings_rgb.shape == out.embeddings_flow.shape == (B, T, H)
    assert out.top_l_index.shape == (B, top_l, K) and out.top_l_index.dtype == torch.long
    for a in (out.attention, out.agnostic_attention, out.agnostic_rgb, out.agnostic_flow):
        assert ((a >= 0) & (a <= 1)).all()
    torch.testing.assert_close(out.video_scores.sum(1), torch.ones(B, dtype=torch.float64))

    ref = _ref_forward(m, x)
    torch.testing.assert_close(out.cas, ref["cas"])
    torch.testing.assert_close(out.embeddings, ref["emb"])
    torch.testing.assert_close(out.embeddings_rgb, ref["emb_rgb"])
    torch.testing.assert_close(out.embeddings_flow, ref["emb_flow"])
    torch.testing.assert_close(out.agnostic_rgb, ref["a_rgb"])
    torch.testing.assert_close(out.agnostic_flow, ref["a_flow"])
    torch.testing.assert_close(out.attention, ref["a_cs"])
    torch.testing.assert_close(out.agnostic_attention, (ref["a_rgb"] + ref["a_flow"]) / 2)

    # h_cs = beta * softmax_k(CAS) + (1 - beta) * (A_R + A_F) / 2, elementwise
    beta = 1 / 3
    for b in range(B):
        for t in range(0, T, max(1, T // 9)):
            cas_row = ref["cas"][b, t].tolist()
            z = sum(math.exp(v) for v in cas_row)
            for k in range(K):
                sm = math.exp(cas_row[k]) / z
                want = beta * sm + (1 - beta) * (ref["a_rgb"][b, t].item() + ref["a_flow"][b, t].item()) / 2
                assert out.h_cs[b, t, k].item() == pytest.approx(want, rel=1e-9, abs=1e-12)

    # video logits = per class, mean CAS logit over the top-top_l snippets by h_cs (plain loop)
    for b in range(B):
        for k in range(K):
            h = out.h_cs[b, :, k].tolist()
            top = sorted(range(T), key=lambda t: -h[t])[:top_l]
            assert sorted(out.top_l_index[b, :, k].tolist()) == sorted(top)
            want = sum(ref["cas"][b, t, k].item() for t in top) / top_l
            assert out.video_logits[b, k].item() == pytest.approx(want, rel=1e-9, abs=1e-12)
    torch.testing.assert_close(out.video_scores, torch.softmax(out.video_logits, 1))


def test_activitynet_config_top_l_and_beta():
    m = _model(4, h_beta=0.5, top_l_divisor=2)
    x = torch.rand(3, 50, D, dtype=torch.float64)
    out = m(x)
    assert out.top_l_index.shape == (3, 25, 4)
    want = 0.5 * torch.softmax(out.cas, 2) + 0.5 * out.agnostic_attention.unsqueeze(2)
    torch.testing.assert_close(out.h_cs, want)
    # T = 1: l = 1
    assert m(torch.rand(2, 1, D, dtype=torch.float64)).top_l_index.shape == (2, 1, 4)


def test_rgb_flow_split_uses_rgb_dim():
    m = _model(3)
    assert m.embed_rgb[0].weight.shape[1] == RGB and m.embed_flow[0].weight.shape[1] == D - RGB
    x = torch.rand(2, 20, D, dtype=torch.float64)
    base = m(x)
    x_flow = x.clone()
    x_flow[..., RGB:] += torch.rand(2, 20, D - RGB, dtype=torch.float64)  # touch flow channels only
    out = m(x_flow)
    torch.testing.assert_close(out.agnostic_rgb, base.agnostic_rgb)
    torch.testing.assert_close(out.embeddings_rgb, base.embeddings_rgb)
    assert not torch.allclose(out.agnostic_flow, base.agnostic_flow)
    x_rgb = x.clone()
    x_rgb[..., :RGB] += torch.rand(2, 20, RGB, dtype=torch.float64)  # touch RGB channels only
    out = m(x_rgb)
    torch.testing.assert_close(out.agnostic_flow, base.agnostic_flow)
    torch.testing.assert_close(out.embeddings_flow, base.embeddings_flow)
    assert not torch.allclose(out.agnostic_rgb, base.agnostic_rgb)


def test_gradients_reach_every_parameter():
    m = _model(4)
    out = m(torch.rand(2, 16, D, dtype=torch.float64))
    (out.video_logits.sum() + out.agnostic_rgb.sum() + out.agnostic_flow.sum()).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_dropout_hits_heads_not_embeddings():
    torch.manual_seed(0)
    m = IOCNet(3, feature_dim=D, rgb_dim=RGB, hidden_dim=32, dropout=0.5).train()
    x = torch.rand(2, 16, D)
    a, b = m(x), m(x)
    torch.testing.assert_close(a.embeddings, b.embeddings)
    assert not torch.allclose(a.cas, b.cas)
    m.eval()
    torch.testing.assert_close(m(x).cas, m(x).cas)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        IOCNet(0)
    with pytest.raises(ValueError):
        IOCNet(3, feature_dim=8, rgb_dim=8)
    with pytest.raises(ValueError):
        IOCNet(3, top_l_divisor=0)
    m = IOCNet(3, feature_dim=8, rgb_dim=4, hidden_dim=4)
    with pytest.raises(ValueError):
        m(torch.rand(2, 10))
    with pytest.raises(ValueError):
        m(torch.rand(2, 10, 9))


# -------------------------------------------------------------------------- temporal shift


def _ref_shift(x: torch.Tensor, fwd: list[int], bwd: list[int]) -> torch.Tensor:
    B, T, _Dx = x.shape
    out = x.clone()
    for b in range(B):
        for c in fwd:
            for t in range(T):
                out[b, t, c] = x[b, t - 1, c] if t >= 1 else 0.0
        for c in bwd:
            for t in range(T):
                out[b, t, c] = x[b, t + 1, c] if t + 1 < T else 0.0
    return out


def _classify_channels(x: torch.Tensor, y: torch.Tensor) -> tuple[list[int], list[int], list[int]]:
    """Which channels of y are x unchanged / shifted forward / shifted backward (plain definitions)."""
    same, fwd, bwd = [], [], []
    for c in range(x.shape[2]):
        xc, yc = x[:, :, c], y[:, :, c]
        f = torch.cat([torch.zeros_like(xc[:, :1]), xc[:, :-1]], 1)
        bk = torch.cat([xc[:, 1:], torch.zeros_like(xc[:, :1])], 1)
        kinds = [torch.equal(yc, xc), torch.equal(yc, f), torch.equal(yc, bk)]
        assert sum(kinds) == 1, f"channel {c} is neither unchanged nor shifted by one step"
        (same if kinds[0] else fwd if kinds[1] else bwd).append(c)
    return same, fwd, bwd


@pytest.mark.parametrize("c", [0, 1, 5, 16, 64])
def test_temporal_shift_matches_plain_loop(c):
    Dx, T = 64, 9
    x = torch.rand(3, T, Dx, dtype=torch.float64) + 0.5  # strictly positive: zero fill is visible
    x_before = x.clone()
    y = temporal_shift(x, num_channels=c, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(x, x_before)  # input untouched
    same, fwd, bwd = _classify_channels(x, y)
    assert len(fwd) == c // 2 and len(bwd) == c - c // 2 and len(same) == Dx - c
    for ch in fwd:
        assert (y[:, 0, ch] == 0).all()
    for ch in bwd:
        assert (y[:, -1, ch] == 0).all()
    # the documented draw: randperm(D)[:c], first c // 2 forward, the rest backward
    perm = torch.randperm(Dx, generator=torch.Generator().manual_seed(7))[:c].tolist()
    assert sorted(fwd) == sorted(perm[: c // 2]) and sorted(bwd) == sorted(perm[c // 2 :])
    torch.testing.assert_close(y, _ref_shift(x, perm[: c // 2], perm[c // 2 :]))


def test_temporal_shift_seeded_and_same_channels_for_the_batch():
    x = torch.rand(4, 12, 128) + 0.5
    a = temporal_shift(x, 32, torch.Generator().manual_seed(3))
    b = temporal_shift(x, 32, torch.Generator().manual_seed(3))
    c = temporal_shift(x, 32, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert not torch.equal(a, c)
    # per video, the moved channels are the same (one draw per batch)
    kinds = [_classify_channels(x[i : i + 1], a[i : i + 1]) for i in range(4)]
    assert all(k == kinds[0] for k in kinds)
    # without a generator it still shifts 32 channels
    _, fwd, bwd = _classify_channels(x, temporal_shift(x, 32))
    assert len(fwd) == len(bwd) == 16


def test_temporal_shift_edges():
    x = torch.rand(2, 1, 10) + 0.5
    y = temporal_shift(x, 4, torch.Generator().manual_seed(0))
    assert int((y == 0).sum()) == 2 * 4  # T = 1: every drawn channel is zero-filled
    assert int((y == x).sum()) == 2 * 6
    with pytest.raises(ValueError):
        temporal_shift(x, 11)
    with pytest.raises(ValueError):
        temporal_shift(torch.rand(3, 4), 1)
    z = temporal_shift(x, 0)
    torch.testing.assert_close(z, x)
    assert z.data_ptr() != x.data_ptr()


def test_ema_teacher_matches_stock_averaged_model():
    """The sync-free EMA update gives the numbers of AveragedModel with the warm-up avg_fn."""
    from torch.optim.swa_utils import AveragedModel

    from utal_lightning.models.modules import EMATeacher, ema_with_warmup

    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Conv1d(6, 5, 3), torch.nn.BatchNorm1d(5))
    ours = EMATeacher(student, decay=0.9)
    stock = AveragedModel(student, avg_fn=ema_with_warmup(0.9), use_buffers=True)
    for _ in range(100):  # (1 + n) / (10 + n) reaches the decay 0.9 at n = 80: warm-up and plateau
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn_like(p))
        student(torch.randn(4, 6, 9))  # moves the BatchNorm running stats (buffers are averaged too)
        ours.update_parameters(student)
        stock.update_parameters(student)
        for (name, a), b in zip(ours.state_dict().items(), stock.state_dict().values(), strict=True):
            if a.is_floating_point():
                torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
            elif name.endswith("num_batches_tracked"):  # a counter: copied (the stock update truncates its average)
                assert int(a) == int(student[1].num_batches_tracked)
            else:
                assert torch.equal(a, b)
    assert int(ours.n_averaged) == 100
    first = EMATeacher(student, decay=0.9)
    with torch.no_grad():
        for p in first.module.parameters():
            p.fill_(123.0)
    first.update_parameters(student)  # the first update copies the student
    assert all(torch.equal(a, b) for a, b in zip(first.module.parameters(), student.parameters(), strict=True))


def test_ema_warmup_decay_values():
    from utal_lightning.models.modules import ema_warmup_decay

    got = ema_warmup_decay(torch.tensor([0.0, 8.0, 80.0, 1000.0]), 0.9)
    torch.testing.assert_close(got, torch.tensor([0.1, 0.5, 0.9, 0.9]))  # (1+n)/(10+n), capped at d


def test_reversed_actionness_is_the_network_with_negated_agnostic_heads():
    """sigmoid(-z) = 1 - sigmoid(z): reading A_ca reversed equals a network whose class-agnostic heads are negated,
    down to h_cs, its top-l snippets and the video scores (docs/method.md sec. 4.2.2); A_cs reads 1 - A_cs."""
    torch.manual_seed(3)
    net = randomize_agnostic_heads(IOCNet(num_classes=4, feature_dim=12, rgb_dim=5, hidden_dim=8, h_beta=0.5)).eval()
    negated = IOCNet(num_classes=4, feature_dim=12, rgb_dim=5, hidden_dim=8, h_beta=0.5).eval()
    negated.load_state_dict(net.state_dict())
    with torch.no_grad():
        for head in (negated.attention_rgb, negated.attention_flow):
            head.weight.neg_()
            head.bias.neg_()
    x = torch.randn(3, 16, 12)
    with torch.no_grad():
        reversed_output, expected = net.reverse_actionness(net(x)), negated(x)
    for name in ("agnostic_rgb", "agnostic_flow", "agnostic_attention", "h_cs", "video_logits", "video_scores", "cas"):
        torch.testing.assert_close(getattr(reversed_output, name), getattr(expected, name), msg=name)
    assert torch.equal(reversed_output.top_l_index, expected.top_l_index)
    torch.testing.assert_close(reversed_output.attention, 1 - expected.attention)
    # reading it reversed twice is the network as it is
    with torch.no_grad():
        twice = net.reverse_actionness(reversed_output)
    torch.testing.assert_close(twice.h_cs, net(x).h_cs)
