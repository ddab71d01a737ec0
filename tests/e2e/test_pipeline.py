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
    assert report["pooling"] == "deviation" and report["subtract_background"] is True
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


def _baseline(root, tmp_path, capsys, *flags, subset: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """``utal baseline`` with these flags, then ``utal evaluate`` (over every annotated video unless ``subset``
    names the test subset): (its report, its mAP)."""
    pred = tmp_path / f"pred{'_'.join(flags).replace('-', '')}.json"
    assert main(["baseline", "--root", str(root), "--out", str(pred), *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    evaluate = ["evaluate", "--gt", str(root / "gt.json"), "--pred", str(pred), "--preset", "thumos", *subset]
    assert main(evaluate) == 0
    return report, json.loads(capsys.readouterr().out)


def test_the_label_free_poolings_rank_as_they_should(small, tmp_path, capsys):
    # small: actions stand out from the mean snippet. Pooling over them clusters better than the mean of every
    # snippet, and the oracle (the true action snippets) bounds both.
    mean, mean_map = _baseline(small, tmp_path, capsys, "--pooling", "mean")
    deviation, deviation_map = _baseline(small, tmp_path, capsys)
    oracle, _ = _baseline(small, tmp_path, capsys, "--pooling", "oracle")
    nmi = {k: r["train_cluster/nmi"] for k, r in (("mean", mean), ("deviation", deviation), ("oracle", oracle))}
    assert nmi["deviation"] > nmi["mean"] + 0.2 and nmi["oracle"] >= nmi["deviation"] - 0.02, nmi
    assert deviation_map["0.5"] > mean_map["0.5"] + 0.1, (deviation_map["0.5"], mean_map["0.5"])
    assert deviation["train_label_free_auc"] > 0.8


def test_the_localization_oracle_localizes_with_the_ground_truth(small, tmp_path, capsys):
    # The bound row of docs/quality.md: label-free clusters, the test videos' annotated snippets as the map. On
    # small, where the oracle pooling clusters almost perfectly, it then finds almost every segment exactly.
    test = ("--subset", "test")
    oracle = ("--pooling", "oracle")
    report, oracle_map = _baseline(small, tmp_path, capsys, *oracle, "--localization", "oracle", subset=test)
    _, deviation_map = _baseline(small, tmp_path, capsys, "--pooling", "oracle", subset=test)
    assert report["localization"] == "oracle"
    assert oracle_map["0.7"] > 0.9 and oracle_map["0.7"] > deviation_map["0.7"] + 0.1, (oracle_map, deviation_map)


def test_the_baseline_runs_the_inference_of_a_model_config(small, tmp_path, capsys):
    from utal_lightning.baseline import baseline_settings
    from utal_lightning.eval.detect import DetectionSettings
    from utal_lightning.utils import read_configs

    settings = baseline_settings(read_configs(["thumos_feel", "lite/thumos_feel"]))
    detection = settings["evaluator"].detection
    assert isinstance(detection, DetectionSettings)
    assert detection.nms_iou == 0.7 and len(detection.actionness_thresholds) == 33 and detection.class_threshold == 0.2
    assert settings["num_segments"] == 750
    # FEEL's THUMOS config chooses iteration 1's pooling between the distance-weighted, background-subtracted one and
    # each video's top 25 % as read (docs/method.md sec. 3.1.3)
    assert settings["choices"] == [(None, True), (0.25, False)]
    copl = baseline_settings(read_configs(["anet_copl"]))
    copl_detection = copl["evaluator"].detection
    assert copl_detection.actionness_thresholds == () and copl_detection.class_threshold == 0.1
    assert copl_detection.proposal_scoring == "unthresholded" and copl["num_segments"] == 50
    assert copl["evaluator"].tious[0] == 0.5 and len(copl["evaluator"].tious) == 10
    # a config's settings change the detections (here NMS and the proposal sources)
    _, default_map = _baseline(small, tmp_path, capsys, "--num-segments", "64")
    _, feel_map = _baseline(small, tmp_path, capsys, "--config", "thumos_feel", "--num-segments", "64")
    assert default_map != feel_map
    with pytest.raises(SystemExit) as info:
        main(["baseline", "--root", str(small), "--out", str(tmp_path / "x.json"), "--config", "no_such_config"])
    assert info.value.code == 2
    assert "no_such_config: config file not found" in capsys.readouterr().err


def test_the_baseline_chooses_between_poolings_as_the_first_pooler_does(small, tmp_path):
    """A config whose first pooler is an AgreementChoicePooler (docs/method.md sec. 3.1.3): the baseline pools each
    DeviationPooler candidate, keeps the one whose views agree most (ties: the first) and detects exactly as the
    kept pooling alone does; the candidates' order does not change which pooling is kept."""
    from utal_lightning.baseline import baseline_settings, run_baseline
    from utal_lightning.data.layout import DatasetLayout

    choices = [(0.25, False), (None, True)]
    forward = run_baseline(DatasetLayout(small), tmp_path / "f.json", num_segments=64, choices=choices)
    backward = run_baseline(DatasetLayout(small), tmp_path / "b.json", num_segments=64, choices=choices[::-1])
    agreement = forward["pooling_choice"]["agreement"]
    assert len(agreement) == 2 and agreement[0] != agreement[1]
    kept = forward["pooling_choice"]["kept"]
    assert agreement[kept] == max(agreement) and backward["pooling_choice"]["agreement"] == agreement[::-1]
    assert (forward["fraction"], forward["subtract_background"]) == choices[kept]
    assert (backward["fraction"], backward["subtract_background"]) == choices[kept]
    alone = run_baseline(
        DatasetLayout(small),
        tmp_path / "a.json",
        num_segments=64,
        fraction=choices[kept][0],
        subtract_background=choices[kept][1],
    )
    assert "pooling_choice" not in alone and alone["train_cluster/nmi"] == forward["train_cluster/nmi"]
    assert (
        (tmp_path / "a.json").read_bytes() == (tmp_path / "f.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    )
    # a tie keeps the first
    tie = run_baseline(DatasetLayout(small), tmp_path / "t.json", num_segments=64, choices=[choices[1], choices[1]])
    assert tie["pooling_choice"]["kept"] == 0
    # a config's choice: its DeviationPooler candidates with their defaults; anything else is refused
    first = {
        "class_path": "utal_lightning.pseudo.poolers.AgreementChoicePooler",
        "init_args": {
            "candidates": [
                {"class_path": "utal_lightning.pseudo.poolers.DeviationPooler", "init_args": {"fraction": 0.25}},
                {"class_path": "utal_lightning.pseudo.poolers.DeviationPooler"},
            ]
        },
    }
    config = {"loop": {"pseudolabeler": {"init_args": {"first_pooler": first}}}}
    assert baseline_settings(config)["choices"] == [(0.25, True), (None, True)]
    first["init_args"]["candidates"].append({"class_path": "utal_lightning.pseudo.poolers.MeanPooler"})
    with pytest.raises(ValueError, match="DeviationPooler candidates only"):
        baseline_settings(config)
