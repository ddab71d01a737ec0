"""Benchmark: detections of one THUMOS-length video (proposals + cluster->class map + NMS) vs the slow reference.

Run from the repository root:  .venv/bin/python benchmarks/bench_proposals.py [--positions T]
[--clusters K] [--sigma S] [--seed N] [--repeats R] [--threads N] [--no-actionness].

The case: T map positions (750), K clusters (20) of which 2 are kept (class scores 0.5 and 0.3, the
rest 0.01, class threshold 0.2), Hungarian (identity) mapping, CoLA's 10 CAS thresholds
``arange(0, 0.25, 0.025)`` and 33 actionness thresholds ``arange(0.1, 0.925, 0.025)``, scale 24,
NMS IoU 0.5. The maps are Gaussian-smoothed noise (``--sigma`` snippets; 0 = white noise, the many
short runs of an untrained model) turned into a softmax CAS; the actionness is another such sequence.

Prints the fast times (best of ``--repeats``) of ``detect_video`` (proposals), of the block-wise NMS
and of ``nms`` on the same rows, and of ``detect_with_mapping`` (everything); the reference time
(``tests.reference.proposals.reference_detect_video`` + the mapping + ``nms``, one run); their ratio
and the largest |difference| of the detections; exits 1 if that exceeds 1e-9 or the shapes differ.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reference.proposals import reference_detect_video  # noqa: E402
from utal_lightning.eval.detect import _nms_by_label, detect_with_mapping  # noqa: E402
from utal_lightning.eval.nms import nms  # noqa: E402
from utal_lightning.eval.proposals import detect_video, select_classes  # noqa: E402

TOLERANCE = 1e-9
CAS_THRESHOLDS = list(np.arange(0, 0.25, 0.025))
ACTIONNESS_THRESHOLDS = list(np.arange(0.1, 0.925, 0.025))
CLASS_THRESHOLD, NMS_IOU, SCALE, SECONDS_PER_STEP = 0.2, 0.5, 24, 0.64


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    x = rng.normal(size=shape)
    if sigma > 0:
        taps = np.arange(-int(4 * sigma), int(4 * sigma) + 1)
        kernel = np.exp(-0.5 * (taps / sigma) ** 2)
        x = np.apply_along_axis(lambda v: np.convolve(v, kernel / kernel.sum(), mode="same"), 0, x)
    return x


def make_case(positions: int, clusters: int, sigma: float, seed: int):
    rng = np.random.default_rng(seed)
    logits = 3 * _smooth_noise(rng, (positions, clusters), sigma)
    cas = np.exp(logits - logits.max(1, keepdims=True))
    cas = torch.from_numpy(cas / cas.sum(1, keepdims=True)).float()
    actionness = torch.from_numpy(_smooth_noise(rng, (positions,), sigma)).float()
    scores = torch.full((clusters,), 0.01)
    scores[3], scores[min(11, clusters - 1)] = 0.5, 0.3
    return cas, actionness, scores, torch.eye(clusters)


def best_of(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def reference(cas, actionness, scores, mapping, actionness_thresholds) -> torch.Tensor:
    keep = select_classes(scores, CLASS_THRESHOLD).tolist()
    rows = reference_detect_video(
        cas.double().numpy(),
        scores.double().numpy(),
        keep,
        CAS_THRESHOLDS,
        SECONDS_PER_STEP,
        actionness=None if actionness is None else actionness.double().numpy(),
        actionness_thresholds=actionness_thresholds,
        scale=SCALE,
    )
    out = [
        [r[0], r[1], r[2] * float(mapping[int(r[3]), c]), float(c)]
        for r in rows
        for c in range(mapping.shape[1])
        if float(mapping[int(r[3]), c]) > 0
    ]
    out = torch.tensor(out, dtype=torch.float64).reshape(-1, 4)
    return out[nms(out[:, :2], out[:, 2], NMS_IOU, labels=out[:, 3])] if out.shape[0] else out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=750)
    parser.add_argument("--clusters", type=int, default=20)
    parser.add_argument("--sigma", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-actionness", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    cas, actionness, scores, mapping = make_case(args.positions, args.clusters, args.sigma, args.seed)
    a_thr = [] if args.no_actionness else ACTIONNESS_THRESHOLDS
    a_map = None if args.no_actionness else actionness
    keep = select_classes(scores, CLASS_THRESHOLD)
    kw = dict(actionness=a_map, actionness_thresholds=a_thr)

    def proposals():
        return detect_video(cas, scores, keep, CAS_THRESHOLDS, SECONDS_PER_STEP, scale=SCALE, **kw)

    rows = proposals()
    t_props = best_of(proposals, args.repeats)
    t_fast_nms = best_of(lambda: _nms_by_label(rows[:, :2], rows[:, 2], NMS_IOU, rows[:, 3]), args.repeats)
    t_nms = best_of(lambda: nms(rows[:, :2], rows[:, 2], NMS_IOU, labels=rows[:, 3]), max(1, args.repeats // 5))

    def fast():
        return detect_with_mapping(
            cas, scores, mapping, SECONDS_PER_STEP, CAS_THRESHOLDS, CLASS_THRESHOLD, NMS_IOU, scale=SCALE, **kw
        )

    got = fast()
    t_fast = best_of(fast, args.repeats)
    start = time.perf_counter()
    want = reference(cas, a_map, scores, mapping, a_thr)
    t_ref = time.perf_counter() - start

    same_shape = tuple(got.shape) == tuple(want.shape)
    diff = float((got - want).abs().max()) if same_shape and got.numel() else (0.0 if same_shape else float("inf"))
    print(
        f"T={args.positions} K={args.clusters} kept={keep.numel()} sigma={args.sigma} "
        f"thresholds={len(CAS_THRESHOLDS)}+{len(a_thr)} threads={args.threads}: "
        f"{rows.shape[0]} proposals, {got.shape[0]} detections"
    )
    print(f"  detect_video (proposals)    {t_props * 1e3:9.2f} ms")
    print(f"  block-wise NMS              {t_fast_nms * 1e3:9.2f} ms   (nms on the same rows {t_nms * 1e3:.2f} ms)")
    print(f"  detect_with_mapping (total) {t_fast * 1e3:9.2f} ms")
    print(f"  reference (one run)         {t_ref * 1e3:9.2f} ms   ratio {t_ref / t_fast:.1f}x")
    print(f"  max |difference| {diff:.3g} (shapes {tuple(got.shape)} vs {tuple(want.shape)})")
    return 0 if same_shape and diff <= TOLERANCE else 1


if __name__ == "__main__":
    sys.exit(main())
