"""Benchmark: COPL spectral clustering (SPEC 3.2) at ActivityNet training scale, and the sparse kNN path.

Run from the repository root:  .venv/bin/python benchmarks/bench_spectral.py [--n 4819] [--dim 2048]
[--k 100] [--neighbors 10] [--spread 0.3] [--seed 0] [--large-n 100000] [--large-dim 256] [--skip-large]

Data: N L2-normalised random clustered features (K Gaussian means scaled by ``--spread``, unit noise
per dimension, fixed seed), float32 (the pipeline's dtype). One run of each, wall clock, CPU
(``torch.get_num_threads()`` threads; no GPU figure is measured here).

1. ``baseline``: scikit-learn ``SpectralClustering(n_clusters=K, affinity="precomputed",
   random_state=0)`` fitted on our dense affinity W (the affinity build is *not* in its time);
   ``ours``: :func:`spectral_clustering` (dense, default) *including* building W (its affinity share
   is printed too). ``ratio`` = baseline / ours; NMI between the two partitions and to the truth.
2. ``knn``: ``spectral_clustering(..., affinity="knn")`` on the same data: time, NMI to the dense
   partition and to the truth, nnz of its sparse W.
3. ``knn large``: the kNN path at ``--large-n`` x ``--large-dim`` (the dense path would need an
   N x N float64 matrix, 80 GB at N = 100,000, and an O(N^3) eigendecomposition: not run).
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

from utal_lightning.pseudo.spectral import (  # noqa: E402
    gaussian_affinity,
    knn_affinity,
    spectral_clustering,
    spectral_embedding,
    spectral_embedding_sparse,
)
from utal_lightning.pseudo.cluster import kmeans  # noqa: E402


def make_case(n: int, k: int, dim: int, spread: float, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(k, dim)) * spread
    group = rng.integers(0, k, n)
    x = means[group] + rng.normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return torch.as_tensor(x, dtype=torch.float32), group


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4819)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--k", type=int, default=100, help="number of clusters")
    p.add_argument("--neighbors", type=int, default=10, help="kNN graph's n_neighbors")
    p.add_argument("--spread", type=float, default=0.3, help="scale of the cluster means (noise per dim = 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--large-n", type=int, default=100_000)
    p.add_argument("--large-dim", type=int, default=256)
    p.add_argument("--skip-large", action="store_true", help="skip the large kNN run")
    args = p.parse_args()

    print(f"device: cpu ({torch.get_num_threads()} threads); GPU: not measured (no GPU lent)")
    x, y = make_case(args.n, args.k, args.dim, args.spread, args.seed)
    print(f"data: N={args.n} D={args.dim} K={args.k} spread={args.spread} seed={args.seed}")

    (w, _), t_aff = timed(lambda: gaussian_affinity(x.to(torch.float64)))
    (ours, w_ours), t_ours = timed(lambda: spectral_clustering(x, args.k, seed=0))
    assert torch.equal(w, w_ours)
    sk = SpectralClustering(n_clusters=args.k, affinity="precomputed", random_state=0)
    base, t_base = timed(lambda: sk.fit(w.numpy()).labels_)
    ours = ours.numpy()
    print(f"baseline sklearn SpectralClustering(precomputed W): {t_base:8.2f} s   NMI(truth)={nmi(y, base):.4f}")
    print(
        f"ours     spectral_clustering(dense, incl. W):     {t_ours:8.2f} s   NMI(truth)={nmi(y, ours):.4f}"
        f"   (W alone {t_aff:.2f} s)"
    )
    _, t_emb = timed(lambda: spectral_embedding(w, min(args.k, args.n), 0))
    print(f"         of which dense eigendecomposition (torch.linalg.eigh, O(N^3)): {t_emb:.2f} s")
    print(f"ratio    baseline / ours = {t_base / t_ours:.2f}x   NMI(ours, sklearn) = {nmi(base, ours):.4f}")

    (knn, wk), t_knn = timed(lambda: spectral_clustering(x, args.k, seed=0, affinity="knn", n_neighbors=args.neighbors))
    knn = knn.numpy()
    print(
        f"knn      spectral_clustering(knn, k={args.neighbors}):        {t_knn:8.2f} s   NMI(truth)={nmi(y, knn):.4f}"
        f"   NMI(knn, dense)={nmi(ours, knn):.4f}   nnz={wk.nnz}   speed-up vs dense {t_ours / t_knn:.2f}x"
    )

    if not args.skip_large:
        xl, yl = make_case(args.large_n, args.k, args.large_dim, args.spread, args.seed)
        print(f"large data: N={args.large_n} D={args.large_dim} K={args.k}")
        # the steps of spectral_clustering(xl, K, seed=0, affinity="knn") timed one by one (same calls)
        wl, t_graph = timed(lambda: knn_affinity(xl, args.neighbors))
        emb, t_eig = timed(lambda: spectral_embedding_sparse(wl, min(args.k, args.large_n), 0))
        (kl, _), t_km = timed(lambda: kmeans(emb, min(args.k, args.large_n), seed=0, n_init=10))
        t_large = t_graph + t_eig + t_km
        print(
            f"knn large spectral_clustering(knn, k={args.neighbors}):       {t_large:8.2f} s   NMI(truth)={nmi(yl, kl.numpy()):.4f}"
            f"   nnz={wl.nnz}   (kNN graph {t_graph:.2f} s, eigsh {t_eig:.2f} s, k-means {t_km:.2f} s)"
        )
        print(f"          dense path at this N: not run (N x N float64 W = {args.large_n**2 * 8 / 1e9:.0f} GB, O(N^3) eigh)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
