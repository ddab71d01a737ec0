"""Benchmark: vectorized ActivityNet detection mAP vs the plain-Python reference.

Run from the repository root:  .venv/bin/python benchmarks/bench_map.py [--videos N] [--detections D]
[--classes C]. Prints the case size, the fast time (best of 3), the reference time (one run), their
ratio and the largest |difference| of the per-threshold mAP; exits 1 if that exceeds 1e-9.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.reference.detection_map import reference_detection_map  # noqa: E402
from utal_lightning.eval.detection_map import ANET_TIOUS, detection_map  # noqa: E402

TOLERANCE = 1e-9


def make_case(n_videos: int, n_detections: int, n_classes: int, seed: int = 0):
    """ActivityNet-like data: 1-3 GT segments per video (mostly one class), ~n_detections per video,
    most of them on the video's class and near a GT segment, the rest on random classes and places."""
    rng = np.random.default_rng(seed)
    video_ids = np.array([f"video_{i:05d}" for i in range(n_videos)])
    class_names = np.array([f"class_{c:03d}" for c in range(n_classes)])
    duration = rng.uniform(30, 240, n_videos)
    main_class = rng.integers(0, n_classes, n_videos)

    # Ground truth: 1-3 segments per video; 10% of them of a second class.
    n_gt = rng.integers(1, 4, n_videos)
    gt_video = np.repeat(np.arange(n_videos), n_gt)
    gt_class = np.where(
        rng.random(len(gt_video)) < 0.9, main_class[gt_video], rng.integers(0, n_classes, len(gt_video))
    )
    length = rng.uniform(0.05, 0.4, len(gt_video)) * duration[gt_video]
    start = rng.uniform(0, 1, len(gt_video)) * (duration[gt_video] - length)
    gt_seg = np.stack([start, start + length], axis=1)

    # Detections: a per-video count around n_detections; 70% jittered copies of a GT of the video
    # (with its class), the rest random segments with the main class or a random class.
    n_det = np.maximum(1, rng.poisson(n_detections, n_videos))
    det_video = np.repeat(np.arange(n_videos), n_det)
    first_gt = np.cumsum(n_gt) - n_gt
    src = first_gt[det_video] + (rng.random(len(det_video)) * n_gt[det_video]).astype(int)
    near = rng.random(len(det_video)) < 0.7
    d = duration[det_video]
    center = np.where(near, gt_seg[src].mean(axis=1) + rng.normal(0, 0.05, len(d)) * d, rng.uniform(0, 1, len(d)) * d)
    half = np.where(
        near, (gt_seg[src, 1] - gt_seg[src, 0]) / 2 * rng.lognormal(0, 0.3, len(d)), rng.uniform(0.02, 0.3, len(d)) * d
    )
    det_seg = np.clip(np.stack([center - half, center + half], axis=1), 0, d[:, None])
    det_class = np.where(
        near,
        gt_class[src],
        np.where(rng.random(len(d)) < 0.5, main_class[det_video], rng.integers(0, n_classes, len(d))),
    )
    score = rng.random(len(d)) * np.where(near, 1.0, 0.6)

    return (
        video_ids[gt_video],
        gt_seg,
        class_names[gt_class],
        video_ids[det_video],
        det_seg,
        class_names[det_class],
        score,
        ANET_TIOUS,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=2000)
    parser.add_argument("--detections", type=int, default=100, help="detections per video (mean)")
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    case = make_case(args.videos, args.detections, args.classes, args.seed)
    print(
        f"case: {args.videos} videos, {len(case[0])} GT segments, {len(case[3])} detections, "
        f"{len(set(case[2].tolist()))} GT classes, {len(case[7])} tIoU thresholds"
    )

    fast_times = []
    for _ in range(3):
        t0 = time.perf_counter()
        fast = detection_map(*case)
        fast_times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    classes, ref_ap = reference_detection_map(*case)
    ref_time = time.perf_counter() - t0

    ref_map = np.asarray(ref_ap).mean(axis=1)
    diff = float(np.max(np.abs(fast.mAP - ref_map)))
    print(f"fast      : {min(fast_times):.3f} s (best of 3)")
    print(f"reference : {ref_time:.3f} s")
    print(f"speed-up  : {ref_time / min(fast_times):.1f}x")
    print("mAP       : " + " ".join(f"{k}={v:.4f}" for k, v in fast.as_dict().items()))
    print(f"max |mAP difference| over thresholds: {diff:.3g} (classes identical: {fast.classes == classes})")
    if diff > TOLERANCE or fast.classes != classes:
        print(f"FAIL: fast and reference disagree by more than {TOLERANCE:g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
