"""benchmarks/bench_quality.py's bookkeeping: sample std, ratios, checks that fail on a missing method, --keep
refusing rows of another commit, and --jobs running every method once with one thread each."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.helpers.paths import REPO

_spec = importlib.util.spec_from_file_location("bench_quality", REPO / "benchmarks" / "bench_quality.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_quality", bench)  # dataclasses look their module up there
_spec.loader.exec_module(bench)


def _row(map_50, map_avg, nmi_first=None, nmi_last=None, commit="abc"):
    return {"nmi_first": nmi_first, "nmi_last": nmi_last, "map_50": map_50, "map_avg": map_avg, "commit": commit}


def _results():
    return {
        "thumos-lite": {
            "baseline": {"0": _row(0.30, 0.25, 0.5, 0.5), "1": _row(0.20, 0.15, 0.4, 0.4)},
            "cola-weak": {"0": _row(0.60, 0.50), "1": _row(0.40, 0.30)},
            "iocnet-weak": {"0": _row(0.50, 0.40), "1": _row(0.50, 0.40)},
            "feel": {"0": _row(0.45, 0.35, 0.40, 0.50), "1": _row(0.35, 0.25, 0.40, 0.48)},
            "copl": {"0": _row(0.30, 0.20, 0.45, 0.47), "1": _row(0.30, 0.20, 0.45, 0.47)},
        }
    }


def test_summarize_uses_the_sample_std():
    assert bench.summarize([0.1, 0.2, 0.3]) == pytest.approx((0.2, 0.1))  # ddof = 1 (ddof = 0 gives 0.0816)
    assert bench.summarize([0.4, None]) == (0.4, None)  # one value: no spread
    assert bench.summarize([None]) is None


def test_report_checks_targets_and_prints_ratios():
    table, checks = bench.report(_results(), ["thumos-lite"], list(bench.METHODS), commit="abc")
    feel_row = next(line for line in table.splitlines() if "| feel |" in line)
    assert "0.400 +- 0.071" in feel_row  # mAP@0.5 mean and sample std
    assert "| 0.80 |" in feel_row  # feel / cola-weak mAP@0.5 = 0.40 / 0.50
    assert "PASS thumos-lite: feel mAP@0.5 0.400 > baseline 0.250" in checks
    assert "PASS thumos-lite: feel / cola-weak mAP@0.5 0.400 / 0.500 = 0.80 >= 0.75" in checks
    assert "PASS thumos-lite: feel NMI last 0.490 >= first 0.400 + 0.05" in checks
    assert "FAIL thumos-lite: copl / iocnet-weak mAP@0.5 0.300 / 0.500 = 0.60 >= 0.75" in checks
    assert "FAIL thumos-lite: copl NMI last 0.470 >= first 0.450 + 0.05" in checks
    assert "FAIL thumos-lite: copl NMI last 0.470 > baseline 0.450" not in checks  # it passes
    assert checks[0].startswith("FAIL") and checks[-1].startswith("PASS")


def test_a_missing_method_fails_its_checks():
    results = _results()
    del results["thumos-lite"]["iocnet-weak"], results["thumos-lite"]["baseline"]
    _, checks = bench.report(results, ["thumos-lite"], list(bench.METHODS), commit="abc")
    assert "FAIL thumos-lite: copl / iocnet-weak mAP@0.5 >= 0.75 (missing from this run: iocnet-weak)" in checks
    assert "FAIL thumos-lite: feel mAP@0.5 > baseline (missing from this run: baseline)" in checks
    assert not any(c.startswith("PASS") and "baseline" in c for c in checks)


def test_rows_of_another_commit_are_refused_or_marked(tmp_path):
    out = tmp_path / "quality.json"
    out.write_text(json.dumps(_results()))
    assert bench.load_kept(out, "abc", other_commits=False) == _results()
    with pytest.raises(SystemExit, match="another commit"):
        bench.load_kept(out, "def", other_commits=False)
    kept = bench.load_kept(out, "def", other_commits=True)
    table, _ = bench.report(kept, ["thumos-lite"], list(bench.METHODS), commit="def")
    assert "(kept from abc)" in next(line for line in table.splitlines() if "| copl |" in line)


def test_jobs_run_every_method_once_with_one_thread_and_give_the_same_rows(tmp_path, monkeypatch):
    runs = []

    def fake_run(args, preset, seed, data, method, run_dir):
        # what the method's process would get: bench.run's environment for its subprocess
        runs.append((preset, seed, method, bench.THREADS_ENV.get("OMP_NUM_THREADS")))
        value = 0.1 * seed + 0.01 * bench.METHODS.index(method)
        return {"nmi_first": value, "nmi_last": value, "map_50": value, "map_avg": value}

    monkeypatch.setattr(bench, "run_fit", fake_run)
    monkeypatch.setattr(bench, "run_baseline", fake_run)
    monkeypatch.setattr(bench, "dataset_dir", lambda args, preset, seed: tmp_path)
    monkeypatch.setattr(bench, "current_commit", lambda: "abc")
    monkeypatch.setattr(bench, "THREADS_ENV", {})
    rows = {}
    for jobs in (1, 3):
        runs.clear()
        out = tmp_path / f"quality-{jobs}.json"
        argv = ["bench_quality.py", "--presets", "thumos-lite", "anet-lite", "--seeds", "0", "1"]
        monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out), "--jobs", str(jobs)])
        bench.main()
        expected = {(p, s, m) for p in ("thumos-lite", "anet-lite") for s in (0, 1) for m in bench.METHODS}
        assert sorted(r[:3] for r in runs) == sorted(expected)  # each once
        assert {r[3] for r in runs} == ({None} if jobs == 1 else {"1"})
        saved = json.loads(out.read_text())
        rows[jobs] = {
            (p, m, s): {k: v for k, v in row.items() if k != "seconds"}
            for p, methods in saved.items()
            for m, seeds in methods.items()
            for s, row in seeds.items()
        }
    assert rows[1] == rows[3] and len(rows[1]) == 2 * 2 * len(bench.METHODS)
