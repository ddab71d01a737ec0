"""`utal fit` under DDP with 2 CPU processes (gloo), as a subprocess (the DDP launcher re-executes argv)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from utal_lightning.data.synthetic import write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]
UTAL = Path(sys.executable).parent / "utal"


def run_fit(data: Path, run_dir: Path, *extra: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"}
    command = [
        str(UTAL), "fit", "--config", str(ROOT / "configs" / "synthetic_copl.yaml"), "--data.init_args.root", str(data),
        "--trainer.default_root_dir", str(run_dir), "--trainer.enable_progress_bar=false", "--trainer.accelerator=cpu",
        "--loop.max_iterations=2", "--loop.epochs_per_iteration=2", "--trainer.callbacks+=tests.ddp_probe.Probe", *extra,
    ]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_ddp_two_processes_agree_and_cover_every_video(tmp_path):
    data = write_synthetic_dataset("small", tmp_path / "data", seed=0)
    run_fit(data, tmp_path / "ddp", "--trainer.strategy=ddp", "--trainer.devices=2")
    run_fit(data, tmp_path / "single", "--trainer.devices=1")
    ranks = [json.loads((tmp_path / "ddp" / f"probe_rank{r}.json").read_text()) for r in (0, 1)]
    (single,) = [json.loads((tmp_path / "single" / "probe_rank0.json").read_text())]
    assert [r["world_size"] for r in ranks] == [2, 2]

    # every rank holds the same pseudolabels, P and history (clustering ran once and was broadcast)
    assert ranks[0]["labels"] == ranks[1]["labels"] and ranks[0]["selected"] == ranks[1]["selected"]
    assert ranks[0]["history"] == ranks[1]["history"]

    # epoch 0 (iteration 1): the ranks' shards together cover every video IOCNet trains on (P and U),
    # and the supervised rows are exactly P; the shards overlap only by the sampler's padding
    summary = json.loads((tmp_path / "ddp" / "summary.json").read_text())
    seen = [set(v for v, _ in r["epoch0"]) for r in ranks]
    assert seen[0] | seen[1] == set(range(120))
    assert len(seen[0] & seen[1]) <= 1
    supervised = {v for r in ranks for v, s in r["epoch0"] if s}
    assert len(supervised) == summary["iterations"][0]["num_selected"]

    # iteration 1 pools by the mean: sharded pooling + gather gives exactly the single-process clustering
    first_ddp, first_single = ranks[0]["history"][0], single["history"][0]
    for key in ("nmi", "ari", "accuracy", "selected_fraction", "accuracy_P", "accuracy_U", "num_selected"):
        assert first_ddp[key] == pytest.approx(first_single[key], abs=1e-6), key
    # test mAP was computed once over all test videos (gathered shards)
    assert 0.0 <= summary["iterations"][-1]["test"]["average_mAP"] <= 1.0
