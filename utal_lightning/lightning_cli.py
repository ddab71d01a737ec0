"""``utal fit | validate | test | predict``: LightningCLI over the UTAL DataModule and models."""

from __future__ import annotations

import logging
import os
import traceback
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
import yaml
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.errors import DatasetError
from utal_lightning.eval.io import write_detections
from utal_lightning.loop.preemption import PreemptionCheckpoint, resolve_resume_path, slurm_plugins
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


class LogConfigCallback(SaveConfigCallback):
    """Writes config.yaml (LightningCLI's default) and also logs the full resolved config to every logger (W&B too)."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})


class UTALCLI(LightningCLI):
    def init_parser(self, **kwargs: Any) -> Any:
        # Parse errors come back to run() as exceptions, to be printed in one line without the
        # 80-line usage jsonargparse prints before them.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        # The outer loop and checkpointing are top-level config groups (`loop:`, `checkpoint:`), so
        # `--loop.strategy.use_cci false` works from the command line; both are added as callbacks.
        parser.add_lightning_class_args(PseudoLabelRefresh, "loop")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # Preemption (SIGUSR1): flag in the handler, save + requeue + stop at the next batch (loop/preemption.py).
        parser.add_lightning_class_args(PreemptionCheckpoint, "preemption")
        parser.set_defaults({"checkpoint.save_last": True, "checkpoint.save_on_train_epoch_end": True})
        # A stable checkpoint folder (not lightning_logs/version_N/): resumes and requeues find it.
        parser.link_arguments("trainer.default_root_dir", "checkpoint.dirpath", compute_fn=checkpoint_dir)
        # The model's input width and class count follow the data: never typed twice.
        parser.link_arguments("data.feature_dim", "model.init_args.feature_dim", apply_on="instantiate")
        parser.link_arguments("data.num_clusters", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.rgb_dim", "model.init_args.rgb_dim", apply_on="instantiate")

    def instantiate_trainer(self, **kwargs: Any) -> L.Trainer:
        # Under SLURM: SLURMEnvironment(auto_requeue=False), so Lightning's in-handler save never runs.
        trainer = self._get(self.config_init, "trainer", default={})
        kwargs.setdefault("plugins", slurm_plugins(trainer.get("plugins"), self._get(self.config_init, "preemption")))
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        # No --ckpt_path and auto-resume on (default: in a SLURM batch job): the newest hpc_ckpt_* / last.ckpt.
        config = self.config_init[self.subcommand]
        config["ckpt_path"] = resolve_resume_path(self.trainer, config.get("ckpt_path"))

    def before_instantiate_classes(self) -> None:
        # A logger whose save_dir is null logs into the run directory (configs/wandb.yaml relies on it).
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        for logger in loggers:
            init_args = getattr(logger, "init_args", None)
            if init_args is not None and "save_dir" in init_args and init_args.save_dir is None:
                init_args.save_dir = trainer.default_root_dir or "."

    def before_predict(self) -> None:
        self.trainer.callbacks.append(DetectionWriter(Path(self.trainer.default_root_dir) / DETECTIONS_FILE))


class _DropAdvertisements(logging.Filter):
    """Lightning's "Tip: try installing litlogger / litmodels" lines, printed on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("\N{ELECTRIC LIGHT BULB} Tip:")


def condense_parser_error(message: str) -> str:
    """jsonargparse's error message on one line, without the lines that restate the union of types
    (``Subtypes: [...]``, ``Expected a <class 'NoneType'>``, ``Given value ...``)."""
    skip = ("Subtypes:", "Errors:", "Given value", "- Expected a <class 'NoneType'>", "Does not validate against any of the Union subtypes")
    kept = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(skip)]
    return " ".join(kept)


def _user_error_in_chain(error: BaseException) -> DatasetError | None:
    """The DatasetError behind ``error`` (jsonargparse wraps what a constructor raises), or a
    ValueError raised by one of our constructors (a config value it rejects) as a DatasetError."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DatasetError):
            return current
        if type(current) is ValueError and current.__traceback__ is not None:
            frames = traceback.extract_tb(current.__traceback__)
            last = frames[-1] if frames else None
            if last is not None and last.name == "__init__" and f"{os.sep}utal_lightning{os.sep}" in last.filename:
                return DatasetError(f"invalid config: {current}")
        current = current.__cause__ or current.__context__
    return None


def run(argv: Sequence[str] | None) -> None:
    """Run LightningCLI on ``argv`` (None: ``sys.argv``). A config mistake or bad data found while
    the parser builds the classes raises one :class:`DatasetError` (the caller prints one line)."""
    for message in (
        ".*isinstance.treespec, LeafSpec.*",  # Lightning's pytree shim on recent torch
        ".*tensorboardX.*",  # CSV is our default logger on purpose
        ".*is smaller than the logging interval.*",  # small synthetic epochs
    ):
        warnings.filterwarnings("ignore", message=message)
    rank_zero_log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropAdvertisements) for f in rank_zero_log.filters):
        rank_zero_log.addFilter(_DropAdvertisements())
    try:
        _run_cli(argv)
    except ArgumentError as e:
        raise DatasetError(condense_parser_error(str(e))) from None
    except Exception as e:
        user_error = _user_error_in_chain(e)
        if user_error is None:
            raise
        raise user_error from None


def _run_cli(argv: Sequence[str] | None) -> None:
    UTALCLI(
        LocalizationModule,
        UTALDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_callback=LogConfigCallback,
        save_config_kwargs={"overwrite": True},
        # max_epochs: the outer loop (loop.refresh) sets the epochs of each iteration at fit start;
        # -1 here only keeps Lightning from warning that it was not set.
        trainer_defaults={"reload_dataloaders_every_n_epochs": 1, "num_sanity_val_steps": 0, "max_epochs": -1},
        parser_kwargs={"prog": "utal"},
        args=None if argv is None else list(argv),
    )
