"""docs/architecture.md's worked examples: a clustering algorithm and a data layout, each added as one file and a
config fragment outside the package (the code blocks are read from the page, so the page stays true)."""

from __future__ import annotations

import importlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.fit import fit
from tests.helpers.paths import REPO

pytestmark = pytest.mark.usefixtures("one_thread")


def _example_blocks(heading: str = "## Adding a clustering algorithm") -> tuple[str, str]:
    page = (REPO / "docs" / "architecture.md").read_text()
    section = page[page.index(heading) :]
    section = section[: section.index("\n## ", 1)]
    (python,) = re.findall(r"```python\n(.*?)```", section, re.S)
    (yaml,) = re.findall(r"```yaml\n(.*?)```", section, re.S)
    return python, yaml


def test_a_clusterer_in_one_new_file_and_a_config_drives_the_loop(tiny, tmp_path, monkeypatch):
    python, yaml = _example_blocks()
    module_name = python.splitlines()[0].removeprefix("# ").removesuffix(".py")
    (tmp_path / f"{module_name}.py").write_text(python)
    (tmp_path / "ward.yaml").write_text(yaml)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(module_name)
    calls = []
    original = module.WardClusterer.cluster

    def counted(self, features, num_clusters, seed):
        clustering = original(self, features, num_clusters, seed)
        calls.append((len(features), int(clustering.labels.max()) + 1))
        return clustering

    monkeypatch.setattr(module.WardClusterer, "cluster", counted)
    summary = fit(
        "synthetic_copl.yaml",
        tiny,
        tmp_path / "run",
        "--config",
        str(tmp_path / "ward.yaml"),
        "--loop.max_iterations=2",
        "--loop.epochs_per_iteration=1",
        "--loop.test_iterations=none",
    )
    first = summary["iterations"][0]
    videos = first["num_selected"] + first["num_unselected"]
    # the loop labelled the N training videos with it at both iterations (fit start, end of iteration 1)
    assert [h["iteration"] for h in summary["iterations"]] == [1, 2]
    assert [n for n, _ in calls] == [videos, videos] and all(k > 1 for _, k in calls)
    assert "my_clusterers.WardClusterer" in (tmp_path / "run" / "config.yaml").read_text()


def _flat_copy(root: Path, out: Path) -> Path:
    """The dataset at ``root`` (CoLA layout) with each video's RGB and flow files joined into features/<vid>.npy."""
    out.mkdir()
    for path in root.iterdir():
        if path.is_file():
            shutil.copy(path, out / path.name)
    (out / "features").mkdir()
    for folder in (root / "features").iterdir():  # features/<split>/{rgb,flow}/<vid>.npy
        for rgb in (folder / "rgb").glob("*.npy"):
            flow = np.load(folder / "flow" / rgb.name)
            np.save(out / "features" / rgb.name, np.concatenate([np.load(rgb), flow], axis=1))
    return out


def test_a_layout_in_one_new_file_and_a_config_reads_the_same_dataset(tiny, tmp_path, monkeypatch):
    python, yaml = _example_blocks("## Adding a data layout")
    module_name = python.splitlines()[0].removeprefix("# ").removesuffix(".py")
    (tmp_path / f"{module_name}.py").write_text(python)
    (tmp_path / "flat.yaml").write_text(yaml)
    monkeypatch.syspath_prepend(str(tmp_path))
    flat = _flat_copy(tiny, tmp_path / "flat")
    assert not (flat / "features" / "train").exists()  # nothing of the CoLA layout's feature tree is left
    short = ("--loop.max_iterations=2", "--loop.epochs_per_iteration=1", "--loop.test_iterations=last")
    original = fit("synthetic_copl.yaml", tiny, tmp_path / "cola", *short)
    copied = fit("synthetic_copl.yaml", flat, tmp_path / "run", "--config", str(tmp_path / "flat.yaml"), *short)
    assert "my_layouts.FlatLayout" in (tmp_path / "run" / "config.yaml").read_text()
    # the same videos, features and seconds: the very same run, to the last test number
    assert _without_times(copied) == _without_times(original)
    assert original["iterations"][-1]["test"]["average_mAP"] > 0  # a test pass that found actions, both times


def _without_times(summary: dict) -> list[dict]:
    return [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in summary["iterations"]]
