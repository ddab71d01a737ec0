"""``utal fit | validate | test | predict``: LightningCLI over the UTAL DataModule and models."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI

from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.eval.io import write_detections
from utal_lightning.loop.refresh import PseudoLabelRefresh
from utal_lightning.models.modules import LocalizationModule

DETECTIONS_FILE = "detections.json"


def checkpoint_dir(default_root_dir: str | None) -> str:
    return str(Path(default_root_dir or ".") / "checkpoints")


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
        # The outer loop and checkpointing are top-level config groups (`loop:`, `checkpoint:`), so
        # `--loop.strategy.use_cci false` works from the command line; both are added as callbacks.
        parser.add_lightning_class_args(PseudoLabelRefresh, "loop")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_on_train_epoch_end": True})
        # A stable checkpoint folder (not lightning_logs/version_N/): resumes and requeues find it.
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=checkpoint_dir)
        # The model's input width and class count follow the data: never typed twice.
        parser.link_arguments("data.feature_dim", "model.init_args.feature_dim", apply_on="instantiate")
        parser.link_arguments("data.num_clusters", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.rgb_dim", "model.init_args.rgb_dim", apply_on="instantiate")

    def before_predict(self) -> None:
        self.trainer.callbacks.append(DetectionWriter(Path(self.trainer.default_root_dir) / DETECTIONS_FILE))


def run(argv: Sequence[str] | None) -> None:
    """Run LightningCLI on ``argv`` (None: ``sys.argv``)."""
    for message in (
        ".*isinstance.treespec, LeafSpec.*",  # Lightning's pytree shim on recent torch
        ".*tensorboardX.*",  # CSV is our default logger on purpose
        ".*is smaller than the logging interval.*",  # small synthetic epochs
    ):
        warnings.filterwarnings("ignore", message=message)
    UTALCLI(
        LocalizationModule,
        UTALDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"reload_dataloaders_every_n_epochs": 1, "num_sanity_val_steps": 0},
        parser_kwargs={"prog": "utal"},
        args=None if argv is None else list(argv),
    )
