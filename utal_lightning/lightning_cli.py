"""``utal fit | validate | test | predict``: LightningCLI over the UTAL DataModule and models."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningCLI

from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.eval.io import write_detections
from utal_lightning.models.modules import LocalizationModule

DETECTIONS_FILE = "detections.json"


class DetectionWriter(BasePredictionWriter):
    """Writes ``utal predict``'s detections as ActivityNet result JSON (atomically)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)

    def write_on_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any], batch_indices: Any) -> None:
        datamodule = trainer.datamodule
        found = dict(predictions)
        ids = datamodule.index.test_ids
        rows = [found[i] for i in range(len(ids)) if i in found]
        write_detections(self.path, [ids[i] for i in range(len(ids)) if i in found], rows, datamodule.index.classes)
        print(f"wrote detections of {len(rows)} videos to {self.path}")


class UTALCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: Any) -> None:
        # The model's input width and class count follow the data: never typed twice.
        parser.link_arguments("data.feature_dim", "model.init_args.feature_dim", apply_on="instantiate")
        parser.link_arguments("data.num_clusters", "model.init_args.num_classes", apply_on="instantiate")

    def before_predict(self) -> None:
        self.trainer.callbacks.append(DetectionWriter(Path(self.trainer.default_root_dir) / DETECTIONS_FILE))


def run(argv: Sequence[str]) -> None:
    UTALCLI(
        LocalizationModule,
        UTALDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"reload_dataloaders_every_n_epochs": 1, "num_sanity_val_steps": 0},
        parser_kwargs={"prog": "utal"},
        args=list(argv),
    )
