"""Benchmark: localization and clustering quality on THUMOS- and ActivityNet-shaped synthetic data.

Run from the repository root:
    .venv/bin/python benchmarks/bench_quality.py [--presets thumos-lite anet-lite] [--seeds 0 1 2]
        [--methods baseline cola-weak iocnet-weak feel copl] [--data-dir data/bench] [--runs-dir runs/bench]
        [--out runs/bench/quality.json] [--keep] [--dry-run]

Per preset and seed: ``utal synth --preset P --seed S`` (written once into --data-dir/P-sS and reused),
then every method on it, each as its own ``utal fit`` process with the shipped config of the dataset
plus the CPU-sized fragment of configs/lite/ (widths and epoch budget; for anet-lite also the learning
rate, scaled to the widths) and the seed:

  baseline     ``utal baseline`` (mean-pooling k-means + feature-deviation actionness, no training)
  cola-weak    CoLA trained on the ground-truth video labels   <ds>_feel.yaml + ablations/weak.yaml
  iocnet-weak  IOCNet trained on the ground-truth video labels <ds>_copl.yaml + ablations/weak.yaml
  feel         FEEL, unsupervised                              <ds>_feel.yaml
  copl         COPL, unsupervised                              <ds>_copl.yaml

It prints mean +- std over the seeds of the pseudolabel NMI (first and last iteration), the test
mAP@0.5 and the average mAP of the last iteration, and checks the targets:

  every learned method beats the baseline on mAP@0.5 and on average mAP (means over seeds);
  each weakly supervised model beats its unsupervised use (cola-weak > feel, iocnet-weak > copl);
  FEEL's and COPL's last-iteration NMI beats their first by >= 0.05.

Every number comes from this run, except with --keep, which reuses the rows an earlier run left in --out
(same preset, seed and method: to continue an interrupted run or add seeds); per-seed numbers go to
--out (JSON), written after each method. Test labels are used only to score, never by a method.
About half an hour per seed for thumos-lite and over an hour for anet-lite on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
UTAL = [sys.executable, "-m", "utal_lightning.cli"]


@dataclass(frozen=True)
class Dataset:
    """How a preset is run: its shipped configs, test grid and evaluation thresholds."""

    name: str  # configs/<name>_{feel,copl}.yaml and configs/lite/<name>_*.yaml
    num_segments: int  # T of its configs (the baseline's test grid)
    tiou_preset: str  # utal evaluate --preset


DATASETS = {"thumos-lite": Dataset("thumos", 750, "thumos"), "anet-lite": Dataset("anet", 50, "anet")}
METHODS = ("baseline", "cola-weak", "iocnet-weak", "feel", "copl")
FIT_CONFIGS = {
    "cola-weak": ("feel", True),
    "iocnet-weak": ("copl", True),
    "feel": ("feel", False),
    "copl": ("copl", False),
}
UNSUPERVISED_OF = {"cola-weak": "feel", "iocnet-weak": "copl"}


def run(command: list[str], log: Path, dry_run: bool) -> None:
    print("  $", " ".join(str(c) for c in command), flush=True)
    if dry_run:
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    with open(log, "w") as out:
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise SystemExit(f"error: {' '.join(command[:4])}... exited {done.returncode}; see {log}")


def dataset_dir(args: argparse.Namespace, preset: str, seed: int) -> Path:
    data = args.data_dir / f"{preset}-s{seed}"
    if not (data / "gt.json").is_file():  # utal synth renames a complete folder into place
        run(
            [*UTAL, "synth", "--preset", preset, "--seed", str(seed), "--out", str(data), "--overwrite"],
            args.runs_dir / "logs" / f"synth-{preset}-s{seed}.log",
            args.dry_run,
        )
    return data


def run_baseline(args, preset: str, seed: int, data: Path, run_dir: Path) -> dict:
    spec = DATASETS[preset]
    detections, report = run_dir / "detections.json", run_dir / "map.json"
    log = run_dir / "baseline.log"
    run(
        [
            *UTAL,
            "baseline",
            "--root",
            str(data),
            "--out",
            str(detections),
            "--seed",
            str(seed),
            "--num-segments",
            str(spec.num_segments),
        ],
        log,
        args.dry_run,
    )
    if args.dry_run:
        return {}
    clustering = json.loads(log.read_text()[log.read_text().index("{") :])
    test_id = (data / "split_test.txt").read_text().split()[0]
    test_subset = json.loads((data / "gt.json").read_text())["database"][test_id]["subset"]
    run(
        [
            *UTAL,
            "evaluate",
            "--gt",
            str(data / "gt.json"),
            "--pred",
            str(detections),
            "--subset",
            test_subset,
            "--preset",
            spec.tiou_preset,
            "--out",
            str(report),
        ],
        run_dir / "evaluate.log",
        args.dry_run,
    )
    scores = json.loads(report.read_text())
    nmi = clustering["train_cluster/nmi"]  # one clustering: first = last
    return {"nmi_first": nmi, "nmi_last": nmi, "map_50": scores["0.5"], "map_avg": scores["average_mAP"]}


def run_fit(args, preset: str, seed: int, data: Path, method: str, run_dir: Path) -> dict:
    spec = DATASETS[preset]
    kind, weak = FIT_CONFIGS[method]
    configs = [f"configs/{spec.name}_{kind}.yaml", f"configs/lite/{spec.name}_{kind}.yaml"]
    if weak:
        configs.append("configs/ablations/weak.yaml")
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a fresh run, never a resume of an older one
    command = [
        *UTAL,
        "fit",
        *[x for c in configs for x in ("--config", c)],
        "--data.init_args.root",
        str(data),
        "--data.init_args.seed",
        str(seed),
        "--seed_everything",
        str(seed),
        "--trainer.default_root_dir",
        str(run_dir),
        "--preemption.auto_resume=false",
    ]
    run(command, args.runs_dir / "logs" / f"{preset}-s{seed}-{method}.log", args.dry_run)
    if args.dry_run:
        return {}
    history = json.loads((run_dir / "summary.json").read_text())["iterations"]
    last = history[-1]
    if "test" not in last:
        raise SystemExit(f"error: {run_dir}/summary.json: the last iteration has no test scores")
    weak_nmi = None  # weak supervision trains on the ground truth: its "NMI" is 1 by construction
    return {
        "nmi_first": weak_nmi if weak else history[0]["nmi"],
        "nmi_last": weak_nmi if weak else last["nmi"],
        "map_50": last["test"]["0.5"],
        "map_avg": last["test"]["average_mAP"],
        "iterations": len(history),
    }


def summarize(values: list[float | None]) -> tuple[float, float] | None:
    kept = [v for v in values if v is not None]
    return (float(np.mean(kept)), float(np.std(kept))) if kept else None


def fmt(stat: tuple[float, float] | None) -> str:
    return "-" if stat is None else f"{stat[0]:.3f} +- {stat[1]:.3f}"


def report(results: dict, presets: list[str], methods: list[str]) -> tuple[str, list[str]]:
    """The Markdown table and the target checks (FAIL lines first in the list)."""
    lines = [
        "| preset | method | NMI first | NMI last | mAP@0.5 | avg mAP | seeds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    checks: list[str] = []
    for preset in presets:
        stats = {}
        for method in methods:
            per_seed = list(results.get(preset, {}).get(method, {}).values())
            if not per_seed:
                continue
            stats[method] = {
                k: summarize([r[k] for r in per_seed]) for k in ("nmi_first", "nmi_last", "map_50", "map_avg")
            }
            s = stats[method]
            lines.append(
                f"| {preset} | {method} | {fmt(s['nmi_first'])} | {fmt(s['nmi_last'])} | {fmt(s['map_50'])} | "
                f"{fmt(s['map_avg'])} | {len(per_seed)} |"
            )

        def check(ok: bool, text: str, preset: str = preset) -> None:
            checks.append(f"{'PASS' if ok else 'FAIL'} {preset}: {text}")

        base = stats.get("baseline")
        for method, s in stats.items():
            if method == "baseline" or base is None:
                continue
            for key, name in (("map_50", "mAP@0.5"), ("map_avg", "avg mAP")):
                check(s[key][0] > base[key][0], f"{method} {name} {s[key][0]:.3f} > baseline {base[key][0]:.3f}")
        for weak, unsupervised in UNSUPERVISED_OF.items():
            if weak in stats and unsupervised in stats:
                for key, name in (("map_50", "mAP@0.5"), ("map_avg", "avg mAP")):
                    w, u = stats[weak][key][0], stats[unsupervised][key][0]
                    check(w > u, f"{weak} {name} {w:.3f} > {unsupervised} {u:.3f}")
        for method in ("feel", "copl"):
            if method in stats:
                first, last = stats[method]["nmi_first"][0], stats[method]["nmi_last"][0]
                check(last >= first + 0.05, f"{method} NMI last {last:.3f} >= first {first:.3f} + 0.05")
    return "\n".join(lines), sorted(checks, key=lambda c: not c.startswith("FAIL"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--data-dir", type=Path, default=ROOT / "data" / "bench")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs" / "bench")
    parser.add_argument(
        "--out", type=Path, default=None, help="per-seed results as JSON (default: RUNS_DIR/quality.json)"
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse the rows already in --out (same preset, seed, method) instead of running them again",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    out = args.out or args.runs_dir / "quality.json"
    results: dict = json.loads(out.read_text()) if args.keep and out.is_file() else {}
    started = time.perf_counter()
    for preset in args.presets:
        for seed in args.seeds:
            data = dataset_dir(args, preset, seed)
            for method in args.methods:
                kept = results.get(preset, {}).get(method, {}).get(str(seed))
                if kept is not None:
                    print(f"{preset} seed {seed}: {method} (kept from {out})\n  {json.dumps(kept)}", flush=True)
                    continue
                print(f"{preset} seed {seed}: {method}", flush=True)
                run_dir = args.runs_dir / preset / f"s{seed}" / method
                t0 = time.perf_counter()
                if method == "baseline":
                    row = run_baseline(args, preset, seed, data, run_dir)
                else:
                    row = run_fit(args, preset, seed, data, method, run_dir)
                if args.dry_run:
                    continue
                row["seconds"] = round(time.perf_counter() - t0, 1)
                results.setdefault(preset, {}).setdefault(method, {})[str(seed)] = row
                print(f"  {json.dumps(row)}", flush=True)
                out.parent.mkdir(parents=True, exist_ok=True)
                tmp = out.with_suffix(".json.tmp")
                tmp.write_text(json.dumps(results, indent=1) + "\n")
                os.replace(tmp, out)
    if args.dry_run:
        return 0
    table, checks = report(results, args.presets, args.methods)
    print(
        f"\nQuality on synthetic THUMOS/ActivityNet-shaped data (mean +- std over seeds {args.seeds}; "
        f"this run {time.perf_counter() - started:.0f} s)\n\n{table}\n"
    )
    print("\n".join(checks))
    return 1 if any(c.startswith("FAIL") for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
