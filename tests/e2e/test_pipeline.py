"""The demo's path on the tiny preset: synth -> check -> baseline -> evaluate, through the CLI."""

import json

import numpy as np
import pytest

from utal_lightning.cli import main
from utal_lightning.data.layout import DatasetLayout, read_dataset
from utal_lightning.data.store import FeatureStore
from utal_lightning.eval.detection_map import THUMOS_TIOUS, detection_map
from utal_lightning.eval.io import ground_truth_table


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny") / "data"
    assert main(["synth", "--preset", "tiny", "--out", str(root), "--seed", "3"]) == 0
    return root


def test_synthetic_dataset_passes_check_and_loads(tiny, capsys):
    assert main(["check", "--root", str(tiny), "--train-subset", "validation", "--test-subset", "test", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["splits"]["train"]["videos"] == 24 and summary["splits"]["test"]["videos"] == 12
    layout = DatasetLayout(tiny)
    index = read_dataset(layout)
    store = FeatureStore.load(layout, "test", index.test_ids)
    assert store.feature_dim == 32 and len(store) == 12
    # each video's duration in gt.json is its length in snippets x 0.64 s
    durations = [index.annotations[v].duration for v in index.test_ids]
    np.testing.assert_allclose(durations, store.lengths.numpy() * 0.64, atol=0.01)


def test_baseline_then_evaluate(tiny, tmp_path, capsys):
    pred = tmp_path / "pred.json"
    assert main(["baseline", "--root", str(tiny), "--out", str(pred)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 0.0 <= report["train_cluster/nmi"] <= 1.0
    results = json.loads(pred.read_text())["results"]
    index = read_dataset(DatasetLayout(tiny))
    assert list(results) == index.test_ids
    for vid, detections in results.items():
        duration = index.annotations[vid].duration
        for d in detections:
            assert d["label"] in index.classes
            assert 0.0 <= d["segment"][0] < d["segment"][1] <= duration * 1.05  # extrapolated tail of the last snippet
    assert (
        main(["evaluate", "--gt", str(tiny / "gt.json"), "--pred", str(pred), "--subset", "test", "--preset", "thumos"])
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    gt = ground_truth_table(index.annotations, index.test_ids)
    videos = [v for v, ds in results.items() for _ in ds]
    flat = [d for ds in results.values() for d in ds]
    expected = detection_map(
        gt.videos,
        gt.segments,
        gt.labels,
        videos,
        [d["segment"] for d in flat],
        [d["label"] for d in flat],
        [d["score"] for d in flat],
        THUMOS_TIOUS,
    ).as_dict()
    assert printed == pytest.approx(expected)
    # a label-free detector localizes something on this easy preset
    assert printed["0.1"] > 0.05
