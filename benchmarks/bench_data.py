"""Benchmark: one training epoch's data time, the reference code's common practice vs ours, in one run.

Run from the repository root:  .venv/bin/python benchmarks/bench_data.py [--data DIR] [--train N]
[--segments 750] [--batch-size 16] [--workers 2] [--seed 0]

Data: the THUMOS-shaped synthetic preset (``thumos``: 200 training videos, 1024 + 1024 dims, L 400-6000
snippets), written once by ``write_synthetic_dataset("thumos", DIR, seed=0)`` into ``--data`` (default
/tmp/utal_bench/thumos) and reused when it is complete (has gt.json). ``--train N`` writes a smaller
copy (``num_train=N, num_test=2``; default directory /tmp/utal_bench/thumos_trainN) for a quick run.

Baseline (the common practice of the reference code): a ``Dataset`` whose ``__getitem__`` np.loads the
video's rgb and flow ``.npy`` files, concatenates them (RGB first), samples T positions with docs/method.md sec. 1.2's
training rule (``train_positions`` on one length) and returns a (T, D) float32 tensor;
``DataLoader(batch_size, shuffle=True, num_workers, drop_last=False)`` with a seeded generator.

Ours: ``UTALDataModule(root, num_segments=T, batch_size, store_dtype)``; ``setup("fit")`` reads every
video once (timed apart: the one-time load, which also reads the test split), then an epoch iterates
``train_dataloader()`` and applies ``on_after_batch_transfer`` to each batch, as the Trainer does: the
loader carries indices and sampling uniforms, the hook gathers the (B, T, D) float32 features from
the store. Run with the store in float32 and in bfloat16 (``--store-dtypes``). Pseudolabels are
all-zero with every video selected, so every epoch covers all N training videos.

On a CUDA device (absent: printed as not measured) the same epoch runs with the store on the GPU
(batches moved with ``non_blocking``, gathered there, synchronised once at the end) and with the
pinned-host fallback (gathered by the loader, then copied); the epoch's compute time for the
same batches is the per-step figure of ``benchmarks/bench_train.py`` times the batch count.

Each side runs one warm-up epoch, then one timed epoch. The files are read in the warm-up, so the
baseline's timed epoch reads from a warm page cache (its best case: a cold cache only makes it slower).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from utal_lightning.data.datamodule import UTALDataModule  # noqa: E402
from utal_lightning.data.layout import DatasetLayout, read_dataset  # noqa: E402
from utal_lightning.data.sampling import train_positions  # noqa: E402
from utal_lightning.data.synthetic import PRESETS, write_synthetic_dataset  # noqa: E402


class NpyVideos(Dataset):
    """The reference code's practice: every item reads its two .npy files from disk and samples T snippets."""

    def __init__(self, paths: list[tuple[Path, Path]], num_segments: int) -> None:
        self.paths, self.num_segments = paths, num_segments

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        rgb_path, flow_path = self.paths[i]
        features = np.concatenate([np.load(rgb_path), np.load(flow_path)], axis=1).astype(np.float32, copy=False)
        positions = train_positions(torch.tensor([features.shape[0]]), self.num_segments)[0]
        return torch.from_numpy(features[positions.numpy()])


def ensure_data(directory: Path, num_train: int | None) -> None:
    if (directory / "gt.json").is_file():
        print(f"data: reusing {directory}")
        return
    config = (
        PRESETS["thumos"]
        if num_train is None
        else dataclasses.replace(PRESETS["thumos"], num_train=num_train, num_test=2)
    )
    start = time.perf_counter()
    write_synthetic_dataset(config, directory, seed=0, overwrite=True)
    print(
        f"data: wrote {directory} ({config.num_train} train / {config.num_test} test videos) "
        f"in {time.perf_counter() - start:.0f} s"
    )


def du(paths: list[Path]) -> float:
    return sum(p.stat().st_size for p in paths) / 2**30


def epoch(loader_factory, get_features) -> tuple[float, list[tuple[int, ...]]]:
    """Time one full pass over a fresh loader; return (seconds, shapes of the batches' features)."""
    start = time.perf_counter()
    shapes = []
    for batch in loader_factory():
        shapes.append(tuple(get_features(batch).shape))
    return time.perf_counter() - start, shapes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=None, help="dataset cache dir (default /tmp/utal_bench/thumos[_trainN])"
    )
    parser.add_argument("--train", type=int, default=None, help="training videos (default: the preset's 200)")
    parser.add_argument("--segments", type=int, default=750)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="baseline DataLoader workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--store-dtypes", default="float32,bfloat16", help="comma-separated store dtypes of ours")
    args = parser.parse_args()
    directory = args.data or Path("/tmp/utal_bench") / ("thumos" if args.train is None else f"thumos_train{args.train}")
    directory = directory.expanduser().absolute()

    ensure_data(directory, args.train)
    index = read_dataset(DatasetLayout(root=directory))
    layout = index.layout  # resolved: its file layout found under the root
    train_ids = index.train_ids
    if args.train is not None and len(train_ids) != args.train:
        print(f"note: {directory} holds {len(train_ids)} training videos, not --train {args.train} (reused as is)")
    paths = [layout.feature_files(layout.train_split, vid) for vid in train_ids]
    test_files = [path for vid in index.test_ids for path in layout.feature_files(layout.test_split, vid)]
    n = len(train_ids)
    t, b = args.segments, args.batch_size

    print(
        f"machine: {os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads"
    )
    print(
        f"dataset: {directory}: {n} train videos, {du([p for pair in paths for p in pair]):.2f} GiB train features "
        f"on disk (+ {du(test_files):.2f} GiB test, {len(index.test_ids)} videos)"
    )
    print(
        f"epoch: {n} videos, T={t}, batch {b} ({-(-n // b)} batches); one warm-up epoch, then one timed epoch; "
        "the baseline's timed epoch reads from a warm page cache (the warm-up read every file)"
    )

    # ---------------------------------------------------------------- baseline
    dataset = NpyVideos(paths, t)

    def baseline_loader() -> DataLoader:
        generator = torch.Generator().manual_seed(args.seed)
        return DataLoader(
            dataset, batch_size=b, shuffle=True, num_workers=args.workers, drop_last=False, generator=generator
        )

    warm, _ = epoch(baseline_loader, lambda x: x)
    base_time, base_shapes = epoch(baseline_loader, lambda x: x)
    print(
        f"baseline (np.load per item, DataLoader num_workers={args.workers}): warm-up epoch {warm:.2f} s, "
        f"timed epoch {base_time:.2f} s"
    )

    # ---------------------------------------------------------------- ours
    def datamodule(store_dtype: str, trainer=None) -> tuple[UTALDataModule, float, float]:
        start = time.perf_counter()
        dm = UTALDataModule(root=directory, num_segments=t, batch_size=b, seed=args.seed, store_dtype=store_dtype)
        dm.trainer = trainer  # None: CPU, epoch 0
        init_time = time.perf_counter() - start
        start = time.perf_counter()
        dm.setup("fit")
        load_time = time.perf_counter() - start
        dm.set_pseudolabels(torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.bool), epochs=1)
        return dm, init_time, load_time

    def batches(dm: UTALDataModule, device: torch.device):
        for batch in dm.train_dataloader():
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            yield dm.on_after_batch_transfer(batch, 0)

    cpu = torch.device("cpu")
    ours_time, ours_shapes, dm = None, None, None
    for store_dtype in args.store_dtypes.split(","):
        dm_, init_time, load_time = datamodule(store_dtype)
        warm, _ = epoch(lambda dm_=dm_: batches(dm_, cpu), lambda x: x["features"])
        timed, shapes = epoch(lambda dm_=dm_: batches(dm_, cpu), lambda x: x["features"])
        print(
            f"ours (UTALDataModule, store {store_dtype}): one-time header scan {init_time:.2f} s + setup('fit') "
            f"load {load_time:.2f} s (train {dm_.train_store.nbytes / 2**30:.2f} GiB + test "
            f"{dm_.test_store.nbytes / 2**30:.2f} GiB in RAM); warm-up epoch {warm:.2f} s, timed epoch {timed:.3f} s "
            f"= {base_time / timed:.1f}x the baseline"
        )
        if ours_time is None:
            ours_time, ours_shapes, dm = timed, shapes, dm_

    # ---------------------------------------------------------------- checks
    same_shapes = sorted(base_shapes) == sorted(ours_shapes)
    print(
        f"batch shapes: baseline {sorted(set(base_shapes))} x {len(base_shapes)}, "
        f"ours {sorted(set(ours_shapes))} x {len(ours_shapes)}: {'identical' if same_shapes else 'DIFFERENT'}"
    )
    reference = np.concatenate([np.load(p) for p in paths[0]], axis=1).astype(np.float32)
    same_video = torch.equal(dm.train_store.video(0).float(), torch.from_numpy(reference))
    print(f"video 0 features in the first store equal np.load + concatenate: {same_video}")
    floor = copy_floor(dm, b, t)
    print(
        f"floor: writing one epoch's {len(ours_shapes)} float32 batches ({n * t * dm.feature_dim * 4 / 2**30:.2f} GiB) "
        f"with one index_select per batch from a contiguous tensor takes {floor:.3f} s on this machine"
    )

    ratio = base_time / ours_time
    print(
        f"CPU epoch data time: baseline {base_time:.2f} s / ours {ours_time:.3f} s = {ratio:.1f}x "
        f"(target >= 10x: {'met' if ratio >= 10 else 'NOT met'})"
    )
    if torch.cuda.is_available():
        import lightning as L

        cuda = torch.device("cuda", 0)
        for placement in ("device", "host"):
            trainer = L.Trainer(accelerator="cuda", devices=1, logger=False, enable_checkpointing=False)
            gpu_dm = UTALDataModule(
                root=directory, num_segments=t, batch_size=b, seed=args.seed, store_device=placement
            )
            gpu_dm.trainer = trainer
            gpu_dm.setup("fit")
            gpu_dm.set_pseudolabels(torch.zeros(n, dtype=torch.long), torch.ones(n, dtype=torch.bool), epochs=1)

            def gpu_epoch(gpu_dm: UTALDataModule = gpu_dm) -> float:
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in batches(gpu_dm, cuda):
                    pass
                torch.cuda.synchronize()
                return time.perf_counter() - start

            gpu_epoch()
            print(
                f"GPU ({torch.cuda.get_device_name()}), store on the {placement}: one epoch's data time "
                f"{gpu_epoch() * 1000:.1f} ms ({-(-n // b)} batches)"
            )
    else:
        print("GPU: not measured (no CUDA device)")
    return 0 if same_shapes and same_video else 1


def copy_floor(dm: UTALDataModule, batch_size: int, num_segments: int) -> float:
    """Seconds to gather one epoch of (B, T) rows from the store with fixed positions: what any
    in-memory data path must at least spend on this machine (memory bandwidth)."""
    features = (
        dm.train_store.features.float() if dm.train_store.features.dtype != torch.float32 else dm.train_store.features
    )
    n = len(dm.train_store)
    rows = torch.randint(0, features.shape[0], (n, num_segments))
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        features.index_select(0, rows[i : i + batch_size].reshape(-1))
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
