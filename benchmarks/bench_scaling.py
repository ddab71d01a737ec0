"""Benchmark: time and memory of one outer iteration's pseudolabel stage as the number of videos N grows.

Run from the repository root:  .venv/bin/python benchmarks/bench_scaling.py [--sizes 1000,10000,100000]
[--segments 50] [--dim 2048] [--clusters 100] [--methods copl,feel] [--affinity knn|dense]
[--out runs/bench/scaling.png] [--device auto|cuda|cpu]

One outer iteration's pseudolabel stage, as the loop runs it (the refresh callback's pass + the
pseudolabeler's ``assign``), split in three timed stages and built from the package's pure functions:

  pool     every training video through the inference model (``IOCNet`` in eval mode, no grad, batches
           of ``--pool-batch`` like the DataModule's pooling batches) on its T positions, then COPL's
           HAS (``has_attention(A_cs, A_ca, gamma, branch="both", use_filter=True)`` + ``has_pool``):
           (N, D) video features. (The loop pools with the votes of the iteration's epochs, which the
           same forward + ``has_attention`` pass produces each epoch.)
  cluster  COPL: ``spectral_clustering(features, K, seed, n_init, affinity, n_neighbors)``
  select   COPL: ``plri_confidence`` (affinity form) + ``plri_split(delta=0)`` + ``rank_within_clusters``
           of the confidence, as ``PLRISelector.select`` does.

With ``--methods copl,feel`` also FEEL on the same features: pool = the same forward + ``attention_pool``
(FEEL Eq. 1 with the class-agnostic attention), cluster = ``kmeans`` (``--feel-n-init`` restarts),
select = ``cci_refine`` (k1 20, k2 6, gamma 0.7) + ``iis_select`` at iteration 1 (variable schedule).
FEEL's k-means runs on the full D-dimensional features with scikit-learn (CPU): heavy at 100k.

Data: no files. Each video gets a class (K classes, class sizes uniform at random) and its T x D
snippet features are ``relu(spread * mean[class] + N(0, 1))``, mean ~ N(0, I) (non-negative, like I3D),
drawn per batch on the device from a generator seeded by (``--seed``, batch index): the same videos
for every run. Drawing a batch is timed apart and *not* counted in pool (the loop gathers them from its
feature store instead). The model has random weights (seeded): the cost of a pass does not depend on them.
The cost of clustering does depend on the data: with the default ``--spread 0.05`` the classes overlap
(NMI of the result about 0.7 at N = 1-2k) and the kNN graph is connected, the general case for the
Lanczos solver; well-separated classes (e.g. 0.5) make the graph fall apart into components, which
changes the eigensolver's work (up to a few times faster or slower at a given N).

Affinity: ``knn`` (the sparse k-nearest-neighbour graph + ARPACK; the default, because the dense one
needs N x N float64: 80 GB at N = 100k) or ``dense`` (docs/method.md sec. 3.2's fully connected graph; small N only).

Time: wall clock per stage (``torch.cuda.synchronize()`` around GPU work), after one untimed warm-up of
every stage on max(3K, 2 x pool batch) videos; ``--repeat`` runs of each N, the fastest is reported.
Memory per stage: on CUDA ``torch.cuda.max_memory_allocated`` (reset before each stage); always the
process's peak resident set size during the stage (VmHWM after resetting it through
/proc/self/clear_refs; where that is not possible, the process's high-water mark so far, marked "hwm").
Clustering's scikit-learn / SciPy parts (k-means, ARPACK) run on the CPU even with a GPU.

Growth: least squares of ``log(time) = a + b log(N)`` per stage and for the total; b is printed (b = 1:
linear, 2: quadratic). Plot: log-log time per stage vs N with the fits, and peak memory vs N, saved as
PNG to ``--out`` (written to a temporary file, then renamed).

Defaults: T = 50, D = 2048 (1024 RGB + 1024 flow), K = 100, hidden 512, HAS gamma 2, h_beta 1/2, top-l
divisor 2 (configs/anet_copl.yaml: ActivityNet's shape, the one where N grows), pooling batch 64,
spectral n_init 10, kNN 10 neighbours. Sizes: on CUDA 1000, 10000, 100000; without one it prints
``GPU: not measured (no CUDA device)`` and runs 1000, 2000, 4000 (about five minutes on 2 busy cores;
the model pass dominates there: about 0.6 GFLOP per video).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from process_memory import current_rss_mib, peak_rss_mib, reset_peak_rss  # noqa: E402

from utal_lightning.models.iocnet import IOCNet  # noqa: E402
from utal_lightning.pseudo.cci import cci_refine, rank_within_clusters  # noqa: E402
from utal_lightning.pseudo.cluster import kmeans  # noqa: E402
from utal_lightning.pseudo.has import has_attention, has_pool  # noqa: E402
from utal_lightning.pseudo.plri import plri_confidence, plri_split  # noqa: E402
from utal_lightning.pseudo.pooling import attention_pool  # noqa: E402
from utal_lightning.pseudo.select import iis_beta, iis_select  # noqa: E402
from utal_lightning.pseudo.spectral import spectral_clustering  # noqa: E402
from utal_lightning.utils import atomic_write  # noqa: E402

STAGES = ("pool", "cluster", "select")


# ---------------------------------------------------------------------------- memory and time
class Meter:
    """Times a stage and records its peak memory (CUDA allocated and CPU RSS)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, fn: Callable[[], Any]) -> tuple[Any, float, dict[str, float | bool]]:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        reset = reset_peak_rss()
        self.sync()
        start = time.perf_counter()
        out = fn()
        self.sync()
        seconds = time.perf_counter() - start
        memory: dict[str, float | bool] = {"rss_mib": peak_rss_mib(), "rss_reset": reset}
        if self.device.type == "cuda":
            memory["cuda_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out, seconds, memory


# ---------------------------------------------------------------------------- synthetic videos
class Videos:
    """N videos of K classes, drawn batch by batch on the device (same values every time)."""

    def __init__(
        self, n: int, segments: int, dim: int, clusters: int, spread: float, seed: int, device: torch.device
    ) -> None:
        g = torch.Generator().manual_seed(seed)
        self.classes = torch.randint(0, clusters, (n,), generator=g)
        self.means = (torch.randn(clusters, dim, generator=g) * spread).to(device)
        self.n, self.segments, self.dim, self.seed, self.device = n, segments, dim, seed, device

    def batch(self, start: int, stop: int, index: int) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + index)
        noise = torch.randn(stop - start, self.segments, self.dim, generator=g, device=self.device)
        mean = self.means[self.classes[start:stop].to(self.device)]
        return torch.relu(noise + mean[:, None, :])


# ---------------------------------------------------------------------------- stages
@torch.no_grad()
def pool_stage(
    model: IOCNet, videos: Videos, batch_size: int, gamma: float, meter: Meter, feel: bool
) -> dict[str, Any]:
    """Forward + HAS + pooling of every video; the batch draws are timed apart (not counted)."""
    copl, feel_rows = [], []
    t_draw = t_forward = t_has = t_attn = 0.0
    for index, start in enumerate(range(0, videos.n, batch_size)):
        stop = min(start + batch_size, videos.n)
        meter.sync()
        t0 = time.perf_counter()
        x = videos.batch(start, stop, index)
        meter.sync()
        t1 = time.perf_counter()
        out = model(x)
        meter.sync()
        t2 = time.perf_counter()
        agnostic = out.agnostic_attention if out.agnostic_attention is not None else out.attention
        weights = has_attention(out.attention, agnostic, gamma, branch="both", use_filter=True)
        copl.append(has_pool(x, weights).float())
        meter.sync()
        t3 = time.perf_counter()
        if feel:
            feel_rows.append(attention_pool(x, agnostic).float())
            meter.sync()
        t4 = time.perf_counter()
        t_draw, t_forward, t_has, t_attn = t_draw + t1 - t0, t_forward + t2 - t1, t_has + t3 - t2, t_attn + t4 - t3
    return {
        "copl": torch.cat(copl),
        "feel": torch.cat(feel_rows) if feel else None,
        "draw": t_draw,
        "forward": t_forward,
        "has": t_has,
        "attention_pool": t_attn,
    }


def copl_cluster(features: torch.Tensor, k: int, seed: int, args: argparse.Namespace):
    return spectral_clustering(
        features, k, seed=seed, n_init=args.n_init, affinity=args.affinity, n_neighbors=args.neighbors
    )


def copl_select(affinity: Any, labels: torch.Tensor) -> torch.Tensor:
    """``PLRISelector.select`` after the clustering: PLRI confidence (moved to the labels' device, as
    the selector does for the host-side kNN affinity), split, ranking."""
    confidence = plri_confidence(affinity, labels, form="affinity").to(labels.device)
    selected = plri_split(confidence, labels, 0.0)
    rank_within_clusters(-confidence[:, None].expand(-1, int(labels.max()) + 1).double(), labels)
    return selected


def feel_select(features: torch.Tensor, centres: torch.Tensor, iterations: int) -> torch.Tensor:
    refined = cci_refine(features, centres, k1=20, k2=6, gamma=0.7)
    return iis_select(refined.labels, refined.rank, iis_beta(1, iterations, "variable", 1.05))


def measure(n: int, args: argparse.Namespace, device: torch.device, methods: list[str]) -> dict[str, Any]:
    meter = Meter(device)
    torch.manual_seed(args.seed)
    model = (
        IOCNet(
            num_classes=args.clusters,
            feature_dim=args.dim,
            rgb_dim=args.dim // 2,
            hidden_dim=args.hidden,
            h_beta=args.h_beta,
            top_l_divisor=args.top_l_divisor,
        )
        .to(device)
        .eval()
    )
    videos = Videos(n, args.segments, args.dim, args.clusters, args.spread, args.seed, device)
    feel = "feel" in methods
    rss_before = current_rss_mib()
    pooled, _pool_seconds, pool_memory = meter.run(
        lambda: pool_stage(model, videos, args.pool_batch, args.has_gamma, meter, feel)
    )
    result: dict[str, Any] = {
        "n": n,
        "rss_before_mib": rss_before,
        "draw": pooled["draw"],
        "forward": pooled["forward"],
        "has": pooled["has"],
        "attention_pool": pooled["attention_pool"],
    }
    seed = args.seed + 1  # the loop's seed for iteration 1
    if "copl" in methods:
        features = pooled["copl"]
        (labels, affinity), cluster_seconds, cluster_memory = meter.run(
            lambda: copl_cluster(features, args.clusters, seed, args)
        )
        selected, select_seconds, select_memory = meter.run(lambda: copl_select(affinity, labels))
        result["copl"] = {
            "pool": pooled["forward"] + pooled["has"],
            "cluster": cluster_seconds,
            "select": select_seconds,
            "memory": {"pool": pool_memory, "cluster": cluster_memory, "select": select_memory},
            "selected_fraction": float(selected.float().mean()),
            "nmi": nmi(labels, videos.classes),
        }
        del affinity
    if feel:
        features = pooled["feel"]
        (labels, centres), cluster_seconds, cluster_memory = meter.run(
            lambda: kmeans(features, args.clusters, seed=seed, n_init=args.feel_n_init)
        )
        selected, select_seconds, select_memory = meter.run(
            lambda: feel_select(features, centres, args.feel_iterations)
        )
        result["feel"] = {
            "pool": pooled["forward"] + pooled["attention_pool"],
            "cluster": cluster_seconds,
            "select": select_seconds,
            "memory": {"pool": pool_memory, "cluster": cluster_memory, "select": select_memory},
            "selected_fraction": float(selected.float().mean()),
            "nmi": nmi(labels, videos.classes),
        }
    for method in methods:
        r = result[method]
        r["total"] = sum(r[s] for s in STAGES)
    return result


def warm_up(args: argparse.Namespace, device: torch.device, methods: list[str]) -> None:
    """One untimed pass of every stage on a few hundred videos: one-time costs (kernel selection,
    allocator growth, lazy imports) stay out of the first N's figures."""
    small = argparse.Namespace(**{**vars(args), "n_init": 1, "feel_n_init": 1})
    measure(max(3 * args.clusters, 2 * args.pool_batch), small, device, methods)


def nmi(labels: torch.Tensor, classes: torch.Tensor) -> float:
    from sklearn.metrics import normalized_mutual_info_score

    return float(normalized_mutual_info_score(classes.numpy(), labels.cpu().numpy()))


def growth(sizes: list[int], times: list[float]) -> float:
    slope, _ = np.polyfit(np.log(sizes), np.log(np.maximum(times, 1e-9)), 1)
    return float(slope)


def fmt_memory(memory: dict[str, Any]) -> str:
    rss = f"RSS {memory['rss_mib']:.0f}{'' if memory['rss_reset'] else ' (hwm)'}"
    return f"CUDA {memory['cuda_mib']:.0f} / {rss}" if "cuda_mib" in memory else rss


def plot(
    path: Path,
    sizes: list[int],
    rows: list[dict[str, Any]],
    methods: list[str],
    fits: dict[str, dict[str, float]],
    title: str,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.8))
    n = np.asarray(sizes, dtype=float)
    styles = {"copl": "-", "feel": "--"}
    for method in methods:
        for stage in (*STAGES, "total"):
            t = np.asarray([r[method][stage] for r in rows])
            b = fits[method][stage]
            (line,) = ax_t.plot(n, t, styles[method], marker="o", label=f"{method.upper()} {stage} (b = {b:.2f})")
            a = np.mean(np.log(np.maximum(t, 1e-9)) - b * np.log(n))
            ax_t.plot(n, np.exp(a + b * np.log(n)), ":", color=line.get_color(), linewidth=1)
        keys = (("cuda_mib", "CUDA allocated", "o"),) if "cuda_mib" in rows[0][method]["memory"]["pool"] else ()
        for key, what, marker in (*keys, ("rss_mib", "RSS", "s")):
            for stage in STAGES:
                ax_m.plot(
                    n,
                    [r[method]["memory"][stage][key] for r in rows],
                    styles[method],
                    marker=marker,
                    label=f"{method.upper()} {stage} ({what})",
                )
    for ax, ylabel in ((ax_t, "seconds"), (ax_m, "peak memory (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("videos N")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax_t.set_title("time per stage (dotted: least-squares fit)")
    ax_m.set_title("peak memory per stage")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default=None, help="comma list of N (default 1000,10000,100000 on CUDA; 1000,2000,4000 on CPU)"
    )
    parser.add_argument("--segments", type=int, default=50, help="T positions per video (default 50)")
    parser.add_argument("--dim", type=int, default=2048, help="D feature width, half RGB half flow (default 2048)")
    parser.add_argument("--clusters", type=int, default=100, help="K (default 100)")
    parser.add_argument("--hidden", type=int, default=512, help="IOCNet hidden width (default 512)")
    parser.add_argument("--h-beta", type=float, default=0.5, help="IOCNet h_beta (default 1/2, ActivityNet)")
    parser.add_argument("--top-l-divisor", type=int, default=2, help="IOCNet top-l divisor (default 2, ActivityNet)")
    parser.add_argument("--has-gamma", type=float, default=2.0, help="HAS gamma (default 2: k = T/2, ActivityNet)")
    parser.add_argument(
        "--pool-batch", type=int, default=64, help="videos per forward batch (default 64, the DataModule's)"
    )
    parser.add_argument("--methods", default="copl", help="comma list of copl, feel (default copl)")
    parser.add_argument("--affinity", choices=["knn", "dense"], default="knn", help="COPL spectral graph (default knn)")
    parser.add_argument("--neighbors", type=int, default=10, help="kNN graph neighbours (default 10)")
    parser.add_argument(
        "--n-init", type=int, default=10, help="k-means restarts on the spectral embedding (default 10)"
    )
    parser.add_argument("--feel-n-init", type=int, default=10, help="FEEL k-means restarts (default 10)")
    parser.add_argument("--feel-iterations", type=int, default=5, help="FEEL I_max for the IIS beta (default 5)")
    parser.add_argument(
        "--spread",
        type=float,
        default=0.05,
        help="scale of the class means (noise per dim = 1; default 0.05: overlapping classes, a connected kNN graph)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per N; the fastest total is kept (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    parser.add_argument("--no-tf32", action="store_true", help="keep fp32 matmuls in full precision on CUDA")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "runs/bench/scaling.png", help="plot (default runs/bench/scaling.png)"
    )
    args = parser.parse_args()

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device")
    cuda = torch.cuda.is_available() and args.device != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if not methods or any(m not in ("copl", "feel") for m in methods):
        raise SystemExit(f"error: --methods must list copl and/or feel, got {args.methods!r}")
    sizes = [int(s) for s in (args.sizes or ("1000,10000,100000" if cuda else "1000,2000,4000")).split(",")]
    if len(sizes) < 2:
        raise SystemExit("error: --sizes needs at least two N to fit a growth exponent")
    if args.affinity == "dense":  # W, its Laplacian and eigh's workspace: about three N x N float64 arrays
        limit = (
            torch.cuda.get_device_properties(device).total_memory
            if cuda
            else os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        )
        too_big = [n for n in sizes if 3 * 8 * n * n > limit]
        if too_big:
            raise SystemExit(
                f"error: the dense affinity needs about 3 x N^2 x 8 bytes: N = {too_big} exceed "
                f"{limit / 2**30:.0f} GiB of {'GPU' if cuda else 'system'} memory (use --affinity knn)"
            )
    if cuda and not args.no_tf32:
        torch.set_float32_matmul_precision("high")

    print(
        f"machine: {os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, device {device}"
        + (f" ({torch.cuda.get_device_name()}, TF32 matmuls {'off' if args.no_tf32 else 'on'})" if cuda else "")
    )
    if not cuda:
        print("GPU: not measured (no CUDA device)")
    print(
        f"setup: T = {args.segments}, D = {args.dim}, K = {args.clusters}, hidden {args.hidden}, "
        f"HAS gamma {args.has_gamma:g} (k = {max(1, int(args.segments // args.has_gamma))}), "
        f"pooling batch {args.pool_batch}, methods {','.join(methods)}, "
        f"COPL affinity {args.affinity} ({args.neighbors} neighbours), n_init {args.n_init}; sizes {sizes}"
    )

    warm_up(args, device, methods)
    rows = []
    for n in sizes:
        best = None
        for _ in range(args.repeat):
            result = measure(n, args, device, methods)
            if best is None or sum(result[m]["total"] for m in methods) < sum(best[m]["total"] for m in methods):
                best = result
        rows.append(best)
        r = best
        print(
            f"N = {n}: pass = forward {r['forward']:.2f} s + HAS {r['has']:.2f} s"
            + (f" (+ attention_pool {r['attention_pool']:.2f} s)" if "feel" in methods else "")
            + f"; drawing the synthetic batches {r['draw']:.2f} s (not counted); RSS before the stages "
            f"{r['rss_before_mib']:.0f} MiB (Python, torch, the model)"
        )
        for m in methods:
            mm = r[m]
            print(
                f"  {m.upper()}: pool {mm['pool']:.2f} s, cluster {mm['cluster']:.2f} s, select {mm['select']:.2f} s, "
                f"total {mm['total']:.2f} s; peak memory MiB pool {fmt_memory(mm['memory']['pool'])}, "
                f"cluster {fmt_memory(mm['memory']['cluster'])}, select {fmt_memory(mm['memory']['select'])}; "
                f"NMI vs the generating classes {mm['nmi']:.3f}, |P|/N {mm['selected_fraction']:.2f}"
            )
        sys.stdout.flush()

    fits: dict[str, dict[str, float]] = {}
    for m in methods:
        fits[m] = {stage: growth(sizes, [r[m][stage] for r in rows]) for stage in (*STAGES, "total")}
        print(
            f"growth exponent b (time ~ N^b, least squares on log-log over N = {sizes[0]}..{sizes[-1]}), {m.upper()}: "
            + ", ".join(f"{stage} {b:.2f}" for stage, b in fits[m].items())
        )
    title = (
        f"pseudolabel stage of one outer iteration on {device}"
        + (f" ({torch.cuda.get_device_name()})" if cuda else f" ({len(os.sched_getaffinity(0))} CPU cores)")
        + f": T={args.segments}, D={args.dim}, K={args.clusters}, affinity {args.affinity}"
    )
    plot(args.out, sizes, rows, methods, fits, title)
    print(f"plot: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
