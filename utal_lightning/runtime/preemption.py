"""Preemption that survives a SLURM requeue: the signal handler only sets a flag.

Lightning's own SLURM auto-requeue (``SLURMEnvironment(auto_requeue=True)``) saves the checkpoint
*inside* the SIGUSR1 handler, i.e. between two arbitrary bytecodes of the training step, and under DDP
its ``save_checkpoint`` barrier can hang when the ranks are signalled at different moments (Lightning
issue #21406). :class:`PreemptionCheckpoint` instead:

1. at ``setup("fit")`` installs a handler for ``signal`` (default SIGUSR1) that only sets a flag
   (and chains a previous Python-level handler); the CLI also hands the Trainer
   ``SLURMEnvironment(auto_requeue=False)`` under SLURM (:func:`slurm_plugins`), so Lightning installs
   no handler of its own for that signal (it would not anyway: it skips signals that already have one);
2. at every ``on_train_epoch_start`` and every ``check_every_n_steps``-th ``on_train_batch_start`` all
   ranks agree on the flag with ``strategy.reduce_boolean_decision(flag, all=False)`` (any rank signalled
   -> every rank saves; every rank enters the collective at the same hooks in the same order; one
   process checks every batch, which costs nothing);
3. if set: every rank calls ``trainer.save_checkpoint(<default_root_dir>/hpc_ckpt_<N+1>.ckpt)`` (written
   under a temporary name and renamed, so a SIGKILL during the write never leaves a truncated
   ``hpc_ckpt_*``), global rank zero runs ``scontrol requeue <job id>`` when ``SLURM_JOB_ID`` is set
   (configurable; failures are logged, never raised), and ``trainer.should_stop = True``.

Why the *start* hooks and not ``on_train_batch_end``: a checkpoint taken in a callback's
``on_train_batch_end`` misses the LightningModule's own ``on_train_batch_end`` (Lightning calls it after
the callbacks') and the step's progress bookkeeping. At ``on_train_batch_start`` everything of the
previous step is done (the EMA teacher updates inside ``IOCNetModule.optimizer_step``). The price: the
batch whose start saved still trains once (its update is thrown away with the process).

What happens after ``should_stop`` mid-epoch: Lightning ends the epoch early and still runs the
``on_train_epoch_end`` hooks on the partial epoch. This callback then stops ``ModelCheckpoint`` from
writing a ``last.ckpt`` that would claim the partial epoch complete (it would be newer than the
preemption checkpoint). Other callbacks' epoch-end work still runs (``PseudoLabelRefresh`` observes the
partial epoch and, at an iteration's last epoch, relabels and rewrites summary.json); none of that is
in the saved checkpoint, and the resumed run rewrites summary.json. Callbacks can ask
:func:`preemption_requested` to skip such work.

Resuming (:func:`resolve_resume_path`, used by ``utal fit`` when no ``--ckpt_path`` is given and
``auto_resume`` is on): the newest readable file among ``<default_root_dir>/hpc_ckpt_*.ckpt`` and the
ModelCheckpoint folders' ``last*.ckpt``. Lightning on its own (``_CheckpointConnector._parse_ckpt_path``)
resumes from the highest-numbered ``hpc_ckpt_<N>.ckpt`` whenever ``SLURMEnvironment.detect()`` and
``ckpt_path`` is None, regardless of ``auto_requeue``; but it never looks at ``last.ckpt``, so after one
preemption and a later requeue without one (node failure, ``scontrol requeue`` by hand) it would go back
to the stale ``hpc_ckpt_1.ckpt``; and it does nothing outside SLURM. An explicit path avoids both.

Mid-epoch resume: the fit loop restores its progress (epoch, global step, batches done in the epoch,
k) and runs the epoch's remaining ``N - k`` batches; the training loader
(:class:`~utal_lightning.data.datamodule.TrainBatches`) is resumable (Lightning keeps its ``state_dict``
in the checkpoint), so those are the epoch's batches ``k..N-1`` with the same samples, and
``PseudoLabelRefresh`` restores every rank's RNG states: the resumed run equals the uninterrupted one.

SLURM: ``#SBATCH --requeue --signal=USR1@120`` and ``srun utal fit ...`` (the signal then reaches every
task; with ``B:USR1`` only the batch shell gets it and must forward it). The lead time must cover one
training step plus writing a checkpoint. The requeued job runs the same command; with ``auto_resume``
(default: on in a SLURM batch job) it resumes from the newest checkpoint.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal as signal_module
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import lightning as L
import torch
from lightning.fabric.plugins.environments import ClusterEnvironment, SLURMEnvironment
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

log = logging.getLogger(__name__)

HPC_PREFIX = "hpc_ckpt_"
_HPC_NAME = re.compile(rf"^{HPC_PREFIX}(\d+)\.ckpt$")
_LAST_NAME = re.compile(
    rf"^{ModelCheckpoint.CHECKPOINT_NAME_LAST}(-v?\d+)?{re.escape(ModelCheckpoint.FILE_EXTENSION)}$"
)


def parse_signal(value: str | int | signal_module.Signals) -> signal_module.Signals:
    """``"SIGUSR1"``, ``"USR1"``, ``"usr1"`` or ``10`` -> ``signal.SIGUSR1``."""
    if isinstance(value, signal_module.Signals):
        return value
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        return signal_module.Signals(int(value))
    name = value.strip().upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return signal_module.Signals[name]
    except KeyError:
        raise ValueError(f"unknown signal {value!r}") from None


def slurm_job_id() -> str | None:
    """The id ``scontrol requeue`` takes: ``<array job>_<task>`` for array jobs, else ``SLURM_JOB_ID``."""
    array_job, array_task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and array_task:
        return f"{array_job}_{array_task}"
    return os.environ.get("SLURM_JOB_ID") or None


def in_slurm_batch_job() -> bool:
    """A SLURM job that is not an interactive shell (the job names Lightning treats as interactive)."""
    return slurm_job_id() is not None and os.environ.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def preemption_requested(trainer: L.Trainer) -> bool:
    """True once a :class:`PreemptionCheckpoint` of ``trainer`` has saved and asked the run to stop
    (for callbacks that want to skip expensive epoch-end work on the partial epoch that follows)."""
    return any(isinstance(cb, PreemptionCheckpoint) and cb.stopping for cb in trainer.callbacks)


class Interrupted(BaseException):
    """A stop signal outside the training loop (setup, feature loading, the pseudolabel stage's first pass,
    the final test): raised by :func:`early_signal_handlers`' handler. A BaseException, like KeyboardInterrupt,
    so no ``except Exception`` swallows it; atomic writes remove their temporary files on the way out."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signal_module.Signals(signum)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


class early_signal_handlers:
    """Within the block, SIGTERM, SIGINT and ``signals`` raise :class:`Interrupted` (the CLI turns it into one
    line and exit status 128 + signal); on exit the earlier handlers come back. Outside the main thread: no-op.
    :class:`PreemptionCheckpoint` replaces these with its flag-setting handlers while the training loop runs.

    ``until_exit``: the block is the rest of the process (the command line's ``utal``): on exit, instead of the
    earlier handlers (the default action would kill the process without a word while it shuts down), these
    signals print ``error: stopped by <SIGNAL> <until_exit()>`` and end the process with 128 + signal at once."""

    def __init__(
        self, *signals: str | int | signal_module.Signals, until_exit: Callable[[], str] | None = None
    ) -> None:
        self.signals = sorted({signal_module.SIGTERM, signal_module.SIGINT, *(parse_signal(s) for s in signals)})
        self.previous: dict[signal_module.Signals, Any] = {}
        self.until_exit = until_exit

    def __enter__(self) -> early_signal_handlers:
        if threading.current_thread() is threading.main_thread():
            for signum in self.signals:
                self.previous[signum] = signal_module.signal(signum, _raise_interrupted)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            if self.until_exit is not None:
                handler = self._exit_now
            signal_module.signal(signum, handler if handler is not None else signal_module.SIG_DFL)
        self.previous.clear()

    def _exit_now(self, signum: int, frame: FrameType | None) -> None:
        assert self.until_exit is not None
        sys.stdout.flush()
        print(
            f"error: stopped by {signal_module.Signals(signum).name} {self.until_exit()}", file=sys.stderr, flush=True
        )
        os._exit(128 + signum)  # no unwinding through an interpreter that is shutting down


class PreemptionCheckpoint(L.Callback):
    """Checkpoint, requeue and stop when ``signal`` arrives; checkpoint and stop on ``stop_signals``. The
    handlers only set a flag.

    After the stop, :meth:`exit_status` is what the command exits with: ``128 + signal`` (SIGTERM 143,
    SIGINT 130; a preemption signal that was not requeued, e.g. outside SLURM, 138 for SIGUSR1), or 0 after a
    successful requeue (the requeued job goes on). A second SIGINT while the first is pending stops at once
    (:class:`Interrupted`, exit 130), as users expect from Ctrl+C twice.

    Args:
        signal: the preemption signal (SLURM's ``--signal=USR1@<seconds>``).
        stop_signals: signals that save a resumable checkpoint at the next batch and stop, without a requeue
            (``kill``, Ctrl+C, ``scancel``); installed while the training loop runs, replacing Lightning's own
            SIGTERM handler (which would stop with exit status 0 and no checkpoint).
        requeue: on global rank zero, run ``requeue_command`` after saving when ``SLURM_JOB_ID`` is set.
        requeue_command: the command, ``{job_id}`` replaced by the job id (``<array job>_<task>`` for
            array jobs); split like a shell would (no shell runs it).
        requeue_timeout: seconds to wait for the command.
        auto_resume: ``utal fit`` without ``--ckpt_path`` resumes from the newest of
            ``<default_root_dir>/hpc_ckpt_*.ckpt`` and ``<checkpoint dir>/last*.ckpt``. None: only in a SLURM
            batch job (a requeued job restarts the same command line); True: always; False: never
            (Lightning itself still resumes from the highest ``hpc_ckpt_<N>`` under SLURM).
        chain_previous: also call a Python-level handler that was installed before ours.
        check_every_n_steps: under DDP, the ranks agree on the flag (a collective, so a host sync on a GPU)
            at every epoch start and every this many batches, not at every batch; the save then comes at
            most this many steps after the signal (a step is well under SLURM's lead time). One process
            checks every batch (no collective).
    """

    def __init__(
        self,
        signal: str = "SIGUSR1",
        stop_signals: Sequence[str] = ("SIGTERM", "SIGINT"),
        requeue: bool = True,
        requeue_command: str = "scontrol requeue {job_id}",
        requeue_timeout: float = 60.0,
        auto_resume: bool | None = None,
        chain_previous: bool = True,
        check_every_n_steps: int = 10,
    ) -> None:
        self.signum = parse_signal(signal)
        self.stop_signums = [s for s in dict.fromkeys(parse_signal(x) for x in stop_signals) if s != self.signum]
        self.requeue = requeue
        self.requeue_command = requeue_command
        self.requeue_timeout = requeue_timeout
        self.auto_resume = auto_resume
        self.chain_previous = chain_previous
        if check_every_n_steps < 1:
            raise ValueError(f"check_every_n_steps must be >= 1, got {check_every_n_steps}")
        self.check_every_n_steps = check_every_n_steps
        self.requested = False  # set by the signal handler, nothing else
        self.received: signal_module.Signals | None = None  # the first signal that asked to stop
        self.stopping = False  # this run saved and was told to stop (the same on every rank)
        self.saved_path: Path | None = None  # the checkpoint this run saved (local roots)
        self.requeue_returncode: int | None = None
        self._pending = False  # the ranks agreed, waiting for an accumulation boundary
        self._previous_handler: Any = None  # chained from ours
        self._restore_handler: Any = None  # put back by uninstall
        self._installed = False
        self._previous_stop_handlers: dict[signal_module.Signals, Any] = {}

    # ------------------------------------------------------------------ signal
    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Runs between two arbitrary bytecodes: set a flag, nothing else (no I/O, no locks, no collectives).
        if signum == signal_module.SIGINT and self.requested and self.received == signal_module.SIGINT:
            raise Interrupted(signum)  # Ctrl+C twice: stop now
        if self.received is None:
            self.received = signal_module.Signals(signum)
        self.requested = True
        previous = self._previous_handler
        if signum == self.signum and self.chain_previous and callable(previous):
            previous(signum, frame)

    def exit_status(self) -> int:
        """What the command exits with after this run: 0 unless a signal stopped it (see the class docstring)."""
        if not self.stopping or self.received is None:
            return 0
        if self.received == self.signum and self.requeue_returncode == 0:
            return 0
        return 128 + int(self.received)

    def install_stop_handlers(self) -> None:
        """Our flag for ``stop_signals`` (call once the Trainer has registered its own: it would compose them)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.stop_signums:
            if signum not in self._previous_stop_handlers:
                self._previous_stop_handlers[signum] = signal_module.getsignal(signum)
            signal_module.signal(signum, self._on_signal)

    def uninstall_stop_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.stop_signums:
            current = signal_module.getsignal(signum)
            if getattr(current, "__self__", None) is self:  # the Trainer may have restored its originals already
                previous = self._previous_stop_handlers.get(signum)
                signal_module.signal(signum, previous if previous is not None else signal_module.SIG_DFL)
        self._previous_stop_handlers.clear()

    def install(self) -> None:
        if self._installed:
            return
        if threading.current_thread() is not threading.main_thread():
            rank_zero_warn(f"PreemptionCheckpoint: not in the main thread, no {self.signum.name} handler installed")
            return
        previous = signal_module.getsignal(self.signum)
        self._restore_handler = previous  # whatever it is: in force again after the fit (the CLI's, say)
        # never chain a bound handler of another PreemptionCheckpoint (a second fit in the same process)
        owner = getattr(previous, "__self__", None)
        # nor the CLI's early handler (it would turn the flag into an immediate stop)
        self._previous_handler = (
            None if isinstance(owner, PreemptionCheckpoint) or previous is _raise_interrupted else previous
        )
        signal_module.signal(self.signum, self._on_signal)
        self._installed = True

    def uninstall(self) -> None:
        if not self._installed or threading.current_thread() is not threading.main_thread():
            return
        previous = self._restore_handler
        signal_module.signal(self.signum, previous if previous is not None else signal_module.SIG_DFL)
        self._previous_handler, self._restore_handler, self._installed = None, None, False

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        self.requested = self.stopping = self._pending = False
        self.saved_path, self.requeue_returncode, self.received = None, None, None
        environment = getattr(trainer, "_accelerator_connector", None)
        environment = getattr(environment, "cluster_environment", None)
        if isinstance(environment, SLURMEnvironment) and environment.auto_requeue:
            # Lightning skips a requeue signal that already has a handler, so ours wins either way.
            rank_zero_warn(
                "PreemptionCheckpoint: SLURMEnvironment(auto_requeue=True) is in use; pass "
                "SLURMEnvironment(auto_requeue=False) (utal fit does) so only one mechanism requeues"
            )
        self.install()  # before the Trainer registers its handlers (it keeps ours for this signal)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # The Trainer registered its SIGTERM handler just before the loop started; ours replaces it.
        self.install_stop_handlers()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.uninstall_stop_handlers()
        if self.stopping:  # ModelCheckpoint also saves a last.ckpt when training ends (it runs after this hook)
            self._keep_checkpoints_from_saving(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.uninstall_stop_handlers()
            self.uninstall()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.uninstall_stop_handlers()
        self.uninstall()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Agree on the flag here, save at the epoch's first batch: Lightning resets the batch progress between the
        # two, and a checkpoint taken before that reset resumes as if this epoch had already run.
        self._poll(trainer, at_boundary=False)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if trainer.world_size > 1 and not self._pending and batch_idx % self.check_every_n_steps:
            return  # every rank skips the same batches: the collectives stay matched
        # inside a gradient-accumulation window the accumulated gradients are not in a checkpoint
        self._poll(trainer, at_boundary=batch_idx % max(1, trainer.accumulate_grad_batches) == 0)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.stopping:
            self._keep_checkpoints_from_saving(trainer)

    @staticmethod
    def _keep_checkpoints_from_saving(trainer: L.Trainer) -> None:
        """This epoch ended early because we stopped it: keep ModelCheckpoint (it runs after our hooks) from
        writing a last.ckpt that claims the partial epoch complete, at the epoch's end (its guard: "already
        saved at this global step") and when training ends (its guard: "a last checkpoint was saved")."""
        for callback in trainer.checkpoint_callbacks:
            if isinstance(callback, ModelCheckpoint):
                if hasattr(callback, "_last_global_step_saved") and hasattr(callback, "_last_checkpoint_saved"):
                    callback._last_global_step_saved = trainer.global_step
                    callback._last_checkpoint_saved = callback._last_checkpoint_saved or "(stopped: not saved)"
                else:  # a future Lightning: say so instead of failing silently
                    rank_zero_warn("PreemptionCheckpoint: could not keep ModelCheckpoint from saving the partial epoch")

    # ------------------------------------------------------------------ work (all ranks, same order)
    def _poll(self, trainer: L.Trainer, at_boundary: bool) -> None:
        if self.stopping:  # the same on every rank: all of them skip the collective from now on
            return
        if trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            self._pending = True
        if self._pending and at_boundary:
            self._preempt(trainer)

    def _preempt(self, trainer: L.Trainer) -> None:
        root = str(trainer.default_root_dir)
        local = "://" not in root  # remote roots (s3://...): Lightning's own numbering, no rename
        name = None
        if trainer.is_global_zero:
            name = str(next_hpc_path(root)) if local else trainer._checkpoint_connector.hpc_save_path(root)
        path = trainer.strategy.broadcast(name, src=0)  # one name on every rank
        # the temporary name must not contain "hpc_ckpt_": Lightning numbers every file that does
        target = (
            str(Path(path).with_name(f".preemption-{_HPC_NAME.match(Path(path).name).group(1)}.partial"))
            if local
            else path
        )
        # every rank learns which signal stopped the run (one collective, only now): the same exit status everywhere
        code = torch.tensor(
            float(int(self.received) if self.received is not None else 0), device=trainer.strategy.root_device
        )
        code = int(trainer.strategy.reduce(code, reduce_op="max"))
        self.received = signal_module.Signals(code) if code else self.received
        received = self.received.name if self.received is not None else self.signum.name
        rank_zero_info(f"{received}: saving {path} at global step {trainer.global_step}")
        try:
            trainer.save_checkpoint(target)  # every rank (sharded strategies write parts); ends in a barrier
            if local and trainer.is_global_zero:
                os.replace(target, path)  # a SIGKILL during the write leaves no truncated hpc_ckpt_*
            trainer.strategy.barrier("PreemptionCheckpoint")
        except Exception:
            # Still requeue: the requeued job resumes from the newest checkpoint that exists (and under
            # DDP the requeue also ends ranks left waiting in the save's barrier).
            log.exception(f"preemption: saving {path} failed")
            if trainer.is_global_zero and self.requeue and self.received in (None, self.signum):
                self.requeue_returncode = self._requeue()
            raise
        self.saved_path = Path(path) if local else None
        self.requested, self._pending, self.stopping = False, False, True
        if trainer.is_global_zero and self.requeue and self.received in (None, self.signum):  # stop signals: no requeue
            self.requeue_returncode = self._requeue()
        trainer.should_stop = True

    def _requeue(self) -> int | None:
        job_id = slurm_job_id()
        if job_id is None:
            log.info("preemption: not a SLURM job (no SLURM_JOB_ID): not requeueing; rerun to resume")
            return None
        command = shlex.split(self.requeue_command.format(job_id=job_id))
        try:
            result = subprocess.run(command, timeout=self.requeue_timeout, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            log.warning(f"preemption: requeue command {command} failed: {error}")
            return None
        if result.returncode == 0:
            log.info(f"preemption: requeued SLURM job {job_id}")
        else:
            log.warning(f"preemption: requeue command {command} exited with status {result.returncode}")
        return result.returncode


# ---------------------------------------------------------------------- paths
def hpc_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    folder = Path(root)
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _HPC_NAME.match(p.name))]
    return sorted(found)


def next_hpc_path(root: str | Path) -> Path:
    """``<root>/hpc_ckpt_<N+1>.ckpt``, the name Lightning's SLURM resume (``hpc_ckpt_<max N>``) finds."""
    existing = hpc_checkpoints(root)
    return Path(root) / f"{HPC_PREFIX}{(existing[-1][0] if existing else 0) + 1}.ckpt"


def readable_checkpoint(path: Path) -> bool:
    """Cheap integrity check: a torch zip checkpoint must have its central directory (written last)."""
    if path.is_dir():  # a sharded checkpoint (FSDP / DeepSpeed): trust it
        return True
    try:
        if path.stat().st_size == 0:
            return False
        with path.open("rb") as f:
            is_zip = f.read(4) == b"PK\x03\x04"
        if not is_zip:
            return True  # a legacy (non-zip) torch.save: nothing cheap to check
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


def resume_candidates(root: str | Path, checkpoint_dirs: Sequence[str | Path] = ()) -> list[Path]:
    paths = [p for _, p in hpc_checkpoints(root)]
    for folder in dict.fromkeys(Path(d) for d in checkpoint_dirs):
        if folder.is_dir():
            paths += [p for p in folder.iterdir() if _LAST_NAME.match(p.name)]
    return paths


def newest_checkpoint(paths: Sequence[Path]) -> Path | None:
    """The most recently written readable checkpoint (ties: an hpc_ckpt, then the higher number);
    unreadable ones (a write cut short) are skipped with a warning."""
    usable = []
    for path in paths:
        if readable_checkpoint(path):
            usable.append(path)
        else:
            rank_zero_warn(f"auto-resume: skipping unreadable checkpoint {path}")

    def key(path: Path) -> tuple[float, int, int]:
        match = _HPC_NAME.match(path.name)
        return (path.stat().st_mtime, 1 if match else 0, int(match.group(1)) if match else 0)

    return max(usable, key=key, default=None)


def auto_resume_enabled(callback: PreemptionCheckpoint | None) -> bool:
    if callback is None or callback.auto_resume is False:
        return False
    return callback.auto_resume is True or in_slurm_batch_job()


def resume_hint(args: Sequence[str], checkpoint: str | Path | None) -> str:
    """The command that resumes a stopped ``utal fit``: its own arguments with ``--ckpt_path`` set to
    ``checkpoint`` (an earlier ``--ckpt_path`` and ``--overwrite`` dropped)."""
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        if arg == "--ckpt_path":
            skip = True
            continue
        if arg.startswith("--ckpt_path=") or arg in ("--overwrite", "--overwrite=true", "--overwrite=True"):
            continue
        kept.append(arg)
    if checkpoint is not None:
        kept += ["--ckpt_path", str(checkpoint)]
    return shlex.join(["utal", *kept])


def resolve_resume_path(trainer: L.Trainer, ckpt_path: Any) -> Any:
    """``ckpt_path`` for ``trainer.fit``: the user's if given; else, with auto-resume on, the newest of
    ``<default_root_dir>/hpc_ckpt_*.ckpt`` and the ModelCheckpoint folders' ``last*.ckpt`` (None if none)."""
    if ckpt_path is not None:
        return ckpt_path
    callback = next((cb for cb in trainer.callbacks if isinstance(cb, PreemptionCheckpoint)), None)
    if not auto_resume_enabled(callback):
        return None
    dirs = [cb.dirpath for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint) and cb.dirpath]
    path = newest_checkpoint(resume_candidates(trainer.default_root_dir, dirs))
    if path is not None:
        rank_zero_info(f"auto-resume: resuming from {path} (--preemption.auto_resume=false to start afresh)")
    return None if path is None else str(path)


def slurm_plugins(plugins: Any, callback: PreemptionCheckpoint | None) -> Any:
    """The Trainer's ``plugins`` with ``SLURMEnvironment(auto_requeue=False)`` added under SLURM, unless a
    cluster environment is given already (then unchanged). Outside SLURM: unchanged."""
    if callback is None or not SLURMEnvironment.detect():
        return plugins
    given = [] if plugins is None else list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    if any(isinstance(p, ClusterEnvironment) for p in given):
        return plugins
    return [*given, SLURMEnvironment(auto_requeue=False, requeue_signal=callback.signum)]
