import json

import numpy as np
import pytest

from tests.reference.detection_map import reference_detection_map
from utal_lightning.cli import main


def _write(tmp_path, seed=0):
    rng = np.random.default_rng(seed)
    database, results = {}, {}
    gt_rows, pred_rows = [], []
    for v in range(12):
        vid = f"video_{v}"
        subset = "test" if v < 8 else "validation"
        annotations = []
        for _ in range(rng.integers(1, 4)):
            s = float(rng.uniform(0, 50))
            e = s + float(rng.uniform(1, 10))
            label = ["Walk", "Jump", "Swim"][rng.integers(0, 3)]
            annotations.append({"segment": [f"{s}", f"{e}"], "label": label})  # strings, as in real files
            if subset == "test":
                gt_rows.append((vid, s, e, label))
        database[vid] = {"subset": subset, "annotations": annotations}
        dets = []
        for _ in range(rng.integers(0, 6)):
            s = float(rng.uniform(0, 50))
            e = s + float(rng.uniform(1, 10))
            label = ["Walk", "Jump", "Swim", "Fly"][rng.integers(0, 4)]
            score = float(rng.random())
            dets.append({"segment": [s, e], "label": label, "score": score})
            pred_rows.append((vid, s, e, label, score))
        results[vid] = dets
    (tmp_path / "gt.json").write_text(json.dumps({"database": database}))
    (tmp_path / "pred.json").write_text(json.dumps({"results": results}))
    return gt_rows, pred_rows


@pytest.mark.parametrize("seed", range(3))
def test_evaluate_prints_map_per_threshold_matching_the_reference(tmp_path, capsys, seed):
    gt_rows, pred_rows = _write(tmp_path, seed)
    tious = [0.1, 0.3, 0.5]
    argv = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--subset", "test"]
    assert main([*argv, "--tiou", *map(str, tious), "--out", str(tmp_path / "map.json")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["0.1", "0.3", "0.5", "average_mAP"]
    _, ap = reference_detection_map(
        [r[0] for r in gt_rows],
        [r[1:3] for r in gt_rows],
        [r[3] for r in gt_rows],
        [r[0] for r in pred_rows],
        [r[1:3] for r in pred_rows],
        [r[3] for r in pred_rows],
        [r[4] for r in pred_rows],
        tious,
    )
    expected = [float(np.mean(row)) for row in ap]
    assert [report[k] for k in ("0.1", "0.3", "0.5")] == pytest.approx(expected, abs=1e-12)
    assert report["average_mAP"] == pytest.approx(np.mean(expected), abs=1e-12)
    assert json.loads((tmp_path / "map.json").read_text()) == report


def test_evaluate_presets_and_per_class(tmp_path, capsys):
    _write(tmp_path)
    base = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json"), "--subset", "test"]
    main([*base, "--preset", "anet", "--per-class"])
    report = json.loads(capsys.readouterr().out)
    assert [k for k in report if k[0].isdigit()] == [
        "0.5",
        "0.55",
        "0.6",
        "0.65",
        "0.7",
        "0.75",
        "0.8",
        "0.85",
        "0.9",
        "0.95",
    ]
    assert set(report["per_class"]) <= {"Walk", "Jump", "Swim"}  # "Fly" is not in the ground truth: ignored
    main([*base, "--preset", "thumos"])
    assert list(json.loads(capsys.readouterr().out))[:7] == ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7"]


def test_evaluate_without_thresholds_or_with_unknown_subset_fails_clearly(tmp_path, capsys):
    _write(tmp_path)
    base = ["evaluate", "--gt", str(tmp_path / "gt.json"), "--pred", str(tmp_path / "pred.json")]
    with pytest.raises(SystemExit) as info:
        main([*base, "--subset", "test"])
    assert info.value.code == 2 and "--tiou" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--subset", "testing", "--preset", "thumos"])
    assert 'no video has subset "testing"' in capsys.readouterr().err


def _with_detection(tmp_path, detection) -> None:
    """The valid files of _write, with one detection of video_0 replaced."""
    results = json.loads((tmp_path / "pred.json").read_text())
    results["results"]["video_0"] = [detection]
    (tmp_path / "pred.json").write_text(json.dumps(results))


BAD_EVALUATE_INPUTS = {
    "reversed segment": (
        lambda p: _with_detection(p, {"segment": [5.0, 2.0], "label": "Walk", "score": 0.5}),
        [],
        ["video_0", "detection 0", "ends before it starts"],
    ),
    "segment as a string": (
        lambda p: _with_detection(p, {"segment": "12", "label": "Walk", "score": 0.5}),
        [],
        ["video_0", "'12' is not a [start, end] pair"],
    ),
    "three numbers": (
        lambda p: _with_detection(p, {"segment": [1, 2, 3], "label": "Walk", "score": 0.5}),
        [],
        ["video_0", "not a [start, end] pair"],
    ),
    "non-numeric score": (
        lambda p: _with_detection(p, {"segment": [1, 2], "label": "Walk", "score": "high"}),
        [],
        ["video_0", "score 'high' is not a finite number"],
    ),
    "NaN score": (
        lambda p: _with_detection(p, {"segment": [1, 2], "label": "Walk", "score": float("nan")}),
        [],
        ["video_0", "not a finite number"],
    ),
    "missing label": (lambda p: _with_detection(p, {"segment": [1, 2], "score": 0.3}), [], ["video_0", '"label"']),
    "tIoU above 1": (lambda p: None, ["--tiou", "0.5", "1.5"], ["--tiou 1.5", "(0, 1]"]),
    "tIoU zero": (lambda p: None, ["--tiou", "0"], ["--tiou 0", "(0, 1]"]),
    "subset without ground truth": (
        lambda p: (p / "gt.json").write_text(
            json.dumps(
                {
                    "database": {
                        **json.loads((p / "gt.json").read_text())["database"],
                        "video_x": {"subset": "empty", "annotations": []},
                    }
                }
            )
        ),
        ["--subset", "empty"],
        ["gt.json", '"empty"', "no ground-truth segments"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_EVALUATE_INPUTS))
def test_evaluate_rejects_bad_input_in_one_line(tmp_path, capsys, case):
    _write(tmp_path)
    corrupt, extra, fragments = BAD_EVALUATE_INPUTS[case]
    corrupt(tmp_path)
    argv = [
        "evaluate",
        "--gt",
        str(tmp_path / "gt.json"),
        "--pred",
        str(tmp_path / "pred.json"),
        "--out",
        str(tmp_path / "map.json"),
    ]
    if "--subset" not in extra:
        argv += ["--subset", "test"]
    if "--tiou" not in extra:
        argv += ["--preset", "thumos"]
    with pytest.raises(SystemExit) as info:
        main(argv + extra)
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    assert not (tmp_path / "map.json").exists()  # nothing written
