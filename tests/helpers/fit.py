"""Run `utal fit` from a test: in this process (returning summary.json) or as a subprocess of this
interpreter (returning the finished process), on a shipped config and a synthetic dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import CONFIGS, REPO
from utal_lightning.cli import main

SHORT = ("--loop.max_iterations=2", "--loop.epochs_per_iteration=4", "--loop.test_iterations=none")
SIGNAL_STEP = 5  # where `signal_at_step` signals (tiny: 24 videos, batches of 16 -> 2 batches per epoch)


def fit_args(config: str, data: Path, root: Path, *extra: str) -> list[str]:
    """The arguments of `utal fit --config configs/<config>` on ``data`` into ``root``, without a progress bar."""
    return [
        "fit",
        "--config",
        str(CONFIGS / config),
        "--data.init_args.root",
        str(data),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


def fit(config: str, data: Path, root: Path, *extra: str) -> dict:
    """:func:`fit_args` run in this process; its summary.json."""
    main(fit_args(config, data, root, *extra))
    return json.loads((root / "summary.json").read_text())


def short_copl_args(data: Path, run: Path, *extra: str) -> list[str]:
    """The arguments of a short COPL fit (:data:`SHORT`)."""
    return fit_args("synthetic_copl.yaml", data, run, *SHORT, *extra)


def environment_outside_slurm() -> dict[str, str]:
    """This process's environment without SLURM_* (Lightning would take the job for a SLURM one), with the
    repository on PYTHONPATH so the test Callbacks resolve by class path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return env


def run_utal(args: list[str], prelude: str = "", timeout: float = 600) -> subprocess.CompletedProcess:
    """`utal <args>` as a subprocess of this interpreter, after the Python code ``prelude`` (a patch, say)."""
    code = f"import sys\n{prelude}\nfrom utal_lightning.cli import main\nsys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        env=environment_outside_slurm(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_utal_ddp(args: list[str], timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    """`utal <args>` on 2 CPU processes (gloo, one thread each) as ``python -m utal_lightning.cli``: the DDP launcher
    re-executes this command line for the second rank (``run_utal``'s ``python -c`` cannot be); ``env``: more
    environment variables."""
    environment = {**environment_outside_slurm(), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **env}
    ddp = ("--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=2")
    command = [sys.executable, "-m", "utal_lightning.cli", *args, *ddp]
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout)


def signal_at_step(signum: int, step: int = SIGNAL_STEP) -> str:
    """The argument that adds a Callback sending this process ``signum`` after training step ``step``."""
    return "--trainer.callbacks+=" + json.dumps(
        {"class_path": "tests.helpers.callbacks.SignalAtStep", "init_args": {"step": step, "signum": signum}}
    )


def baseline(data: Path, out: Path, config: str, *flags: str) -> dict:
    """``utal baseline --config configs/<config>`` on ``data`` (its inference and grids), scored by ``utal evaluate``
    on the test subset: the detections' mAP report (keys "0.5", "average_mAP", ...)."""
    import contextlib
    import io

    detections = out / "detections.json"
    with contextlib.redirect_stdout(io.StringIO()):
        main(["baseline", "--root", str(data), "--out", str(detections), "--config", str(CONFIGS / config), *flags])
        report = out / "map.json"
        gt = ["--gt", str(data / "gt.json"), "--pred", str(detections), "--subset", "test", "--preset", "thumos"]
        main(["evaluate", *gt, "--out", str(report)])
    return json.loads(report.read_text())
