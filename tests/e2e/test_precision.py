"""bf16 mixed precision through the whole loop (CPU autocast here; the same code path on a GPU)."""

import math

import pytest

from tests.helpers.fit import fit


@pytest.mark.parametrize("config", ["synthetic_copl.yaml", "synthetic_feel.yaml"])
def test_bf16_mixed_runs_the_loop(config, tiny, tmp_path):
    summary = fit(
        config,
        tiny,
        tmp_path / "run",
        "--trainer.precision=bf16-mixed",
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=2",
    )
    assert len(summary["iterations"]) == 2
    for h in summary["iterations"]:
        assert math.isfinite(h["nmi"]) and 0.0 <= h["test"]["average_mAP"] <= 1.0
