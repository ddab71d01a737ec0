"""The outer loop (docs/method.md sec. 2) as a Callback: it decides *when* to relabel.

The pseudolabeler decides *how*; ``reporting/`` records and draws what happened.

One ``fit`` runs every iteration: the Callback labels the videos at the start of a fresh run and
again when an iteration's epochs are done, hands labels and P to the DataModule (which rebuilds the
train loader every epoch), extends ``max_epochs`` by the next iteration's epoch count (adaptive
epochs change it at run time), and keeps the run's history (one record per iteration, in its
checkpointed state; ``summary.json``). What it reads from the training videos is ``reading.py``'s,
the epoch counts ``schedule.py``'s, the test the LightningModule's (``test_pass``). Test mAP is
computed at each iteration's end for the logs only: nothing here reads test labels to decide anything.
"""

from __future__ import annotations

import random
import time
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from utal_lightning.distributed import gather_objects
from utal_lightning.loop.reading import pool_training_videos, read_network
from utal_lightning.loop.schedule import epochs_into_iteration, iteration_epochs, restart_seed
from utal_lightning.pseudo.parts import PseudoLabels
from utal_lightning.pseudo.pseudolabeler import PseudoLabeler
from utal_lightning.reporting import iteration as report
from utal_lightning.reporting import plots
from utal_lightning.reporting.summary import write_summary
from utal_lightning.reporting.test_results import log_per_class_table, report_final_test, test_metrics
from utal_lightning.runtime.preemption import preemption_requested


def rng_states() -> dict[str, Any]:
    """This process's RNG states (torch CPU, every CUDA device that was used, numpy, python), in tensors and
    lists that ``torch.load(weights_only=True)`` reads."""
    np_state = np.random.get_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    return {
        "torch": torch.get_rng_state(),
        "cuda": cuda,
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def set_rng_states(state: dict[str, Any]) -> None:
    """Restore :func:`rng_states` (CUDA only where the same number of devices is visible)."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


class PseudoLabelRefresh(L.Callback):
    """Relabel at fit start (fresh runs) and at every iteration boundary.

    Args:
        pseudolabeler: how to pool, cluster, refine and select (a
            :class:`~utal_lightning.pseudo.pseudolabeler.PseudoLabeler`, a pipeline of parts).
        max_iterations: I_max, outer iterations.
        epochs_per_iteration: E_max, the baseline's epochs per iteration (over all N videos).
        adaptive_epochs: FEEL's adaptive epochs: E_max epochs over P_i, about |P_i| / N of the
            baseline's ``E_max * ceil(N / B)`` batches; else that full batch budget every iteration
            (as many epochs over P_i as it takes). See ``loop.schedule.iteration_epochs``.
        restart_each_iteration: re-initialize the model (and optimizer state) at every new
            iteration (FEEL's released code) instead of continuing from the previous weights (COPL);
            the fresh weights are those of the model's constructor under a seed drawn from the
            DataModule's ``seed`` and the iteration (the same on every rank, ``loop.schedule.restart_seed``).
        diagnostics: record per iteration how well the pooling attention and the label-free actionness find the
            training videos' annotated actions (AUC) and the NMI of k-means on the pooled features
            (docs/method.md sec. 2.1; metrics only, never read by a decision; costs one k-means per iteration).
        test_iterations: which iterations end with a test pass (logged only, never used for a
            decision): "all", "last" (cheaper on large test sets) or "none".
        progress_every_n_epochs: with the progress bar off (SLURM logs, benchmarks), print one progress line
            every this many epochs of an iteration; None: about ten lines per iteration; 0: none.
    """

    def __init__(
        self,
        pseudolabeler: PseudoLabeler,
        max_iterations: int = 10,
        epochs_per_iteration: int = 20,
        adaptive_epochs: bool = True,
        restart_each_iteration: bool = False,
        test_iterations: Literal["all", "last", "none"] = "all",
        progress_every_n_epochs: int | None = None,
        diagnostics: bool = True,
    ) -> None:
        self.diagnostics = diagnostics
        self.pseudolabeler = pseudolabeler
        self.max_iterations = max_iterations
        self.epochs_per_iteration = epochs_per_iteration
        self.adaptive_epochs = adaptive_epochs
        self.restart_each_iteration = restart_each_iteration
        if test_iterations not in ("all", "last", "none"):
            raise ValueError(f"test_iterations must be all, last or none, got {test_iterations!r}")
        self.test_iterations = test_iterations
        if progress_every_n_epochs is not None and progress_every_n_epochs < 0:
            raise ValueError(f"progress_every_n_epochs must be >= 0 or None, got {progress_every_n_epochs}")
        self.progress_every_n_epochs = progress_every_n_epochs
        self._restored_epoch: int | None = None
        self._restored_epochs_done: int | None = None
        self._clear_optimizer_state = False
        self._progress_mark: tuple[float, int] | None = None  # (time, epoch) of the last progress line
        self.history: list[dict[str, Any]] = []  # one record per outer iteration (summary.json), checkpointed
        self._history_of_datamodule: list[dict[str, Any]] | None = None  # where checkpoints before 0.1.0 kept it

    # ------------------------------------------------------------------ hooks
    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        datamodule = trainer.datamodule
        if not datamodule.labelled:
            rank_zero_info(
                f"no class labels in the data: discovering {datamodule.num_clusters} actions; NMI, ARI and test mAP "
                "need labels and are left out (utal predict writes the detections)"
            )
        if datamodule.iteration == 0:  # a fresh run; a resumed one restored its state already
            self.history = []
            self._relabel(trainer, pl_module, use_model=False)
        elif self._restored_epoch is not None:
            self._check_consistency(datamodule, self._restored_epoch)
            if (
                self._restored_epochs_done == datamodule.iteration_end_epoch
                and datamodule.iteration < self.max_iterations
            ):
                # A finished run resumed with a larger max_iterations: its model pseudolabels the next iteration,
                # as the end of its last iteration would have.
                rank_zero_info(
                    f"the checkpoint ends outer iteration {datamodule.iteration}; going on to {self.max_iterations}"
                )
                self._relabel(trainer, pl_module, use_model=True)
                if self.restart_each_iteration:
                    pl_module.reset_weights(restart_seed(datamodule.seed, datamodule.iteration))
                    self._clear_optimizer_state = True  # once Lightning has restored it (after this hook)
        trainer.fit_loop.max_epochs = datamodule.iteration_end_epoch

    def on_load_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        # current_epoch still reads 0 in on_fit_start of a resumed run: remember the checkpoint's epoch, and how
        # many epochs it had finished (all of its schedule's, for a finished run's last checkpoint).
        self._restored_epoch = int(checkpoint["epoch"])
        progress = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_progress", {}).get("current", {})
        self._restored_epochs_done = progress.get("processed")
        for state in checkpoint.values():  # a checkpoint of an earlier version: the history in the DataModule's state
            if isinstance(state, dict) and "history" in state and "epoch_plan" in state:
                self._history_of_datamodule = [dict(h) for h in state["history"]]

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if preemption_requested(trainer):  # a partial epoch before a preemption stop: the resumed run redoes it
            return
        datamodule = trainer.datamodule
        self._progress_line(trainer, datamodule)
        iteration_done = trainer.current_epoch + 1 == datamodule.iteration_end_epoch
        started = time.perf_counter()
        if self.pseudolabeler.observes_epochs or iteration_done:  # the network is read below
            reading = read_network(trainer, pl_module, self.pseudolabeler, observe=self.pseudolabeler.observes_epochs)
            if iteration_done and reading.reversed is not None:
                self.history[-1]["actionness_reversed"] = reading.reversed
                if reading.reversed:
                    rank_zero_info(
                        f"outer iteration {datamodule.iteration}: the trained actionness runs against the label-free "
                        "one on the training videos; read reversed (docs/method.md sec. 4.2.2)"
                    )
            if reading.observation is not None:
                self.pseudolabeler.observe(reading.observation)
                # HAS voting (with the orientation read in the same pass) belongs to the pseudolabel stage's cost.
                pl_module.log(
                    "time/vote_s", time.perf_counter() - started, on_epoch=True, sync_dist=True
                )  # mean of the ranks
        if not iteration_done:
            return
        last = datamodule.iteration == self.max_iterations
        tested = self.test_iterations == "all" or (self.test_iterations == "last" and last)
        if tested and datamodule.labelled:  # discovery (no labels): nothing to score
            self._test(trainer, pl_module, datamodule)
        if trainer.is_global_zero:
            plots.log_figures(
                trainer, {"outer/progress": plots.progress_figure(self.history)}, step=datamodule.iteration
            )
        if datamodule.iteration < self.max_iterations:
            self._relabel(trainer, pl_module, use_model=True)
            if self.restart_each_iteration:
                pl_module.reset_weights(restart_seed(datamodule.seed, datamodule.iteration))
                for optimizer in trainer.optimizers:  # forget Adam's moments too
                    optimizer.state.clear()
            trainer.fit_loop.max_epochs = datamodule.iteration_end_epoch
        if trainer.is_global_zero:
            write_summary(trainer.default_root_dir, self.history)

    def _test(self, trainer: L.Trainer, pl_module: L.LightningModule, datamodule: Any) -> None:
        """The in-loop test of every evaluation model, logged and recorded (never read by a decision)."""
        results = pl_module.test_pass(datamodule)
        metrics = {"outer/iteration": float(datamodule.iteration)}
        for name, (result, _) in results.items():
            metrics.update(test_metrics(result, prefix=f"test{name}"))
            self.history[-1][f"test{name}"] = result.as_dict()
        pl_module.log_dict(metrics, sync_dist=True)  # the same on every rank (gathered detections)
        index = datamodule.index
        rank_zero_info(
            report.test_line(self.history[-1]["test"], datamodule.iteration, self.max_iterations, len(index.test_ids))
        )
        if trainer.is_global_zero:
            result, detections = results[""]
            log_per_class_table(trainer, result, step=datamodule.iteration)
            readings = pl_module.read_test_videos(datamodule, detections)
            figure = report.attention_figure(readings, index.test_ids, index.annotations, index.classes)
            plots.log_figures(trainer, {"outer/attention": figure}, step=datamodule.iteration)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            write_summary(trainer.default_root_dir, self.history)
            if not preemption_requested(trainer):  # a stopped run prints how to resume instead (utal fit)
                rank_zero_info(report.iteration_table(self.history))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # utal test: the run's summary.json gets the final test (its mAP, per class) next to the history
        result = getattr(pl_module, "test_result", None)
        if trainer.is_global_zero and result is not None:
            report_final_test(trainer, self.history, result)

    def _iteration_epochs_done(self, trainer: L.Trainer, datamodule: Any, finished: bool) -> tuple[int, int]:
        """(epochs of the current iteration done, epochs it has)."""
        epochs = datamodule.epoch_plan[-1]
        return epochs_into_iteration(trainer.current_epoch, datamodule.iteration_end_epoch, epochs, finished), epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.datamodule.epoch_plan:
            done, _ = self._iteration_epochs_done(trainer, trainer.datamodule, finished=False)
            if self._progress_mark is None or self._progress_mark[1] > done:  # a new iteration (or a resumed run)
                self._progress_mark = (time.perf_counter(), done)

    def _progress_line(self, trainer: L.Trainer, datamodule: Any) -> None:
        """One line every few epochs when no progress bar shows them: epoch of the iteration, loss, pace, time left."""
        if (
            trainer.progress_bar_callback is not None
            or self.progress_every_n_epochs == 0
            or self._progress_mark is None
        ):
            return
        done, epochs = self._iteration_epochs_done(trainer, datamodule, finished=True)
        every = self.progress_every_n_epochs or max(1, epochs // 10)
        if done % every and done != epochs:
            return
        now = time.perf_counter()
        started, at = self._progress_mark
        pace = (now - started) / max(1, done - at)
        loss = trainer.callback_metrics.get("train/loss")
        loss_text = f", train/loss {float(loss):.4f}" if loss is not None else ""
        rank_zero_info(
            f"outer iteration {datamodule.iteration}/{self.max_iterations}: epoch {done}/{epochs}{loss_text}, "
            f"{pace:.2f} s/epoch, about {pace * (epochs - done):.0f} s left in this iteration"
        )
        self._progress_mark = (now, done)

    # ------------------------------------------------------------------ state (RNG: Lightning saves none)
    def state_dict(self) -> dict[str, Any]:
        # Every rank calls this inside save_checkpoint (rank zero writes): gather each rank's RNG states,
        # so every rank resumes its own dropout / mining stream.
        trainer = getattr(self, "_fit_trainer", None)
        states = gather_objects(trainer, rng_states()) if trainer is not None else [rng_states()]
        return {
            "pseudolabeler": self.pseudolabeler.state_dict(),
            "rng": states,
            "history": [dict(h) for h in self.history],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # "strategy": the key of checkpoints written before the pseudolabeler was a pipeline of parts
        self.pseudolabeler.load_state_dict(state.get("pseudolabeler", state.get("strategy", {})))
        self.history = [dict(h) for h in state.get("history", self._history_of_datamodule or [])]
        states = state.get("rng")
        if states is None:  # a checkpoint of an earlier version: one CPU state
            states = [
                {"torch": state["torch_rng"], "numpy": state["numpy_rng"], "python": state["python_rng"], "cuda": []}
            ]
        self._rng_to_restore = states

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._fit_trainer = trainer  # for state_dict's gather
        plots.define_iteration_axis(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A resumed run's RNG states, as late as possible: nothing draws between here and the first step.
        states = getattr(self, "_rng_to_restore", None)
        if states:
            set_rng_states(states[trainer.global_rank] if len(states) == trainer.world_size else states[0])
        self._rng_to_restore = None
        if self._clear_optimizer_state:  # restarted weights: forget Adam's moments too
            for optimizer in trainer.optimizers:
                optimizer.state.clear()
            self._clear_optimizer_state = False

    # ------------------------------------------------------------------ stages
    @torch.no_grad()
    def _relabel(self, trainer: L.Trainer, pl_module: L.LightningModule, use_model: bool) -> None:
        datamodule = trainer.datamodule
        iteration = datamodule.iteration + 1
        started = time.perf_counter()
        pooled = pool_training_videos(trainer, pl_module, self.pseudolabeler, use_model, self.diagnostics)
        # every rank settles on the same features (a pooler that pooled several ways keeps one: seeded, deterministic)
        features, choice = self.pseudolabeler.settle(
            pooled.features, not use_model, datamodule.num_clusters, seed=datamodule.seed + iteration
        )
        pool_seconds = time.perf_counter() - started
        # Cluster, refine and select once (rank 0), then every rank takes the same result.
        decision = (
            self._decide(trainer, datamodule, features, pooled.aucs, iteration, started, pool_seconds, choice)
            if trainer.is_global_zero
            else None
        )
        result, epochs, record = trainer.strategy.broadcast(decision, src=0)
        datamodule.set_pseudolabels(result.labels, result.selected, epochs, targets=result.targets)
        self.history.append(record)
        self.pseudolabeler.start_iteration()
        for logger in trainer.loggers:
            logger.log_metrics(report.pseudolabel_metrics(record, iteration), step=trainer.global_step)
        rank_zero_info(report.pseudolabel_line(record, iteration, self.max_iterations))

    def _decide(
        self,
        trainer: L.Trainer,
        datamodule: Any,
        video_features: Tensor,
        aucs: Tensor | None,
        iteration: int,
        started: float,
        pool_seconds: float,
        choice: dict | None = None,
    ) -> tuple:
        """Rank 0: cluster, refine, select; the epoch count and the iteration's record (with the
        seconds of the pooling pass, of clustering + refinement + selection, and of the whole stage)."""
        # weak supervision only: the training videos' labels, by design
        ground_truth = datamodule.training_ground_truth() if self.pseudolabeler.needs_ground_truth else None
        assign_started = time.perf_counter()
        result = self.pseudolabeler.assign(
            video_features,
            datamodule.num_clusters,
            iteration,
            self.max_iterations,
            seed=datamodule.seed + iteration,
            ground_truth=ground_truth,
        )
        cluster_seconds = time.perf_counter() - assign_started
        n = len(result.labels)
        # An epoch covers P, or all N videos for models that also learn from U; under DDP a step
        # takes batch_size videos on each rank.
        videos_per_epoch = (
            n if getattr(trainer.lightning_module, "uses_unlabeled", False) else int(result.selected.sum())
        )
        epochs = iteration_epochs(
            self.epochs_per_iteration,
            videos_per_epoch,
            n,
            datamodule.batch_size * trainer.world_size,
            self.adaptive_epochs,
        )
        correct = report.hungarian_correct(datamodule, result.labels)  # once: the record's accuracies, the embedding
        record = report.iteration_record(datamodule, result, iteration, epochs, time.perf_counter() - started, correct)
        record.update(pool_seconds=round(pool_seconds, 3), cluster_seconds=round(cluster_seconds, 3))
        if choice is not None:
            record.update(pooling_choice=choice)
        if aucs is not None:
            record.update(
                report.pooling_diagnostics(datamodule, video_features, aucs, datamodule.num_clusters, datamodule.seed)
            )
        figures = report.pseudolabel_figures(datamodule, video_features, result, [*self.history, record], correct)
        plots.log_figures(trainer, figures, step=iteration)
        cpu = PseudoLabels(
            *(None if t is None else t.cpu() for t in (result.labels, result.selected, result.rank, result.targets))
        )
        return cpu, epochs, record

    @staticmethod
    def _check_consistency(datamodule: Any, epoch: int) -> None:
        """A checkpoint taken at ``epoch`` must belong to the iteration its labels are for: inside it,
        or its boundary epoch (the last one of the previous iteration). Never resume on stale labels."""
        end = datamodule.iteration_end_epoch
        start = end - datamodule.epoch_plan[-1]
        if not start - 1 <= epoch <= end - 1:
            raise RuntimeError(
                f"checkpoint state disagrees: it was taken at epoch {epoch}, but its pseudolabels are those of outer "
                f"iteration {datamodule.iteration} (epochs {start}-{end - 1}); refusing to train on stale pseudolabels"
            )
