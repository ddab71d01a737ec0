"""COPL spectral clustering of global video features (docs/method.md sec. 3.2), dense torch so it runs on a GPU.

Follows scikit-learn's ``SpectralClustering(affinity="precomputed", assign_labels="kmeans")`` (1.x),
i.e. ``sklearn.manifold.spectral_embedding(W, norm_laplacian=True, drop_first=False)`` + k-means:

* **Laplacian** as ``scipy.sparse.csgraph.laplacian(W, normed=True)`` builds it: the diagonal of W is
  *ignored* (set to 0) for the degrees ``deg_i = sum_{j != i} w_ij``; ``dd = sqrt(deg)`` (1 for an
  isolated node); ``L = I - D^-1/2 W_offdiag D^-1/2`` with a unit diagonal (sklearn's ARPACK path
  sets the diagonal to 1, isolated nodes included). W is symmetrized ``(W + W^T) / 2`` first
  (sklearn's ``check_symmetric``; a no-op for our Gaussian affinity).
* **Eigenvectors** of the ``n_components`` smallest eigenvalues, ascending (sklearn uses ARPACK
  shift-invert; here a dense ``torch.linalg.eigh`` or ARPACK Lanczos on ``M = I - L``, see *Eigensolver*
  below: same vectors up to sign and, for repeated eigenvalues, rotation inside the eigenspace;
  an isolated node, a zero row of M, gives eigenvalue 1 of L with eigenvector ``e_i``), each divided
  by ``dd`` (``u = D^-1/2 x``), then sign-flipped so that each vector's largest-|.| entry (first on
  ties) is positive (``_deterministic_vector_sign_flip``). The first vector (constant) is kept (``drop_first=False``).
* **k-means** on the (N, n_components) embedding with ``n_components = K``:
  :func:`utal_lightning.pseudo.cluster.kmeans` (scikit-learn KMeans, ``n_init`` restarts, ``seed``).
  sklearn feeds one RandomState to ARPACK's start vector and then k-means, so the two k-means inits
  differ; partitions agree whenever k-means is not init-sensitive (tested: ARI = 1 on separated data).
* **Affinity** ``w_ij = exp(-d_ij^2 / (2 sigma^2))``, ``sigma = mean_{i,j} d_ij`` over all N^2 ordered
  pairs, the zero diagonal included (COPL, ``sigma = 1/N^2 sum_ij dist``). ``w_ii = 1`` is kept in
  the returned W (what sklearn receives as the precomputed affinity; its Laplacian ignores it).
  sigma = 0 (every point identical, or N = 1) gives W = all ones instead of 0/0.

Numerics: the affinity, Laplacian and eigensolver run in float64 (near-degenerate small eigenvalues
of well-separated data need it). K' = min(K, N) clusters (more clusters than videos: every video its
own cluster, like :func:`kmeans`); duplicate points and K = 1 are fine.

**Eigensolver** (``eigen_solver`` of :func:`spectral_embedding` / :func:`spectral_clustering`):

* ``"eigh"``: the full dense ``torch.linalg.eigh`` of L on the input's device, then the first
  ``n_components`` columns. O(N^3) (the Householder tridiagonalisation dominates): fast on a GPU, but
  ~17 s (2 threads) / ~34 s CPU (1 thread) at N = 4819 on our shared CPU.
* ``"arpack"``: only the ``n_components`` largest algebraic eigenpairs of M (the smallest of L) by
  ``scipy.sparse.linalg.eigsh(which="LA")`` on the CPU, float64, seeded start vector, the exact null
  space of L (one vector per connected component) deflated first; results moved back to the input's
  device (:func:`_arpack_eigenvectors`, shared with the sparse kNN path). Its time is bound by the
  Lanczos mat-vecs with the dense N x N float64 M (each reads all N^2 entries, memory bound; a few
  hundred of them) and the O(N ncv^2) re-orthogonalisation, ``ncv ~ 2 n_components``: at N = 4819,
  K = 100 ~4.7 s CPU vs ~34 s for ``eigh`` (1 thread); it grows quickly with ``n_components``
  (K = 400: ~26 s). Falls back to ``eigh`` where ARPACK cannot run (N <= 64, ``n_components >= N - 1``).
* ``"auto"`` (default): ``eigh`` on a CUDA device, for N <= ``AUTO_EIGH_MAX_N`` = 1000 (eigh <= ~0.3 s
  CPU there; exact, no Lanczos caveats) or for ``n_components >= N / 10`` (``AUTO_EIGH_MIN_FRACTION``:
  the measured single-thread crossover at N = 2000, 3000, 4819: e.g. N = 2000: eigh 2.2 s, ARPACK
  K = 200 2.1 s, K = 400 4.3 s); ``arpack`` otherwise (the ActivityNet case, N = 4819, K = 100).
  Both solvers give the same embedding up to rounding (tested: eigenvalues to 1e-10, same spanned
  subspace, identical partitions on separated data), the degenerate-eigenspace caveats aside.

**Sparse path at scale** (``affinity="knn"``, not docs/method.md sec. 3.2's fully connected graph; the dense one
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
    "AUTO_EIGH_MAX_N",
    "AUTO_EIGH_MIN_FRACTION",
    "EIGEN_SOLVERS",
    "gaussian_affinity",
    "knn_affinity",
    "pairwise_distances",
    "resolve_eigen_solver",
    "spectral_clustering",
    "spectral_embedding",
    "spectral_embedding_sparse",
    "validate_eigen_solver",
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


EIGEN_SOLVERS = ("auto", "eigh", "arpack")
# "auto" takes the dense eigh up to this N (cheap there: <= ~0.3 s CPU) or from this share of
# eigenpairs on (where ARPACK's restarted Lanczos is no faster on CPU); measured, see the module docstring.
AUTO_EIGH_MAX_N = 1000
AUTO_EIGH_MIN_FRACTION = 0.1


def validate_eigen_solver(eigen_solver: str, affinity: str = "dense") -> None:
    """Raise ``ValueError`` unless ``eigen_solver`` is one of :data:`EIGEN_SOLVERS` (and, for the sparse
    ``affinity="knn"`` graph, which is always embedded with ARPACK, ``"auto"`` or ``"arpack"``)."""
    if eigen_solver not in EIGEN_SOLVERS:
        raise ValueError(f"eigen_solver must be one of {EIGEN_SOLVERS}, got {eigen_solver!r}")
    if affinity == "knn" and eigen_solver == "eigh":
        raise ValueError("the sparse knn affinity is embedded with ARPACK: eigen_solver must be 'auto' or 'arpack'")


def resolve_eigen_solver(eigen_solver: str, n: int, n_components: int, device: torch.device | str = "cpu") -> str:
    """The solver ``spectral_embedding`` uses: ``"eigh"`` or ``"arpack"`` as given; ``"auto"`` -> ``"eigh"``
    on a CUDA device (a dense GPU ``eigh`` is fast), for ``N <= AUTO_EIGH_MAX_N`` or for
    ``n_components >= AUTO_EIGH_MIN_FRACTION * N``; ``"arpack"`` otherwise."""
    validate_eigen_solver(eigen_solver)
    if eigen_solver != "auto":
        return eigen_solver
    if torch.device(device).type == "cuda" or n <= AUTO_EIGH_MAX_N or n_components >= AUTO_EIGH_MIN_FRACTION * n:
        return "eigh"
    return "arpack"


def spectral_embedding(W: Tensor, n_components: int, seed: int = 0, eigen_solver: str = "auto") -> Tensor:
    """Normalized-Laplacian embedding (N, N) -> (N, n_components) as scikit-learn's
    ``spectral_embedding(W, n_components, norm_laplacian=True, drop_first=False)`` (module docstring).

    ``n_components`` is clamped to N. ``eigen_solver`` (:func:`resolve_eigen_solver`): ``"eigh"``, a
    dense full ``torch.linalg.eigh`` of L on ``W``'s device (deterministic, ignores ``seed``);
    ``"arpack"``, only the ``n_components`` largest eigenpairs of ``M = I - L`` by Lanczos on the CPU
    (:func:`_arpack_eigenvectors`, start vector seeded by ``seed``; falls back to ``eigh`` where ARPACK
    cannot run: N <= 64, ``n_components >= N - 1``, too few non-trivial eigenpairs); ``"auto"``
    (default) picks between them. Computed in float64; returns float64 on ``W``'s device.
    """
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"expected a square affinity, got {tuple(W.shape)}")
    n = W.shape[0]
    c = max(0, min(int(n_components), n))
    solver = resolve_eigen_solver(eigen_solver, n, c, W.device)
    w = W.to(torch.float64)
    w = (w + w.T) / 2  # a new tensor: the in-place steps below leave W alone
    w.fill_diagonal_(0)  # csgraph.laplacian ignores self-loops
    deg = w.sum(1)
    isolated = deg == 0
    dd = torch.where(isolated, torch.ones_like(deg), deg.clamp(min=0).sqrt())
    lap = w.div_(dd[:, None]).div_(dd[None, :]).neg_()  # -(w / dd_i) / dd_j, in place (N x N memory)
    del w
    lap.fill_diagonal_(1)
    lap = (lap + lap.T) / 2
    if n == 0 or c == 0:
        return torch.zeros((n, c), dtype=torch.float64, device=W.device)
    if solver == "arpack":
        m = lap.neg_()  # M = I - L, in place (exact): zero diagonal, zero rows at isolated nodes
        m.fill_diagonal_(0)
        m_np = m.cpu().numpy()
        # connected (the usual case) when every off-diagonal entry is nonzero; else its components
        full = np.count_nonzero(m_np) == n * (n - 1)
        comp = np.zeros(n, dtype=np.int64) if full else connected_components(m_np, directed=False)[1]
        dd_np = dd.cpu().numpy()
        vecs = _arpack_eigenvectors(m_np, dd_np, isolated.cpu().numpy(), comp, c, seed)
        if vecs is not None:
            return _sign_flip(torch.as_tensor(vecs / dd_np[:, None], dtype=torch.float64).to(W.device))
        lap = m.neg_()  # ARPACK cannot run here: back to L (bit-identical) for eigh
        lap.fill_diagonal_(1)
    _, vecs = torch.linalg.eigh(lap)  # ascending eigenvalues
    emb = vecs[:, :c] / dd[:, None]
    return _sign_flip(emb)


def _arpack_eigenvectors(
    a, dd: np.ndarray, isolated: np.ndarray, comp: np.ndarray, c: int, seed: int
) -> np.ndarray | None:
    """Eigenvectors (N, c), orthonormal, for the c smallest eigenvalues of ``L = I - a`` in ascending
    order (= the c largest of ``a``, descending), not yet divided by ``dd`` nor sign-flipped; ``None``
    where ARPACK cannot run (the caller then uses the dense ``eigh``): ``N <= 64``, ``c >= N - 1``, or
    ``c`` reaching into the last non-trivial eigenpairs. Shared by the dense ``"arpack"`` solver and
    the sparse kNN path.

    ``a = D^-1/2 W D^-1/2`` (N, N), symmetric, float64, zero diagonal, zero rows / columns at the
    ``isolated`` nodes: a dense ``np.ndarray`` or a scipy sparse matrix (only ``a @ v`` is used);
    ``dd = sqrt(deg)`` (1 at isolated nodes); ``comp`` the connected component of each node.

    * **Exact null space of L first**: one vector ``dd / |dd|`` per component with an edge (in order
      of each component's first node), then deflated, since Lanczos misses copies of an *exactly*
      repeated eigenvalue (1 of ``a``, once per component). With at least c components these are
      the embedding.
    * **Isolated nodes** (eigenvalue 1 of L, 0 of ``a``, eigenvector ``e_i``, repeated as well) are
      deflated too and merged back by eigenvalue: they enter only if ``a``'s other wanted
      eigenvalues reach below 0. Deflation: Lanczos runs on ``P a P - 2 (I - P)``, ``P`` the
      projector off both, so the deflated directions sit at -2, below ``a``'s spectrum [-1, 1], and
      can never be returned, even when ARPACK restarts from a random vector after an invariant
      subspace (tight clusters make ``a`` nearly a multiple of the identity there).
    * **Lanczos** on the rest: ``eigsh(op, k=c - #components, which="LA")`` (implicitly restarted,
      float64, ``ncv = max(2k + 1, 20)``, tol 1e-10, a uniform(-1, 1) start vector seeded by ``seed``
      as sklearn's ``_init_arpack_v0``, projected onto that space). Near- (not exactly) degenerate
      eigenvalues are resolved; a degenerate eigenspace's basis may depend on the start vector, and
      further exactly repeated eigenvalues among the wanted ones (symmetric graphs) may be missed
      (as in sklearn's ARPACK path; the dense ``eigh`` has neither limitation).
    Cost: ``ncv``-vector restarts of mat-vecs with ``a`` (dense: N^2 float64 reads each, memory bound)
    plus O(N ncv^2) orthogonalisation; no factorization.
    """
    n = a.shape[0]
    if n <= 64 or c >= n - 1:
        return None
    comp = np.where(isolated, -1, comp)
    kept = np.unique(comp[comp >= 0])  # components in order of their first node
    q = np.zeros((n, len(kept)))
    if len(kept):
        col = np.searchsorted(kept, comp[~isolated])
        q[np.flatnonzero(~isolated), col] = dd[~isolated]
        q /= np.linalg.norm(q, axis=0, keepdims=True)
    rest = c - q.shape[1]
    if rest <= 0:
        return q[:, :c]
    n_eff = n - int(isolated.sum()) - q.shape[1]  # dimension of the space Lanczos runs in
    if rest >= n_eff - 1:
        return None

    def deflated(v):  # P a P - 2 (I - P), P the projector off span(Q) and the isolated coordinates
        v = v.reshape(n, -1)
        u = v - q @ (q.T @ v)  # (Q is 0 at isolated nodes: the two projections commute)
        u[isolated] = 0
        out = a @ u
        out = out - q @ (q.T @ out)
        out[isolated] = 0
        return out - 2.0 * (v - u)

    op = LinearOperator((n, n), matvec=deflated, matmat=deflated, dtype=np.float64)
    v0 = np.random.RandomState(seed).uniform(-1, 1, n)
    v0[isolated] = 0
    v0 -= q @ (q.T @ v0)
    vals, vecs = eigsh(op, k=rest, which="LA", v0=v0, ncv=min(n_eff, max(2 * rest + 1, 20)), tol=1e-10)
    iso = np.flatnonzero(isolated)[:rest]
    if len(iso):  # isolated nodes: eigenvalue 0 of a, eigenvector e_i
        e = np.zeros((n, len(iso)))
        e[iso, np.arange(len(iso))] = 1.0
        vals, vecs = np.concatenate([vals, np.zeros(len(iso))]), np.concatenate([vecs, e], axis=1)
    order = np.argsort(-vals, kind="stable")[:rest]  # descending in a = ascending in L
    return np.concatenate([q, vecs[:, order]], axis=1)


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
      neighbour distances (docs/method.md sec. 3.2's dense sigma = mean over all N^2 pairs would need every pair;
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

    **Solver**: :func:`_arpack_eigenvectors` (shared with the dense ``eigen_solver="arpack"``): the
    smallest eigenpairs of L are the largest of ``A = D^-1/2 W D^-1/2`` (spectrum in [-1, 1]), found by
    ``eigsh(A, which="LA")`` (implicitly restarted Lanczos, only sparse mat-vecs, seeded start vector
    as sklearn's ``_init_arpack_v0``) after deflating the exact null space of L, one vector
    ``dd / |dd|`` per connected component with an edge (``csgraph.connected_components``), since
    Lanczos misses copies of an *exactly* repeated eigenvalue (a kNN graph of separated clusters falls
    apart into components; isolated nodes are deflated and merged back likewise); with at least c
    components the embedding is c component indicators (scaled). No factorization: sklearn's
    shift-invert (``sigma=1``) needs a sparse LU of ``L + I``, whose fill-in on a kNN graph of
    high-dimensional data grows towards dense at large N. Falls back to the dense ``eigh``
    (:func:`spectral_embedding`) when ``n_components >= N - 1`` or N <= 64 (ARPACK needs c < N).
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
    vecs = _arpack_eigenvectors(a, dd, isolated, connected_components(w, directed=False)[1], c, seed)
    if vecs is None:  # where ARPACK cannot run (small N, c >= N - 1): the dense eigh
        return spectral_embedding(torch.as_tensor(W.toarray(), dtype=torch.float64), c, seed, eigen_solver="eigh")
    return _sign_flip(torch.as_tensor(vecs / dd[:, None], dtype=torch.float64))


def spectral_clustering(
    x: Tensor,
    num_clusters: int,
    seed: int,
    n_init: int = 10,
    affinity: str = "dense",
    n_neighbors: int = 10,
    eigen_solver: str = "auto",
) -> tuple[Tensor, Tensor | sp.csr_matrix]:
    """COPL spectral clustering of ``x`` (N, D): Gaussian affinity, normalized-Laplacian embedding with
    ``n_components = min(K, N)``, seeded k-means (``n_init`` restarts) on the embedding.

    ``affinity="dense"`` (default, docs/method.md sec. 3.2): the fully connected graph; returns ``labels`` (N,) int64
    in [0, min(K, N)) on ``x``'s device and the affinity ``W`` (N, N), float64 on ``x``'s device (PLRI
    uses it). ``affinity="knn"``: :func:`knn_affinity` with ``n_neighbors`` (searched in ``x``'s dtype)
    + :func:`spectral_embedding_sparse`; returns ``labels`` as above and ``W`` as a
    ``scipy.sparse.csr_matrix`` (N, N) float64. Clusters may come out empty (duplicate points).
    ``eigen_solver``: the dense embedding's solver (:func:`spectral_embedding`: ``"auto"``, ``"eigh"``
    or ``"arpack"``); the knn graph is always embedded with ARPACK (``"auto"`` / ``"arpack"`` only).
    """
    if affinity not in ("dense", "knn"):
        raise ValueError(f"affinity must be 'dense' or 'knn', got {affinity!r}")
    validate_eigen_solver(eigen_solver, affinity)
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
    emb = spectral_embedding(w, k, seed, eigen_solver=eigen_solver)
    labels, _ = kmeans(emb, k, seed=seed, n_init=n_init)
    return labels.to(x.device), w
