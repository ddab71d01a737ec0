"""Signals through `utal fit` (issue 11, item 6), as real processes: SIGTERM / SIGINT in training save a
resumable checkpoint and exit 143 / 130 with the command that resumes; a preemption signal outside SLURM
exits non-zero; a signal while the features load ends the job cleanly, non-zero, nothing half-written."""

from __future__ import annotations

import shlex
import signal

import pytest
import torch

from tests.helpers.fit import SIGNAL_STEP as STEP
from tests.helpers.fit import run_utal, short_copl_args, signal_at_step
from utal_lightning.loop.preemption import resume_hint


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
