"""Benchmark: COPL spectral clustering (docs/method.md sec. 3.2) at ActivityNet training scale, and the sparse kNN path.

Run from the repository root:  .venv/bin/python benchmarks/bench_spectral.py [--n 4819] [--dim 2048]
[--k 100] [--neighbors 10] [--spread 0.3] [--seed 0] [--device cpu|cuda] [--large-n 100000]
[--large-dim 256] [--skip-large]

Data: N L2-normalised random clustered features (K Gaussian means scaled by ``--spread``, unit noise
per dimension, fixed seed), float32 (the pipeline's dtype). One run of each, wall clock, on
``--device`` (default: cuda if available, else cpu with ``torch.get_num_threads()`` threads; without
a CUDA device no GPU figure is measured). scikit-learn always runs on the CPU.

1. ``baseline``: scikit-learn ``SpectralClustering(n_clusters=K, affinity="precomputed",
   random_state=0)`` fitted on our dense affinity W (the affinity build is *not* in its time; ARPACK
   shift-invert: a dense LU of L + I, then Lanczos); ``ours``: :func:`spectral_clustering` (dense,
   default ``eigen_solver="auto"``: ARPACK Lanczos on the CPU for N = 4819, K = 100; the dense
   ``torch.linalg.eigh`` on a GPU) *including* building W (its affinity share is printed too).
   ``ratio`` = baseline / ours; NMI between the two partitions and to the truth.
2. ``eigensolver split``: the embedding alone (:func:`spectral_embedding` on the same W) with
   ``eigen_solver="eigh"`` (full dense decomposition, O(N^3): the tridiagonalisation bounds it on the
   CPU) and ``"arpack"`` (only the K wanted eigenpairs: bound by the Lanczos mat-vecs with the dense
   N x N float64 matrix, memory bound, and the O(N K^2) re-orthogonalisation), and which one
   ``"auto"`` picks here.
3. ``knn``: ``spectral_clustering(..., affinity="knn")`` on the same data: time, NMI to the dense
   partition and to the truth, nnz of its sparse W.
4. ``knn large``: the kNN path at ``--large-n`` x ``--large-dim`` (the dense path would need an
   N x N float64 matrix, 80 GB at N = 100,000, and an O(N^3) or N^2-per-mat-vec eigensolver: not run).

On a shared CPU the multi-threaded timings swing several-fold (BLAS threads oversubscribed);
``OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1`` gives steadier ones. One such run (1 thread, defaults):
sklearn 8.1 s, ours 9.6 s (0.84x; = W 3.4 s, float64 distances of 2048-d features, which sklearn's
time leaves out + ARPACK embedding 4.4 s + k-means), ``eigh`` embedding alone 33.5 s; NMI(ours,
sklearn) 0.987.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import SpectralClustering
from sklearn.metrics import normalized_mutual_info_score as nmi

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utal_lightning.pseudo.cluster import kmeans  # noqa: E402
from utal_lightning.pseudo.spectral import (  # noqa: E402
    gaussian_affinity,
    knn_affinity,
    resolve_eigen_solver,
    spectral_clustering,
    spectral_embedding,
    spectral_embedding_sparse,
)


def make_case(n: int, k: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, dim)) * spread
    group = rng.integers(0, k, n)
    x = means[group] + rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.as_tensor(x, dtype=torch.float32), group


def timed(fn, device: torch.device | None = None):
    sync = (lambda: torch.cuda.synchronize(device)) if device is not None and device.type == "cuda" else (lambda: None)
    sync()
    t = time.perf_counter()
    out = fn()
    sync()
    return out, time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4819)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=100, help="number of clusters")
    p.add_argument("--neighbors", type=int, default=10, help="kNN graph's n_neighbors")
    p.add_argument("--spread", type=float, default=0.3, help="scale of the cluster means (noise per dim = 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--large-n", type=int, default=100_000)
    p.add_argument("--large-dim", type=int, default=256)
    p.add_argument("--skip-large", action="store_true", help="skip the large kNN run")
    args = p.parse_args()

    dev = torch.device(args.device)
    if dev.type == "cuda":
        print(f"device: {dev} ({torch.cuda.get_device_name(dev)}); sklearn on cpu ({torch.get_num_threads()} threads)")
    else:
        gpu = "not measured (no CUDA device)" if not torch.cuda.is_available() else "not measured (--device cpu)"
        print(f"device: cpu ({torch.get_num_threads()} threads); GPU: {gpu}")
    x, y = make_case(args.n, args.k, args.dim, args.spread, args.seed)
    x = x.to(dev)
    k = min(args.k, args.n)
    auto = resolve_eigen_solver("auto", args.n, k, dev)
    print(f"data: N={args.n} D={args.dim} K={args.k} spread={args.spread} seed={args.seed}")

    (w, _), t_aff = timed(lambda: gaussian_affinity(x.to(torch.float64)), dev)
    (ours, w_ours), t_ours = timed(lambda: spectral_clustering(x, args.k, seed=0), dev)
    assert torch.equal(w, w_ours)
    w_np = w.cpu().numpy()
    sk = SpectralClustering(n_clusters=args.k, affinity="precomputed", random_state=0)
    base, t_base = timed(lambda: sk.fit(w_np).labels_)
    ours = ours.cpu().numpy()
    print(f"baseline sklearn SpectralClustering(precomputed W): {t_base:8.2f} s   NMI(truth)={nmi(y, base):.4f}")
    print(
        f"ours     spectral_clustering(dense, auto={auto}, incl. W): {t_ours:8.2f} s   NMI(truth)={nmi(y, ours):.4f}"
        f"   (W alone {t_aff:.2f} s)"
    )
    print(f"ratio    baseline / ours = {t_base / t_ours:.2f}x   NMI(ours, sklearn) = {nmi(base, ours):.4f}")

    emb_a, t_arpack = timed(lambda: spectral_embedding(w, k, 0, eigen_solver="arpack"), dev)
    emb_e, t_eigh = timed(lambda: spectral_embedding(w, k, 0, eigen_solver="eigh"), dev)
    qa, _ = torch.linalg.qr(emb_a.cpu())
    qe, _ = torch.linalg.qr(emb_e.cpu())
    sines = torch.linalg.svdvals(qe - qa @ (qa.T @ qe))  # sines of the principal angles
    print(
        f"eigensolver split (embedding alone, N={args.n}, {k} eigenpairs): eigh {t_eigh:.2f} s (O(N^3) on {dev.type}), "
        f"arpack {t_arpack:.2f} s (Lanczos on cpu)   auto -> {auto}   max sin(principal angle) {float(sines.max()):.1e}"
    )

    (knn, wk), t_knn = timed(
        lambda: spectral_clustering(x, args.k, seed=0, affinity="knn", n_neighbors=args.neighbors), dev
    )
    knn = knn.cpu().numpy()
    print(
        f"knn      spectral_clustering(knn, k={args.neighbors}):        {t_knn:8.2f} s   NMI(truth)={nmi(y, knn):.4f}"
        f"   NMI(knn, dense)={nmi(ours, knn):.4f}   nnz={wk.nnz}   speed-up vs dense {t_ours / t_knn:.2f}x"
    )

    if not args.skip_large:
        xl, yl = make_case(args.large_n, args.k, args.large_dim, args.spread, args.seed)
        xl = xl.to(dev)
        print(f"large data: N={args.large_n} D={args.large_dim} K={args.k}")
        # the steps of spectral_clustering(xl, K, seed=0, affinity="knn") timed one by one (same calls)
        wl, t_graph = timed(lambda: knn_affinity(xl, args.neighbors), dev)
        emb, t_eig = timed(lambda: spectral_embedding_sparse(wl, min(args.k, args.large_n), 0))
        (kl, _), t_km = timed(lambda: kmeans(emb, min(args.k, args.large_n), seed=0, n_init=10))
        t_large = t_graph + t_eig + t_km
        print(
            f"knn large spectral_clustering(knn, k={args.neighbors}):       {t_large:8.2f} s   "
            f"NMI(truth)={nmi(yl, kl.cpu().numpy()):.4f}"
            f"   nnz={wl.nnz}   (kNN graph {t_graph:.2f} s, eigsh {t_eig:.2f} s, k-means {t_km:.2f} s)"
        )
        print(f"          dense path at this N: not run (N x N float64 W = {args.large_n**2 * 8 / 1e9:.0f} GB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
