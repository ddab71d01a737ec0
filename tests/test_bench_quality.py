"""benchmarks/bench_quality.py's bookkeeping: sample std, the standard-error rule of its checks, the strongest
label-free reference as the bar, compute-matched weak rows, data stamps, --keep refusing rows of another commit, and
--jobs running every method once with one thread each (weak rows after the method they are matched to)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

_spec = importlib.util.spec_from_file_location("bench_quality", REPO / "benchmarks" / "bench_quality.py")
bench = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("bench_quality", bench)  # dataclasses look their module up there
_spec.loader.exec_module(bench)


def _row(map_50, map_avg, nmi_first=None, nmi_last=None, commit="abc"):
    return {"nmi_first": nmi_first, "nmi_last": nmi_last, "map_50": map_50, "map_avg": map_avg, "commit": commit}


def _preset_rows():
    return {
        "baseline": {"0": _row(0.30, 0.25, 0.50, 0.50), "1": _row(0.20, 0.15, 0.40, 0.40)},
        "baseline-mean": {"0": _row(0.10, 0.10, 0.60, 0.60), "1": _row(0.10, 0.10, 0.50, 0.50)},  # the NMI bar
        "baseline-top": {"0": _row(0.32, 0.25, 0.45, 0.45), "1": _row(0.22, 0.15, 0.35, 0.35)},  # the mAP bar
        "cola-weak": {"0": _row(0.60, 0.50), "1": _row(0.40, 0.30)},
        "iocnet-weak": {"0": _row(0.50, 0.40), "1": _row(0.50, 0.40)},
        "feel": {"0": _row(0.45, 0.35, 0.40, 0.70), "1": _row(0.35, 0.25, 0.40, 0.60)},
        "copl": {"0": _row(0.30, 0.20, 0.45, 0.70), "1": _row(0.50, 0.20, 0.45, 0.47)},
    }


def _results():
    return {"thumos-real": _preset_rows(), "thumos-lite": _preset_rows()}


def test_summarize_uses_the_sample_std():
    assert bench.summarize([0.1, 0.2, 0.3]) == pytest.approx((0.2, 0.1))  # ddof = 1 (ddof = 0 gives 0.0816)
    assert bench.summarize([0.4, None]) == (0.4, None)  # one value: no spread
    assert bench.summarize([None]) is None


@pytest.mark.parametrize(
    ("margins", "passes"),
    [
        ([0.1, 0.1, 0.1], True),  # no spread: any positive mean
        ([0.02, 0.03, 0.04], True),  # mean 0.03, SE 0.0058
        ([0.3, -0.1, -0.1], False),  # mean 0.033 < SE 0.133: a win on one seed is not a win
        ([0.05, -0.01], False),  # mean 0.02 < SE 0.03
        ([0.0, 0.0, 0.0], False),  # a tie is no win
        ([0.01], True),  # one seed: the sign alone
        ([-0.01], False),
    ],
)
def test_a_check_passes_only_when_its_mean_margin_exceeds_the_standard_error(margins, passes):
    ok, mean, _ = bench.margin_verdict(margins)
    assert ok is passes
    assert mean == pytest.approx(sum(margins) / len(margins))


def test_report_checks_the_targets_against_the_strongest_label_free_reference():
    table, checks = bench.report(_results(), ["thumos-real", "thumos-lite"], list(bench.METHODS), commit="abc")
    feel_row = next(line for line in table.splitlines() if "| thumos-real | feel |" in line)
    assert "0.400 +- 0.071" in feel_row  # mAP@0.5 mean and sample std
    assert "| 0.80 |" in feel_row  # feel / cola-weak mAP@0.5 = 0.40 / 0.50
    # NMI: feel's gains are 0.30 and 0.20 (margins over +0.05: 0.25, 0.15; mean 0.20 > SE 0.05)
    assert "PASS thumos-real: feel NMI last 0.650 >= first 0.400 + 0.05 (margin +0.200, SE 0.050, 2 seeds)" in checks
    # the NMI bar is baseline-mean (0.55), not the shipped baseline (0.45); the mAP bar baseline-top (0.27)
    assert "PASS thumos-real: feel NMI last 0.650 > baseline-mean 0.550 (margin +0.100, SE 0.000, 2 seeds)" in checks
    feel_map = "feel mAP@0.5 0.400 > baseline-top 0.270 + 0.05 (margin +0.080, SE 0.000, 2 seeds)"
    assert f"PASS thumos-real: {feel_map}" in checks
    # copl's mAP margins over the bar + 0.05: -0.07 and +0.23: mean 0.08 < SE 0.15
    assert any(c.startswith("FAIL thumos-real: copl mAP@0.5 0.400 > baseline-top 0.270 + 0.05") for c in checks)
    # copl's NMI: 0.70 vs 0.60 and 0.47 vs 0.50: mean 0.035 < SE 0.065
    assert any(c.startswith("FAIL thumos-real: copl NMI last 0.585 > baseline-mean 0.550") for c in checks)
    # ratios to the weak models at 0.8: feel 0.45 - 0.48, 0.35 - 0.32 -> mean -0.0 fails; copl passes by 0
    assert any(c.startswith("FAIL thumos-real: feel / cola-weak mAP@0.5 0.400 / 0.500 = 0.80 >= 0.8") for c in checks)
    assert any(c.startswith("PASS thumos-real: cola-weak mAP@0.5 0.500 > baseline-top 0.270") for c in checks)
    # a regression preset's checks are printed, marked, and never fail the run
    assert any(c.startswith("INFO FAIL thumos-lite: copl mAP@0.5") for c in checks)
    assert not any(c.startswith(("FAIL thumos-lite", "PASS thumos-lite")) for c in checks)
    assert checks[0].startswith("FAIL") and checks[-1].startswith("INFO")


def test_a_missing_method_fails_its_checks():
    results = _results()
    del results["thumos-real"]["iocnet-weak"]
    for name in bench.LABEL_FREE:
        del results["thumos-real"][name]
    _, checks = bench.report(results, ["thumos-real"], list(bench.METHODS), commit="abc")
    assert "FAIL thumos-real: copl / iocnet-weak mAP@0.5 >= 0.8 (missing from this run: iocnet-weak)" in checks
    assert any(c.startswith("FAIL thumos-real: feel mAP@0.5 above the label-free bar (missing") for c in checks)
    assert not any(c.startswith("PASS") and ("baseline" in c or "label-free" in c) for c in checks)


def test_rows_of_another_commit_are_refused_or_marked(tmp_path):
    out = tmp_path / "quality.json"
    out.write_text(json.dumps(_results()))
    assert bench.load_kept(out, "abc", other_commits=False) == _results()
    with pytest.raises(SystemExit, match="another commit"):
        bench.load_kept(out, "def", other_commits=False)
    kept = bench.load_kept(out, "def", other_commits=True)
    table, _ = bench.report(kept, ["thumos-real"], list(bench.METHODS), commit="def")
    assert "(kept from abc)" in next(line for line in table.splitlines() if "| copl |" in line)


def _summary(path, iterations):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"iterations": iterations}))


def test_weak_rows_train_as_many_video_passes_as_their_method(tmp_path):
    args = argparse.Namespace(runs_dir=tmp_path)
    # FEEL: an epoch covers P_i: 100 epochs over 10 % + 100 over 30 % + 100 over 70 % of 200 videos = 110 passes
    feel = [{"epochs": 100, "num_selected": n, "num_unselected": 200 - n} for n in (20, 60, 140)]
    _summary(tmp_path / "thumos-real" / "s100" / "feel" / "summary.json", feel)
    assert bench.matched_epochs(args, "thumos-real", 100, "cola-weak") == (110, "feel run")
    # COPL: its epochs cover P and U: 3 x 60 whatever |P| is
    copl = [{"epochs": 60, "num_selected": n, "num_unselected": 200 - n} for n in (150, 180, 190)]
    _summary(tmp_path / "thumos-real" / "s100" / "copl" / "summary.json", copl)
    assert bench.matched_epochs(args, "thumos-real", 100, "iocnet-weak") == (180, "copl run")
    # no run of the method: its planned maximum from the shipped configs (lite FEEL: 10 x 100)
    assert bench.matched_epochs(args, "thumos-real", 101, "cola-weak") == (1000, "feel planned")


def test_data_is_rewritten_when_another_generator_wrote_it_and_refused_when_changed(tmp_path, monkeypatch):
    written = []

    def fake_synth(command, log, dry_run):
        out = Path(command[command.index("--out") + 1])
        out.mkdir(parents=True, exist_ok=True)
        (out / "gt.json").write_text(json.dumps({"n": len(written)}))
        written.append(out)

    monkeypatch.setattr(bench, "run", fake_synth)
    args = argparse.Namespace(data_dir=tmp_path, runs_dir=tmp_path, dry_run=False)
    data, stamp = bench.dataset_dir(args, "thumos-real", 100)
    assert len(written) == 1 and stamp["data_hash"] == bench.data_hash(data)
    assert bench.dataset_dir(args, "thumos-real", 100)[1] == stamp and len(written) == 1  # reused
    old = json.loads((tmp_path / "thumos-real-s100.json").read_text())
    (tmp_path / "thumos-real-s100.json").write_text(json.dumps({**old, "generator_version": -1}))
    bench.dataset_dir(args, "thumos-real", 100)
    assert len(written) == 2  # another generator's data is written anew
    (data / "gt.json").write_text("{}")
    with pytest.raises(SystemExit, match="differ from what"):
        bench.dataset_dir(args, "thumos-real", 100)


def test_jobs_run_every_method_once_with_one_thread_and_give_the_same_rows(tmp_path, monkeypatch):
    runs = []
    events = []

    def fake_run(args, preset, seed, data, method, run_dir):
        # what the method's process would get: bench.run's environment for its subprocess
        runs.append((preset, seed, method, bench.THREADS_ENV.get("OMP_NUM_THREADS")))
        events.append(("start", preset, seed, method))
        value = 0.1 * seed + 0.01 * bench.METHODS.index(method)
        events.append(("end", preset, seed, method))
        return {"nmi_first": value, "nmi_last": value, "map_50": value, "map_avg": value}

    monkeypatch.setattr(bench, "run_fit", fake_run)
    monkeypatch.setattr(bench, "run_baseline", fake_run)
    monkeypatch.setattr(bench, "dataset_dir", lambda args, preset, seed: (tmp_path, {"generator_version": 2}))
    monkeypatch.setattr(bench, "current_commit", lambda: "abc")
    monkeypatch.setattr(bench, "THREADS_ENV", {})
    rows = {}
    for jobs in (1, 3):
        runs.clear()
        events.clear()
        out = tmp_path / f"quality-{jobs}.json"
        argv = ["bench_quality.py", "--presets", "thumos-real", "anet-real", "--seeds", "0", "1"]
        monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out), "--jobs", str(jobs)])
        bench.main()
        expected = {(p, s, m) for p in ("thumos-real", "anet-real") for s in (0, 1) for m in bench.METHODS}
        assert sorted(r[:3] for r in runs) == sorted(expected)  # each once
        assert {r[3] for r in runs} == ({None} if jobs == 1 else {"1"})
        for weak, method in bench.METHOD_OF.items():  # a weak row starts after its method ended
            for p, s in ((p, s) for p in ("thumos-real", "anet-real") for s in (0, 1)):
                assert events.index(("start", p, s, weak)) > events.index(("end", p, s, method))
        saved = json.loads(out.read_text())
        rows[jobs] = {
            (p, m, s): {k: v for k, v in row.items() if k != "seconds"}
            for p, methods in saved.items()
            for m, seeds in methods.items()
            for s, row in seeds.items()
        }
        assert all(row["generator_version"] == 2 for row in rows[jobs].values())
    assert rows[1] == rows[3] and len(rows[1]) == 2 * 2 * len(bench.METHODS)


def test_the_reported_seeds_are_the_default_and_not_development_or_spent_ones():
    assert bench.REPORTED_SEEDS == (10, 11, 12)
    assert not set(bench.REPORTED_SEEDS) & (set(bench.DEVELOPMENT_SEEDS) | {0, 1, 2})
    assert set(bench.TARGET_PRESETS) <= set(bench.DATASETS)
