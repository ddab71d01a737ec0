"""Benchmark: the whole COPL training schedule through ``utal fit`` against the bare training-step bound.

Run from the repository root:  .venv/bin/python benchmarks/bench_train.py [--schedules thumos,anet]
[--precisions 32-true,bf16-mixed] [--iterations I] [--epochs E] [--train N] [--test N]
[--bound-steps S] [--bound-warmup W] [--device auto|cuda|cpu] [--no-tf32] [--target 2.0]

What runs (one schedule = one config on one synthetic preset of the same shape):

  thumos: configs/thumos_copl.yaml (3 iterations x 300 epochs, T = 750, batch 16) on the ``thumos`` preset
  anet:   configs/anet_copl.yaml   (3 iterations x 30 epochs,  T = 50,  batch 128) on the ``anet`` preset

Data: written once by ``write_synthetic_dataset(preset, DIR, seed=0)`` into ``--data-root``/<preset>
(default runs/bench/data/; with ``--train``/``--test`` a smaller copy <preset>_train<N>_test<M>) and reused
when present (the writer renames a complete folder into place, so a present folder is complete).

Full schedule: one subprocess per (schedule, precision), so its peak memory is its own:
``utal fit --config CONFIG --data.init_args.root DIR --trainer.default_root_dir RUN
--trainer.precision P --trainer.accelerator cuda|cpu --trainer.devices 1 --loop.max_iterations I
--loop.epochs_per_iteration E --trainer.enable_progress_bar=false --preemption.auto_resume=false
--trainer.callbacks+=<this file's PhaseTimer>`` with WANDB_MODE=disabled (the configs' CSV logger, the
checkpoint every epoch, the per-iteration test and figures all stay on: it is the real schedule). RUN
(--runs-dir/<schedule>_<precision>) is deleted first. PhaseTimer (a Callback, public hooks only)
takes time stamps at the trainer's hooks (with ``torch.cuda.synchronize()`` on a GPU), times the
module's ``detect_videos`` + ``score_detections`` (the per-iteration test) and records the peak
memory; the time of the pseudolabel stages is ``pseudolabel_seconds`` of every iteration in RUN's
summary.json (the refresh callback's pass over the training videos + clustering + PLRI, per iteration,
iteration 1's at fit start included). The wall time is the subprocess's (Python start to exit: imports,
header scan, loading the features, everything). It is split into:

  startup        process start -> the callbacks are built (imports, CLI, the DataModule's header scan)
  data load      -> the Callback ``setup`` hook (DataModule.setup: every feature read into RAM; Trainer set-up)
  pseudolabel    summary.json's pseudolabel_seconds, all iterations ("share of time in clustering")
  test           the per-iteration test (detections + mAP of the teacher and the student)
  training loop  on_train_epoch_start -> on_train_epoch_end, every epoch (loader, steps, EMA, logging)
  epoch-end      the rest of the epoch-end work: COPL's per-epoch no-grad HAS voting pass over every
                 training video, figures, summary.json (on_train_epoch_end -> first on_save_checkpoint,
                 and on_fit_start -> first epoch, minus the pseudolabel and test times inside them)
  checkpoint     on_save_checkpoint -> next epoch start / fit end (last.ckpt + top-k write, loader rebuild)
  other          fit start bookkeeping and process exit (the remainder)

Time per epoch = (wall - pseudolabel - test) / epochs (everything an epoch costs, data and HAS votes
included); the training loop alone per epoch is printed too.

Bound: the same LightningModule (the config's model class and init_args; input width, rgb width and K
from the data, as the CLI links them), one batch of the DataModule's train-batch shape on the device
(features (B, T, D) >= 0, one-hot targets (B, K), ``supervised`` mask half True, video_index), and
``training_step`` (its logging call replaced by a no-op: there is no Trainer) under the precision's
autocast (bf16-mixed: ``torch.autocast(dtype=bfloat16)``, like Lightning's plugin), ``backward``, the
configured optimizer's ``step``, ``zero_grad`` and the module's ``on_train_batch_end`` (IOCNet: the EMA
teacher update). ``--bound-warmup`` untimed steps, then ``--bound-steps`` timed steps (synchronized on a
GPU). Bound = time per step x the number of optimizer steps the full run took (its trainer.global_step;
ceil(N_train / B) x epochs when COPL trains on P and U = all training videos). Ratio = full wall / bound;
the target is <= ``--target`` (2x).

Memory: on CUDA ``torch.cuda.max_memory_allocated`` (and ``max_memory_reserved``) of the run (the
child process's, so per run) and of the bound; on CPU the peak resident set size (the child's
``ru_maxrss``; the bound's VmHWM after resetting it through /proc/self/clear_refs, else this process's
``ru_maxrss``). The CPU run's RSS holds the whole dataset (train and test features are read into RAM).

TF32: on CUDA, ``torch.set_float32_matmul_precision("high")`` (TF32 matmuls; cuDNN convolutions use
TF32 by default) in the bound and, through PhaseTimer's constructor, inside the ``utal fit`` process -
the CLI has no option for it, so it is applied in code, equally to both. ``--no-tf32`` turns it off.

Defaults: with a CUDA device, both schedules in full (the presets' sizes, the configs' iterations and
epochs), precisions 32-true and bf16-mixed, bound 10 + 50 steps. Without one it prints
``GPU: not measured (no CUDA device)`` and runs a CPU-sized version so the script and its ratio are
exercised: thumos only, ``--train 32 --test 8`` (T, D, K, batch and model as THUMOS), 2 iterations x 1
epoch (about 4-5 minutes on 2 busy cores: one THUMOS-shaped step takes 10-20 s there), 32-true only,
bound 1 + 3 steps. All printed figures come from this run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from process_memory import peak_rss_mib, reset_peak_rss  # noqa: E402

from utal_lightning.utils import atomic_write_json  # noqa: E402

SCHEDULES = {"thumos": ("configs/thumos_copl.yaml", "thumos"), "anet": ("configs/anet_copl.yaml", "anet")}
CPU_SIZES = {"thumos": (32, 8), "anet": (400, 40)}  # (train, test) videos of the CPU-sized default
PRECISIONS = ("32-true", "bf16-mixed")


# ====================================================================== inside the `utal fit` process
class PhaseTimer(L.Callback):
    """Time stamps at the trainer's hooks, test-evaluation time and peak memory, written to ``out`` (JSON)
    at teardown. Added to ``utal fit`` with ``--trainer.callbacks+=`` (config callbacks come before the
    loop and checkpoint callbacks, so its ``on_train_epoch_end`` runs before the refresh callback's)."""

    def __init__(self, out: str, tf32: bool = True) -> None:
        self.out = out
        self.tf32 = bool(tf32 and torch.cuda.is_available())
        if self.tf32:
            torch.set_float32_matmul_precision("high")
            torch.backends.cudnn.allow_tf32 = True
        self.stamps: dict[str, Any] = {"built": time.time(), "epochs": []}
        self.test_seconds = 0.0
        self._cuda = False

    def _now(self) -> float:
        if self._cuda:
            torch.cuda.synchronize()
        return time.time()

    def _wrap(self, pl_module: L.LightningModule, name: str) -> None:
        original = getattr(pl_module, name, None)
        if original is None:
            return

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.test_seconds += time.perf_counter() - start

        setattr(pl_module, name, timed)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.stamps["setup"] = time.time()
        for name in ("detect_videos", "score_detections"):
            self._wrap(pl_module, name)

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._cuda = pl_module.device.type == "cuda"
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()  # the fit's peak (the model is on the device already)
        self.stamps["fit_start"] = self._now()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stamps["epochs"].append({"start": self._now()})

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stamps["epochs"][-1]["end"] = self._now()

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.stamps["epochs"]:
            self.stamps["epochs"][-1].setdefault("save", self._now())

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.stamps["fit_end"] = self._now()
        self.stamps["global_step"] = int(trainer.global_step)
        self.stamps["current_epoch"] = int(trainer.current_epoch)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        memory: dict[str, Any] = {"rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if torch.cuda.is_available():
            memory["cuda_max_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
            memory["cuda_max_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
            memory["device_name"] = torch.cuda.get_device_name()
        self.stamps.update(
            teardown=time.time(),
            test_seconds=self.test_seconds,
            memory=memory,
            tf32=self.tf32,
            matmul_precision=torch.get_float32_matmul_precision(),
            torch_threads=torch.get_num_threads(),
        )
        atomic_write_json(self.out, self.stamps)


# ====================================================================== helpers
def ensure_data(preset: str, train: int | None, test: int | None, data_root: Path) -> tuple[Path, Any]:
    from utal_lightning.data.synthetic import override_config

    sets = ([f"num_train={train}"] if train else []) + ([f"num_test={test}"] if test else [])
    config = override_config(preset, sets)
    name = preset + (f"_train{config.num_train}_test{config.num_test}" if sets else "")
    directory = (data_root / name).expanduser().absolute()
    if directory.is_dir() and (directory / "gt.json").is_file():
        print(f"data: reusing {directory} ({config.num_train} train / {config.num_test} test videos)")
        return directory, config
    from utal_lightning.data.synthetic import write_synthetic_dataset

    start = time.perf_counter()
    write_synthetic_dataset(config, directory, seed=0, overwrite=True)
    print(
        f"data: wrote {directory} ({config.num_train} train / {config.num_test} test videos, "
        f"{du(directory):.2f} GiB) in {time.perf_counter() - start:.0f} s"
    )
    return directory, config


def du(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**30


def read_config(path: Path) -> dict[str, Any]:
    import yaml

    with path.open() as f:
        return yaml.safe_load(f)


def utal_command() -> list[str]:
    script = Path(sys.executable).parent / "utal"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "utal_lightning.cli"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precision_context(precision: str, device: torch.device):
    if precision in ("32-true", "32"):
        return contextlib.nullcontext()
    if precision == "bf16-mixed":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    raise SystemExit(f"error: precision {precision!r} is not supported here (32-true, bf16-mixed)")


# ====================================================================== the bound
def measure_bound(
    config: dict[str, Any], data_dir: Path, precision: str, device: torch.device, steps: int, warmup: int, seed: int
) -> dict[str, Any]:
    """Per-step time of the bare training step of the config's module on one device-resident batch."""
    from utal_lightning.data.datamodule import UTALDataModule

    data_args = dict(config["data"].get("init_args", {}))
    data_args["root"] = str(data_dir)
    dm = UTALDataModule(**data_args)  # header scan only: width, rgb width, K (what the CLI links)
    from utal_lightning.lightning_cli import instantiate_model

    torch.manual_seed(seed)
    module = instantiate_model(
        config["model"], num_classes=dm.num_clusters, feature_dim=dm.feature_dim, rgb_dim=dm.rgb_dim
    )
    uses_unlabeled = bool(module.uses_unlabeled)
    module.log_progress = lambda *args, **kwargs: None  # training_step's self.log needs a Trainer
    module.to(device).train()
    optimizers = module.configure_optimizers()
    optimizer = optimizers[0] if isinstance(optimizers, (list, tuple)) else optimizers
    if isinstance(optimizer, dict):
        optimizer = optimizer["optimizer"]
    b, t, d, k = dm.batch_size, dm.num_segments, dm.feature_dim, dm.num_clusters
    generator = torch.Generator().manual_seed(seed)
    batch = {
        "video_index": torch.arange(b, device=device),
        "features": torch.rand(b, t, d, generator=generator).to(device),
        "targets": torch.nn.functional.one_hot(torch.randint(0, k, (b,), generator=generator), k).float().to(device),
        "supervised": (torch.arange(b) % 2 == 0).to(device),
    }
    context = precision_context(precision, device)

    def step(i: int) -> None:
        with context:
            loss = module.training_step(batch, i)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        module.on_train_batch_end(loss, batch, i)

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        reset = True
    else:
        reset = reset_peak_rss()
    for i in range(warmup):
        step(i)
    sync(device)
    start = time.perf_counter()
    for i in range(steps):
        step(warmup + i)
    sync(device)
    seconds = (time.perf_counter() - start) / steps
    if device.type == "cuda":
        memory = {
            "cuda_max_allocated_mib": torch.cuda.max_memory_allocated(device) / 2**20,
            "cuda_max_reserved_mib": torch.cuda.max_memory_reserved(device) / 2**20,
        }
    else:
        memory = {"rss_peak_mib": peak_rss_mib(), "rss_peak_reset": reset}
    module = optimizer = batch = None  # free them (step's closure holds them) before empty_cache
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "step_seconds": seconds,
        "batch": [b, t, d],
        "num_clusters": k,
        "num_train": len(dm.index.train_ids),
        "uses_unlabeled": uses_unlabeled,
        "memory": memory,
    }


# ====================================================================== the full schedule
def run_full(
    name: str,
    config_path: Path,
    data_dir: Path,
    precision: str,
    accelerator: str,
    iterations: int,
    epochs: int,
    runs_dir: Path,
    tf32: bool,
) -> dict[str, Any]:
    run_dir = (runs_dir / f"{name}_{precision}").absolute()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    timer_path = run_dir / "phase_timer.json"
    log_path = run_dir.parent / f"{name}_{precision}.log"
    callback = {"class_path": "bench_train.PhaseTimer", "init_args": {"out": str(timer_path), "tf32": tf32}}
    cmd = [
        *utal_command(),
        "fit",
        "--config",
        str(config_path),
        "--data.init_args.root",
        str(data_dir),
        "--trainer.default_root_dir",
        str(run_dir),
        "--trainer.precision",
        precision,
        "--trainer.accelerator",
        accelerator,
        "--trainer.devices",
        "1",
        f"--loop.max_iterations={iterations}",
        f"--loop.epochs_per_iteration={epochs}",
        "--trainer.enable_progress_bar=false",
        "--preemption.auto_resume=false",
        f"--trainer.callbacks+={json.dumps(callback)}",
    ]
    env = dict(os.environ)
    env["WANDB_MODE"] = "disabled"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "benchmarks"), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    print(f"  $ {' '.join(cmd[:-1])} --trainer.callbacks+='{json.dumps(callback)}'  (log: {log_path})", flush=True)
    launched = time.time()
    start = time.perf_counter()
    with log_path.open("w") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if rc != 0 or not timer_path.is_file():
        tail = log_path.read_text(errors="replace").splitlines()[-30:]
        print("\n".join(f"    | {line}" for line in tail))
        raise SystemExit(f"error: utal fit exited with status {rc} (log {log_path})")
    stamps = json.loads(timer_path.read_text())
    summary = json.loads((run_dir / "summary.json").read_text())
    pseudo = [float(it.get("pseudolabel_seconds", 0.0)) for it in summary["iterations"]]
    epochs_done = stamps["epochs"]
    train_loop = sum(e["end"] - e["start"] for e in epochs_done)
    # epoch-end work: epoch end -> first checkpoint save (or next epoch start) and fit start -> first epoch
    end_work, ckpt = stamps["epochs"][0]["start"] - stamps["fit_start"], 0.0
    for i, e in enumerate(epochs_done):
        following = epochs_done[i + 1]["start"] if i + 1 < len(epochs_done) else stamps["fit_end"]
        saved = e.get("save", following)
        end_work += saved - e["end"]
        ckpt += following - saved
    test = float(stamps["test_seconds"])
    parts = {
        "startup": stamps["built"] - launched,
        "data load": stamps["setup"] - stamps["built"],
        "pseudolabel": sum(pseudo),
        "test": test,
        "training loop": train_loop,
        "epoch-end": end_work - sum(pseudo) - test,
        "checkpoint": ckpt,
    }
    parts["other"] = wall - sum(parts.values())
    return {
        "wall": wall,
        "parts": parts,
        "pseudolabel_per_iteration": pseudo,
        "epochs": len(epochs_done),
        "global_step": stamps.get("global_step"),
        "memory": stamps["memory"],
        "tf32": stamps["tf32"],
        "summary": summary["iterations"],
        "run_dir": str(run_dir),
        "torch_threads": stamps.get("torch_threads"),
    }


def fmt_memory(memory: dict[str, Any]) -> str:
    if "cuda_max_allocated_mib" in memory:
        return (
            f"CUDA max allocated {memory['cuda_max_allocated_mib']:.0f} MiB "
            f"(reserved {memory['cuda_max_reserved_mib']:.0f} MiB)"
        )
    return f"peak RSS {memory['rss_peak_mib']:.0f} MiB"


def parse_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--schedules", default=None, help="comma list of thumos, anet (default: both on CUDA, thumos on CPU)"
    )
    parser.add_argument(
        "--precisions",
        default=None,
        help="comma list of Lightning precisions: 32-true, bf16-mixed (default: both on CUDA, 32-true on CPU)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=None,
        help="outer iterations (loop.max_iterations; default: the config's on CUDA, 2 on CPU)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs per iteration (loop.epochs_per_iteration; default: the config's on CUDA, 1 on CPU)",
    )
    parser.add_argument(
        "--train",
        type=int,
        default=None,
        help="training videos of the preset (default: the preset's on CUDA; CPU: thumos 32, anet 400; "
        "0 = the preset's)",
    )
    parser.add_argument(
        "--test",
        type=int,
        default=None,
        help="test videos of the preset (default: the preset's on CUDA; CPU: thumos 8, anet 40; 0 = the preset's)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=ROOT / "runs/bench/data",
        help="synthetic data cache (default runs/bench/data)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=ROOT / "runs/bench/train",
        help="run directories and logs (default runs/bench/train)",
    )
    parser.add_argument("--bound-steps", type=int, default=None, help="timed bare steps (default 50 on CUDA, 3 on CPU)")
    parser.add_argument(
        "--bound-warmup", type=int, default=None, help="untimed warm-up steps (default 10 on CUDA, 1 on CPU)"
    )
    parser.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="auto: cuda when available")
    parser.add_argument("--no-tf32", action="store_true", help="keep fp32 matmuls in full precision on CUDA")
    parser.add_argument("--target", type=float, default=2.0, help="target of full wall time / bound (default 2)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the bound's model and batch (the runs use the config's)"
    )
    parser.add_argument(
        "--json", type=Path, default=None, help="also write the results here (default <runs-dir>/results.json)"
    )
    args = parser.parse_args()

    cuda = torch.cuda.is_available() and args.device != "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda but no CUDA device")
    device = torch.device("cuda" if cuda else "cpu")
    schedules = parse_list(args.schedules) if args.schedules else (["thumos", "anet"] if cuda else ["thumos"])
    precisions = parse_list(args.precisions) if args.precisions else (list(PRECISIONS) if cuda else ["32-true"])
    for s in schedules:
        if s not in SCHEDULES:
            raise SystemExit(f"error: unknown schedule {s!r} (thumos, anet)")
    for p in precisions:
        precision_context(p, device)
    steps = args.bound_steps or (50 if cuda else 3)
    warmup = args.bound_warmup if args.bound_warmup is not None else (10 if cuda else 1)
    tf32 = cuda and not args.no_tf32
    if tf32:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True

    print(
        f"machine: {os.cpu_count()} CPUs (affinity {len(os.sched_getaffinity(0))}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, device {device}"
    )
    if cuda:
        print(
            f"GPU: {torch.cuda.get_device_name()}; TF32 matmuls {'on' if tf32 else 'off'} "
            "(set in code, in the bound and in the utal fit process, via PhaseTimer: the CLI has no option)"
        )
    else:
        print(
            "GPU: not measured (no CUDA device); running the CPU-sized version "
            "(full-size defaults apply only on CUDA; override with --train/--test/--iterations/--epochs)"
        )

    results: list[dict[str, Any]] = []
    for name in schedules:
        config_file, preset = SCHEDULES[name]
        config_path = ROOT / config_file
        config = read_config(config_path)
        loop = config.get("loop", {})
        iterations = args.iterations or (int(loop["max_iterations"]) if cuda else 2)
        epochs = args.epochs or (int(loop["epochs_per_iteration"]) if cuda else 1)
        if loop.get("adaptive_epochs", False):
            print(f"note: {config_file} has adaptive_epochs: epochs per iteration vary with |P|")
        cpu_train, cpu_test = CPU_SIZES[name]
        train = args.train if args.train is not None else (None if cuda else cpu_train)
        test = args.test if args.test is not None else (None if cuda else cpu_test)
        data_dir, synth = ensure_data(preset, train or None, test or None, args.data_root)
        data_init = config["data"].get("init_args", {})
        batch_size, segments = int(data_init.get("batch_size", 16)), int(data_init.get("num_segments", 750))
        planned_steps = math.ceil(synth.num_train / batch_size) * iterations * epochs
        print(
            f"\n== {name}: {config_file} on {data_dir.name} ({synth.num_train} train / {synth.num_test} test videos, "
            f"D = {2 * synth.feature_dim}, K = {synth.num_classes}), {iterations} iteration(s) x {epochs} epoch(s), "
            f"T = {segments}, batch {batch_size}: ceil({synth.num_train}/{batch_size}) x {iterations * epochs} = "
            f"{planned_steps} training steps (COPL trains on P and U: every training video)"
        )
        for precision in precisions:
            print(f"-- {name} {precision}")
            full = run_full(
                name,
                config_path,
                data_dir,
                precision,
                "cuda" if cuda else "cpu",
                iterations,
                epochs,
                args.runs_dir,
                tf32,
            )
            bound = measure_bound(config, data_dir, precision, device, steps, warmup, args.seed)
            total_steps = full["global_step"] or planned_steps
            if total_steps != planned_steps:
                print(
                    f"  note: the run took {total_steps} optimizer steps, not the planned {planned_steps}: "
                    f"the bound uses {total_steps}"
                )
            bound_total = bound["step_seconds"] * total_steps
            wall, parts = full["wall"], full["parts"]
            n_epochs = full["epochs"]
            per_epoch = (wall - parts["pseudolabel"] - parts["test"]) / max(n_epochs, 1)
            ratio = wall / bound_total
            print(
                f"  full schedule: wall {wall:.1f} s for {n_epochs} epoch(s), {total_steps} steps "
                f"(torch threads in the run: {full['torch_threads']})"
            )
            print("    " + ", ".join(f"{k} {v:.1f} s ({100 * v / wall:.1f}%)" for k, v in parts.items()))
            print(
                f"    share of time in clustering (pseudolabel stages: pooling pass + clustering + PLRI): "
                f"{100 * parts['pseudolabel'] / wall:.1f}% (per iteration: "
                f"{', '.join(f'{s:.2f}' for s in full['pseudolabel_per_iteration'])} s); with the per-epoch HAS voting "
                f"passes (epoch-end) {100 * (parts['pseudolabel'] + parts['epoch-end']) / wall:.1f}%"
            )
            print(
                f"    time per epoch = (wall - pseudolabel - test) / epochs = {per_epoch:.2f} s; "
                f"training loop alone {parts['training loop'] / max(n_epochs, 1):.2f} s/epoch"
            )
            print(f"    peak memory: {fmt_memory(full['memory'])}; TF32 {'on' if full['tf32'] else 'off'}")
            last = full["summary"][-1]
            print(
                f"    last iteration: NMI {last.get('nmi', float('nan')):.3f}, "
                f"|P|/N {last.get('selected_fraction', float('nan')):.2f}"
            )
            print(
                f"  bound: bare training step (B, T, D) = {tuple(bound['batch'])}, K = {bound['num_clusters']}, "
                f"{warmup} warm-up + {steps} timed steps: {1000 * bound['step_seconds']:.1f} ms/step "
                f"x {total_steps} steps "
                f"= {bound_total:.1f} s; {fmt_memory(bound['memory'])}"
                + (
                    ""
                    if bound["memory"].get("rss_peak_reset", True)
                    else " (not reset: this process's high-water mark)"
                )
            )
            verdict = "met" if ratio <= args.target else "NOT met"
            print(
                f"  full / bound = {wall:.1f} / {bound_total:.1f} = {ratio:.2f}x (target <= {args.target:g}x: {verdict}"
                f"{'' if cuda else '; CPU-sized run, not the GPU target'}); without startup + data load "
                f"{(wall - parts['startup'] - parts['data load']) / bound_total:.2f}x"
            )
            results.append(
                {
                    "schedule": name,
                    "precision": precision,
                    "device": str(device),
                    "iterations": iterations,
                    "epochs_per_iteration": epochs,
                    "num_train": synth.num_train,
                    "num_test": synth.num_test,
                    "full": {k: v for k, v in full.items() if k != "summary"},
                    "bound": bound,
                    "bound_total_seconds": bound_total,
                    "ratio": ratio,
                    "time_per_epoch": per_epoch,
                }
            )
    out = args.json or args.runs_dir / "results.json"
    atomic_write_json(out, results)
    print(f"\nresults: {out}")
    if not cuda:
        print("GPU: not measured (no CUDA device)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
