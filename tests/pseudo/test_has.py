"""COPL HAS (docs/method.md sec. 3.1, Eq. 1-5) against plain-Python references."""

import math
import statistics

import pytest
import torch

from utal_lightning.pseudo.has import has_attention, has_k, has_pool, vote


def _reference(cs, ca, gamma, branch="both", use_filter=True):
    """Literal per-video loop: lower median, strict >, filter, top-k with ties -> lowest index."""
    cs, ca = [float(v) for v in cs], [float(v) for v in ca]
    t = len(cs)
    if branch == "both":
        score, branches = [(x + y) / 2 for x, y in zip(ca, cs, strict=True)], [cs, ca]
    elif branch == "cs":
        score, branches = cs, [cs]
    else:
        score, branches = ca, [ca]
    keep = [True] * t
    if use_filter:
        for a in branches:
            med = statistics.median_low(a)
            keep = [k and a[i] > med for i, k in enumerate(keep)]
    filt = [score[i] if keep[i] else 0.0 for i in range(t)]
    k = max(1, math.floor(t / gamma))
    top = sorted(range(t), key=lambda i: (-filt[i], i))[:k]
    return [filt[i] if i in top else 0.0 for i in range(t)]


def _quantized(shape, gen, levels=6):
    # few distinct values: many ties at the median and at the k-th place
    return torch.randint(0, levels, shape, generator=gen).double() / levels


@pytest.mark.parametrize("branch", ["both", "cs", "ca"])
@pytest.mark.parametrize("use_filter", [True, False])
def test_has_attention_matches_loop_reference(branch, use_filter):
    gen = torch.Generator().manual_seed(0)
    for t, gamma in [(7, 2), (8, 3), (50, 2), (40, 4.5), (1, 20), (12, 20)]:
        for make in (lambda s: torch.rand(s, generator=gen, dtype=torch.float64), lambda s: _quantized(s, gen)):
            cs, ca = make((5, t)), make((5, t))
            got = has_attention(cs, ca, gamma, branch=branch, use_filter=use_filter)
            expected = torch.tensor(
                [_reference(cs[b], ca[b], gamma, branch, use_filter) for b in range(5)], dtype=torch.float64
            )
            torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_has_k_and_selected_counts():
    assert has_k(750, 20) == 37 and has_k(50, 2) == 25 and has_k(10, 20) == 1 and has_k(19, 20) == 1
    gen = torch.Generator().manual_seed(1)
    for t, gamma, k in [(750, 20, 37), (50, 2, 25)]:
        cs = torch.rand(3, t, generator=gen) + 0.01
        out = has_attention(cs, cs, gamma, use_filter=False)
        assert (out > 0).sum(1).tolist() == [k] * 3
        # with the filter at most half the snippets survive (strict > median), so k = T / 2 keeps them all
        filtered = has_attention(cs, cs, gamma)
        assert ((filtered > 0).sum(1) <= min(k, t // 2)).all()
        assert ((filtered > 0).sum(1) == min(k, t // 2)).all()  # distinct values: exactly T/2 above the median


def test_has_attention_filter_needs_both_branches():
    cs = torch.tensor([[0.9, 0.8, 0.1, 0.2, 0.7, 0.3]])
    ca = torch.tensor([[0.9, 0.1, 0.8, 0.2, 0.7, 0.3]])
    # medians (lower): cs 0.3 -> above {0, 1, 4}; ca 0.3 -> above {0, 2, 4}; both: {0, 4}
    out = has_attention(cs, ca, gamma=1)
    expected = torch.tensor([[0.9, 0, 0, 0, 0.7, 0]])
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(has_attention(cs, ca, gamma=6), torch.tensor([[0.9, 0, 0, 0, 0, 0]]))  # k = 1
    # single-branch ablations use that branch for score and binarization
    torch.testing.assert_close(has_attention(cs, ca, gamma=1, branch="cs"), torch.tensor([[0.9, 0.8, 0, 0, 0.7, 0]]))
    torch.testing.assert_close(has_attention(cs, ca, gamma=1, branch="ca"), torch.tensor([[0.9, 0, 0.8, 0, 0.7, 0]]))
    # without the filter: top-k of a_c directly
    torch.testing.assert_close(has_attention(cs, ca, gamma=3, use_filter=False), torch.tensor([[0.9, 0, 0, 0, 0.7, 0]]))
    with pytest.raises(ValueError):
        has_attention(cs, ca, 2, branch="rgb")


def test_has_attention_ties_at_median_and_all_equal():
    # lower median of [1, 2, 2, 2, 3, 3] is 2: only the 3s are above; ties at the median are 0
    a = torch.tensor([[1.0, 2, 2, 2, 3, 3]])
    assert has_attention(a, a, gamma=1).tolist() == [[0, 0, 0, 0, 3, 3]]
    # even T, distinct: lower median 2 vs textbook 2.5 binarize the same
    b = torch.tensor([[4.0, 1, 3, 2]])
    assert has_attention(b, b, gamma=1).tolist() == [[4, 0, 3, 0]]
    # all equal: nothing above the median -> all zero -> pooling falls back to the mean, no NaN
    flat = torch.full((2, 10), 0.5)
    out = has_attention(flat, flat, gamma=2)
    assert out.abs().sum() == 0
    feats = torch.randn(2, 10, 4, generator=torch.Generator().manual_seed(0))
    pooled = has_pool(feats, out)
    assert torch.isfinite(pooled).all()
    torch.testing.assert_close(pooled, torch.nn.functional.normalize(feats.mean(1), dim=1))


def test_has_attention_lengths_mask_padding():
    gen = torch.Generator().manual_seed(2)
    cs, ca = torch.rand(3, 30, generator=gen), torch.rand(3, 30, generator=gen)
    lengths = torch.tensor([30, 17, 5])
    # padding holds garbage that would otherwise win the median and the top-k
    cs_pad, ca_pad = cs.clone(), ca.clone()
    for b, n in enumerate(lengths.tolist()):
        cs_pad[b, n:], ca_pad[b, n:] = 10.0, 10.0
    got = has_attention(cs_pad, ca_pad, gamma=4, lengths=lengths)
    for b, n in enumerate(lengths.tolist()):
        alone = has_attention(cs[b : b + 1, :n], ca[b : b + 1, :n], gamma=4)  # k = floor(n / 4) from the real length
        torch.testing.assert_close(got[b, :n], alone[0])
        assert (got[b, n:] == 0).all()
        assert int((got[b] > 0).sum()) <= max(1, n // 4)
    # a 1-D call is the same as a batch of one
    torch.testing.assert_close(has_attention(cs[0], ca[0], 4), has_attention(cs[:1], ca[:1], 4)[0])


def test_vote_recursion_is_the_weighted_sum():
    gen = torch.Generator().manual_seed(3)
    epochs = [torch.rand(2, 9, generator=gen, dtype=torch.float64) for _ in range(5)]
    alpha = 0.9
    acc = None
    for e in epochs:
        acc = vote(acc, e, alpha)
    big_e = len(epochs)
    explicit = sum(alpha ** (big_e - e) * a for e, a in enumerate(epochs, start=1))  # newest weighs 1
    torch.testing.assert_close(acc, explicit)
    assert vote(None, epochs[0], alpha) is not epochs[0]
    torch.testing.assert_close(vote(None, epochs[0], alpha), epochs[0])


def test_has_pool_is_normalized_weighted_sum():
    gen = torch.Generator().manual_seed(4)
    feats = torch.randn(3, 8, 5, generator=gen, dtype=torch.float64)
    w = torch.rand(3, 8, generator=gen, dtype=torch.float64)
    w[1] = 0  # falls back to the mean
    out = has_pool(feats, w)
    expected = torch.stack([feats[0].T @ w[0], feats[1].mean(0), feats[2].T @ w[2]])
    torch.testing.assert_close(out, torch.nn.functional.normalize(expected, dim=1))
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3, dtype=torch.float64))
    # padded: the fallback mean uses the valid snippets only and NaN padding does not leak
    padded = feats.clone()
    padded[1:, 6:] = float("nan")
    out = has_pool(padded, w, lengths=torch.tensor([8, 6, 6]))
    torch.testing.assert_close(out[1], torch.nn.functional.normalize(feats[1, :6].mean(0), dim=0))
    torch.testing.assert_close(out[2], torch.nn.functional.normalize(feats[2, :6].T @ w[2, :6], dim=0))
    assert torch.isfinite(out).all()
