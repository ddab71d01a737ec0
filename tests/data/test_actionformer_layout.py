"""The ActionFormer layout (docs/method.md sec. 1.1): found automatically, its own seconds-per-feature rule,
and the same videos in both layouts detected at the same seconds."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.data.layout import DatasetLayout, read_dataset, resolve_layout
from utal_lightning.data.layouts.actionformer import ActionFormerLayout
from utal_lightning.data.layouts.cola import CoLALayout
from utal_lightning.data.summary import check_dataset
from utal_lightning.data.synthetic import write_actionformer_copy, write_synthetic_dataset
from utal_lightning.errors import DatasetError
from utal_lightning.eval.detect import detect_with_mapping


@pytest.fixture(scope="module")
def both_layouts(tmp_path_factory):
    """The `tiny` preset in the CoLA layout and the same videos in the ActionFormer layout (29.97 fps)."""
    base = tmp_path_factory.mktemp("layouts")
    cola = write_synthetic_dataset("tiny", base / "cola", seed=0)
    actionformer = write_actionformer_copy(cola, base / "actionformer", fps=29.97)
    return cola, actionformer


def _shipped_data_args(config: str) -> dict:
    """The data settings of a shipped config, without its root."""
    args = dict(yaml.safe_load((CONFIGS / config).read_text())["data"]["init_args"])
    args.pop("root")
    return args


def test_auto_finds_each_layout_and_check_reports_it(both_layouts):
    cola, actionformer = both_layouts
    assert isinstance(resolve_layout(DatasetLayout(cola)).files, CoLALayout)
    found = resolve_layout(DatasetLayout(actionformer)).files
    assert isinstance(found, ActionFormerLayout)
    assert (found.name, found.annotation_file, found.feature_folder) == (
        "actionformer",
        "annotations/thumos14.json",
        "i3d_features",
    )
    summary = check_dataset(DatasetLayout(actionformer, train_subset=["validation", "train"], test_subset="test"))
    assert summary["layout"] == "actionformer"
    assert summary["splits"]["train"]["feature_dim"] == {"rgb": 16, "flow": 16}  # (L, 32) files: RGB first half
    assert summary["splits"]["train"]["seconds_per_feature"]["min"] == pytest.approx(4 / 29.97)
    assert check_dataset(DatasetLayout(cola))["layout"] == "cola"


def test_actionformer_clock_uses_each_videos_fps(tmp_path, both_layouts):
    _, actionformer = both_layouts
    root = tmp_path / "af"
    (root / "annotations").mkdir(parents=True)
    (root / "feats").mkdir()
    gt = json.loads((actionformer / "annotations" / "thumos14.json").read_text())
    ids = list(gt["database"])
    first, second = ids[0], ids[-1]
    gt["database"][first]["fps"] = 25.0
    del gt["database"][second]["fps"]  # no fps: the configured default
    (root / "annotations" / "x.json").write_text(json.dumps(gt))
    for vid in ids:
        (root / "feats" / f"v_{vid}.npy").write_bytes((actionformer / "i3d_features" / f"{vid}.npy").read_bytes())
    layout = DatasetLayout(
        root,
        train_subset="validation",
        test_subset="test",
        files=ActionFormerLayout(feature_prefix="v_", feature_stride=8, feature_window=32, default_fps=20.0),
    )
    index = read_dataset(layout)
    clocks = dict(zip(ids, index.feature_clocks(ids), strict=True))
    assert (clocks[first].step, clocks[first].offset) == pytest.approx((8 / 25.0, 16 / 25.0))
    assert (clocks[second].step, clocks[second].offset) == pytest.approx((8 / 20.0, 16 / 20.0))
    # feature i at (i*stride + window/2) / fps
    assert clocks[first].seconds(10) == pytest.approx((10 * 8 + 16) / 25.0)


def test_ambiguous_or_missing_parts_of_an_actionformer_root_are_one_line_errors(tmp_path, both_layouts):
    _, actionformer = both_layouts
    root = tmp_path / "af"
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "a.json").write_text("{}")
    (root / "annotations" / "b.json").write_text("{}")
    with pytest.raises(DatasetError, match=re.escape("expected one annotation json, found a.json, b.json")):
        resolve_layout(DatasetLayout(root))
    (root / "annotations" / "b.json").unlink()
    with pytest.raises(DatasetError, match=re.escape("expected one folder of <video>.npy feature files, found none")):
        resolve_layout(DatasetLayout(root))
    gt = json.loads((actionformer / "annotations" / "thumos14.json").read_text())
    vid = next(iter(gt["database"]))
    gt["database"][vid]["annotations"][0]["label_id"] = 99  # the same label with two ids
    (root / "annotations" / "a.json").write_text(json.dumps(gt))
    (root / "feats").mkdir()
    np.save(root / "feats" / "x.npy", np.zeros((3, 4), dtype=np.float32))
    with pytest.raises(DatasetError, match=f'gives label .* but video "{vid}" gives it 99'):
        read_dataset(DatasetLayout(root, train_subset="validation", test_subset="test"))


def _detections(root: Path) -> dict[str, np.ndarray]:
    """Runs of one training-free, pointwise actionness map per test video, through the DataModule's test
    batches (their seconds per step and offset) and the model's detection path."""
    # The shipped data settings; each video's background is estimated from its own snippets, which the two
    # layouts cut differently, so it is left out here: this compares where runs land in seconds.
    dm = UTALDataModule(root, **{**_shipped_data_args("thumos_copl.yaml"), "subtract_video_background": False})
    dm.setup("fit")
    background = dm.train_store.features.mean(0)
    found = {}
    for vid, batch in zip(dm.index.test_ids, dm.test_videos(), strict=True):
        actionness = (batch["features"][0] - background).norm(dim=1)
        rows = detect_with_mapping(
            actionness[:, None],
            torch.ones(1),
            torch.ones(1, 1),
            batch["seconds_per_step"],
            [0.5],
            0.2,
            0.99,
            seconds_offset=batch["seconds_offset"],
        )
        found[vid] = rows[torch.argsort(rows[:, 0]), :2].numpy()
    return found


def test_same_videos_in_both_layouts_give_detections_at_the_same_seconds(both_layouts):
    cola, actionformer = both_layouts
    in_cola, in_actionformer = _detections(cola), _detections(actionformer)
    assert in_cola.keys() == in_actionformer.keys()
    # up to the grids: one CoLA snippet (0.64 s; its runs start at a snippet's start, ActionFormer's at a
    # window's centre) plus one ActionFormer step (4 / 29.97 s)
    tolerance = 0.64 + 4 / 29.97
    compared = 0
    for vid in in_cola:
        for mine, other in ((in_cola[vid], in_actionformer[vid]), (in_actionformer[vid], in_cola[vid])):
            for start, end in mine[mine[:, 1] - mine[:, 0] >= 2.0]:  # clear runs; short blips may split or vanish
                gap = np.abs(other - [start, end]).max(axis=1)
                assert gap.min() <= tolerance, (vid, (start, end), other)
                compared += 1
    assert compared >= 20


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["cola", "actionformer"])
@pytest.mark.parametrize("config", ["thumos_feel.yaml", "thumos_copl.yaml"])
def test_shipped_thumos_configs_fit_on_either_layout_with_only_the_root(tmp_path, both_layouts, config, layout):
    """`utal fit --config configs/thumos_*.yaml --data.init_args.root <root>`: only the run's length and T are cut
    down here (to keep the test short); no data flag beyond the root."""
    root = dict(zip(("cola", "actionformer"), both_layouts, strict=True))[layout]
    run = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "utal_lightning.cli",
        "fit",
        "--config",
        str(CONFIGS / config),
        "--data.init_args.root",
        str(root),
        "--data.init_args.num_segments=64",
        "--trainer.default_root_dir",
        str(run),
        "--loop.max_iterations=1",
        "--loop.epochs_per_iteration=1",
        "--trainer.enable_progress_bar=false",
        "--preemption.auto_resume=false",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    (record,) = summary["iterations"]
    assert record["num_selected"] + record["num_unselected"] == 24 and 0.0 <= record["test"]["0.5"] <= 1.0


def test_check_on_an_actionformer_root_needs_no_flag_and_names_its_annotation_file(tmp_path, both_layouts, capsys):
    _, actionformer = both_layouts
    assert main(["check", "--root", str(actionformer), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "subsets of thumos_copl" in err
    cola_summary = check_dataset(DatasetLayout(both_layouts[0]))
    assert json.loads(out)["splits"]["test"]["videos"] == cola_summary["splits"]["test"]["videos"]
    # subsets no shipped config knows: the error names the layout's annotation file, not a split file
    root = tmp_path / "renamed"
    shutil.copytree(actionformer, root)
    path = root / "annotations" / "thumos14.json"
    gt = json.loads(path.read_text())
    for entry in gt["database"].values():
        entry["subset"] = "part_" + entry["subset"]
    path.write_text(json.dumps(gt))
    with pytest.raises(SystemExit):
        main(["check", "--root", str(root)])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "annotations/thumos14.json" in err and "split_" not in err, err
