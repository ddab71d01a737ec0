"""docs/architecture.md's worked example: a clustering algorithm added as one file and a config fragment,
outside the package, drives the loop (the two code blocks are read from the page, so the page stays true)."""

from __future__ import annotations

import importlib
import re

import pytest

from tests.helpers.fit import fit
from tests.helpers.paths import REPO

pytestmark = pytest.mark.usefixtures("one_thread")


def _example_blocks() -> tuple[str, str]:
    page = (REPO / "docs" / "architecture.md").read_text()
    section = page[page.index("## Adding a clustering algorithm") :]
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
