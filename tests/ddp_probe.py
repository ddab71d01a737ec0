"""A test-only Callback that writes what each rank holds and trains on (used by test_ddp.py)."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L


class Probe(L.Callback):
    """Per rank: the videos of every training batch of epoch 0, and the final labels / P."""

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
            "history": datamodule.history,
        }
        path = Path(trainer.default_root_dir) / f"probe_rank{trainer.global_rank}.json"
        path.write_text(json.dumps(state))
