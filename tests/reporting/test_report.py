"""`utal report` on a SLURM-array-shaped set of run directories (issue 12, item 6)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml

from utal_lightning.cli import main


def _run(folder, seed, method, nmis, maps):
    folder.mkdir(parents=True)
    iterations = [
        {
            "iteration": i + 1,
            "nmi": n,
            "ari": n / 2,
            "selected_fraction": 0.5 + 0.1 * i,
            "test": {"0.5": m, "average_mAP": m / 2},
        }
        for i, (n, m) in enumerate(zip(nmis, maps, strict=True))
    ]
    (folder / "summary.json").write_text(json.dumps({"iterations": iterations, "final": {}}))
    config = {
        "seed_everything": seed,
        "trainer": {"default_root_dir": str(folder), "logger": {"init_args": {"name": folder.name}}},
        "model": {"class_path": method},
        "data": {"init_args": {"root": "data/THUMOS14", "seed": seed}},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture()
def sweep(tmp_path):
    """runs/sweep/<config>_seed<seed>/ as slurm/*.sbatch's arrays write them: 3 COPL seeds, 2 FEEL seeds (one
    of them stopped after iteration 1)."""
    root = tmp_path / "runs" / "sweep"
    copl = {0: ([0.40, 0.50], [0.10, 0.20]), 1: ([0.42, 0.56], [0.12, 0.18]), 2: ([0.38, 0.53], [0.11, 0.25])}
    for seed, (nmis, maps) in copl.items():
        _run(root / f"thumos_copl_seed{seed}", seed, "IOCNetModule", nmis, maps)
    _run(root / "thumos_feel_seed0", 0, "CoLAModule", [0.30, 0.35], [0.05, 0.07])
    _run(root / "thumos_feel_seed1", 1, "CoLAModule", [0.32], [0.06])
    return root, copl


def test_report_groups_seeds_and_gives_mean_and_std_per_iteration(sweep, tmp_path, capsys):
    root, copl = sweep
    out = tmp_path / "report"
    assert main(["report", str(root / "*_seed*"), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "report.csv").open()))
    groups = {r["group"] for r in rows}
    assert groups == {str(root / "thumos_copl"), str(root / "thumos_feel")}
    for iteration in (1, 2):
        (row,) = [r for r in rows if r["group"] == str(root / "thumos_copl") and r["iteration"] == str(iteration)]
        nmis = [copl[s][0][iteration - 1] for s in copl]
        maps = [copl[s][1][iteration - 1] for s in copl]
        assert int(row["runs"]) == 3
        assert float(row["nmi_mean"]) == pytest.approx(np.mean(nmis), abs=1e-6)
        assert float(row["nmi_std"]) == pytest.approx(np.std(nmis, ddof=1), abs=1e-6)
        assert float(row["mAP@0.5_mean"]) == pytest.approx(np.mean(maps), abs=1e-6)
        assert float(row["mAP_avg_std"]) == pytest.approx(np.std(np.array(maps) / 2, ddof=1), abs=1e-6)
    # the FEEL seed that stopped early counts only where it has the iteration
    feel = {r["iteration"]: r for r in rows if r["group"] == str(root / "thumos_feel")}
    assert (feel["1"]["runs"], feel["2"]["runs"]) == ("2", "1")
    assert float(feel["2"]["nmi_std"]) == 0.0
    markdown = (out / "report.md").read_text()
    assert "| thumos" not in markdown and f"| {root / 'thumos_copl'} | 2 | 3 | 0.530 +- 0.030 |" in markdown
    assert (out / "report.png").stat().st_size > 0
    assert "5 runs in 2 groups" in capsys.readouterr().out


def test_report_finds_runs_under_a_folder_and_splits_different_configs(sweep, tmp_path):
    root, _ = sweep
    config = yaml.safe_load((root / "thumos_copl_seed2" / "config.yaml").read_text())
    config["model"]["lr"] = 0.5  # another experiment, whatever its directory says
    (root / "thumos_copl_seed2" / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "report"
    assert main(["report", str(root.parent), "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "report.csv").open()))
    assert sorted({(r["group"], r["runs"]) for r in rows if r["iteration"] == "1"}) == sorted(
        [(str(root / "thumos_copl"), "2"), (str(root / "thumos_copl_seed2"), "1"), (str(root / "thumos_feel"), "2")]
    )


def test_report_of_nothing_is_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path / "nope" / "*_seed*"), "--out", str(tmp_path / "r")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "nope" in err
