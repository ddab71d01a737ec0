"""Run directories (issue 11, item 5): derived default, no fresh fit over another run's checkpoints,
`utal test|predict --ckpt_path X` alone, `predict --output`, predict on unannotated test videos."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import CONFIGS
from utal_lightning.data.synthetic import write_synthetic_dataset
from utal_lightning.lightning_cli import default_run_dir

SHORT = [
    "--loop.max_iterations=1",
    "--loop.epochs_per_iteration=1",
    "--trainer.enable_progress_bar=false",
    "--preemption.auto_resume=false",
]


def _utal(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "utal_lightning.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


def _errors(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (done.stdout + done.stderr).splitlines() if line.startswith("error: ")]


def test_default_run_dir_is_dataset_then_method():
    assert default_run_dir("data/THUMOS14", ["configs/thumos_copl.yaml"], None) == str(Path("runs/THUMOS14/copl"))
    assert default_run_dir("/x/anet1.2/", ["configs/anet_feel.yaml", "configs/wandb.yaml"], None) == str(
        Path("runs/anet1.2/feel")
    )
    assert default_run_dir("d/small", ["configs/ablations/copl_ci.yaml"], None) == str(Path("runs/small/copl_ci"))
    assert default_run_dir("d/small", [], "utal_lightning.models.modules.CoLAModule") == str(
        Path("runs/small/colamodule")
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """One short COPL fit in a fresh working directory, with no --trainer.default_root_dir."""
    work = tmp_path_factory.mktemp("work")
    data = write_synthetic_dataset("tiny", work / "data" / "tinyset", seed=0)
    done = _utal(
        work, "fit", "--config", str(CONFIGS / "synthetic_copl.yaml"), "--data.init_args.root", str(data), *SHORT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (work / "fit_output.txt").write_text(done.stdout + done.stderr)
    return work, data, work / "runs" / "tinyset" / "copl"


def test_fit_writes_into_runs_dataset_method(fitted):
    _, _, run = fitted
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
    assert (run / "summary.json").is_file() and (run / "config.yaml").is_file()


def test_what_a_fit_prints_and_draws(fitted):
    """Issue 11, item 9: the iteration's test mAP in a line, a progress line (the bar is off here), the
    progress figure, and none of Lightning's per-run noise."""
    work, _, run = fitted
    output = (work / "fit_output.txt").read_text().splitlines()
    summary = json.loads((run / "summary.json").read_text())["iterations"][0]["test"]
    assert (
        f"outer iteration 1/1 test: mAP@0.5 {summary['0.5']:.4f}, average mAP {summary['average_mAP']:.4f}"
        in "\n".join(output)
    )
    assert any(line.startswith("outer iteration 1/1: epoch 1/1, train/loss") for line in output), output
    assert (run / "figures" / "outer_progress_1.png").is_file()
    noise = [
        line for line in output if "Warning" in line or "warn" in line.lower() or "Tip:" in line or "max_epochs" in line
    ]
    assert noise == [], noise


def test_a_fresh_fit_into_a_run_directory_with_checkpoints_stops_in_one_line(fitted, tmp_path):
    work, data, run = fitted
    before = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    done = _utal(
        work, "fit", "--config", str(CONFIGS / "synthetic_copl.yaml"), "--data.init_args.root", str(data), *SHORT
    )
    errors = _errors(done)
    assert done.returncode == 2 and len(errors) == 1, done.stderr[-3000:]
    assert str(Path("runs/tinyset/copl")) in errors[0] and "--ckpt_path" in errors[0] and "--overwrite" in errors[0]
    after = {p.name: p.stat().st_mtime_ns for p in (run / "checkpoints").iterdir()}
    assert after == before  # nothing written: no last-v1.ckpt, the old run untouched


def test_overwrite_starts_afresh_without_versioned_checkpoints(fitted, tmp_path):
    _, data, run = fitted
    work = tmp_path / "work"
    shutil.copytree(run.parents[2], work)  # a copy: the other tests keep the original run
    copy = work / "runs" / "tinyset" / "copl"
    (copy / "checkpoints" / "epoch=7-step=99.ckpt").write_bytes(b"stale")  # another run's file
    done = _utal(
        work,
        "fit",
        "--config",
        str(CONFIGS / "synthetic_copl.yaml"),
        "--data.init_args.root",
        str(data),
        *SHORT,
        "--overwrite",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (copy / "checkpoints").iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]


def test_test_and_predict_need_only_the_checkpoint(fitted, tmp_path):
    _work, _, run = fitted
    ckpt = run / "checkpoints" / "last.ckpt"
    tested = _utal(tmp_path, "test", "--ckpt_path", str(ckpt))  # another cwd, no config, no data flags
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "test/mAP@0.5" in tested.stdout
    out = tmp_path / "out" / "detections.json"
    predicted = _utal(tmp_path, "predict", "--ckpt_path", str(ckpt), "--output", str(out))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert len(results) == 12 and all(isinstance(v, list) for v in results.values())
    # without a config beside the checkpoint: one line saying what is missing
    lone = tmp_path / "lone.ckpt"
    shutil.copy(ckpt, lone)
    done = _utal(tmp_path, "test", "--ckpt_path", str(lone))
    assert done.returncode == 2 and len(_errors(done)) == 1 and "config.yaml" in _errors(done)[0], done.stderr[-2000:]


def test_predict_runs_on_test_videos_without_annotations(fitted, tmp_path):
    _, data, run = fitted
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    gt = json.loads((bare / "gt.json").read_text())
    gt["database"] = {vid: e for vid, e in gt["database"].items() if e["subset"] != "test"}  # no test ground truth
    (bare / "gt.json").write_text(json.dumps(gt))
    out = tmp_path / "det.json"
    done = _utal(
        tmp_path,
        "predict",
        "--ckpt_path",
        str(run / "checkpoints" / "last.ckpt"),
        "--data.init_args.root",
        str(bare),
        "--output",
        str(out),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(json.loads(out.read_text())["results"]) == 12
    # test needs them for mAP: one line naming a test video
    done = _utal(
        tmp_path, "test", "--ckpt_path", str(run / "checkpoints" / "last.ckpt"), "--data.init_args.root", str(bare)
    )
    assert done.returncode == 2 and "has no annotation entry" in _errors(done)[0]


@pytest.mark.parametrize("config", ["synthetic_copl.yaml", "synthetic_feel.yaml"])
def test_a_finished_run_resumed_with_more_iterations_trains_them(tiny, tmp_path, config):
    """`utal fit --ckpt_path <run>/checkpoints/last.ckpt --loop.max_iterations 3` after a 2-iteration run goes on
    from the last finished iteration: its model pseudolabels iteration 3, which trains its epochs."""
    import torch

    from tests.helpers.fit import fit

    run = tmp_path / "run"
    short = ("--loop.epochs_per_iteration=2", "--loop.adaptive_epochs=false", "--loop.test_iterations=none")
    first = fit(config, tiny, run, "--loop.max_iterations=2", *short)
    steps = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    last = run / "checkpoints" / "last.ckpt"
    more = fit(config, tiny, run, "--loop.max_iterations=3", *short, "--ckpt_path", str(last))
    assert [h["iteration"] for h in more["iterations"]] == [1, 2, 3]
    assert more["iterations"][:2] == first["iterations"][:2]  # the finished iterations as they were
    assert more["iterations"][2]["epochs"] == 2
    assert torch.load(last, weights_only=False)["global_step"] == steps + steps // 2  # two more epochs' steps
