"""COPL spectral clustering (SPEC 3.2) against scikit-learn's SpectralClustering / spectral_embedding."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cluster import SpectralClustering
from sklearn.manifold import spectral_embedding as sk_spectral_embedding
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from utal_lightning.pseudo.spectral import gaussian_affinity, pairwise_distances, spectral_clustering, spectral_embedding


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


@pytest.mark.parametrize("k", [1, 3, 6])
def test_embedding_matches_sklearn(k):
    x, _ = _blobs(70, 4, 6, 1.0, 1.0, 1)  # generic: distinct eigenvalues
    w, _ = gaussian_affinity(x)
    ours = spectral_embedding(w, k, seed=0).numpy()
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
