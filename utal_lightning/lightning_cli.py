"""``utal fit | validate | test | predict``: LightningCLI over the UTAL DataModule and models."""

from __future__ import annotations

import logging
import os
import re
import sys
import traceback
import warnings
from argparse import ArgumentError
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import yaml
from jsonargparse import ActionYesNo, ArgumentParser
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.data.layouts import SHIPPED as SHIPPED_LAYOUTS
from utal_lightning.distributed import gather_objects
from utal_lightning.errors import DatasetError
from utal_lightning.eval.io import write_detections
from utal_lightning.loop.refresh import PseudoLabelRefresh
from utal_lightning.models.modules import LocalizationModule
from utal_lightning.reporting.summary import RUN_CONFIG_FILE, SUMMARY_FILE
from utal_lightning.runtime.preemption import (
    Interrupted,
    PreemptionCheckpoint,
    early_signal_handlers,
    hpc_checkpoints,
    newest_checkpoint,
    resolve_resume_path,
    resume_hint,
    slurm_plugins,
)
from utal_lightning.utils import atomic_write_text, shipped_config

DETECTIONS_FILE = "detections.json"
DATASET_PREFIXES = ("thumos_", "anet_", "synthetic_")  # config-name prefixes that say the dataset, not the method


def checkpoint_dir(default_root_dir: str | None) -> str:
    return str(Path(default_root_dir or ".") / "checkpoints")


def default_run_dir(data_root: str | Path | None, config_files: Sequence[str | Path], model_class: str | None) -> str:
    """``runs/<dataset>/<method>``: the data root's folder name, and the first config file's name without a
    dataset prefix (``thumos_copl.yaml`` -> ``copl``; ablations keep theirs), else the model class."""
    dataset = Path(str(data_root)).name if data_root else "data"
    if config_files:
        method = Path(str(config_files[0])).stem
        for prefix in DATASET_PREFIXES:
            if method.startswith(prefix) and len(method) > len(prefix):
                method = method[len(prefix) :]
                break
    else:
        method = (model_class or "model").rsplit(".", 1)[-1].lower()
    return str(Path("runs") / (dataset or "data") / method)


def existing_checkpoints(run_dir: str | Path, checkpoint_dirs: Sequence[str | Path]) -> list[Path]:
    """Checkpoints a fresh fit into ``run_dir`` would mix with its own: ``*.ckpt`` in the checkpoint folders
    and ``hpc_ckpt_*.ckpt`` in the run directory."""
    found = [path for _, path in hpc_checkpoints(run_dir)]
    for folder in checkpoint_dirs:
        found += sorted(Path(folder).glob("*.ckpt")) if Path(folder).is_dir() else []
    return found


def config_beside(ckpt_path: str | Path) -> Path | None:
    """The run's config.yaml for a checkpoint: ``<run>/checkpoints/x.ckpt`` or ``<run>/hpc_ckpt_N.ckpt``."""
    ckpt = Path(ckpt_path)
    for folder in (ckpt.parent.parent, ckpt.parent):
        if (folder / RUN_CONFIG_FILE).is_file():
            return folder / RUN_CONFIG_FILE
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def warn_if_oversubscribed(trainer: L.Trainer) -> None:
    """More CPU training processes than cores on this machine: each step then waits for the slowest."""
    from lightning.pytorch.accelerators import CPUAccelerator
    from lightning.pytorch.utilities import rank_zero_warn

    processes, cores = trainer.num_devices, usable_cores()
    if isinstance(trainer.accelerator, CPUAccelerator) and processes > cores:
        rank_zero_warn(
            f"{processes} training processes on {cores} CPU cores: they will contend for the cores "
            f"(use --trainer.devices {cores} or fewer)"
        )


def option_values(argv: Sequence[str], names: Sequence[str]) -> list[tuple[int, str, str]]:
    """``(position, prefix, value)`` of each ``NAME VALUE`` or ``NAME=VALUE`` in ``argv`` for NAME in
    ``names``, in order: ``argv[position] == prefix + value``."""
    found = []
    for i, arg in enumerate(argv):
        for name in names:
            if arg == name and i + 1 < len(argv):
                found.append((i + 1, "", argv[i + 1]))
            elif arg.startswith(name + "="):
                found.append((i, name + "=", arg[len(name) + 1 :]))
    return found


def with_shipped_configs(argv: list[str]) -> list[str]:
    """``--config NAME`` for a file that does not exist here but ships with the package -> its path.
    An existing path always wins, so ``--config configs/thumos_copl.yaml`` works as before."""
    out = list(argv)
    for at, prefix, value in option_values(out, ("--config", "-c")):
        if not Path(value).exists() and (shipped := shipped_config(value)) is not None:
            out[at] = prefix + str(shipped)
    return out


def with_saved_config(argv: list[str]) -> list[str]:
    """``utal test|predict|validate --ckpt_path X`` without ``--config``: the run's saved config first, so data and
    model settings come from the run that wrote X (later flags still override it)."""
    if len(argv) < 2 or argv[0] not in ("validate", "test", "predict"):
        return argv
    rest = argv[1:]
    if any(a in ("--config", "-c") or a.startswith("--config=") for a in rest):
        return argv
    ckpt = next((value for _, _, value in option_values(rest, ("--ckpt_path",))), None)
    if ckpt is None:
        return argv
    if not Path(ckpt).is_file():
        raise DatasetError(f"{ckpt}: checkpoint not found")
    config = config_beside(ckpt)
    if config is None:
        raise DatasetError(
            f"{ckpt}: no --config given and no {RUN_CONFIG_FILE} beside the checkpoint (looked in "
            f"{Path(ckpt).parent.parent} and {Path(ckpt).parent}): pass the run's --config"
        )
    return [argv[0], "--config", str(config), *rest]


class DetectionWriter(BasePredictionWriter):
    """Writes ``utal predict``'s detections as ActivityNet result JSON (atomically)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(write_interval="epoch")
        self.path = Path(path)

    def write_on_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        # Under DDP every rank predicted its shard of the test videos: gather them, write once.
        found = {i: rows for part in gather_objects(trainer, list(predictions)) for i, rows in part}
        if not trainer.is_global_zero:
            return
        datamodule = trainer.datamodule
        ids = datamodule.index.test_ids
        rows = [found[i] for i in range(len(ids)) if i in found]
        write_detections(self.path, [ids[i] for i in range(len(ids)) if i in found], rows, datamodule.class_names)
        print(f"wrote detections of {len(rows)} videos to {self.path}")


class LogConfigCallback(SaveConfigCallback):
    """Writes config.yaml (LightningCLI's default, in the logger's folder), logs the full resolved config to every
    logger (W&B too), and, for ``fit``, keeps ``<run dir>/config.yaml``: what ``utal test|predict --ckpt_path X``
    reads when no ``--config`` is given (without the command's own arguments: ckpt_path, overwrite, output)."""

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in trainer.loggers:
            logger.log_hyperparams({"config": config})
        if stage == "fit":
            run_config = {k: v for k, v in config.items() if k not in ("ckpt_path", "overwrite", "output", "config")}
            atomic_write_text(
                Path(trainer.default_root_dir) / RUN_CONFIG_FILE, yaml.safe_dump(run_config, sort_keys=False)
            )


class UTALCLI(LightningCLI):
    command_args: Sequence[str] = ()  # the command line, for the resume hint after a signal
    # Where a fit stands, for the message of a signal outside the training loop (run() resets both):
    fit_dirs: tuple[Path, list[Path]] | None = None  # its run directory and checkpoint folders, once set up
    fit_finished = False  # the fit returned without a signal's stop

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> Any:
        parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
        # the commands' own arguments (not passed to the Trainer's method)
        if subcommand == "fit":
            parser.add_argument(
                "--overwrite",
                action=ActionYesNo,
                default=False,
                help="start afresh in a run directory that holds another run's checkpoints (deletes them)",
            )
        if subcommand == "predict":
            parser.add_argument(
                "--output",
                type=str | None,
                default=None,
                help=f"detections JSON to write (default <default_root_dir>/{DETECTIONS_FILE})",
            )
        return parser

    def init_parser(self, **kwargs: Any) -> Any:
        # Parse errors come back to run() as exceptions, to be printed in one line without the
        # 80-line usage jsonargparse prints before them.
        kwargs.setdefault("exit_on_error", False)
        return super().init_parser(**kwargs)

    def add_arguments_to_parser(self, parser: Any) -> None:
        # The outer loop and checkpointing are top-level config groups (`loop:`, `checkpoint:`), so
        # `--loop.pseudolabeler.init_args.selector.init_args.mu 1.03` works from the command line; both are added
        # as callbacks.
        parser.add_lightning_class_args(PseudoLabelRefresh, "loop")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        # Preemption (SIGUSR1): flag in the handler, save + requeue + stop at the next batch (runtime/preemption.py).
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
        warn_if_oversubscribed(self.trainer)
        # No --ckpt_path and auto-resume on (default: in a SLURM batch job): the newest hpc_ckpt_* / last.ckpt.
        config = self.config_init[self.subcommand]
        config["ckpt_path"] = resolve_resume_path(self.trainer, config.get("ckpt_path"))
        if config["ckpt_path"] is None:
            self._refuse_or_clear_earlier_run(bool(config.get("overwrite")))
        dirs = [Path(cb.dirpath) for cb in self.trainer.checkpoint_callbacks if getattr(cb, "dirpath", None)]
        UTALCLI.fit_dirs = (Path(self.trainer.default_root_dir), dirs)

    def after_fit(self) -> None:
        # A signal stopped the run after saving a checkpoint: say how to resume, exit 128 + signal (0 if requeued).
        callbacks = [cb for cb in self.trainer.callbacks if isinstance(cb, PreemptionCheckpoint)]
        UTALCLI.fit_finished = not any(cb.stopping for cb in callbacks)
        for callback in callbacks:
            if callback.requested and not callback.stopping and self.trainer.is_global_zero:
                # the preemption signal came after the last training step: the run completed regardless
                received = callback.received.name if callback.received else "a signal"
                print(f"{received} arrived after the last training step: the run is complete", file=sys.stderr)
        for callback in callbacks:
            if callback.stopping:
                status = callback.exit_status()
                if self.trainer.is_global_zero:
                    how = (
                        "requeued; the job resumes by itself"
                        if status == 0
                        else f"resume with:\n  {resume_hint(self.command_args, callback.saved_path)}"
                    )
                    received = callback.received.name if callback.received else "a signal"
                    print(f"stopped by {received}: saved {callback.saved_path}; {how}", file=sys.stderr)
                if status:
                    raise SystemExit(status)

    def _refuse_or_clear_earlier_run(self, overwrite: bool) -> None:
        """A fresh fit never mixes with an earlier run's checkpoints (Lightning would add last-v1.ckpt beside them)."""
        run_dir = Path(self.trainer.default_root_dir)
        dirs = [
            cb.dirpath for cb in self.trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath
        ]
        found = existing_checkpoints(run_dir, dirs)
        if not found:
            return
        if not overwrite:
            shown = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
            resume = next((p for p in found if p.name == "last.ckpt"), found[-1])
            raise DatasetError(
                f"{run_dir}: holds the checkpoints of an earlier run ({shown}): resume it with --ckpt_path {resume}, "
                "choose another --trainer.default_root_dir, or start afresh with --overwrite"
            )
        if self.trainer.is_global_zero:
            for path in found:
                path.unlink(missing_ok=True)
            (run_dir / SUMMARY_FILE).unlink(missing_ok=True)
            print(f"--overwrite: removed {len(found)} checkpoints of an earlier run from {run_dir}")
        self.trainer.strategy.barrier("utal-overwrite")

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        trainer = config.trainer
        data = config.data.init_args if getattr(config.data, "init_args", None) is not None else config.data
        if trainer.default_root_dir is None:
            # runs/<dataset>/<method>, from the data root and the config (and the checkpoint folder inside it)
            trainer.default_root_dir = default_run_dir(
                getattr(data, "root", None),
                [str(c) for c in (config.get("config") or [])],
                getattr(config.model, "class_path", None),
            )
            config.checkpoint.dirpath = checkpoint_dir(trainer.default_root_dir)
        if self.subcommand == "predict" or (self.subcommand == "fit" and config.loop.test_iterations == "none"):
            data.require_test_annotations = False  # no mAP: test videos need no ground truth
        # A logger whose save_dir is null logs into the run directory (configs/wandb.yaml relies on it).
        loggers = trainer.logger if isinstance(trainer.logger, list) else [trainer.logger]
        for logger in loggers:
            require_logger_extra(getattr(logger, "class_path", None))
            init_args = getattr(logger, "init_args", None)
            if init_args is not None and "save_dir" in init_args and init_args.save_dir is None:
                init_args.save_dir = trainer.default_root_dir or "."

    def before_predict(self) -> None:
        output = self.config_init[self.subcommand].get("output")
        self.trainer.callbacks.append(DetectionWriter(output or Path(self.trainer.default_root_dir) / DETECTIONS_FILE))


class _DropAdvertisements(logging.Filter):
    """Lightning's "Tip: try installing litlogger / litmodels" lines, printed on every run; its note on
    every resume that ``weights_only`` defaults to False (our own checkpoints hold RNG states); and its
    "`Trainer.fit` stopped: `max_epochs=N` reached" (the outer loop sets max_epochs; its table follows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.getMessage())
        return not message.startswith(
            ("\N{ELECTRIC LIGHT BULB} Tip:", "`weights_only` was not set", "`Trainer.fit` stopped: `max_epochs=")
        )


def condense_parser_error(message: str) -> str:
    """jsonargparse's error message on one line, without the lines that restate the union of types
    (``Subtypes: [...]``, ``Expected a <class 'NoneType'>``, ``Given value ...``)."""
    skip = (
        "Subtypes:",
        "Errors:",
        "Given value",
        "- Expected a <class 'NoneType'>",
        "Does not validate against any of the Union subtypes",
    )
    kept = [line.strip() for line in message.splitlines() if line.strip() and not line.strip().startswith(skip)]
    return " ".join(kept)


# Config keys of earlier versions, and where they went: (a fragment of the parser's error, what to do).
OUTDATED_KEYS = (
    (
        ("loop.strategy", "option 'strategy"),
        "loop.strategy (FEELStrategy, COPLStrategy, GroundTruthLabels) became loop.pseudolabeler, a pipeline of "
        "parts (pooler, clusterer, refiner, selector): copy the loop.pseudolabeler block of the shipped config of "
        "your method (utal fit --config thumos_feel --print_config) and docs/architecture.md's table of the old keys",
    ),
)


# Arguments of earlier versions that moved into an injected part: (group, old key) -> its new parent key.
MOVED_KEYS = {
    **{
        ("model", key): "model.init_args.network.init_args"
        for key in (
            *("hidden_dim", "dropout", "embed_kernel", "cls_kernel", "cls_depthwise_kernel", "cls_depthwise_dilation"),
            *("r_easy", "center_input", "glorot_fans", "h_beta", "top_l_divisor", "zero_init_agnostic_heads"),
        )
    },
    **{
        ("model", key): "model.init_args.loss"
        for key in (
            *("r_hard", "m", "M", "drop_rate", "hard_threshold", "cls_loss", "lambda_ctr", "temperature"),
            *("asl_q", "ci_mu1", "ci_mu2", "lambda_c", "lambda_co", "use_ci", "use_c", "use_co"),
        )
    },
    **{("model", key): "model.init_args.optimizer.init_args" for key in ("lr", "weight_decay")},
    **{
        ("model", key): "model.init_args.evaluator.detection"
        for key in (
            *("class_threshold", "proposal_thresholds", "proposal_scoring", "actionness_thresholds", "nms_iou"),
            "upsample_scale",
        )
    },
    **{
        ("model", key): "model.init_args.evaluator"
        for key in ("detection", "class_mapping", "class_scores", "localization", "centroid_temperature", "tious")
    },
    **{
        ("data", key): "data.init_args.layout.init_args"
        for key in ("annotation_file", "feature_folder", "feature_prefix", "feature_stride", "feature_window")
    },
    ("data", "default_fps"): "data.init_args.layout.init_args",
}


def outdated_config_hint(message: str) -> str | None:
    """One line on how to update a config written for an earlier version, if the parser's error is about one of
    its keys (:data:`OUTDATED_KEYS`, :data:`MOVED_KEYS`, a layout given by name)."""
    for fragments, hint in OUTDATED_KEYS:
        if any(fragment in message for fragment in fragments):
            return f"outdated config: {hint}"
    see = "see docs/architecture.md's table of the old keys"
    moved = re.search(r"Parser key \"(model|data)\".*Option '(\w+)' is not accepted", message, re.S)
    if moved and (moved.group(1), moved.group(2)) in MOVED_KEYS:
        group, key = moved.groups()
        where = MOVED_KEYS[(group, key)]
        parts = "the file layout is a class now" if group == "data" else "the model's settings are grouped by part"
        return f"outdated config: {group}.init_args.{key} moved to {where}.{key} ({parts}; {see})"
    named = re.search(r"Parser key \"layout\".*?string: (\w+)", message, re.S)
    if named and named.group(1) in ("auto", *SHIPPED_LAYOUTS):
        layout = SHIPPED_LAYOUTS.get(named.group(1))
        how = (
            f"data.init_args.layout: {layout.__module__}.{layout.__name__}"
            if layout is not None
            else "leave it out or null (the layout is found from the files)"
        )
        return f"outdated config: data.init_args.layout is a class now, not a name: {how} ({see})"
    return None


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
            if (
                last is not None
                and last.name in ("__init__", "__post_init__")
                and f"{os.sep}utal_lightning{os.sep}" in last.filename
            ):
                return DatasetError(f"invalid config: {current}")
        current = current.__cause__ or current.__context__
    return None


def instantiate_model(model_config: dict[str, Any], **linked: Any) -> LocalizationModule:
    """The LightningModule a config's ``model`` block builds, as ``utal fit`` builds it (the network, loss and
    optimizer injected), with what the CLI links from the data given in ``linked`` (``num_classes``,
    ``feature_dim``, ``rgb_dim``). For scripts and benchmarks that drive a module without the CLI."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(LocalizationModule, "model")
    init_args = {**(model_config.get("init_args") or {}), **linked}
    parsed = parser.parse_object({"model": {**model_config, "init_args": init_args}})
    return parser.instantiate(parsed).model


def require_logger_extra(class_path: str | None) -> None:
    """A W&B logger needs the ``wandb`` extra: say so in one line before anything is built."""
    if not class_path or not class_path.endswith("WandbLogger"):
        return
    try:
        import wandb  # noqa: F401
    except ImportError:
        raise DatasetError(
            f"trainer.logger: {class_path} (configs/wandb.yaml) needs wandb: pip install 'utal-lightning[wandb]'"
        ) from None


def run(argv: Sequence[str] | None) -> None:
    """Run LightningCLI on ``argv`` (None: ``sys.argv``). A config mistake or bad data found while
    the parser builds the classes raises one :class:`DatasetError` (the caller prints one line)."""
    for message in (
        ".*isinstance.treespec, LeafSpec.*",  # Lightning's pytree shim on recent torch
        ".*tensorboardX.*",  # CSV is our default logger on purpose
        ".*is smaller than the logging interval.*",  # small synthetic epochs
        ".*Couldn.t infer the batch indices.*",  # predict: our writer does not need them
    ):
        warnings.filterwarnings("ignore", message=message)
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch.trainer.connectors.checkpoint_connector"):
        noisy = logging.getLogger(name)
        if not any(isinstance(f, _DropAdvertisements) for f in noisy.filters):
            noisy.addFilter(_DropAdvertisements())
    UTALCLI.fit_dirs, UTALCLI.fit_finished = None, False
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        args = with_saved_config(with_shipped_configs(given))
        UTALCLI.command_args = given
        # until the training loop installs its own: a clean stop; for the command line, to the process's end
        until_exit = (lambda: interrupted_where(given)) if argv is None else None
        with early_signal_handlers("SIGUSR1", until_exit=until_exit):
            _run_cli(
                None if argv is None and args == given else args
            )  # Lightning warns when given args and sys.argv both
    except Interrupted as e:
        print(f"error: stopped by {e.signum.name} {interrupted_where(given)}", file=sys.stderr)
        raise SystemExit(128 + int(e.signum)) from None
    except ArgumentError as e:
        if "WandbLogger" in str(e):  # without wandb the parser cannot take the logger's arguments
            require_logger_extra("lightning.pytorch.loggers.WandbLogger")
        raise DatasetError(outdated_config_hint(str(e)) or condense_parser_error(str(e))) from None
    except Exception as e:
        user_error = _user_error_in_chain(e)
        if user_error is None:
            raise
        raise user_error from None


def interrupted_where(args: Sequence[str]) -> str:
    """Where a stop signal outside the training loop found the command, and what to do, in one line."""
    if UTALCLI.fit_finished:
        return f"after the fit finished: {UTALCLI.fit_dirs[0] if UTALCLI.fit_dirs else 'its run'} holds its results"
    newest = newest_checkpoint(existing_checkpoints(*UTALCLI.fit_dirs)) if UTALCLI.fit_dirs else None
    if newest is not None:
        return f"outside the training loop; resume from its newest checkpoint with: {resume_hint(args, newest)}"
    return "before anything was saved (rerun the command)"


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
        # use_distributed_sampler: the DataModule shards every loader itself (seeded by seed, iteration and epoch).
        trainer_defaults={
            "reload_dataloaders_every_n_epochs": 1,
            "num_sanity_val_steps": 0,
            "max_epochs": -1,
            "default_root_dir": None,
            "use_distributed_sampler": False,
        },
        parser_kwargs={"prog": "utal"},
        args=None if argv is None else list(argv),
    )
