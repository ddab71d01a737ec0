"""A plain (non-editable) install, used outside the repository: the shipped configs work by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built as a wheel and installed (without dependencies: they are this venv's) into a
    folder of its own; PYTHONPATH puts it ahead of the editable checkout."""
    work = tmp_path_factory.mktemp("installed")
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)], check=True)
    (wheel,) = wheels.glob("utal_lightning-*.whl")
    target = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True)
    return target


def _utal(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed), "WANDB_MODE": "disabled"}
    code = "import sys, utal_lightning.cli as cli; print('from', cli.__file__, file=sys.stderr); sys.exit(cli.main())"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_shipped_config_prints_by_name_outside_the_repository(installed, tmp_path):
    done = _utal(installed, tmp_path, "fit", "--config", "thumos_copl", "--print_config")
    assert done.returncode == 0, done.stderr
    assert f"from {installed}" in done.stderr  # the installed copy, not the checkout
    assert "IOCNetModule" in done.stdout and "HASPooler" in done.stdout
    lite = _utal(
        installed, tmp_path, "fit", "--config", "thumos_copl", "--config", "lite/thumos_copl", "--print_config"
    )
    assert lite.returncode == 0, lite.stderr
    assert lite.stdout != done.stdout  # the lite fragment changed something


def test_an_unknown_config_name_is_one_error_line(installed, tmp_path):
    done = _utal(installed, tmp_path, "fit", "--config", "thumos_cop")
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert done.returncode == 2 and len(errors) == 1 and "thumos_cop" in errors[0], done.stderr


def test_a_shipped_config_runs_by_name_outside_the_repository(installed, tmp_path, small):
    done = _utal(
        installed,
        tmp_path,
        "fit",
        "--config",
        "synthetic_copl",
        "--data.init_args.root",
        str(small),
        "--trainer.enable_progress_bar=false",
        "--loop.max_iterations=1",
        "--loop.epochs_per_iteration=1",
        "--loop.test_iterations=none",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = (tmp_path / "runs").rglob("summary.json")
    assert summary.parent.name == "copl"  # runs/<data>/<method>, as with a config path
    assert len(json.loads(summary.read_text())["iterations"]) == 1
