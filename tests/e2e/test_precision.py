"""bf16 mixed precision through the whole loop (CPU autocast here; the same code path on a GPU)."""

import math

import pytest

from tests.helpers.fit import fit


@pytest.mark.parametrize("config", ["synthetic_copl.yaml", "synthetic_feel.yaml"])
def test_bf16_mixed_runs_the_loop(config, tiny, tmp_path):
    short = ("--loop.max_iterations=2", "--loop.epochs_per_iteration=2")
    summary = fit(config, tiny, tmp_path / "run", "--trainer.precision=bf16-mixed", *short)
    fp32 = fit(config, tiny, tmp_path / "fp32", *short)
    assert len(summary["iterations"]) == 2
    # iteration 1 pools without a model: the same pseudolabels in either precision
    assert summary["iterations"][0]["nmi"] == fp32["iterations"][0]["nmi"]
    for h in summary["iterations"]:
        assert math.isfinite(h["nmi"]) and math.isfinite(h["test"]["average_mAP"]) and h["test"]["0.5"] > 0
