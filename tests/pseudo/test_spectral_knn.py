"""Sparse kNN spectral clustering (the "clustering at scale" path) against the dense docs/method.md sec. 3.2 one."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.manifold import spectral_embedding as sk_spectral_embedding
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from utal_lightning.pseudo.spectral import (
    knn_affinity,
    spectral_clustering,
    spectral_embedding,
    spectral_embedding_sparse,
)


def _blobs(n, k, d, spread, noise, seed):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=gen, dtype=torch.float64) * spread
    y = torch.arange(n) % k
    return centres[y] + noise * torch.randn(n, d, generator=gen, dtype=torch.float64), y


def _brute_knn(x, k):
    x = x.numpy()
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    nbr = np.argsort(d, axis=1, kind="stable")[:, :k]
    nd = np.take_along_axis(d, nbr, 1)
    sigma = nd.mean()
    w = np.zeros_like(d)
    np.put_along_axis(w, nbr, np.exp(-(nd**2) / (2 * sigma**2)), 1)
    return np.maximum(w, w.T), nbr


@pytest.mark.parametrize("k", [1, 5, 12])
def test_knn_affinity_equals_brute_force(k):
    x, _ = _blobs(90, 4, 7, 1.5, 1.0, k)  # generic data: no distance ties
    w = knn_affinity(x, n_neighbors=k, chunk_size=17)
    assert sp.isspmatrix_csr(w) and w.dtype == np.float64 and w.shape == (90, 90)
    ref, nbr = _brute_knn(x, k)
    dense = w.toarray()
    np.testing.assert_allclose(dense, ref, rtol=1e-12, atol=0)
    assert (dense == dense.T).all()  # symmetric
    assert (dense.diagonal() == 0).all() and (w.diagonal() == 0).all()  # no self loops
    # exact neighbour sets: each row holds its own k nearest (plus those that chose it)
    for i in range(90):
        assert set(nbr[i]) <= set(np.flatnonzero(dense[i]))
    assert (np.count_nonzero(dense, axis=1) >= k).all()


def test_knn_affinity_chunk_invariance_and_float32_search():
    x, _ = _blobs(257, 6, 10, 2.0, 1.0, 3)
    full = knn_affinity(x, 8, chunk_size=4096)  # one chunk
    for cs in (1, 7, 64, 256):  # chunk smaller than N: only (chunk, N) blocks are ever built
        w = knn_affinity(x, 8, chunk_size=cs)
        assert (w.indices == full.indices).all() and (w.indptr == full.indptr).all()
        np.testing.assert_allclose(w.data, full.data, rtol=1e-13)
    w32 = knn_affinity(x.float(), 8, chunk_size=50)  # float32 search, float64 weights
    assert w32.dtype == np.float64 and (w32 != w32.T).nnz == 0


def test_knn_affinity_never_allocates_n_by_n(monkeypatch):
    import utal_lightning.pseudo.spectral as mod

    n, chunk = 300, 32
    seen = []
    real = torch.addmm

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(tuple(out.shape))
        return out

    monkeypatch.setattr(mod.torch, "addmm", spy)
    x, _ = _blobs(n, 3, 5, 2.0, 1.0, 0)
    mod.knn_affinity(x, 5, chunk_size=chunk)
    assert seen and all(s[0] <= chunk for s in seen)


def test_knn_affinity_degenerate():
    assert knn_affinity(torch.randn(1, 3), 10).nnz == 0  # N = 1: empty graph
    w = knn_affinity(torch.randn(4, 3), 10)  # k clamped to N - 1: complete graph
    assert w.nnz == 12
    w = knn_affinity(torch.ones(6, 2), 3)  # duplicates: sigma = 0 -> weights 1, no NaN
    assert np.isfinite(w.data).all() and (w.data == 1).all() and w.diagonal().sum() == 0


def test_sparse_embedding_matches_dense_and_sklearn_on_a_connected_graph():
    x, _ = _blobs(300, 4, 6, 1.0, 1.0, 1)  # overlapping: one connected kNN graph, distinct eigenvalues
    w = knn_affinity(x, 10)
    ours = spectral_embedding_sparse(w, 6, seed=0).numpy()
    dense = spectral_embedding(torch.as_tensor(w.toarray()), 6).numpy()
    sk = sk_spectral_embedding(w, n_components=6, norm_laplacian=True, drop_first=False, random_state=0)
    np.testing.assert_allclose(ours, dense, atol=1e-6 * np.abs(dense).max())  # same sign convention
    np.testing.assert_allclose(ours, sk, atol=1e-5 * np.abs(sk).max())


def test_sparse_embedding_spans_the_null_space_of_a_disconnected_graph():
    x, _ = _blobs(400, 5, 16, 8.0, 1.0, 0)  # the kNN graph falls apart into the 5 blobs
    w = knn_affinity(x, 10)
    ours = spectral_embedding_sparse(w, 7, seed=0).numpy()
    dense = spectral_embedding(torch.as_tensor(w.toarray()), 7).numpy()
    q_ours, _ = np.linalg.qr(ours[:, :5])
    q_ref, _ = np.linalg.qr(dense[:, :5])
    np.testing.assert_allclose(q_ours @ q_ours.T, q_ref @ q_ref.T, atol=1e-8)
    assert np.isfinite(ours).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_and_dense_partitions_agree_on_separated_blobs(seed):
    x, y = _blobs(600, 5, 16, 4.0, 1.0, seed)
    dense, wd = spectral_clustering(x, 5, seed=seed)
    knn, wk = spectral_clustering(x, 5, seed=seed, affinity="knn", n_neighbors=10)
    assert isinstance(wd, torch.Tensor) and sp.isspmatrix_csr(wk) and wk.shape == (600, 600)
    assert knn.dtype == torch.int64 and knn.shape == (600,)
    assert adjusted_rand_score(dense.numpy(), knn.numpy()) == 1.0
    assert adjusted_rand_score(y.numpy(), knn.numpy()) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_knn_nmi_close_to_dense_on_overlapping_data(seed):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 12, generator=gen, dtype=torch.float64) * 0.5
    y = torch.arange(600) % 6
    x = centres[y] + 0.6 * torch.randn(600, 12, generator=gen, dtype=torch.float64)
    dense, _ = spectral_clustering(x, 6, seed=seed)
    knn, _ = spectral_clustering(x, 6, seed=seed, affinity="knn")
    nd = normalized_mutual_info_score(y.numpy(), dense.numpy())
    nk = normalized_mutual_info_score(y.numpy(), knn.numpy())
    assert 0.3 < nd < 0.95  # genuinely hard
    assert abs(nd - nk) <= 0.1


def test_default_is_the_dense_path_and_knn_degenerate_inputs():
    x, _ = _blobs(80, 3, 5, 2.0, 1.0, 4)
    a, wa = spectral_clustering(x, 3, seed=0)
    b, wb = spectral_clustering(x, 3, seed=0, affinity="dense")
    assert torch.equal(a, b) and torch.equal(wa, wb) and wa.shape == (80, 80)
    with pytest.raises(ValueError):
        spectral_clustering(x, 3, seed=0, affinity="cosine")
    gen = torch.Generator().manual_seed(5)
    small = torch.randn(4, 3, generator=gen)
    labels, _ = spectral_clustering(small, 10, seed=0, affinity="knn")  # K > N
    assert sorted(labels.tolist()) == [0, 1, 2, 3]
    labels, _ = spectral_clustering(small[:1], 3, seed=0, affinity="knn")  # N = 1
    assert labels.tolist() == [0]
    dup = torch.cat([small[:1].repeat(50, 1), small[1:2].repeat(50, 1)])  # duplicates, K = 2
    labels, w = spectral_clustering(dup, 2, seed=0, affinity="knn", n_neighbors=5)
    assert np.isfinite(w.data).all()
    assert adjusted_rand_score([0] * 50 + [1] * 50, labels.numpy()) == 1.0
    labels, _ = spectral_clustering(torch.zeros(100, 3), 3, seed=0, affinity="knn")  # all identical
    assert labels.shape == (100,)


def test_plri_on_the_sparse_knn_affinity_equals_the_dense_computation():
    import numpy as np

    from utal_lightning.pseudo.plri import plri_confidence

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(80, 6, generator=gen, dtype=torch.float64)
    sparse = knn_affinity(x, n_neighbors=7)
    labels = torch.randint(0, 4, (80,), generator=gen)
    dense = torch.from_numpy(np.asarray(sparse.todense()))
    torch.testing.assert_close(plri_confidence(sparse, labels).double(), plri_confidence(dense, labels).double())
