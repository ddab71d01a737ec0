"""Reproducible on many ranks (issue 12, items 1-4): the DataModule's own seeded sharding, a training loader
that resumes mid-epoch with the same samples, RNG states per rank, EMA per optimizer step, and a
preemption check that is not a collective on every step."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.helpers.datasets import write_dataset
from tests.helpers.fit import fit_args, run_utal, run_utal_ddp, short_copl_args
from tests.helpers.trainer import trainer_stub
from utal_lightning.cli import main
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.runtime.preemption import PreemptionCheckpoint

T = 6


@pytest.fixture()
def dataset(tmp_path):
    videos = {f"video_validation_{i}": ("train", 5 + i, None) for i in range(11)}
    videos["video_test_1"] = ("test", 12, [{"segment": [1.0, 5.0], "label": "Walk"}])
    return write_dataset(tmp_path / "data", videos=videos)


def _datamodule(root: Path, seed: int = 3) -> UTALDataModule:
    dm = UTALDataModule(root, num_segments=T, batch_size=2, seed=seed)
    dm.setup("fit")
    n = len(dm.index.train_ids)
    dm.set_pseudolabels(torch.arange(n) % 3, torch.ones(n, dtype=torch.bool), epochs=1)
    return dm


def _epoch(dm: UTALDataModule, trainer: SimpleNamespace) -> list[dict]:
    dm.trainer = trainer
    return list(dm.train_dataloader())


def test_ranks_take_disjoint_shards_of_one_seeded_order_with_their_own_samples(dataset):
    dm = _datamodule(dataset)
    single = [b["video_index"] for b in _epoch(dm, trainer_stub(0, 1))]
    order = torch.cat(single)
    shards = [_epoch(dm, trainer_stub(r, 2)) for r in (0, 1)]
    assert len(shards[0]) == len(shards[1])  # every rank the same number of batches (DDP needs it)
    videos = [torch.cat([b["video_index"] for b in shard]) for shard in shards]
    # 11 videos on 2 ranks: the one order, strided, padded by its first video (as DistributedSampler)
    padded = torch.cat([order, order[:1]])
    assert torch.equal(videos[0], padded[0::2]) and torch.equal(videos[1], padded[1::2])
    # each rank draws its own temporal samples; rank 0's are the single process's
    assert torch.equal(shards[0][0]["uniform"], _epoch(dm, trainer_stub(0, 1))[0]["uniform"])
    assert not torch.equal(shards[0][0]["uniform"], shards[1][0]["uniform"])
    # the same again for the same (seed, iteration, epoch); another epoch or data seed: another order
    assert torch.equal(torch.cat([b["video_index"] for b in _epoch(dm, trainer_stub(1, 2))]), videos[1])
    assert not torch.equal(torch.cat([b["video_index"] for b in _epoch(dm, trainer_stub(0, 1, epoch=1))]), order)
    other = _datamodule(dataset, seed=4)
    assert not torch.equal(torch.cat([b["video_index"] for b in _epoch(other, trainer_stub(0, 1))]), order)


def test_a_resumed_epoch_goes_on_at_the_batch_it_stopped_at(dataset):
    dm = _datamodule(dataset)
    full = _epoch(dm, trainer_stub(0, 1))
    # a checkpoint taken after 2 trained batches (the fit loop's count, not the iterator's)
    dm.trainer = trainer_stub(0, 1, completed=2)
    state = dm.train_dataloader().state_dict()
    assert state["consumed"] == 2
    resumed = dm.train_dataloader()
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(full) - 2
    for a, b in zip(rest, full[2:], strict=True):
        assert torch.equal(a["video_index"], b["video_index"]) and torch.equal(a["uniform"], b["uniform"])
    assert len(list(resumed)) == len(full)  # the next pass is a whole epoch again
    # a state of another epoch does not skip anything
    other = dm.train_dataloader()
    other.load_state_dict({**state, "key": [1, 7, 1]})
    assert len(list(other)) == len(full)


def test_the_preemption_flag_is_a_collective_every_n_steps_only_under_ddp():
    calls = []

    def trainer(world_size):
        strategy = SimpleNamespace(reduce_boolean_decision=lambda flag, all: calls.append(flag) or flag)
        return SimpleNamespace(world_size=world_size, strategy=strategy, accumulate_grad_batches=1)

    callback = PreemptionCheckpoint(check_every_n_steps=4)
    callback.on_train_epoch_start(trainer(2), None)
    for batch_idx in range(10):
        callback.on_train_batch_start(trainer(2), None, None, batch_idx)
    assert len(calls) == 1 + 3  # epoch start, batches 0, 4, 8
    calls.clear()
    for batch_idx in range(10):
        callback.on_train_batch_start(trainer(1), None, None, batch_idx)
    assert len(calls) == 10  # one process: no collective, every batch
    with pytest.raises(ValueError, match="check_every_n_steps"):
        PreemptionCheckpoint(check_every_n_steps=0)


def _strip(summary: dict) -> list[dict]:
    return [{k: v for k, v in h.items() if not k.endswith("_seconds")} for h in summary["iterations"]]


def _fit_until_stopped(args: list[str]) -> None:
    """`utal fit` in this process; a signal's stop ends it with SystemExit(138) after saving."""
    try:
        main(args)
    except SystemExit as stop:
        assert stop.code == 138, stop.code


def _signal_callback(name: str, **init_args: int) -> str:
    spec = {"class_path": f"tests.helpers.callbacks.{name}", "init_args": {**init_args, "signum": int(signal.SIGUSR1)}}
    return "--trainer.callbacks+=" + json.dumps(spec)


@pytest.mark.slow
@pytest.mark.parametrize("config", ["synthetic_copl.yaml", "synthetic_feel.yaml"])
def test_a_stop_after_any_step_or_in_any_test_pass_resumes_to_the_uninterrupted_run(tiny, tmp_path, config):
    """The preemption signal after every optimizer step in turn, and during each in-loop test pass, then
    `utal fit --ckpt_path hpc_ckpt_1.ckpt`: the same summary.json (times aside) and the same weights, bit for bit.
    Short runs of `tiny` (2 iterations x 2 epochs of 2 batches; FEEL's adaptive batches train fewer)."""
    short = (
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=2",  # steps 1-7 of COPL: mid-epoch, epoch ends, the iteration boundary
        "--loop.test_iterations=all",
        "--trainer.logger=false",
        "--preemption.auto_resume=false",
    )
    full = tmp_path / "full"
    main(fit_args(config, tiny, full, *short))
    expected = _strip(json.loads((full / "summary.json").read_text()))
    weights = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    stops = [("SignalAtStep", {"step": step}) for step in range(1, weights["global_step"])]
    stops += [("SignalDuringTest", {"iteration": i}) for i in (1, 2)]
    for name, where in stops:
        run = tmp_path / f"{name}-{'-'.join(map(str, where.values()))}"
        _fit_until_stopped(fit_args(config, tiny, run, *short, _signal_callback(name, **where)))
        saved = list(run.glob("hpc_ckpt_*.ckpt"))
        if saved:
            main(fit_args(config, tiny, run, *short, "--ckpt_path", str(saved[0])))
        else:  # the last iteration's test pass comes after the last step: that run completed
            assert (name, where) == ("SignalDuringTest", {"iteration": 2}), (name, where)
        assert _strip(json.loads((run / "summary.json").read_text())) == expected, (name, where)
        resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert resumed["global_step"] == weights["global_step"], (name, where)
        for key, tensor in weights["state_dict"].items():
            assert torch.equal(tensor, resumed["state_dict"][key]), (name, where, key)


@pytest.mark.slow
def test_under_ddp_a_stop_after_any_step_or_in_any_test_pass_resumes_to_the_uninterrupted_run(tiny, tmp_path):
    """The property above on 2 ranks, for COPL (its state is FEEL's plus the EMA teacher, the HAS votes and P + U
    batches): every rank signals itself after each optimizer step in turn (one batch per rank and epoch), or during
    each in-loop test pass; the ranks agree, save one checkpoint and stop; the resumed 2-rank run ends with the
    uninterrupted 2-rank run's summary.json and weights, bit for bit. This also makes the 2-rank fit repeatable."""
    config = "synthetic_copl.yaml"
    short = (
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=2",
        "--loop.test_iterations=all",
        "--trainer.logger=false",
        "--preemption.auto_resume=false",
        "--preemption.check_every_n_steps=1",
    )
    full = tmp_path / "full"
    done = run_utal_ddp(fit_args(config, tiny, full, *short))
    assert done.returncode == 0, done.stderr[-3000:]
    expected = _strip(json.loads((full / "summary.json").read_text()))
    weights = torch.load(full / "checkpoints" / "last.ckpt", weights_only=True)
    stops = [("SignalAtStep", {"step": step}) for step in range(1, weights["global_step"])]
    stops += [("SignalDuringTest", {"iteration": i}) for i in (1, 2)]
    assert len(stops) >= 4, stops
    for name, where in stops:
        run = tmp_path / f"{name}-{'-'.join(map(str, where.values()))}"
        stopped = run_utal_ddp(fit_args(config, tiny, run, *short, _signal_callback(name, **where)))
        saved = list(run.glob("hpc_ckpt_*.ckpt"))
        if saved:
            assert stopped.returncode == 138, (name, where, stopped.returncode, stopped.stderr[-3000:])
            resumed_run = run_utal_ddp(fit_args(config, tiny, run, *short, "--ckpt_path", str(saved[0])))
            assert resumed_run.returncode == 0, (name, where, resumed_run.stderr[-3000:])
        else:  # the last iteration's test pass comes after the last step: that run completed
            assert (name, where) == ("SignalDuringTest", {"iteration": 2}), (name, where, stopped.stderr[-3000:])
        assert _strip(json.loads((run / "summary.json").read_text())) == expected, (name, where)
        resumed = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
        assert resumed["global_step"] == weights["global_step"], (name, where)
        for key, tensor in weights["state_dict"].items():
            assert torch.equal(tensor, resumed["state_dict"][key]), (name, where, key)


@pytest.mark.slow
def test_the_ema_teacher_follows_optimizer_steps(tiny, tmp_path):
    done = run_utal(short_copl_args(tiny, tmp_path / "run", "--trainer.accumulate_grad_batches=2"))
    assert done.returncode == 0, done.stderr[-3000:]
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    # 2 batches per epoch, accumulated: one optimizer step per epoch, one teacher update per step
    assert last["global_step"] == 2 * 4
    assert int(last["state_dict"]["teacher.n_averaged"]) == last["global_step"]


def test_more_cpu_processes_than_cores_is_a_warning(monkeypatch):
    from lightning.pytorch.accelerators import CPUAccelerator

    from utal_lightning import lightning_cli

    monkeypatch.setattr(lightning_cli, "usable_cores", lambda: 2)
    with pytest.warns(UserWarning, match="3 training processes on 2 CPU cores"):
        lightning_cli.warn_if_oversubscribed(SimpleNamespace(accelerator=CPUAccelerator(), num_devices=3))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lightning_cli.warn_if_oversubscribed(SimpleNamespace(accelerator=CPUAccelerator(), num_devices=2))
