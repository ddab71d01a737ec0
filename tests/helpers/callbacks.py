"""Test-only Callbacks, named by class path on `utal fit` command lines (``--trainer.callbacks+=...``):
they probe what each rank trains on, or send the process a signal at a chosen step."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

import lightning as L

from utal_lightning.loop.refresh import PseudoLabelRefresh
from utal_lightning.runtime.preemption import PreemptionCheckpoint


class Probe(L.Callback):
    """Test only (test_ddp.py): per rank: the videos of every training batch of epoch 0, and the final labels / P."""

    def __init__(self) -> None:
        self.epoch0: list[tuple[int, bool]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.current_epoch == 0:
            self.epoch0 += list(zip(batch["video_index"].tolist(), batch["supervised"].tolist(), strict=True))

    def on_fit_end(self, trainer, pl_module) -> None:
        datamodule = trainer.datamodule
        state = {
            "rank": trainer.global_rank,
            "world_size": trainer.world_size,
            "epoch0": self.epoch0,
            "labels": datamodule.labels.tolist(),
            "selected": datamodule.selected.tolist(),
            "history": next(c.history for c in trainer.callbacks if isinstance(c, PseudoLabelRefresh)),
        }
        path = Path(trainer.default_root_dir) / f"probe_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(state))


class SignalAt(L.Callback):
    """Test only: sends SIGUSR1 to this process at the end of the batch that reaches ``step``, and
    records what the signal changed right away (nothing but the flag should)."""

    observed: ClassVar[list[dict[str, Any]]] = []
    fits: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, step: int) -> None:
        self.step = step

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        environment = trainer._accelerator_connector.cluster_environment
        SignalAt.fits.append(
            {
                "ckpt_path": trainer.ckpt_path,
                "environment": environment,
                "handler_owner": getattr(signal.getsignal(signal.SIGUSR1), "__self__", None),
            }
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step != self.step:
            return
        (preemption,) = [cb for cb in trainer.callbacks if isinstance(cb, PreemptionCheckpoint)]
        if getattr(signal.getsignal(signal.SIGUSR1), "__self__", None) is not preemption:
            SignalAt.observed.append({"handler_installed": False})  # SIGUSR1's default action would kill pytest
            return
        root = Path(trainer.default_root_dir)
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)  # the Python-level handler runs at the latest here
        SignalAt.observed.append(
            {
                "handler_installed": True,
                "requested": preemption.requested,
                "should_stop": trainer.should_stop,
                "files_after_signal": sorted(p.name for p in root.glob("*.ckpt"))
                + sorted(p.name for p in root.glob(".*")),
            }
        )


class SignalRank(L.Callback):
    """Test only, for DDP: ``rank`` alone signals itself at ``step``; every rank writes what it did."""

    def __init__(self, step: int, rank: int) -> None:
        self.step, self.rank = step, rank

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if trainer.global_step == self.step and trainer.global_rank == self.rank:
            os.kill(os.getpid(), signal.SIGUSR1)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        (preemption,) = [cb for cb in trainer.callbacks if isinstance(cb, PreemptionCheckpoint)]
        record = {
            "world_size": trainer.world_size,
            "global_step": trainer.global_step,
            "saved_path": str(preemption.saved_path),
            "stopping": preemption.stopping,
        }
        (Path(trainer.default_root_dir) / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


class SignalAtStep(L.Callback):
    """Test only: this process sends itself ``signum`` at the end of the batch that reaches ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


class SignalDuringTest(L.Callback):
    """Test only: this process sends itself ``signum`` from inside the in-loop test pass of outer iteration
    ``iteration`` (as its first test video is detected)."""

    def __init__(self, iteration: int, signum: int) -> None:
        self.iteration, self.signum, self.sent = iteration, signum, False

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        detect_videos = pl_module.detect_videos

        def signalling(*args: Any, **kwargs: Any) -> Any:
            if trainer.datamodule.iteration == self.iteration and not self.sent:
                self.sent = True
                os.kill(os.getpid(), self.signum)
            return detect_videos(*args, **kwargs)

        pl_module.detect_videos = signalling
