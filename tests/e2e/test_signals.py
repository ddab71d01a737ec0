"""Signals through `utal fit` (issue 11, item 6), as real processes: SIGTERM / SIGINT in training save a
resumable checkpoint and exit 143 / 130 with the command that resumes; a preemption signal outside SLURM
exits non-zero; a signal while the features load ends the job cleanly, non-zero, nothing half-written."""

from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.fit import SIGNAL_STEP as STEP
from tests.helpers.fit import environment_outside_slurm, run_utal, short_copl_args, signal_at_step
from tests.helpers.paths import REPO
from utal_lightning.runtime.preemption import resume_hint


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGUSR1, 138)])
def test_a_signal_in_training_saves_exits_non_zero_and_says_how_to_resume(tiny, tmp_path, signum, status):
    run = tmp_path / "run"
    args = short_copl_args(tiny, run, signal_at_step(signum))
    done = run_utal(args)
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
        resumed = run_utal([a for a in shlex.split(hint)[1:] if not a.startswith("--trainer.callbacks+=")])
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        assert last["global_step"] == 2 * 4 * 2  # 2 iterations x 4 epochs x 2 batches: all of it


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGUSR1, 138), (signal.SIGINT, 130)])
def test_a_signal_while_the_features_load_ends_cleanly(tiny, tmp_path, signum, status):
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
    done = run_utal(short_copl_args(tiny, run), prelude)
    assert done.returncode == status, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and signal.Signals(signum).name in errors[0], done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    written = sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file()) if run.exists() else []
    assert not [p for p in written if p.endswith((".ckpt", ".tmp", "summary.json"))], written


def _outcome(done: subprocess.CompletedProcess, signum: int, run: Path) -> str:
    """What a signalled `utal fit` ended in, checked against what it may end in (issue 22, item 2)."""
    text = done.stdout + done.stderr
    assert "Traceback" not in text, text[-3000:]
    written = [p for p in run.rglob("*") if p.is_file()] if run.exists() else []
    assert not [p for p in written if p.name.endswith(".tmp")], written  # nothing half-written
    if done.returncode == -signum:  # the default action: only before anything was written (the imports)
        assert not written, (written, text[-3000:])
        return "killed before writing"
    if done.returncode == 0:  # a complete run: its table and summary
        assert "iter    NMI" in text and (run / "summary.json").is_file(), text[-3000:]
        return "complete"
    assert done.returncode == 128 + signum, text[-3000:]
    lines = done.stderr.splitlines()
    if any(line.endswith("resume with:") for line in lines):  # saved in the training loop
        hint = lines[lines.index(next(line for line in lines if line.endswith("resume with:"))) + 1]
        saved = Path(shlex.split(hint)[shlex.split(hint).index("--ckpt_path") + 1])
        assert saved.parent == run and torch.load(saved, weights_only=False)["global_step"] >= 0  # a whole checkpoint
        return "checkpoint"
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and signal.Signals(signum).name in errors[0], text[-3000:]
    if "--ckpt_path" in errors[0]:  # outside the training loop, after a checkpoint: resumable from it
        assert Path(shlex.split(errors[0].split("with: ", 1)[1])[-1]).is_file(), errors[0]
    return "error line"


def _start_utal(args: list[str]) -> subprocess.Popen:
    code = "import sys\nfrom utal_lightning.cli import main\nsys.exit(main())"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=environment_outside_slurm(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=600)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


MOMENTS = 8


@pytest.mark.slow
def test_a_signal_at_any_moment_ends_in_a_checkpoint_one_error_line_or_a_complete_run(tiny, tmp_path):
    """SIGUSR1 and SIGTERM in turn at evenly spread moments of a short real `utal fit`, one during the imports,
    the others from its first write to its exit: never a traceback, a silent death once something is written,
    or a half-written file."""
    started = time.monotonic()
    proc = _start_utal(short_copl_args(tiny, tmp_path / "reference"))
    first_write = None
    while proc.poll() is None:
        if first_write is None and (tmp_path / "reference").exists():
            first_write = time.monotonic() - started
        time.sleep(0.02)
    duration = time.monotonic() - started
    reference = _finish(proc)
    assert reference.returncode == 0 and first_write is not None, reference.stderr[-3000:]
    # runs vary in length: the last moments reach past the reference's exit, into the teardown or after it
    span = 1.2 * duration - first_write
    moments = [first_write / 2] + [first_write + span * i / (MOMENTS - 2) for i in range(MOMENTS - 1)]
    outcomes = []
    for i, moment in enumerate(moments):
        signum = (signal.SIGUSR1, signal.SIGTERM)[i % 2]
        run = tmp_path / f"run{i}"
        proc = _start_utal(short_copl_args(tiny, run))
        time.sleep(moment)
        if proc.poll() is None:
            proc.send_signal(signum)
        outcomes.append((f"{moment:.1f} s", signal.Signals(signum).name, _outcome(_finish(proc), signum, run)))
    print(outcomes)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGUSR1, 138), (signal.SIGTERM, 143)])
def test_a_signal_after_the_fit_finished_is_one_line_not_a_silent_death(tiny, tmp_path, signum, status):
    # the signal arrives once the final table is printed: the CLI's handler is back in force, not SIG_DFL
    prelude = f"""
import os
from utal_lightning import lightning_cli
original = lightning_cli.UTALCLI.after_fit
def after_fit(self):
    original(self)
    os.kill(os.getpid(), {int(signum)})
lightning_cli.UTALCLI.after_fit = after_fit
"""
    run = tmp_path / "run"
    done = run_utal(short_copl_args(tiny, run), prelude)
    assert _outcome(done, signum, run) == "error line"
    assert "after the fit finished" in done.stderr and str(run) in done.stderr, done.stderr[-3000:]
