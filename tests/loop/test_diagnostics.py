"""The per-iteration diagnostics of docs/method.md sec. 2.1 in summary.json, the logger and the log line."""

from __future__ import annotations

import csv

import pytest

from tests.helpers.fit import fit

SHORT = ("--loop.max_iterations=2", "--loop.epochs_per_iteration=1", "--loop.test_iterations=none")


@pytest.fixture(scope="module")
def runs(tiny, tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnostics")
    deviation = fit("synthetic_feel.yaml", tiny, root / "deviation", *SHORT)
    # the papers' input and pooling: raw snippets, each video's mean
    paper = (
        "--loop.pseudolabeler.init_args.first_pooler=utal_lightning.pseudo.poolers.MeanPooler",
        "--data.init_args.subtract_video_background=false",
    )
    mean = fit("synthetic_feel.yaml", tiny, root / "mean", *SHORT, *paper)
    return {"deviation": (deviation, root / "deviation"), "mean": (mean, root / "mean")}


def test_every_iteration_records_the_pooling_diagnostics(runs):
    for summary, run in runs.values():
        for h in summary["iterations"]:
            for key in ("attention_auc", "label_free_auc", "pooled_nmi", "accuracy_P"):
                assert isinstance(h[key], float), (key, h)
        (metrics,) = run.rglob("metrics.csv")
        rows = list(csv.DictReader(metrics.open()))
        logged = [float(r["diagnostics/label_free_auc"]) for r in rows if r.get("diagnostics/label_free_auc")]
        assert logged == pytest.approx([h["label_free_auc"] for h in summary["iterations"]])


def test_iteration_one_attention_is_the_label_free_signal_or_uniform(runs):
    deviation = runs["deviation"][0]["iterations"]
    mean = runs["mean"][0]["iterations"]
    # The label-free actionness is the same signal whatever the pooling: one value for every run and iteration.
    assert deviation[0]["label_free_auc"] == deviation[1]["label_free_auc"] == mean[0]["label_free_auc"]
    assert deviation[0]["label_free_auc"] > 0.7  # tiny's actions stand out from the mean snippet
    # Deviation pooling weighs snippets by that signal rescaled (the same ranking, the same AUC); the mean
    # weighs every snippet alike: AUC 1/2.
    assert deviation[0]["attention_auc"] == pytest.approx(deviation[0]["label_free_auc"], abs=1e-6)
    assert mean[0]["attention_auc"] == 0.5
    # Pooling over the actions clusters better than the mean, seen by the same k-means probe
    assert deviation[0]["pooled_nmi"] > mean[0]["pooled_nmi"]
