"""CCI (docs/method.md sec. 3.3): the batched production code against the per-centre reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import utal_lightning.pseudo.cci as cci_module
from tests.reference.cci import reference_cci, reference_rank_within_clusters
from utal_lightning.pseudo.cci import _Graph, _nearest, cci_list_lengths, cci_refine, rank_within_clusters

TOL = 1e-9


def clustered(n: int, d: int, k: int, seed: int, spread: float = 1.0, grid: float | None = None):
    """n points around k random means; k centres near the means. ``grid``: snap both to multiples
    of 1/grid (small integers then: squared distances are exact in float64, so ties are real ties)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, d)) * 2.0
    x = means[rng.integers(0, k, n)] + rng.normal(size=(n, d)) * spread
    c = means + rng.normal(size=(k, d)) * 0.3
    if grid is not None:
        x, c = np.round(x * grid), np.round(c * grid)
    return x, c


def check_against_reference(x, c, k1, k2, gamma=0.7, exact=True, **kwargs):
    """Production (float64) == reference: d, d_J, d_E to 1e-9; labels and within-cluster ranks
    identical. ``exact=False`` (grid data): refined distances that are mathematically equal (mirror
    images on the grid) differ in the last bits depending on summation order, in both
    implementations, so there the label must be one of the reference's minimisers within 1e-12 and
    the rank must lie in the range the reference allows with values within 1e-12 treated as tied
    (which is exact equality wherever there is no such near tie)."""
    ref = reference_cci(x, c, k1, k2, gamma)
    out = cci_refine(torch.tensor(x), torch.tensor(c), k1, k2, gamma, **kwargs)
    for key in ("distance", "jaccard", "euclidean"):
        np.testing.assert_allclose(getattr(out, key).numpy(), ref[key], rtol=0, atol=TOL, err_msg=key)
    labels, rank = out.labels.numpy(), out.rank.numpy()
    if exact:
        np.testing.assert_array_equal(labels, ref["labels"])
        np.testing.assert_array_equal(rank, reference_rank_within_clusters(ref["distance"], ref["labels"]))
        return out, ref
    d = ref["distance"]
    near = 1e-12
    best = d.min(1)
    assert (d[np.arange(len(d)), labels] <= best + near).all()
    unique_best = (d <= best[:, None] + near).sum(1) == 1
    np.testing.assert_array_equal(labels[unique_best], ref["labels"][unique_best])
    own = d[np.arange(len(d)), labels]
    for i in range(len(labels)):
        members = own[labels == labels[i]]
        low = int((members < own[i] - near).sum())
        high = int((members <= own[i] + near).sum()) - 1
        assert low <= rank[i] <= high, (i, rank[i], low, high)
    return out, ref


@pytest.mark.parametrize(
    "n, d, k, k1, k2, seed",
    [
        (120, 4, 6, 20, 6, 0),  # the paper's k1, k2
        (150, 8, 10, 20, 6, 1),
        (90, 3, 5, 7, 3, 2),  # odd k1: round(3.5) = 4
        (80, 2, 3, 9, 1, 3),  # round(4.5) = 4 (half to even; floor(x + 0.5) = 5 fails); k2 = 1
        (85, 3, 4, 5, 2, 8),  # round(2.5) = 2
        (60, 5, 4, 4, 9, 4),  # k2 > k1 + 1
        (70, 6, 8, 0, 2, 5),  # k1 = 0: each point's set is itself
        (100, 16, 12, 20, 6, 6),
    ],
)
def test_matches_reference_random(n, d, k, k1, k2, seed):
    x, c = clustered(n, d, k, seed)
    check_against_reference(x, c, k1, k2)


def test_matches_reference_overlapping_clusters_changes_labels():
    # Heavily overlapping clusters: CCI must change some k-means-style labels, and still match.
    x, c = clustered(150, 3, 6, 7, spread=2.5)
    out, _ = check_against_reference(x, c, 20, 6)
    nearest = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
    assert (out.labels.numpy() != nearest).any()


def test_k_close_to_n_and_singleton_clusters():
    # K = N - 2 centres, most of them exactly on a video (clusters of size 1): the centre and its
    # video are at distance 0, the centre (point 0) comes first in both lists.
    x, _ = clustered(30, 3, 4, 8, grid=2)
    rng = np.random.default_rng(8)
    c = x[rng.permutation(30)[:28]].copy()
    c[::5] += 1.0  # a few centres off the videos
    check_against_reference(x, c, 20, 6)
    check_against_reference(x, c, 5, 3)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 15])
def test_fewer_videos_than_k1(n):
    # k1 = 20 > N: every list is clamped to the N + 1 points.
    x, c = clustered(n, 3, 2, 9 + n, grid=4)
    check_against_reference(x, c, 20, 6)
    check_against_reference(x, c, 20, 40)
    check_against_reference(x, c, n, 2)


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_duplicates_and_ties_on_a_grid(seed):
    # Coarse integer grid: many exactly equal distances (the (distance, index) rule decides), exact
    # duplicate videos (more duplicates of one point than k1 + 1: a video not in its own list),
    # centres on videos and centres equidistant from videos.
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(110, 2)).astype(np.float64)
    x[:14] = x[14]  # 15 copies of one point
    c = rng.integers(-3, 4, size=(6, 2)).astype(np.float64)
    c[0] = x[14]
    for k1, k2 in [(20, 6), (10, 4), (6, 2)]:
        check_against_reference(x, c, k1, k2, exact=False)
    # Ties must actually occur in this data (the test would be vacuous otherwise).
    d = ((x[:, None] - x[None]) ** 2).sum(-1)
    assert max(len(np.unique(row)) for row in d) < len(x) // 3


@pytest.mark.parametrize("seed", range(24))
def test_random_small_cases(seed):
    # Many small random configurations: sizes, k1 / k2 (clamped or not), chunking, batching, and
    # (every other seed) integer-grid data with duplicate videos and centres placed on videos.
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.integers(2, 60))
    d = int(rng.integers(1, 5))
    k = int(rng.integers(1, min(n, 10) + 1))
    k1, k2 = int(rng.integers(0, 25)), int(rng.integers(1, 9))
    grid = seed % 2 == 1
    x, c = clustered(n, d, k, seed, grid=2 if grid else None)
    if grid:
        x[rng.integers(0, n, n // 3)] = x[rng.integers(0, n, n // 3)]
        c[: k // 2] = x[rng.integers(0, n, k // 2)]
    chunk, batch = int(rng.integers(1, 40)), int(rng.integers(1, 5))
    check_against_reference(x, c, k1, k2, exact=not grid, chunk_size=chunk, centre_batch=batch)


def test_all_points_identical():
    x = np.zeros((12, 3))
    c = np.zeros((2, 3))
    out, _ = check_against_reference(x, c, 20, 6)
    assert torch.isfinite(out.distance).all()


def test_float32_gives_float64_labels_and_ranks():
    # Well-conditioned data (no near ties): the float32 production run must take every discrete
    # decision (neighbour lists, expansion, argmin, ranking) the float64 reference takes.
    for seed in (20, 21):
        x, c = clustered(200, 8, 8, seed, spread=1.5)
        ref = reference_cci(x, c, 20, 6, 0.7)
        out = cci_refine(torch.tensor(x, dtype=torch.float32), torch.tensor(c, dtype=torch.float32))
        assert out.distance.dtype == torch.float32
        np.testing.assert_array_equal(out.labels.numpy(), ref["labels"])
        np.testing.assert_array_equal(out.rank.numpy(), reference_rank_within_clusters(ref["distance"], ref["labels"]))
        np.testing.assert_allclose(out.distance.numpy(), ref["distance"], atol=1e-5, rtol=0)


def test_chunk_size_and_centre_batch_do_not_change_results():
    # Only floating-point rounding may change (matrix-product blocking, reduction order).
    x, c = clustered(130, 6, 9, 30, spread=2.0)
    x_t, c_t = torch.tensor(x), torch.tensor(c)
    base = cci_refine(x_t, c_t)
    for chunk, batch in [(1, 1), (7, 2), (64, 4), (129, 9), (1000, None)]:
        other = cci_refine(x_t, c_t, chunk_size=chunk, centre_batch=batch)
        assert torch.equal(other.labels, base.labels)
        assert torch.equal(other.rank, base.rank)
        torch.testing.assert_close(other.distance, base.distance, rtol=0, atol=1e-12)


def test_refined_distance_parts():
    x, c = clustered(80, 5, 5, 40)
    out = cci_refine(torch.tensor(x), torch.tensor(c), gamma=0.3)
    torch.testing.assert_close(out.distance, 0.3 * out.jaccard + 0.7 * out.euclidean, rtol=0, atol=1e-12)
    sq = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    np.testing.assert_allclose(out.euclidean.numpy(), sq / sq.max(0, keepdims=True), atol=1e-12)
    assert (out.jaccard >= 0).all() and (out.jaccard <= 1 + 1e-12).all()


def test_constructed_reassignment_differs_from_nearest_centre():
    # 1-D: cluster B = 0..9 with its centre at 4.5, cluster A = 20..29 with a badly placed centre at
    # 15, and a video at 12. Euclidean: 12 is nearer A's centre (3 vs 7.5). Its k-reciprocal
    # neighbourhood is cluster B, so CCI moves it to B (k1 = 20, k2 = 6, gamma = 0.7).
    x = np.concatenate([np.arange(10.0), np.arange(20.0, 30.0), [12.0]])[:, None]
    c = np.array([[4.5], [15.0]])
    nearest = np.argmin((x - c.T) ** 2, axis=1)
    out, ref = check_against_reference(x, c, 20, 6)
    assert nearest[-1] == 1
    assert out.labels[-1].item() == 0 and ref["labels"][-1] == 0
    assert (out.labels.numpy()[:-1] == nearest[:-1]).all()


def test_rank_within_clusters_matches_plain_loop():
    rng = np.random.default_rng(50)
    for n, k in [(1, 1), (40, 5), (200, 30)]:
        distance = np.round(rng.random((n, k)) * 4) / 4  # coarse values: many ties
        labels = rng.integers(0, k, n)  # some clusters empty when k is large
        got = rank_within_clusters(torch.tensor(distance), torch.tensor(labels))
        np.testing.assert_array_equal(got.numpy(), reference_rank_within_clusters(distance, labels))


def test_list_lengths_and_validation():
    assert cci_list_lengths(4819, 20, 6) == (21, 11, 6)
    assert cci_list_lengths(5, 20, 6) == (6, 6, 6)  # clamped to N + 1 points
    assert cci_list_lengths(100, 5, 6)[1] == 3  # round(2.5) = 2 (half to even)
    assert cci_list_lengths(100, 7, 6)[1] == 5  # round(3.5) = 4
    with pytest.raises(ValueError):
        cci_refine(torch.zeros(3, 2), torch.zeros(1, 3))
    with pytest.raises(ValueError):
        cci_refine(torch.zeros(3, 2), torch.zeros(1, 2), k2=0)
    with pytest.raises(ValueError):
        cci_refine(torch.tensor([[float("nan"), 0.0]]), torch.zeros(1, 2))
    with pytest.raises(ValueError):
        cci_refine(torch.zeros(3, 2), torch.zeros(1, 2), centre_batch=0)


def dense_sq_distances(x: np.ndarray) -> np.ndarray:
    d = np.maximum((x * x).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2.0 * x @ x.T, 0.0)
    np.fill_diagonal(d, 0.0)
    return d


@pytest.mark.parametrize("hop_cache, chunk", [(1, 7), (30, 64), (10_000, 1000)])
def test_two_hop_distances_from_the_cache_and_the_misses(hop_cache, chunk):
    # The single distance pass keeps each row's M nearest videos; d(p, u) for the two-hop pairs is
    # looked up there, the pairs outside it computed directly. Small M (1 -> lv + 1) forces many
    # misses, M >= N none. All must equal the dense matrix, and the lists its stable sort.
    x, _ = clustered(300, 6, 5, 60, spread=1.5)
    graph = _Graph(torch.tensor(x), 20, 6, chunk, hop_cache=hop_cache)
    dense = dense_sq_distances(x)
    hop_u = graph.hop_u.numpy()
    lists = np.argsort(dense, axis=1, kind="stable")[:, : graph.lv]
    np.testing.assert_array_equal(graph.list_i.numpy(), lists)
    np.testing.assert_allclose(graph.list_d.numpy(), np.take_along_axis(dense, lists, 1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(graph.row_max.numpy(), dense.max(1), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(hop_u, lists[lists[:, : graph.wk], : graph.wh])
    want = np.take_along_axis(dense, hop_u.reshape(len(x), -1), 1).reshape(hop_u.shape)
    np.testing.assert_allclose(graph.hop_d.numpy(), want, rtol=1e-12, atol=1e-12)

    # Slot tables (by binary search over the list keys) against a brute-force search of the lists.
    def slot(owner, member):
        hit = lists[owner] == member[..., None]
        return np.where(hit.any(-1), hit.argmax(-1), 1 << 40)

    me = np.arange(len(x))
    np.testing.assert_array_equal(graph.rev.numpy(), slot(lists, np.broadcast_to(me[:, None], lists.shape)))
    rank, rev = slot(np.broadcast_to(me[:, None, None], hop_u.shape), hop_u), slot(hop_u, me[:, None, None])
    n1 = graph.n1
    code = (rank < n1 - 1) | (rank == n1 - 1) << 1 | (rev < n1 - 1) << 2 | (rev == n1 - 1) << 3
    np.testing.assert_array_equal(graph.hop_code.numpy(), code)
    # No ties in this data: the cache is the stable sort's prefix, and the misses are the two-hop
    # pairs outside it (counted with repeats); both the lookup and the direct path must be used.
    cached = np.argsort(dense, axis=1, kind="stable")[:, : max(hop_cache, graph.lv + 1)]
    misses = sum(int((~np.isin(hop_u[p], cached[p])).sum()) for p in range(len(x)))
    assert graph.hop_misses == misses
    if hop_cache >= len(x):
        assert misses == 0
    else:
        assert 0 < misses < hop_u.size


@pytest.mark.parametrize("seed", [10, 11])
def test_small_hop_cache_matches_reference(monkeypatch, seed):
    # The whole pipeline with the smallest cache (lv + 1): misses everywhere, and on this grid data
    # ties reaching the cache's edge (rows whose list is then taken from a full sort).
    monkeypatch.setattr(cci_module, "_HOP_CACHE", 1)
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(110, 2)).astype(np.float64)
    x[:14] = x[14]
    c = rng.integers(-3, 4, size=(6, 2)).astype(np.float64)
    c[0] = x[14]
    check_against_reference(x, c, 20, 6, exact=False)
    x2, c2 = clustered(150, 8, 10, seed, spread=1.5)
    check_against_reference(x2, c2, 20, 6)


def test_nearest_with_ties():
    # _nearest: the m-cache is m columns (ascending) whose values are <= all others; the top-k is
    # the stable sort's prefix, also when ties cross the cache's edge.
    rng = np.random.default_rng(70)
    for _ in range(40):
        rows, cols = int(rng.integers(1, 12)), int(rng.integers(2, 40))
        values = torch.tensor(rng.integers(0, int(rng.integers(1, 6)), size=(rows, cols)).astype(np.float64))
        k = int(rng.integers(0, cols))
        m = int(rng.integers(k + 1, cols + 1))
        cache_i, cache_d, top_d, top_i = _nearest(values, m, k)
        full = torch.sort(values, dim=1, stable=True)
        assert torch.equal(top_i, full.indices[:, :k]) and torch.equal(top_d, full.values[:, :k])
        assert cache_i.shape == (rows, m)
        assert (cache_i[:, 1:] > cache_i[:, :-1]).all()
        assert torch.equal(cache_d, values.gather(1, cache_i))
        outside = torch.ones_like(values, dtype=torch.bool).scatter_(1, cache_i, False)
        rest = torch.where(outside, values, torch.full_like(values, float("inf")))
        assert (cache_d.amax(1) <= rest.amin(1)).all()
