"""Reading real-format datasets (docs/method.md sec. 1.1) and failing clearly on every kind of bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.datasets import CLASSES, VIDEOS, features, write_dataset
from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.data.layout import DatasetLayout, read_dataset
from utal_lightning.data.sampling import train_positions
from utal_lightning.data.store import FeatureStore
from utal_lightning.errors import DatasetError


@pytest.fixture
def dataset(tmp_path):
    return write_dataset(tmp_path / "ds")


def test_reads_a_hand_written_dataset(dataset):
    index = read_dataset(DatasetLayout(dataset))
    assert index.classes == CLASSES
    assert index.train_ids == ["video_validation_1", "video_validation_2", "video_validation_3"]
    assert index.test_ids == ["video_test_1", "video_test_2"]
    walk = index.annotations["video_validation_1"]
    assert walk.segments.tolist() == [[0.64, 3.2]]  # strings parsed as floats
    assert "video_validation_3" not in index.annotations  # train video without annotation is fine
    # multi-label: Jump totals 1.28 + 0.5 s, Swim 2.5 s -> Swim is the main label
    assert index.class_targets(index.train_ids).tolist() == [0, 2, -1]
    assert index.multi_hot_labels(index.train_ids).tolist() == [[1, 0, 0], [0, 1, 1], [0, 0, 0]]


def test_store_reads_each_file_once_and_gathers_rgb_first(dataset, monkeypatch):
    layout = DatasetLayout(dataset)
    index = read_dataset(layout)
    loads = []
    real_load = np.load
    monkeypatch.setattr(
        np,
        "load",
        lambda path, *a, **k: loads.append((Path(path).name, k.get("mmap_mode"))) or real_load(path, *a, **k),
    )
    store = FeatureStore.load(layout, "train", index.train_ids)
    data_reads = [name for name, mmap in loads if mmap is None]
    assert sorted(data_reads) == sorted(f"{v}.npy" for v in index.train_ids for _ in range(2))
    loads.clear()
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        video_index = torch.tensor([0, 2, 1])
        positions = train_positions(store.lengths[video_index], 6, generator)
        batch = store.gather(video_index, positions)
        assert batch.shape == (3, 6, 7)
        for b, v in enumerate(video_index.tolist()):
            vid, (_, length, _) = index.train_ids[v], VIDEOS[index.train_ids[v]]
            expected = np.concatenate([features(vid, length, 4, "rgb"), features(vid, length, 3, "flow")], axis=1)
            np.testing.assert_array_equal(batch[b].numpy(), expected[positions[b].numpy()])
    assert loads == []  # batches never touch the disk
    assert store.lengths.tolist() == [10, 7, 5] and store.rgb_dim == 4


def test_activitynet_style_subsets_prefix_and_no_class_file(tmp_path):
    root = write_dataset(
        tmp_path / "anet",
        classes=None,
        file_prefix="v_",
        subsets={"train": "training", "test": "validation"},
        write_splits=False,
    )
    layout = DatasetLayout(root, train_subset="training", test_subset="validation")
    index = read_dataset(layout)
    assert index.classes == sorted(CLASSES)  # from gt.json labels
    # without a split file, ids come from gt.json subsets: the un-annotated train video cannot be listed
    assert index.train_ids == ["video_validation_1", "video_validation_2"]
    store = FeatureStore.load(layout, "test", index.test_ids)  # finds v_<id>.npy
    assert store.lengths.tolist() == [12, 3]


def test_check_command_prints_summary(dataset, capsys):
    assert main(["check", "--root", str(dataset), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    train = summary["splits"]["train"]
    assert train["videos"] == 3 and train["annotated_videos"] == 2 and train["multi_label_videos"] == 1
    assert train["snippets_per_video"]["max"] == 10 and train["segments"] == 4
    assert summary["splits"]["test"]["videos_per_class"] == {"Walk": 1, "Jump": 0, "Swim": 1}
    assert main(["check", "--root", str(dataset)]) == 0
    assert "OK" in capsys.readouterr().out


def _save(path: Path, array) -> None:
    np.save(path, array)


def _feature(root: Path, vid: str, modality: str) -> Path:
    split = VIDEOS[vid][0]
    return root / "features" / split / modality / f"{vid}.npy"


def _gt(root: Path) -> dict:
    return json.loads((root / "gt.json").read_text())


def _rename_subsets(root: Path, names: dict[str, str]) -> None:
    gt = json.loads((root / "gt.json").read_text())
    for entry in gt["database"].values():
        entry["subset"] = names.get(entry["subset"], entry["subset"])
    (root / "gt.json").write_text(json.dumps(gt))


BAD_INPUTS = {
    "missing feature file": (
        lambda r: _feature(r, "video_validation_2", "flow").unlink(),
        ["video_validation_2", "not found"],
    ),
    "rgb/flow length mismatch": (
        lambda r: _save(_feature(r, "video_test_1", "flow"), np.ones((11, 3), np.float32)),
        ["video_test_1", "rgb has 12", "flow has 11"],
    ),
    "width mismatch across videos": (
        lambda r: _save(_feature(r, "video_validation_3", "rgb"), np.ones((5, 6), np.float32)),
        ["video_validation_3", "width 6", "4"],
    ),
    "NaN": (
        lambda r: _save(
            _feature(r, "video_validation_1", "rgb"),
            np.where(np.arange(40).reshape(10, 4) == 9, np.nan, 1.0).astype(np.float32),
        ),
        ["video_validation_1", "NaN/Inf", "snippet 2"],
    ),
    "Inf": (
        lambda r: _save(_feature(r, "video_test_2", "flow"), np.full((3, 3), np.inf, np.float32)),
        ["video_test_2", "NaN/Inf"],
    ),
    "zero-length video": (
        lambda r: [
            _save(_feature(r, "video_validation_1", m), np.ones((0, d), np.float32))
            for m, d in (("rgb", 4), ("flow", 3))
        ],
        ["video_validation_1", "zero snippets"],
    ),
    "not 2-D": (
        lambda r: _save(_feature(r, "video_test_1", "rgb"), np.ones(12, np.float32)),
        ["video_test_1", "shape (12,)"],
    ),
    "integer features": (
        lambda r: _save(_feature(r, "video_test_1", "rgb"), np.ones((12, 4), np.int64)),
        ["video_test_1", "dtype int64"],
    ),
    "corrupt npy": (
        lambda r: _feature(r, "video_test_1", "rgb").write_bytes(b"garbage"),
        ["video_test_1", "cannot read"],
    ),
    "test id without annotation": (
        lambda r: (r / "gt.json").write_text(
            json.dumps({"database": {k: v for k, v in _gt(r)["database"].items() if k != "video_test_2"}})
        ),
        ["video_test_2", "no annotation entry"],
    ),
    "unknown label": (
        lambda r: (r / "classes.txt").write_text("Walk\nJump\n"),
        ["video_validation_2", '"Swim"', "not in the class list"],
    ),
    "malformed JSON": (
        lambda r: (r / "gt.json").write_text('{"database": {"a": [1, 2}}'),
        ["gt.json", "malformed JSON", "line 1"],
    ),
    "no database": (lambda r: (r / "gt.json").write_text("[]"), ["gt.json", '"database"']),
    "non-numeric segment": (
        lambda r: (r / "gt.json").write_text(
            json.dumps(
                {
                    "database": {
                        **_gt(r)["database"],
                        "video_test_1": {
                            "subset": "test",
                            "annotations": [{"segment": ["1.0", "abc"], "label": "Walk"}],
                        },
                    }
                }
            )
        ),
        ["video_test_1", "'abc' is not a number"],
    ),
    "segment ends before start": (
        lambda r: (r / "gt.json").write_text(
            json.dumps(
                {
                    "database": {
                        **_gt(r)["database"],
                        "video_test_1": {"subset": "test", "annotations": [{"segment": [5, 1], "label": "Walk"}]},
                    }
                }
            )
        ),
        ["video_test_1", "ends before it starts"],
    ),
    "duplicate id in split": (
        lambda r: (r / "split_test.txt").write_text("video_test_1\nvideo_test_2\nvideo_test_1\n"),
        ["split_test.txt", "video_test_1", "twice"],
    ),
    "video in both splits": (
        lambda r: (r / "split_train.txt").write_text("video_validation_1\nvideo_test_1\n"),
        ["video_test_1", "both"],
    ),
    "missing split file, subsets no shipped config knows": (
        lambda r: (r / "split_train.txt").unlink() or _rename_subsets(r, {"validation": "holdout"}),
        ["split_train.txt", "not found", '"holdout"'],
    ),
    "missing gt.json": (lambda r: (r / "gt.json").unlink(), ["gt.json", "not found"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_nonzero_exit(dataset, capsys, case):
    corrupt, expected = BAD_INPUTS[case]
    corrupt(dataset)
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--root", str(dataset)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    for fragment in expected:
        assert fragment in err, (fragment, err)


def test_subset_mismatch_with_configured_subset(dataset, capsys):
    with pytest.raises(SystemExit):
        main(["check", "--root", str(dataset), "--train-subset", "training"])
    err = capsys.readouterr().err
    assert "video_validation_1" in err and 'subset "validation"' in err and '"training"' in err


def test_prediction_only_allows_unannotated_test_videos(dataset):
    BAD_INPUTS["test id without annotation"][0](dataset)
    with pytest.raises(DatasetError):
        read_dataset(DatasetLayout(dataset))
    assert read_dataset(DatasetLayout(dataset), require_test_annotations=False).test_ids[-1] == "video_test_2"


def test_ignored_labels_are_dropped(dataset):
    gt = _gt(dataset)
    gt["database"]["video_test_1"]["annotations"].append({"segment": [6, 7], "label": "Ambiguous"})
    (dataset / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(DatasetError, match="Ambiguous"):
        read_dataset(DatasetLayout(dataset))
    index = read_dataset(DatasetLayout(dataset, ignored_labels=("Ambiguous",)))
    assert index.annotations["video_test_1"].labels == ("Walk",)


def test_console_script_reports_without_traceback(dataset):
    _feature(dataset, "video_test_1", "rgb").write_bytes(b"garbage")
    utal = Path(sys.executable).parent / "utal"
    proc = subprocess.run([str(utal), "check", "--root", str(dataset)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "video_test_1" in proc.stderr


def _shipped_subsets(config: str) -> tuple[list[str] | str, list[str] | str]:
    """The train/test subset names a shipped config accepts (read from the YAML, not restated here)."""
    import yaml

    data = yaml.safe_load((CONFIGS / config).read_text())["data"]["init_args"]
    return data["train_subset"], data["test_subset"]


@pytest.mark.parametrize(
    "config, train_name, test_name",
    [
        ("thumos_copl.yaml", "train", "test"),  # CoLA's THUMOS'14 gt.json
        ("thumos_feel.yaml", "validation", "test"),  # the official THUMOS'14 file
        ("thumos_copl.yaml", "Validation", "Test"),  # ActionFormer's capitalised names
        ("anet_feel.yaml", "training", "validation"),
        ("anet_copl.yaml", "train", "val"),
    ],
)
def test_shipped_configs_accept_the_subset_names_real_files_use(tmp_path, config, train_name, test_name):
    train_subset, test_subset = _shipped_subsets(config)
    for write_splits in (True, False):  # cross-checked against split files, or the only source of ids
        root = write_dataset(
            tmp_path / f"{write_splits}", subsets={"train": train_name, "test": test_name}, write_splits=write_splits
        )
        index = read_dataset(DatasetLayout(root, train_subset=train_subset, test_subset=test_subset))
        assert index.test_ids == ["video_test_1", "video_test_2"]
        expected_train = ["video_validation_1", "video_validation_2"] + (["video_validation_3"] if write_splits else [])
        assert index.train_ids == expected_train


def test_a_subset_no_split_accepts_is_named_in_one_line(tmp_path, capsys):
    root = write_dataset(tmp_path / "d", subsets={"train": "train", "test": "test"}, write_splits=False)
    with pytest.raises(SystemExit):
        main(["check", "--root", str(root), "--train-subset", "training", "validation", "--test-subset", "test"])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert '"training", "validation"' in err and 'subsets present: "test", "train"' in err


def _gt_with(root: Path, vid: str, entry: dict) -> None:
    gt = json.loads((root / "gt.json").read_text())
    gt["database"][vid] = entry
    (root / "gt.json").write_text(json.dumps(gt))


def test_segments_outside_the_video_are_clipped_with_a_warning_that_names_them(tmp_path, caplog, capsys):
    root = write_dataset(tmp_path / "d")
    _gt_with(
        root,
        "video_test_1",
        {
            "subset": "test",
            "duration": 7.68,
            "annotations": [
                {"segment": [-0.5, 2.0], "label": "Walk"},  # starts before the video
                {"segment": [6.0, 9.5], "label": "Swim"},  # ends after it
                {"segment": [8.0, 9.0], "label": "Jump"},  # wholly after it: nothing left
                {"segment": [1.0, 3.0], "label": "Walk"},  # inside: untouched
            ],
        },
    )
    with caplog.at_level("WARNING"):
        index = read_dataset(DatasetLayout(root, train_subset="validation", test_subset="test"))
    a = index.annotations["video_test_1"]
    np.testing.assert_array_equal(a.segments, [[0.0, 2.0], [6.0, 7.68], [1.0, 3.0]])
    assert a.labels == ("Walk", "Swim", "Walk") and a.clipped == 3
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "3 segments" in warning and "video_test_1 [-0.5, 2]" in warning and "video_test_1 [8, 9]" in warning
    assert main(["check", "--root", str(root), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["test"]["clipped_segments"] == 3


def test_an_empty_segment_is_an_error(tmp_path):
    root = write_dataset(tmp_path / "d")
    _gt_with(root, "video_test_1", {"subset": "test", "annotations": [{"segment": [2.5, "2.5"], "label": "Walk"}]})
    with pytest.raises(DatasetError, match=r'video "video_test_1" annotation 0: segment \[2.5, 2.5\] is empty'):
        read_dataset(DatasetLayout(root))


def test_missing_features_skip_drops_and_lists_the_videos(tmp_path, caplog, capsys):
    root = write_dataset(tmp_path / "d")
    (root / "features" / "train" / "flow" / "video_validation_2.npy").unlink()
    with pytest.raises(DatasetError, match="video_validation_2"):  # the default: an error
        FeatureStore.load(DatasetLayout(root), "train", read_dataset(DatasetLayout(root)).train_ids)
    layout = DatasetLayout(root, missing_features="skip")
    with caplog.at_level("WARNING"):
        index = read_dataset(layout)
    assert index.train_ids == ["video_validation_1", "video_validation_3"]
    assert index.skipped == {"train": ["video_validation_2"]}
    assert "video_validation_2" in " ".join(r.getMessage() for r in caplog.records)
    assert main(["check", "--root", str(root), "--missing-features", "skip", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"]["train"]["skipped_videos"] == ["video_validation_2"]


def test_test_features_of_another_width_than_training_are_an_error(tmp_path, capsys):
    root = write_dataset(tmp_path / "d")
    path = root / "features" / "test" / "flow" / "video_test_1.npy"
    np.save(path, np.zeros((12, 5), dtype=np.float32))
    np.save(root / "features" / "test" / "flow" / "video_test_2.npy", np.zeros((3, 5), dtype=np.float32))
    with pytest.raises(SystemExit):
        main(["check", "--root", str(root)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "video_test_1" in err and "flow width 5" in err and "training videos have 3" in err


def test_float64_values_beyond_float32_range_are_an_error(tmp_path, capsys):
    root = write_dataset(tmp_path / "d")
    path = root / "features" / "test" / "rgb" / "video_test_2.npy"
    x = np.load(path).astype(np.float64)
    x[1, 2] = 1e300  # finite in float64, inf once used as float32
    np.save(path, x)
    with pytest.raises(SystemExit):
        main(["check", "--root", str(root)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "video_test_2" in err and "float32's range" in err and "snippet 1, channel 2" in err


@pytest.mark.parametrize(
    "subsets, config, train_ids",
    [
        ({"train": "validation", "test": "test"}, "thumos_copl", ["video_validation_1", "video_validation_2"]),
        ({"train": "training", "test": "validation"}, "anet_copl", ["video_validation_1", "video_validation_2"]),
    ],
)
def test_check_without_split_files_or_subset_flags_uses_a_shipped_configs_subsets(
    tmp_path, capsys, subsets, config, train_ids
):
    root = write_dataset(tmp_path / "d", subsets=subsets, write_splits=False)
    assert main(["check", "--root", str(root), "--json"]) == 0
    out, err = capsys.readouterr()
    assert f"subsets of {config}: train " in err and f'"{subsets["train"]}"' in err, err
    summary = json.loads(out)
    assert summary["splits"]["train"]["videos"] == len(train_ids)
    assert summary["splits"]["test"]["videos"] == 2


def test_check_refuses_to_guess_between_shipped_configs(tmp_path, capsys):
    root = write_dataset(tmp_path / "d", subsets={"train": "train", "test": "test"}, write_splits=False)
    # "train" / "test" fit THUMOS'14's names; with one video in "validation", "train" / "validation" fit ActivityNet's
    gt = json.loads((root / "gt.json").read_text())
    gt["database"]["video_x"] = {"subset": "validation", "duration": 1.0, "annotations": []}
    (root / "gt.json").write_text(json.dumps(gt))
    with pytest.raises(SystemExit) as exit_info:
        main(["check", "--root", str(root)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and '"thumos_copl", "anet_copl"' in err and "--train-subset" in err, err
