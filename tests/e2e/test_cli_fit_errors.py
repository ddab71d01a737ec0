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


OLD_STRATEGY_CONFIG = """
loop:
  strategy:
    class_path: utal_lightning.pseudo.strategies.FEELStrategy
    init_args:
      use_cci: false
"""


def _outdated_error(*args: str) -> str:
    """The one-line error `utal fit` raises for these arguments (in this process: the parser stops before data)."""
    from utal_lightning.errors import DatasetError
    from utal_lightning.lightning_cli import run

    with pytest.raises(DatasetError) as info:
        run(["fit", "--config", str(CONFIGS / "synthetic_feel.yaml"), *args])
    return str(info.value)


def _moved_keys() -> list[tuple[str, str, str]]:
    from utal_lightning.lightning_cli import MOVED_KEYS

    return [(group, key, where) for (group, key), where in MOVED_KEYS.items()]


@pytest.fixture(scope="module")
def resolved_configs() -> list[dict]:
    """The shipped CoLA and IOCNet configs as `utal fit --print_config` resolves them (the latter also with the
    ActionFormer layout named): where every key of today's configs lives."""
    import contextlib
    import io

    import yaml

    from utal_lightning.cli import main

    trees = []
    for extra in (["synthetic_feel.yaml"], ["synthetic_copl.yaml"], ["synthetic_copl.yaml", "layout"]):
        args = ["fit", "--config", str(CONFIGS / extra[0]), "--print_config"]
        if extra[1:]:
            args.insert(3, "--data.init_args.layout=utal_lightning.data.layouts.actionformer.ActionFormerLayout")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            main(args)
        trees.append(yaml.safe_load(out.getvalue()))
    return trees


def _has_key(tree: dict, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return False
        tree = tree[part]
    return True


@pytest.mark.parametrize("group, key, where", _moved_keys(), ids=lambda v: str(v))
def test_every_moved_key_is_named_with_its_new_home(group, key, where, resolved_configs):
    message = _outdated_error(f"--{group}.init_args.{key}=1")
    assert message.startswith("outdated config:") and f"{group}.init_args.{key} moved to {where}.{key}" in message
    assert "\n" not in message
    # the home it names is a key of today's resolved configs, not only of the hint's table
    assert any(_has_key(tree, f"{where}.{key}") for tree in resolved_configs), (where, key)


@pytest.mark.parametrize("name", ["auto", "cola", "actionformer"])
def test_a_layout_given_by_name_says_how_to_name_its_class(name):
    message = _outdated_error(f"--data.init_args.layout={name}")
    expected = "leave it out or null" if name == "auto" else f"utal_lightning.data.layouts.{name}."
    assert message.startswith("outdated config: data.init_args.layout is a class now") and expected in message


def test_an_old_strategy_block_in_a_config_file_says_where_it_went(tmp_path):
    old = tmp_path / "old.yaml"
    old.write_text(OLD_STRATEGY_CONFIG)
    message = _outdated_error("--config", str(old))
    assert message.startswith("outdated config: loop.strategy") and "loop.pseudolabeler" in message
