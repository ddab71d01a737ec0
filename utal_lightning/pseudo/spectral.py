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

**Sparse path at scale** (``affinity="knn"``, not SPEC 3.2's fully connected graph; the dense one
stays the default and is unchanged): :func:`knn_affinity` builds a symmetric k-nearest-neighbour
Gaussian graph as a ``scipy.sparse.csr_matrix`` in O(N k) memory (exact neighbours, searched in row
chunks; sigma = the mean kNN distance, since the dense sigma needs all N^2 pairs) and
:func:`spectral_embedding_sparse` embeds it with ARPACK Lanczos (``scipy.sparse.linalg.eigsh``, seeded
start vector), under the same Laplacian / ``/dd`` / sign-flip conventions as the dense embedding.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import LinearOperator, eigsh
from torch import Tensor

from utal_lightning.pseudo.cluster import kmeans

__all__ = [
    "gaussian_affinity",
    "knn_affinity",
    "pairwise_distances",
    "spectral_clustering",
    "spectral_embedding",
    "spectral_embedding_sparse",
]


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


def knn_affinity(x: Tensor, n_neighbors: int = 10, chunk_size: int = 4096) -> sp.csr_matrix:
    """Symmetric k-nearest-neighbour Gaussian affinity of ``x`` (N, D), as a ``scipy.sparse.csr_matrix``
    (N, N), float64, on the CPU (scipy's eigensolver consumes it; the search itself runs on ``x``'s device).

    * **Neighbours**: for each point its ``k = min(n_neighbors, N - 1)`` nearest *other* points
      (exact, Euclidean; ties by ``torch.topk``'s order), searched ``chunk_size`` rows at a time
      (squared distances ``|a|^2 + |b|^2 - 2ab`` of a (chunk, N) block, so peak memory is
      O(chunk_size * N), never N x N). The search runs in ``x``'s floating dtype (float32 input: fast,
      may swap neighbours closer than float32 rounding); the chosen pairs' distances are then
      recomputed exactly in float64 as ``|x_i - x_j|``.
    * **Weights**: ``w_ij = exp(-d_ij^2 / (2 sigma^2))`` with ``sigma`` = the mean of those N*k
      neighbour distances (SPEC 3.2's dense sigma = mean over all N^2 pairs would need every pair;
      the local scale is the usual choice for kNN graphs). sigma = 0 (duplicates) -> weights 1.
    * **Symmetrized** ``W = max(W_knn, W_knn^T)`` (an edge if either end lists the other; the weight is
      symmetric in d, so the max is just the union), **no self loops** (zero diagonal, not stored).
      Weights that underflow to 0 are dropped (such a node may end up isolated; the embedding copes).
    N = 1 or ``n_neighbors < 1`` gives an empty graph.
    """
    if x.dim() != 2:
        raise ValueError(f"expected (N, D) features, got {tuple(x.shape)}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = x.shape[0]
    k = max(0, min(int(n_neighbors), n - 1))
    if k == 0:
        return sp.csr_matrix((n, n), dtype=np.float64)
    xs = x.detach()
    if not xs.is_floating_point():
        xs = xs.to(torch.float64)
    x64 = xs.to(torch.float64)
    sq = (xs * xs).sum(1)
    nbrs = torch.empty((n, k), dtype=torch.int64, device=xs.device)
    dists = torch.empty((n, k), dtype=torch.float64, device=xs.device)
    for start in range(0, n, chunk_size):
        stop = min(n, start + chunk_size)
        rows = torch.arange(start, stop, device=xs.device)
        d2 = torch.addmm(sq[start:stop, None] + sq[None, :], xs[start:stop], xs.T, alpha=-2.0)
        d2[rows - start, rows] = float("inf")  # no self loops
        idx = d2.topk(k, dim=1, largest=False, sorted=True).indices
        nbrs[start:stop] = idx
        dists[start:stop] = (x64[start:stop, None, :] - x64[idx]).norm(dim=2)  # exact, float64
        del d2
    sigma = float(dists.mean())
    if sigma > 0:
        w = torch.exp(-(dists * dists) / (2 * sigma * sigma))
    else:
        w = torch.ones_like(dists)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = nbrs.cpu().numpy().reshape(-1)
    vals = w.cpu().numpy().reshape(-1)
    wk = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))  # each (i, j) once: topk indices are distinct
    out = wk.maximum(wk.T).tocsr()
    out.setdiag(0)
    out.eliminate_zeros()
    out.sort_indices()
    return out


def spectral_embedding_sparse(W, n_components: int, seed: int = 0) -> Tensor:
    """Normalized-Laplacian embedding of a sparse affinity (N, N) -> (N, n_components) float64 (CPU),
    with the conventions of :func:`spectral_embedding` (sklearn's ``spectral_embedding(W,
    norm_laplacian=True, drop_first=False)``): W symmetrized ``(W + W^T)/2``, its diagonal ignored,
    ``dd = sqrt(deg)`` (1 for an isolated node), eigenvectors of the ``n_components`` smallest
    eigenvalues of ``L = I - D^-1/2 W D^-1/2`` ascending, divided by ``dd``, sklearn sign flip.

    ``W``: a scipy sparse matrix, a torch sparse tensor or a dense tensor / array.

    **Solver**: the smallest eigenpairs of L are the largest of ``A = D^-1/2 W D^-1/2`` (spectrum in
    [-1, 1]; ``L = I - A`` for non-isolated nodes, isolated nodes are eigenvalue 1 of L either way), so
    ``eigsh(A, which="LA")`` (implicitly restarted Lanczos, only sparse mat-vecs, ``ncv = max(2c + 1,
    20)``, tol 1e-10 and a uniform(-1, 1) start vector seeded by ``seed`` as sklearn's
    ``_init_arpack_v0``). The exact null space of L is put in first and deflated: one eigenvector
    ``dd / |dd|`` per connected component with an edge (``csgraph.connected_components``; in order of
    each component's first node), since Lanczos misses copies of an *exactly* repeated eigenvalue
    (a kNN graph of separated clusters falls apart into components); Lanczos then runs on
    ``P A P`` (``P`` the projector off that null space) for the remaining ``c - #components``
    vectors. With at least c components the embedding is c component indicators (scaled). No
    factorization: sklearn's shift-invert (``sigma=1``) needs a sparse LU of
    ``L + I``, whose fill-in on a kNN graph of high-dimensional data grows towards dense at large N.
    Near- (not exactly) degenerate eigenvalues are resolved by Lanczos; a degenerate eigenspace's basis
    (the embedding up to rotation) may depend on the start vector, as in sklearn. Falls back to the dense
    :func:`spectral_embedding` when ``n_components`` >= N - 1 or N <= 64 (ARPACK needs c < N).
    """
    if isinstance(W, Tensor):
        W = W.detach().cpu()
        W = W.coalesce() if W.is_sparse else W
        if W.is_sparse:
            idx = W.indices().numpy()
            W = sp.coo_matrix((W.values().double().numpy(), (idx[0], idx[1])), shape=tuple(W.shape))
        else:
            W = sp.csr_matrix(W.double().numpy())
    elif not sp.issparse(W):
        W = sp.csr_matrix(np.asarray(W, dtype=np.float64))
    if W.ndim != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"expected a square affinity, got {tuple(W.shape)}")
    n = W.shape[0]
    c = max(0, min(int(n_components), n))
    if n == 0 or c == 0:
        return torch.zeros((n, c), dtype=torch.float64)
    if c >= n - 1 or n <= 64:
        return spectral_embedding(torch.as_tensor(W.toarray(), dtype=torch.float64), c, seed)
    w = sp.csr_matrix(W, dtype=np.float64)
    w = ((w + w.T) * 0.5).tocsr()
    w.setdiag(0)  # csgraph.laplacian ignores self-loops
    w.eliminate_zeros()
    deg = np.asarray(w.sum(1)).ravel()
    isolated = deg == 0
    dd = np.where(isolated, 1.0, np.sqrt(np.clip(deg, 0, None)))
    inv = sp.diags(1.0 / dd)
    a = (inv @ w @ inv).tocsr()
    a = ((a + a.T) * 0.5).tocsr()
    # Exact null space of L: one vector dd/|dd| per connected component with an edge (Lanczos alone
    # misses copies of the exactly repeated eigenvalue 1 of A when the kNN graph falls apart).
    ncomp, comp = connected_components(w, directed=False)
    comp = np.where(isolated, -1, comp)
    kept = np.unique(comp[comp >= 0])  # components in order of their first node
    q = np.zeros((n, len(kept)))
    if len(kept):
        col = np.searchsorted(kept, comp[~isolated])
        q[np.flatnonzero(~isolated), col] = dd[~isolated]
        q /= np.linalg.norm(q, axis=0, keepdims=True)
    rest = c - q.shape[1]
    if rest <= 0:
        vecs = q[:, :c]
    elif rest >= n - q.shape[1] - 1:
        return spectral_embedding(torch.as_tensor(W.toarray(), dtype=torch.float64), c, seed)
    else:
        def deflated(v):  # P A P with P = I - Q Q^T
            v = v.reshape(n, -1)
            v = v - q @ (q.T @ v)
            v = a @ v
            return v - q @ (q.T @ v)

        op = LinearOperator((n, n), matvec=deflated, matmat=deflated, dtype=np.float64)
        v0 = np.random.RandomState(seed).uniform(-1, 1, n)
        vals, more = eigsh(op, k=rest, which="LA", v0=v0, ncv=min(n - 1, max(2 * rest + 1, 20)), tol=1e-10)
        order = np.argsort(-vals, kind="stable")  # descending in A = ascending in L
        vecs = np.concatenate([q, more[:, order]], axis=1)
    emb = torch.as_tensor(vecs / dd[:, None], dtype=torch.float64)
    return _sign_flip(emb)


def spectral_clustering(
    x: Tensor,
    num_clusters: int,
    seed: int,
    n_init: int = 10,
    affinity: str = "dense",
    n_neighbors: int = 10,
) -> tuple[Tensor, Tensor | sp.csr_matrix]:
    """COPL spectral clustering of ``x`` (N, D): Gaussian affinity, normalized-Laplacian embedding with
    ``n_components = min(K, N)``, seeded k-means (``n_init`` restarts) on the embedding.

    ``affinity="dense"`` (default, SPEC 3.2): the fully connected graph; returns ``labels`` (N,) int64
    in [0, min(K, N)) on ``x``'s device and the affinity ``W`` (N, N), float64 on ``x``'s device (PLRI
    uses it). ``affinity="knn"``: :func:`knn_affinity` with ``n_neighbors`` (searched in ``x``'s dtype)
    + :func:`spectral_embedding_sparse`; returns ``labels`` as above and ``W`` as a
    ``scipy.sparse.csr_matrix`` (N, N) float64. Clusters may come out empty (duplicate points).
    """
    if affinity not in ("dense", "knn"):
        raise ValueError(f"affinity must be 'dense' or 'knn', got {affinity!r}")
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    n = x.shape[0]
    if n == 0:
        raise ValueError("spectral clustering needs at least one point")
    k = min(num_clusters, n)
    if affinity == "knn":
        w_sparse = knn_affinity(x.detach(), n_neighbors=n_neighbors)
        emb = spectral_embedding_sparse(w_sparse, k, seed)
        labels, _ = kmeans(emb, k, seed=seed, n_init=n_init)
        return labels.to(x.device), w_sparse
    w, _ = gaussian_affinity(x.detach().to(torch.float64))
    emb = spectral_embedding(w, k, seed)
    labels, _ = kmeans(emb, k, seed=seed, n_init=n_init)
    return labels.to(x.device), w
