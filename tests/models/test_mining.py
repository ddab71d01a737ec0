"""CoLA snippet mining (docs/method.md sec. 4.1): morphology vs scipy, easy/hard sets vs plain references."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import torch
from scipy import ndimage

from utal_lightning.models import mining
from utal_lightning.models.mining import (
    binary_dilation_1d,
    binary_erosion_1d,
    hard_bands,
    mine_snippets,
    num_selected,
    random_keep_mask,
)

SIZES = list(range(1, 9))


def _scipy_rows(fn, mask: np.ndarray, size: int) -> np.ndarray:
    return np.stack([fn(row, structure=np.ones(size)) for row in mask])


def _mask_cases() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    cases = []
    for T in (1, 2, 3, 5, 8, 17, 64):
        cases.append(rng.random((6, T)) < 0.5)
        cases.append(rng.random((3, T)) < 0.85)  # long runs, many touching the borders
        cases.append(np.ones((2, T), bool))
        cases.append(np.zeros((2, T), bool))
    border = np.zeros((4, 12), bool)
    border[0, :3] = True  # run touching the left border
    border[1, -4:] = True  # right border
    border[2, [0, -1]] = True  # single snippets at both borders
    border[3, 5] = True  # isolated
    cases.append(border)
    return cases


@pytest.mark.parametrize("size", SIZES)
def test_erosion_matches_scipy(size):
    for mask in _mask_cases():
        got = binary_erosion_1d(torch.from_numpy(mask), size).numpy()
        want = _scipy_rows(ndimage.binary_erosion, mask, size)
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, want, err_msg=f"size {size}, mask\n{mask.astype(int)}")


@pytest.mark.parametrize("size", SIZES)
def test_dilation_matches_scipy(size):
    for mask in _mask_cases():
        got = binary_dilation_1d(torch.from_numpy(mask), size).numpy()
        want = _scipy_rows(ndimage.binary_dilation, mask, size)
        np.testing.assert_array_equal(got, want, err_msg=f"size {size}, mask\n{mask.astype(int)}")


def test_even_size_offsets_are_scipys():
    # docs/method.md sec. 4.1: size 6 erosion covers offsets -3..+2; scipy's dilation mirrors it (-2..+3 reach).
    hole = torch.ones(1, 15, dtype=torch.bool)
    hole[0, 7] = False
    killed = (~binary_erosion_1d(hole, 6))[0].nonzero().flatten() - 7
    assert killed[(killed > -5) & (killed < 5)].tolist() == [-2, -1, 0, 1, 2, 3]
    point = ~hole
    grown = binary_dilation_1d(point, 6)[0].nonzero().flatten() - 7
    assert grown.tolist() == [-3, -2, -1, 0, 1, 2]


def test_morphology_rejects_bad_input():
    with pytest.raises(ValueError):
        binary_erosion_1d(torch.ones(5, dtype=torch.bool), 3)
    with pytest.raises(ValueError):
        binary_dilation_1d(torch.ones(1, 5, dtype=torch.bool), 0)


def _coLA_reference_bands(a: np.ndarray, m: int, M: int) -> tuple[np.ndarray, np.ndarray]:
    """CoLA's released hard_snippets_mining band computation (np.median, scipy, 2-D structure)."""
    med = np.median(a, 1, keepdims=True)
    b = np.where(a > med, 1.0, 0.0)
    er_M = ndimage.binary_erosion(b, structure=np.ones((1, M))).astype(a.dtype)
    er_m = ndimage.binary_erosion(b, structure=np.ones((1, m))).astype(a.dtype)
    di_m = ndimage.binary_dilation(b, structure=np.ones((1, m))).astype(a.dtype)
    di_M = ndimage.binary_dilation(b, structure=np.ones((1, M))).astype(a.dtype)
    return (er_m - er_M) > 0, (di_M - di_m) > 0


@pytest.mark.parametrize("T", [7, 8, 32, 33, 100])
def test_hard_bands_match_colas_numpy_median(T):
    # The lower median (torch) and numpy's averaged median give the same foreground set.
    g = torch.Generator().manual_seed(T)
    a = torch.rand(5, T, generator=g, dtype=torch.float64)
    # smooth it so there are real runs, plus a row with ties around the median
    a = torch.nn.functional.avg_pool1d(a.unsqueeze(1), 5, 1, 2, count_include_pad=False).squeeze(1)
    a[0] = (torch.arange(T) % 4 < 2).double()
    inner, outer = hard_bands(a, 3, 6)
    want_inner, want_outer = _coLA_reference_bands(a.numpy(), 3, 6)
    np.testing.assert_array_equal(inner.numpy(), want_inner)
    np.testing.assert_array_equal(outer.numpy(), want_outer)
    assert not (inner & outer).any()


def test_num_selected():
    assert num_selected(7, 20) == 1
    assert num_selected(7, 5) == 1
    assert num_selected(32, 5) == 6
    assert num_selected(750, 20) == 37
    assert num_selected(1, 1) == 1


def _topk_set(scores: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-scores, kind="stable")[:k].tolist())


@pytest.mark.parametrize("T", [7, 32, 64, 750])
def test_easy_sets_are_plain_topk(T):
    g = torch.Generator().manual_seed(1)
    a = torch.rand(3, T, generator=g) * 4
    out = mine_snippets(a, 5, 20, 3, 6, drop_mask=None)
    k = max(1, T // 5)
    assert out.easy_act.shape == out.easy_bkg.shape == (3, k)
    assert out.easy_act.dtype == torch.int64
    for b in range(3):
        row = a[b].numpy()
        assert set(out.easy_act[b].tolist()) == _topk_set(row, k)
        assert set(out.easy_bkg[b].tolist()) == _topk_set(row.max() - row, k)


def test_easy_sets_respect_drop_mask():
    T = 40
    g = torch.Generator().manual_seed(2)
    a = torch.rand(4, T, generator=g)
    keep = random_keep_mask((4, T), 0.6, generator=torch.Generator().manual_seed(3))
    out = mine_snippets(a, 5, 20, 3, 6, drop_mask=keep)
    k = T // 5
    for b in range(4):
        kept = keep[b].nonzero().flatten().numpy()
        row = a[b].numpy()
        assert len(kept) >= k  # seed chosen so the kept set can fill the top-k
        want_act = set(kept[np.argsort(-row[kept])[:k]].tolist())
        want_bkg = set(kept[np.argsort(-(row.max() - row[kept]))[:k]].tolist())
        assert set(out.easy_act[b].tolist()) == want_act
        assert set(out.easy_bkg[b].tolist()) == want_bkg
    # without the mask the answer differs (the drop mattered)
    plain = mine_snippets(a, 5, 20, 3, 6)
    assert not torch.equal(plain.easy_act.sort(1).values, out.easy_act.sort(1).values)


def test_drop_mask_short_of_k_fills_with_best_dropped():
    a = torch.tensor([[0.9, 0.8, 0.1, 0.7, 0.2, 0.3, 0.05, 0.6, 0.4, 0.5]])
    keep = torch.zeros_like(a, dtype=torch.bool)
    keep[0, 2] = True  # only one kept snippet, k_easy = 2
    out = mine_snippets(a, 5, 20, 3, 6, drop_mask=keep)
    assert out.easy_act[0].tolist() == [2, 0]  # kept first, then the best dropped one
    assert out.easy_bkg[0].tolist() == [2, 6]


def test_determinism_given_drop_mask_and_generator():
    a = torch.rand(2, 64, generator=torch.Generator().manual_seed(4))
    keep = random_keep_mask((2, 64), 0.6, generator=torch.Generator().manual_seed(5))
    first = mine_snippets(a, 5, 20, 3, 6, drop_mask=keep)
    second = mine_snippets(a.clone(), 5, 20, 3, 6, drop_mask=keep.clone())
    for x, y in zip(first, second, strict=True):
        assert torch.equal(x, y)
    keep2 = random_keep_mask((2, 64), 0.6, generator=torch.Generator().manual_seed(5))
    assert torch.equal(keep, keep2)
    assert 0.25 < keep.float().mean().item() < 0.55


@pytest.mark.parametrize("T", [32, 64, 200, 750])
def test_hard_sets_are_top_of_their_bands(T):
    g = torch.Generator().manual_seed(T)
    a = torch.rand(4, T, generator=g)
    a = torch.nn.functional.avg_pool1d(a.unsqueeze(1), 7, 1, 3, count_include_pad=False).squeeze(1)
    out = mine_snippets(a, 5, 20, 3, 6)
    inner, outer = hard_bands(a, 3, 6)
    k = max(1, T // 20)
    assert out.hard_act.shape == out.hard_bkg.shape == (4, k)
    for b in range(4):
        for idx, valid, band in ((out.hard_act, out.hard_act_valid, inner), (out.hard_bkg, out.hard_bkg_valid, outer)):
            members = band[b].nonzero().flatten().numpy()
            n_valid = min(k, len(members))
            assert valid[b].sum().item() == n_valid
            assert band[b][idx[b][valid[b]]].all()  # valid slots lie inside the band
            row = a[b].numpy()
            want = set(members[np.argsort(-row[members])[:n_valid]].tolist())
            assert set(idx[b][valid[b]].tolist()) == want


def test_short_band_is_flagged_not_filled():
    T = 100  # k_hard = 5
    a = torch.zeros(1, T)
    a[0, 10:18] = torch.linspace(1.0, 2.0, 8)  # one foreground run of 8 snippets
    out = mine_snippets(a, 5, 20, 3, 6)
    # inner band: erode3 = [11, 17), erode6 (offsets -3..+2) = [13, 16) -> {11, 12, 16}
    inner, outer = hard_bands(a, 3, 6)
    assert inner[0].nonzero().flatten().tolist() == [11, 12, 16]
    assert out.hard_act_valid[0].tolist() == [True, True, True, False, False]
    assert out.hard_act[0, :3].tolist() == [16, 12, 11]  # by actionness
    # outer band: dilate6 grows a run by 3 left / 2 right -> [7, 20); dilate3 -> [9, 19) -> {7, 8, 19}
    assert outer[0].nonzero().flatten().tolist() == [7, 8, 19]
    assert out.hard_bkg_valid[0].sum().item() == 3


def test_empty_bands_all_invalid_and_batch_of_one():
    a = torch.full((1, 7), 0.5)  # nothing above the median: empty foreground, empty bands
    out = mine_snippets(a, 5, 20, 3, 6)
    assert out.hard_act.shape == (1, 1)
    assert not out.hard_act_valid.any() and not out.hard_bkg_valid.any()
    assert out.easy_act.shape == (1, 1)


def test_fixed_threshold_option():
    a = torch.tensor([[0.0] * 10 + [1.0] * 10 + [0.0] * 10])
    inner_med, _ = hard_bands(a, 3, 6)
    inner_thr, outer_thr = hard_bands(a, 3, 6, threshold=0.5)
    assert torch.equal(inner_med, inner_thr)
    _, outer_all = hard_bands(a, 3, 6, threshold=2.0)  # nothing is foreground
    assert not outer_all.any() and outer_thr.any()


def test_mining_is_pure_torch():
    src = inspect.getsource(mining)
    imports = [ln for ln in src.splitlines() if ln.startswith(("import ", "from "))]
    for banned in ("numpy", "scipy", "lightning"):
        assert not any(banned in ln for ln in imports), banned
    for banned in (".item()", ".cpu()", ".tolist()", ".numpy()"):  # no host-device sync
        assert banned not in src, banned
