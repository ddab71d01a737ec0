"""COPL spectral clustering (docs/method.md sec. 3.2) against scikit-learn's SpectralClustering / spectral_embedding."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import SpectralClustering
from sklearn.manifold import spectral_embedding as sk_spectral_embedding
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import utal_lightning.pseudo.spectral as spectral_mod
from utal_lightning.pseudo.spectral import (
    AUTO_EIGH_MAX_N,
    AUTO_EIGH_MIN_FRACTION,
    gaussian_affinity,
    pairwise_distances,
    resolve_eigen_solver,
    spectral_clustering,
    spectral_embedding,
)


def _blobs(n, k, d, spread, noise, seed):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=gen, dtype=torch.float64) * spread
    y = torch.arange(n) % k
    return centres[y] + noise * torch.randn(n, d, generator=gen, dtype=torch.float64), y


def _sklearn_labels(w, k, seed):
    return SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed).fit(w.numpy()).labels_


def test_pairwise_distances_and_affinity_definition():
    x, _ = _blobs(30, 3, 5, 2.0, 1.0, 0)
    d = pairwise_distances(x)
    ref = np.sqrt(((x.numpy()[:, None] - x.numpy()[None]) ** 2).sum(-1))
    np.testing.assert_allclose(d.numpy(), ref, atol=1e-10)
    assert (d.diagonal() == 0).all() and torch.equal(d, d.T)
    w, sigma = gaussian_affinity(x)
    assert float(sigma) == pytest.approx(ref.mean())  # over all N^2 ordered pairs, zero diagonal included
    np.testing.assert_allclose(w.numpy(), np.exp(-(ref**2) / (2 * ref.mean() ** 2)), atol=1e-12)
    assert (w.diagonal() == 1).all()
    # all points identical: sigma = 0 -> W all ones, no NaN
    w0, s0 = gaussian_affinity(torch.ones(4, 3))
    assert float(s0) == 0 and (w0 == 1).all()


@pytest.mark.parametrize("solver", ["eigh", "arpack"])
@pytest.mark.parametrize("k", [1, 3, 6])
def test_embedding_matches_sklearn(k, solver):
    x, _ = _blobs(70, 4, 6, 1.0, 1.0, 1)  # generic: distinct eigenvalues
    w, _ = gaussian_affinity(x)
    ours = spectral_embedding(w, k, seed=0, eigen_solver=solver).numpy()
    ref = sk_spectral_embedding(w.numpy(), n_components=k, norm_laplacian=True, drop_first=False, random_state=0)
    assert ours.shape == ref.shape == (70, k)
    # same sign convention (deterministic flip), so equal without any alignment
    np.testing.assert_allclose(ours, ref, atol=1e-8 * np.abs(ref).max())


def test_embedding_ignores_diagonal_and_spans_sklearns_subspace_on_separated_data():
    x, _ = _blobs(60, 3, 8, 8.0, 0.5, 2)  # tiny between-blob affinities: near-degenerate eigenvalues
    w, _ = gaussian_affinity(x)
    ours = spectral_embedding(w, 3, seed=0)
    w_nodiag = w.clone()
    w_nodiag.fill_diagonal_(0)
    torch.testing.assert_close(spectral_embedding(w_nodiag, 3, seed=0), ours)  # as csgraph.laplacian
    ref = sk_spectral_embedding(w.numpy(), n_components=3, norm_laplacian=True, drop_first=False, random_state=0)
    q_ours, _ = np.linalg.qr(ours.numpy())
    q_ref, _ = np.linalg.qr(ref)
    np.testing.assert_allclose(q_ours @ q_ours.T, q_ref @ q_ref.T, atol=1e-6)  # same column space


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_partition_equals_sklearn_on_separated_blobs(seed):
    x, y = _blobs(150, 5, 16, 4.0, 1.0, seed)
    labels, w = spectral_clustering(x.float(), 5, seed=seed)
    assert labels.dtype == torch.int64 and labels.shape == (150,) and w.dtype == torch.float64
    ref = _sklearn_labels(w, 5, seed)
    assert adjusted_rand_score(ref, labels.numpy()) == 1.0
    assert adjusted_rand_score(y.numpy(), labels.numpy()) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nmi_close_to_sklearn_on_overlapping_data(seed):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(6, 12, generator=gen, dtype=torch.float64) * 0.5
    y = torch.arange(240) % 6
    x = centres[y] + 0.6 * torch.randn(240, 12, generator=gen, dtype=torch.float64)
    labels, w = spectral_clustering(x, 6, seed=seed)
    ours = normalized_mutual_info_score(y.numpy(), labels.numpy())
    theirs = normalized_mutual_info_score(y.numpy(), _sklearn_labels(w, 6, seed))
    assert 0.3 < theirs < 0.95  # genuinely hard
    assert abs(ours - theirs) <= 0.05


def test_degenerate_inputs_do_not_crash():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(4, 3, generator=gen)
    labels, w = spectral_clustering(x, 10, seed=0)  # K > N: every point its own cluster
    assert sorted(labels.tolist()) == [0, 1, 2, 3] and w.shape == (4, 4)
    labels, _ = spectral_clustering(x, 1, seed=0)  # K = 1
    assert labels.tolist() == [0, 0, 0, 0]
    labels, _ = spectral_clustering(x[:1], 3, seed=0)  # N = 1
    assert labels.tolist() == [0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no leaked warnings either
        dup = torch.cat([x[:1].repeat(5, 1), x[1:2].repeat(5, 1)])  # duplicates: 2 distinct points, K = 4
        labels, w = spectral_clustering(dup, 4, seed=0)
    assert torch.isfinite(w).all() and labels.shape == (10,) and labels.max() < 4
    # (with K above the number of distinct points the extra eigenvectors come from a degenerate
    # eigenspace and may split copies, in sklearn too; with K = 2 the copies must group)
    labels, _ = spectral_clustering(dup, 2, seed=0)
    assert adjusted_rand_score([0] * 5 + [1] * 5, labels.numpy()) == 1.0
    labels, w = spectral_clustering(torch.zeros(6, 3), 3, seed=0)  # all identical: sigma = 0
    assert labels.shape == (6,) and (w == 1).all()
    with pytest.raises(ValueError):
        spectral_clustering(x, 0, seed=0)


# --- eigen_solver: "arpack" (Lanczos on M = I - L, CPU) against "eigh" (dense, full) -----------------


def _laplacian(w):
    """L = I - D^-1/2 W_offdiag D^-1/2 (unit diagonal) and dd, as the module docstring defines them."""
    w = w.clone()
    w.fill_diagonal_(0)
    deg = w.sum(1)
    dd = torch.where(deg == 0, torch.ones_like(deg), deg.sqrt())
    lap = -(w / dd[:, None]) / dd[None, :]
    lap.fill_diagonal_(1)
    return lap, dd


def _eigvecs_of(emb, dd):
    """Undo the /dd scaling: the unit eigenvectors x of L behind an embedding u = x / dd."""
    x = emb * dd[:, None]
    return x / x.norm(dim=0, keepdim=True)


def _projector(v):
    q, _ = torch.linalg.qr(v)
    return q @ q.T


@pytest.mark.parametrize("seed", [0, 1])
def test_arpack_and_eigh_agree_on_eigenvalues_and_subspace(seed):
    x, _ = _blobs(400, 6, 16, 4.0, 1.0, seed)  # 6 blobs: a clear gap after the 6th eigenvalue of L
    w, _ = gaussian_affinity(x)
    lap, dd = _laplacian(w)
    ref_vals = torch.linalg.eigvalsh(lap)
    gap = ref_vals[6] - ref_vals[5]
    assert gap > 0.02 and gap > 10 * (ref_vals[7] - ref_vals[6])  # the eigengap is real
    a = spectral_embedding(w, 6, seed=seed, eigen_solver="arpack")
    e = spectral_embedding(w, 6, seed=seed, eigen_solver="eigh")
    assert a.shape == e.shape == (400, 6) and a.dtype == torch.float64
    xa, xe = _eigvecs_of(a, dd), _eigvecs_of(e, dd)
    vals = (xa * (lap @ xa)).sum(0)  # Rayleigh quotients of the arpack vectors
    torch.testing.assert_close(vals, ref_vals[:6], atol=1e-10, rtol=0)  # ascending in L, the 6 smallest
    assert (lap @ xa - xa * vals).norm(dim=0).max() < 1e-7  # genuine eigenvectors
    torch.testing.assert_close(xa.T @ xa, torch.eye(6, dtype=torch.float64), atol=1e-10, rtol=0)
    assert (_projector(xa) - _projector(xe)).abs().max() < 1e-8  # same spanned subspace
    # distinct eigenvalues: same vectors column by column, and the same sign convention
    assert (ref_vals[1:7] - ref_vals[:6]).min() > 1e-4
    torch.testing.assert_close(a, e, atol=1e-7 * float(e.abs().max()), rtol=0)


def test_arpack_handles_components_and_isolated_nodes_like_eigh():
    gen = torch.Generator().manual_seed(7)
    blocks = []
    for size in (40, 50, 30):  # three tight blobs, disconnected from each other: L has a 3-fold 0
        pts = 0.05 * torch.randn(size, 5, generator=gen, dtype=torch.float64)
        blocks.append(torch.exp(-(torch.cdist(pts, pts) ** 2) / 2))
    w = torch.block_diag(*blocks, torch.zeros(4, 4, dtype=torch.float64))  # + 4 isolated nodes (L: 1)
    perm = torch.randperm(w.shape[0], generator=gen)
    w = w[perm][:, perm]
    isolated = (w.sum(1) == 0).nonzero().flatten()
    lap, dd = _laplacian(w)
    ref_vals = torch.linalg.eigvalsh(lap)
    # tight blobs: M's other eigenvalues are < 0, so after the 3 zeros come the 4 isolated nodes' 1s
    torch.testing.assert_close(
        ref_vals[:7], torch.tensor([0.0] * 3 + [1.0] * 4, dtype=torch.float64), atol=1e-12, rtol=0
    )
    assert ref_vals[7] > 1 + 1e-3
    null = _projector(_eigvecs_of(spectral_embedding(w, 3, eigen_solver="eigh"), dd))
    for c in (2, 3, 7, 9):
        a = spectral_embedding(w, c, seed=0, eigen_solver="arpack")
        e = spectral_embedding(w, c, seed=0, eigen_solver="eigh")
        xa, xe = _eigvecs_of(a, dd), _eigvecs_of(e, dd)
        assert torch.isfinite(a).all() and a.shape == (124, c)
        vals = (xa * (lap @ xa)).sum(0)
        torch.testing.assert_close(vals, ref_vals[:c], atol=1e-10, rtol=0)
        assert (lap @ xa - xa * vals).norm(dim=0).max() < 1e-7
        m = min(c, 3)  # inside the null space (a component indicator basis, scaled), all of it from c = 3
        assert (xa[:, :m] - null @ xa[:, :m]).abs().max() < 1e-8
        if c >= 3:
            assert (_projector(xa[:, :3]) - _projector(xe[:, :3])).abs().max() < 1e-8
        if c >= 7:  # then the isolated nodes: exactly the unit vectors e_i (positive after the flip)
            assert (_projector(xa[:, 3:7]) - _projector(xe[:, 3:7])).abs().max() < 1e-8
            assert set(a[:, 3:7].argmax(0).tolist()) == set(isolated.tolist())
            assert ((a[:, 3:7] == 0) | (a[:, 3:7] == 1)).all()


def test_arpack_falls_back_to_eigh_where_arpack_cannot_run():
    x, _ = _blobs(100, 3, 5, 2.0, 1.0, 3)
    w, _ = gaussian_affinity(x)
    for c in (99, 100, 150):  # n_components >= N - 1 (clamped to N): the dense eigh, bit for bit
        assert torch.equal(
            spectral_embedding(w, c, eigen_solver="arpack"), spectral_embedding(w, c, eigen_solver="eigh")
        )
    small = w[:50, :50]  # N <= 64
    assert torch.equal(
        spectral_embedding(small, 5, eigen_solver="arpack"), spectral_embedding(small, 5, eigen_solver="eigh")
    )
    one = torch.ones(1, 1, dtype=torch.float64)  # N = 1
    assert spectral_embedding(one, 3, eigen_solver="arpack").tolist() == [[1.0]]
    assert spectral_embedding(w, 0, eigen_solver="arpack").shape == (100, 0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_arpack_and_eigh_partitions_identical_on_separated_blobs(seed):
    x, y = _blobs(300, 5, 16, 4.0, 1.0, seed)
    arpack, wa = spectral_clustering(x.float(), 5, seed=seed, eigen_solver="arpack")
    eigh, we = spectral_clustering(x.float(), 5, seed=seed, eigen_solver="eigh")
    assert torch.equal(wa, we)
    assert adjusted_rand_score(eigh.numpy(), arpack.numpy()) == 1.0
    assert adjusted_rand_score(y.numpy(), arpack.numpy()) == 1.0


def test_auto_picks_as_documented(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    n = AUTO_EIGH_MAX_N + 1
    assert resolve_eigen_solver("auto", AUTO_EIGH_MAX_N, 5, cpu) == "eigh"  # small N
    assert resolve_eigen_solver("auto", n, 5, cpu) == "arpack"
    assert resolve_eigen_solver("auto", 4819, 100, "cpu") == "arpack"  # ActivityNet
    assert resolve_eigen_solver("auto", n, int(AUTO_EIGH_MIN_FRACTION * n) + 1, cpu) == "eigh"  # many pairs
    assert resolve_eigen_solver("auto", 4819, 100, cuda) == "eigh"  # GPU: dense eigh
    assert resolve_eigen_solver("auto", 4819, 482, cpu) == "eigh"  # K >= N / 10
    assert resolve_eigen_solver("eigh", 4819, 100, cpu) == "eigh"
    assert resolve_eigen_solver("arpack", 10, 5, cuda) == "arpack"
    with pytest.raises(ValueError):
        resolve_eigen_solver("lobpcg", 100, 5, cpu)
    with pytest.raises(ValueError):
        spectral_clustering(torch.randn(10, 3), 2, seed=0, eigen_solver="lobpcg")
    with pytest.raises(ValueError):
        spectral_clustering(torch.randn(10, 3), 2, seed=0, affinity="knn", eigen_solver="eigh")
    # spectral_embedding's default really dispatches through "auto" (thresholds lowered to reach it)
    calls = []
    real = spectral_mod._arpack_eigenvectors

    def spy(*args, **kwargs):
        calls.append(args[-2])  # c
        return real(*args, **kwargs)

    monkeypatch.setattr(spectral_mod, "_arpack_eigenvectors", spy)
    monkeypatch.setattr(spectral_mod, "AUTO_EIGH_MAX_N", 100)
    x, _ = _blobs(150, 3, 5, 2.0, 1.0, 0)
    w, _ = gaussian_affinity(x)
    spectral_embedding(w, 3)
    assert calls == [3]  # N > 100, 3 < 15: arpack
    spectral_embedding(w, 15)
    spectral_embedding(w[:100, :100], 3)
    spectral_embedding(w, 3, eigen_solver="eigh")
    assert calls == [3]  # K >= N / 10, N <= 100, explicit eigh: no arpack


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (UTAL_TEST_CUDA=1)")
def test_arpack_on_cuda_returns_to_the_device():
    x, _ = _blobs(200, 4, 8, 3.0, 1.0, 0)
    w, _ = gaussian_affinity(x)
    ref = spectral_embedding(w, 4, eigen_solver="arpack")
    got = spectral_embedding(w.cuda(), 4, eigen_solver="arpack")
    assert got.device.type == "cuda"
    torch.testing.assert_close(got.cpu(), ref, atol=1e-12, rtol=0)
    dense = spectral_embedding(w.cuda(), 4)  # auto on CUDA: eigh
    torch.testing.assert_close(dense.cpu(), ref, atol=1e-7 * float(ref.abs().max()), rtol=0)


def test_the_spectral_clusterer_plumbs_the_eigen_solver(monkeypatch):
    import utal_lightning.pseudo.clusterers as clusterers

    assert clusterers.SpectralClusterer().eigen_solver == "auto"
    with pytest.raises(ValueError):
        clusterers.SpectralClusterer(eigen_solver="lobpcg")
    with pytest.raises(ValueError):
        clusterers.SpectralClusterer(affinity="knn", eigen_solver="eigh")
    seen = []
    real = clusterers.spectral_clustering

    def spy(*args, **kwargs):
        seen.append(kwargs.get("eigen_solver"))
        return real(*args, **kwargs)

    monkeypatch.setattr(clusterers, "spectral_clustering", spy)
    x, y = _blobs(120, 3, 8, 4.0, 1.0, 0)
    out = clusterers.SpectralClusterer(eigen_solver="arpack").cluster(x.float(), 3, seed=0)
    assert seen == ["arpack"] and adjusted_rand_score(y.numpy(), out.labels.numpy()) == 1.0
