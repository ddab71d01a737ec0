"""COPL spectral clustering of global video features (SPEC 3.2), dense torch so it runs on a GPU.

Follows scikit-learn's ``SpectralClustering(affinity="precomputed", assign_labels="kmeans")`` (1.x),
i.e. ``sklearn.manifold.spectral_embedding(W, norm_laplacian=True, drop_first=False)`` + k-means:

* **Laplacian** as ``scipy.sparse.csgraph.laplacian(W, normed=True)`` builds it: the diagonal of W is
  *ignored* (set to 0) for the degrees ``deg_i = sum_{j != i} w_ij``; ``dd = sqrt(deg)`` (1 for an
  isolated node); ``L = I - D^-1/2 W_offdiag D^-1/2`` with a unit diagonal (sklearn's ARPACK path
  sets the diagonal to 1, isolated nodes included). W is symmetrized ``(W + W^T) / 2`` first
  (sklearn's ``check_symmetric``; a no-op for our Gaussian affinity).
* **Eigenvectors** of the ``n_components`` smallest eigenvalues, ascending (sklearn uses ARPACK
  shift-invert; here a dense ``torch.linalg.eigh``: same vectors up to sign and, for repeated
  eigenvalues, rotation inside the eigenspace), each divided by ``dd`` (``u = D^-1/2 x``), then
  sign-flipped so that each vector's largest-|.| entry (first on ties) is positive
  (``_deterministic_vector_sign_flip``). The first vector (constant) is kept (``drop_first=False``).
* **k-means** on the (N, n_components) embedding with ``n_components = K``:
  :func:`utal_lightning.pseudo.cluster.kmeans` (scikit-learn KMeans, ``n_init`` restarts, ``seed``).
  sklearn feeds one RandomState to ARPACK's start vector and then k-means, so the two k-means inits
  differ; partitions agree whenever k-means is not init-sensitive (tested: ARI = 1 on separated data).
* **Affinity** ``w_ij = exp(-d_ij^2 / (2 sigma^2))``, ``sigma = mean_{i,j} d_ij`` over all N^2 ordered
  pairs, the zero diagonal included (COPL, ``sigma = 1/N^2 sum_ij dist``). ``w_ii = 1`` is kept in
  the returned W (what sklearn receives as the precomputed affinity; its Laplacian ignores it).
  sigma = 0 (every point identical, or N = 1) gives W = all ones instead of 0/0.

Numerics: the affinity, Laplacian and eigendecomposition run in float64 on the input's device
(near-degenerate small eigenvalues of well-separated data need it); the eigendecomposition is dense,
O(N^3) (a few seconds on CPU at N ~ 5000). K' = min(K, N) clusters (more clusters than videos: every
video its own cluster, like :func:`kmeans`); duplicate points and K = 1 are fine.
"""

from __future__ import annotations

import torch
from torch import Tensor

from utal_lightning.pseudo.cluster import kmeans

__all__ = ["gaussian_affinity", "pairwise_distances", "spectral_clustering", "spectral_embedding"]


def pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distances (N, D) -> (N, N) via ``|a|^2 + |b|^2 - 2ab`` (clamped at 0, then sqrt),
    symmetric with an exactly zero diagonal, in ``x``'s dtype on its device."""
    if x.dim() != 2:
        raise ValueError(f"expected (N, D) features, got {tuple(x.shape)}")
    sq = (x * x).sum(1)
    d2 = torch.addmm(sq[:, None] + sq[None, :], x, x.T, alpha=-2.0).clamp_(min=0)
    d2 = (d2 + d2.T) / 2
    d2.fill_diagonal_(0)
    return d2.sqrt()


def gaussian_affinity(x: Tensor) -> tuple[Tensor, Tensor]:
    """COPL's fully connected graph: ``W (N, N)``, ``w_ij = exp(-d_ij^2 / (2 sigma^2))`` with ``sigma``
    (0-dim tensor) the mean of d over all ordered pairs incl. the zero diagonal. ``w_ii = 1``.
    sigma = 0 (all points identical, N = 1) -> W all ones. Computed in ``x``'s dtype."""
    d = pairwise_distances(x)
    sigma = d.mean() if d.numel() else torch.zeros((), dtype=d.dtype, device=d.device)
    if float(sigma) > 0:
        w = torch.exp(-(d * d) / (2 * sigma * sigma))
    else:
        w = torch.ones_like(d)
    return w, sigma


def _sign_flip(vectors: Tensor) -> Tensor:
    """sklearn's ``_deterministic_vector_sign_flip`` on the columns of (N, C): each column's entry of
    largest magnitude (first such index) is made positive (a zero column stays as is)."""
    if vectors.numel() == 0:
        return vectors
    idx = vectors.abs().argmax(0)  # first maximal index, as np.argmax
    signs = torch.sign(vectors.gather(0, idx[None, :]))
    return vectors * signs


def spectral_embedding(W: Tensor, n_components: int, seed: int = 0) -> Tensor:
    """Normalized-Laplacian embedding (N, N) -> (N, n_components) as scikit-learn's
    ``spectral_embedding(W, n_components, norm_laplacian=True, drop_first=False)`` (module docstring).

    ``n_components`` is clamped to N. ``seed`` is accepted for API symmetry with sklearn (whose
    ARPACK start vector it seeds); the dense eigendecomposition is deterministic and ignores it.
    Computed in float64 on ``W``'s device; returns float64.
    """
    del seed
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"expected a square affinity, got {tuple(W.shape)}")
    n = W.shape[0]
    c = max(0, min(int(n_components), n))
    w = W.to(torch.float64)
    w = (w + w.T) / 2
    w = w.clone()
    w.fill_diagonal_(0)  # csgraph.laplacian ignores self-loops
    deg = w.sum(1)
    isolated = deg == 0
    dd = torch.where(isolated, torch.ones_like(deg), deg.clamp(min=0).sqrt())
    lap = -(w / dd[:, None]) / dd[None, :]
    lap.fill_diagonal_(1)
    lap = (lap + lap.T) / 2
    if n == 0 or c == 0:
        return torch.zeros((n, c), dtype=torch.float64, device=W.device)
    _, vecs = torch.linalg.eigh(lap)  # ascending eigenvalues
    emb = vecs[:, :c] / dd[:, None]
    return _sign_flip(emb)


def spectral_clustering(x: Tensor, num_clusters: int, seed: int, n_init: int = 10) -> tuple[Tensor, Tensor]:
    """COPL spectral clustering of ``x`` (N, D): Gaussian affinity, normalized-Laplacian embedding with
    ``n_components = min(K, N)``, seeded k-means (``n_init`` restarts) on the embedding.

    Returns ``labels`` (N,) int64 in [0, min(K, N)) on ``x``'s device and the affinity ``W`` (N, N),
    float64 on ``x``'s device (PLRI uses it). Clusters may come out empty (duplicate points).
    """
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("spectral clustering needs at least one point")
    w, _ = gaussian_affinity(x.detach().to(torch.float64))
    k = min(num_clusters, n)
    emb = spectral_embedding(w, k, seed)
    labels, _ = kmeans(emb, k, seed=seed, n_init=n_init)
    return labels.to(x.device), w
