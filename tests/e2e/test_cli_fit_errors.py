"""Bad input through `utal fit`: one line naming the culprit and exit 2, before any training."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.datasets import write_dataset
from tests.helpers.paths import CONFIGS

LIGHTNING_INFO = ("Seed set to", "GPU available:", "TPU available:", "💡 Tip:")


def _fit(root: Path, run: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "synthetic_copl.yaml"),
        "--data.init_args.root",
        str(root),
        "--trainer.default_root_dir",
        str(run),
        "--loop.max_iterations=1",
        "--loop.epochs_per_iteration=1",
        "--preemption.auto_resume=false",
        *extra,
    ]


def _remove_feature(root: Path) -> None:
    (root / "features" / "train" / "flow" / "video_validation_2.npy").unlink()


def _nan_feature(root: Path) -> None:
    path = root / "features" / "test" / "rgb" / "video_test_1.npy"
    x = np.load(path)
    x[4, 1] = np.nan
    np.save(path, x)


CASES = {
    "missing root": (
        lambda root: None,
        ("--data.init_args.root", "/nonexistent/utal-data"),
        ["/nonexistent/utal-data", "dataset root not found"],
    ),
    "missing feature file": (_remove_feature, (), ["video_validation_2.npy", "not found"]),
    "NaN feature": (_nan_feature, (), ["video_test_1", "NaN/Inf"]),
    "config typo": (lambda root: None, ("--model.init_args.hiden_dim=3",), ["hiden_dim", "not accepted"]),
    "rejected value": (lambda root: None, ("--data.init_args.store_dtype=float8",), ["store_dtype", "float8"]),
    "wrong type": (lambda root: None, ("--loop.max_iterations=many",), ["loop.max_iterations"]),
    # a config key of an earlier version: where it went, not the parser's "does not accept"
    "outdated key": (
        lambda root: None,
        ("--loop.strategy.init_args.use_cci=false",),
        ["outdated config", "loop.pseudolabeler", "docs/architecture.md"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_reports_bad_input_in_one_line(tmp_path, case):
    corrupt, extra, fragments = CASES[case]
    root = write_dataset(tmp_path / "data")
    corrupt(root)
    # a real process: the exit status and everything it prints, as a user sees them
    done = subprocess.run(
        [sys.executable, "-m", "utal_lightning.cli", *_fit(root, tmp_path / "run", *extra)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    printed = (done.stdout + done.stderr).splitlines()
    errors = [line for line in printed if line.startswith("error: ")]
    assert done.returncode == 2 and len(errors) == 1, printed
    # Lightning's own INFO lines (seed, accelerators) may precede it; nothing else may
    others = [line for line in printed if not line.startswith("error: ") and not line.startswith(LIGHTNING_INFO)]
    assert others == [], printed
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained, nothing saved


def test_wandb_config_without_wandb_says_which_extra(tmp_path):
    root = write_dataset(tmp_path / "data")
    hide_wandb = "import sys; sys.modules['wandb'] = None; from utal_lightning.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", hide_wandb, *_fit(root, tmp_path / "run", "--config", str(CONFIGS / "wandb.yaml"))],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WANDB_MODE": "disabled"},
    )
    errors = [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and len(errors) == 1, done.stdout + done.stderr
    assert "pip install 'utal-lightning[wandb]'" in errors[0] and "WandbLogger" in errors[0]
    assert not (tmp_path / "run" / "checkpoints").exists()
