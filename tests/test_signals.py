"""Signals through `utal fit` (issue 11, item 6), as real processes: SIGTERM / SIGINT in training save a
resumable checkpoint and exit 143 / 130 with the command that resumes; a preemption signal outside SLURM
exits non-zero; a signal while the features load ends the job cleanly, non-zero, nothing half-written."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from utal_lightning.data.synthetic import write_synthetic_dataset
from utal_lightning.loop.preemption import resume_hint

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
STEP = 5  # the step after which the test callback signals (tiny: 24 videos, batches of 16 -> 2 per epoch)


class SignalAtStep(L.Callback):
    """Test only: this process sends itself ``signum`` at the end of the batch that reaches ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_dataset("tiny", tmp_path_factory.mktemp("data") / "tiny", seed=0)


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}  # outside SLURM
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def _fit_args(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "synthetic_copl.yaml"),
        "--data.init_args.root",
        str(data),
        "--trainer.default_root_dir",
        str(run),
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=4",
        "--loop.test_iterations=none",
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


def _run(args: list[str], prelude: str = "") -> subprocess.CompletedProcess:
    code = f"import sys\n{prelude}\nfrom utal_lightning.cli import main\nsys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=_environment(), capture_output=True, text=True, timeout=600
    )


def _signal_at(signum: int) -> str:
    return "--trainer.callbacks+=" + json.dumps(
        {"class_path": "tests.test_signals.SignalAtStep", "init_args": {"step": STEP, "signum": signum}}
    )


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138)])
def test_a_signal_in_training_saves_exits_non_zero_and_says_how_to_resume(data, tmp_path, signum, status):
    run = tmp_path / "run"
    args = _fit_args(data, run, _signal_at(signum))
    done = _run(args)
    assert done.returncode == status, done.stderr[-3000:]
    saved = run / "hpc_ckpt_1.ckpt"
    assert saved.is_file()
    checkpoint = torch.load(saved, weights_only=False)
    assert checkpoint["global_step"] == STEP  # saved at the next batch's start
    # the command that resumes: the same arguments with --ckpt_path, on one line after "resume with:"
    lines = done.stderr.splitlines()
    hint = lines[lines.index(next(line for line in lines if line.endswith("resume with:"))) + 1].strip()
    assert hint == resume_hint(args, saved)
    assert "iter    NMI" not in done.stdout + done.stderr  # no final table of an unfinished run
    if signum == signal.SIGTERM:  # the hint works: the run completes from the checkpoint
        resumed = _run([a for a in shlex.split(hint)[1:] if not a.startswith("--trainer.callbacks+=")])
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        assert last["global_step"] == 2 * 4 * 2  # 2 iterations x 4 epochs x 2 batches: all of it


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 138), (signal.SIGINT, 130)])
def test_a_signal_while_the_features_load_ends_cleanly(data, tmp_path, signum, status):
    run = tmp_path / "run"
    # the signal arrives while the second training video is read
    prelude = f"""
import os
from utal_lightning.data import store
original = store.iter_video_features
def signalling(scan):
    for i, item in enumerate(original(scan)):
        if i == 1:
            os.kill(os.getpid(), {int(signum)})
        yield item
store.iter_video_features = signalling
"""
    done = _run(_fit_args(data, run), prelude)
    assert done.returncode == status, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and signal.Signals(signum).name in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    written = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) if run.exists() else []
    assert not [p for p in written if p.endswith((".ckpt", ".tmp", "summary.json"))], written
