"""Preemption (utal_lightning/runtime/preemption.py): the SIGUSR1 handler only sets a flag; the run saves an
hpc_ckpt_<N> at the next batch start, requeues once and stops; a rerun of the same command resumes it."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint

from tests.helpers.callbacks import SignalAt
from tests.helpers.fit import SHORT, fit_args, run_utal_ddp
from tests.helpers.fit import fit as fit_config
from utal_lightning.data.synthetic import write_synthetic_dataset
from utal_lightning.runtime.preemption import (
    PreemptionCheckpoint,
    newest_checkpoint,
    resolve_resume_path,
    resume_candidates,
    slurm_plugins,
)

JOB_ID = "4242"
SLURM_ENV = {
    "SLURM_JOB_ID": JOB_ID,
    "SLURM_JOB_NAME": "utal-preemption-test",
    "SLURM_NTASKS": "1",
    "SLURM_NTASKS_PER_NODE": "1",
    "SLURM_NNODES": "1",
    "SLURM_NODEID": "0",
    "SLURM_PROCID": "0",
    "SLURM_LOCALID": "0",
    "SLURM_NODELIST": "localhost",
}
# COPL on `small`: all 120 videos (P and U) in batches of 16 -> 8 batches per epoch; 2 iterations x 4 epochs.
BATCHES_PER_EPOCH = 8
SIGNAL_STEP = 12  # signalled at the end of epoch 1's 4th batch (inside iteration 1): saved at the 5th's start


def fit(data: Path, root: Path, *extra: str) -> dict:
    """A short COPL fit in this process; its summary.json."""
    return fit_config("synthetic_copl.yaml", data, root, *SHORT, *extra)


def strip(record: dict) -> dict:
    """A history record without its wall time, the test mAP and the reading of the trained network (the last two
    are added at the iteration's end, after the stop)."""
    late = ("test", "test_student", "actionness_reversed")
    return {k: v for k, v in record.items() if not k.endswith("_seconds") and k not in late}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> SimpleNamespace:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # three short fits on 2 shared cores: one thread each is ~4x faster than two
    try:
        return _runs(tmp_path_factory)
    finally:
        torch.set_num_threads(threads)


def _runs(tmp_path_factory) -> SimpleNamespace:
    data = write_synthetic_dataset("small", tmp_path_factory.mktemp("data") / "small", seed=0)
    tmp = tmp_path_factory.mktemp("preemption")
    every_epoch = ["--checkpoint.save_top_k=-1", "--checkpoint.every_n_epochs=1"]
    uninterrupted = fit(data, tmp / "uninterrupted", *every_epoch)

    marker = tmp / "requeued.txt"
    requeue = _append_job_id(marker)
    job = [
        "--trainer.callbacks+="
        + json.dumps({"class_path": "tests.helpers.callbacks.SignalAt", "init_args": {"step": SIGNAL_STEP}}),
        f"--preemption.requeue_command={requeue}",
    ]
    SignalAt.observed.clear()
    SignalAt.fits.clear()
    root = tmp / "job"
    with pytest.MonkeyPatch.context() as mp:
        for key in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
            mp.delenv(key, raising=False)
        for key, value in SLURM_ENV.items():
            mp.setenv(key, value)
        stopped = fit(data, root, *job)  # the job, signalled at SIGNAL_STEP
        stopped_last = torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)
        hpc_files = sorted(root.glob("hpc_ckpt_*.ckpt"))
        requeues_after_stop = marker.read_text().splitlines() if marker.exists() else []
        resumed = fit(data, root, *job)  # the requeued job: the same command line, no --ckpt_path
    return SimpleNamespace(
        data=data,
        root=root,
        uninterrupted=uninterrupted,
        uninterrupted_root=tmp / "uninterrupted",
        stopped=stopped,
        stopped_last=stopped_last,
        hpc_files=hpc_files,
        requeues_after_stop=requeues_after_stop,
        resumed=resumed,
        marker=marker,
        observed=list(SignalAt.observed),
        fits=list(SignalAt.fits),
    )


def _append_job_id(marker) -> str:
    """A requeue command that appends the job id it is given to ``marker``."""
    script = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')"
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)} {shlex.quote(str(marker))} {{job_id}}"


def test_signal_sets_a_flag_then_the_run_saves_requeues_once_and_stops(runs):
    # the handler only set the flag: no checkpoint written and no stop requested inside it
    first = runs.observed[0]
    assert first["handler_installed"], "PreemptionCheckpoint's SIGUSR1 handler was not installed"
    assert first["requested"] and not first["should_stop"]
    assert not [f for f in first["files_after_signal"] if "hpc" in f or "preemption" in f], first
    # Lightning saw SLURM, and its own auto-requeue (which saves inside the handler) was off
    environment = runs.fits[0]["environment"]
    assert isinstance(environment, SLURMEnvironment) and not environment.auto_requeue
    assert isinstance(runs.fits[0]["handler_owner"], PreemptionCheckpoint)
    # one checkpoint, at the batch start after the signal, mid-epoch, named for Lightning's SLURM resume
    assert [p.name for p in runs.hpc_files] == ["hpc_ckpt_1.ckpt"]
    assert not list(runs.root.glob(".preemption-*"))  # written under a temporary name, renamed
    hpc = torch.load(runs.hpc_files[0], weights_only=True)
    assert hpc["global_step"] == SIGNAL_STEP and hpc["epoch"] == SIGNAL_STEP // BATCHES_PER_EPOCH
    batches = hpc["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    assert batches == SIGNAL_STEP % BATCHES_PER_EPOCH
    # no half-finished step: the EMA teacher (updated in the module's on_train_batch_end, which Lightning
    # calls after the callbacks') has seen every optimizer step in the checkpoint
    assert int(hpc["state_dict"]["teacher.n_averaged"]) == hpc["global_step"]
    assert L.Trainer(default_root_dir=runs.root, logger=False)._checkpoint_connector._hpc_resume_path == str(
        runs.hpc_files[0]
    )
    # the requeue command ran once, on the job's id
    assert runs.requeues_after_stop == [JOB_ID]
    # the run stopped early: iteration 2 never started, and last.ckpt is the last *complete* epoch
    # (ModelCheckpoint did not save the partial epoch the stop cut short)
    assert [h["iteration"] for h in runs.stopped["iterations"]] == [1]
    assert runs.stopped_last["epoch"] == hpc["epoch"] - 1 and runs.stopped_last["global_step"] < SIGNAL_STEP


def test_rerun_resumes_mid_iteration_and_ends_close_to_the_uninterrupted_run(runs):
    # the requeued job found the checkpoint by itself (no --ckpt_path), did not stop again nor requeue again
    assert runs.fits[1]["ckpt_path"] == str(runs.hpc_files[0])
    assert len(runs.observed) == 1 and runs.marker.read_text().splitlines() == [JOB_ID]
    full, resumed = runs.uninterrupted["iterations"], runs.resumed["iterations"]
    assert [h["iteration"] for h in resumed] == [h["iteration"] for h in full] == [1, 2]
    # iteration 1's pseudolabels were made before the stop: the same record, and the same labels and P
    assert strip(resumed[0]) == strip(full[0]) == strip(runs.stopped["iterations"][0])
    hpc = torch.load(runs.hpc_files[0], weights_only=True)["UTALDataModule"]
    (same_epoch,) = (runs.uninterrupted_root / "checkpoints").glob("epoch=1-*.ckpt")
    reference = torch.load(same_epoch, weights_only=True)["UTALDataModule"]
    assert torch.equal(hpc["labels"], reference["labels"]) and torch.equal(hpc["selected"], reference["selected"])
    # the same number of optimizer steps and epochs as the uninterrupted run
    last = torch.load(runs.root / "checkpoints" / "last.ckpt", weights_only=True)
    reference_last = torch.load(runs.uninterrupted_root / "checkpoints" / "last.ckpt", weights_only=True)
    assert (last["global_step"], last["epoch"]) == (reference_last["global_step"], reference_last["epoch"])
    # Equal, not just close: the loader resumed at the batch it stopped at with the same samples, and every
    # RNG stream where it was, so iteration 2's labels and the final weights are the uninterrupted run's.
    assert strip(resumed[1]) == strip(full[1])
    for name, tensor in reference_last["state_dict"].items():
        assert torch.equal(last["state_dict"][name], tensor), name


# ---------------------------------------------------------------------- units (no training)
def test_handler_only_sets_a_flag_chains_and_restores():
    calls = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: calls.append(signum))
    try:
        callback = PreemptionCheckpoint(signal="USR1")
        callback.install()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)
        assert callback.requested and not callback.stopping and callback.saved_path is None
        assert calls == [signal.SIGUSR1]  # the earlier handler still ran
        callback.uninstall()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)
        assert calls == [signal.SIGUSR1, signal.SIGUSR1]  # restored
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_requeue_failures_are_logged_not_raised(monkeypatch, caplog):
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.delenv("SLURM_ARRAY_JOB_ID", raising=False)
    assert PreemptionCheckpoint(requeue_command="false {job_id}")._requeue() == 1
    assert PreemptionCheckpoint(requeue_command="/nonexistent/scontrol requeue {job_id}")._requeue() is None
    assert "exited with status 1" in caplog.text and "/nonexistent/scontrol" in caplog.text
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "70")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert (
        PreemptionCheckpoint(
            requeue_command=(
                f"{shlex.quote(sys.executable)} -c 'import sys; sys.exit(sys.argv[1] != \"70_3\")' {{job_id}}"
            )
        )._requeue()
        == 0
    )


def _trainer(root: Path, callback: PreemptionCheckpoint) -> SimpleNamespace:
    checkpoint = ModelCheckpoint(dirpath=root / "checkpoints")
    return SimpleNamespace(
        default_root_dir=str(root), callbacks=[callback, checkpoint], checkpoint_callbacks=[checkpoint]
    )


def test_auto_resume_picks_the_newest_readable_checkpoint(tmp_path, monkeypatch):
    for key in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID"):
        monkeypatch.delenv(key, raising=False)
    (tmp_path / "checkpoints").mkdir()
    hpc1, last, hpc2 = (
        tmp_path / "hpc_ckpt_1.ckpt",
        tmp_path / "checkpoints" / "last.ckpt",
        tmp_path / "hpc_ckpt_2.ckpt",
    )
    for age, path in ((30, hpc1), (20, last), (10, hpc2)):
        torch.save({"global_step": 30 - age}, path)
        os.utime(path, (time.time() - age, time.time() - age))
    assert newest_checkpoint(resume_candidates(tmp_path, [tmp_path / "checkpoints"])) == hpc2
    (tmp_path / ".preemption-3.partial").write_bytes(b"PK\x03\x04 cut short")  # a preemption save killed mid-write
    assert newest_checkpoint(resume_candidates(tmp_path, [tmp_path / "checkpoints"])) == hpc2
    # ... which Lightning's own SLURM resume ignores too (it numbers every file containing "hpc_ckpt_")
    assert L.Trainer(default_root_dir=tmp_path, logger=False)._checkpoint_connector._hpc_resume_path == str(hpc2)
    hpc2.write_bytes(hpc2.read_bytes()[:100])  # an hpc_ckpt cut short (e.g. by Lightning's own handler)
    # a stale hpc_ckpt (the run went on after resuming from it) loses against a newer last.ckpt
    assert newest_checkpoint(resume_candidates(tmp_path, [tmp_path / "checkpoints"])) == last
    on, off, auto = (
        PreemptionCheckpoint(auto_resume=True),
        PreemptionCheckpoint(auto_resume=False),
        PreemptionCheckpoint(),
    )
    assert resolve_resume_path(_trainer(tmp_path, on), None) == str(last)
    assert resolve_resume_path(_trainer(tmp_path, on), "given.ckpt") == "given.ckpt"
    assert resolve_resume_path(_trainer(tmp_path, off), None) is None
    assert resolve_resume_path(_trainer(tmp_path, auto), None) is None  # outside SLURM: no surprise resumes
    monkeypatch.setenv("SLURM_JOB_ID", "5")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    assert resolve_resume_path(_trainer(tmp_path, auto), None) == str(last)
    assert resolve_resume_path(_trainer(tmp_path / "fresh", auto), None) is None


def test_slurm_plugins_turn_lightnings_auto_requeue_off_only_under_slurm(monkeypatch):
    callback = PreemptionCheckpoint()
    for key in SLURM_ENV:
        monkeypatch.delenv(key, raising=False)
    assert slurm_plugins(None, callback) is None
    for key, value in SLURM_ENV.items():
        monkeypatch.setenv(key, value)
    (environment,) = slurm_plugins(None, callback)
    assert isinstance(environment, SLURMEnvironment) and not environment.auto_requeue
    assert environment.requeue_signal == signal.SIGUSR1
    given = [LightningEnvironment()]
    assert slurm_plugins(given, callback) is given  # the user's cluster environment wins


@pytest.mark.slow
def test_ddp_one_signalled_rank_makes_every_rank_save_and_stop_at_the_same_step(tmp_path):
    """2 CPU processes (gloo): only rank 1 gets SIGUSR1; both agree at the next batch start, one checkpoint
    is written, rank 0 alone requeues, and both exit (no hang: a timeout fails the test)."""
    data = write_synthetic_dataset("small", tmp_path / "data", seed=0)
    root, marker = tmp_path / "run", tmp_path / "requeued.txt"
    requeue = _append_job_id(marker)
    step = 5  # 120 videos / 2 ranks / 16 per batch = 4 batches per rank and epoch: inside epoch 1
    args = [
        *fit_args("synthetic_copl.yaml", data, root),
        "--loop.max_iterations=1",
        "--loop.epochs_per_iteration=3",
        "--loop.test_iterations=none",
        "--trainer.callbacks+="
        + json.dumps({"class_path": "tests.helpers.callbacks.SignalRank", "init_args": {"step": step, "rank": 1}}),
        f"--preemption.requeue_command={requeue}",
        "--preemption.check_every_n_steps=1",  # agree at every batch here
    ]
    # Lightning must not see SLURM here: only the job id, for the requeue
    proc = run_utal_ddp(args, SLURM_JOB_ID=JOB_ID)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((root / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    assert all(r["stopping"] and r["saved_path"] == str(root / "hpc_ckpt_1.ckpt") for r in ranks), ranks
    assert ranks[0]["global_step"] == ranks[1]["global_step"] == step  # the batch after the save is the resumed run's
    assert [p.name for p in root.glob("hpc_ckpt_*.ckpt")] == ["hpc_ckpt_1.ckpt"]
    assert torch.load(root / "hpc_ckpt_1.ckpt", weights_only=True)["global_step"] == step
    assert marker.read_text().splitlines() == [JOB_ID]
