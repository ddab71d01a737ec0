"""The synthetic benchmark generator (docs/method.md sec. 6): layout, determinism, and the pooling gap.

Files are read back with numpy/json directly, never through the project's loaders.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from utal_lightning.cli import main
from utal_lightning.data.layout import SNIPPET_SECONDS
from utal_lightning.data.synthetic import PRESETS, SyntheticConfig, write_synthetic_dataset
from utal_lightning.errors import DatasetError

SPLITS = ("train", "test")
MODS = ("rgb", "flow")


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def _read(root: Path) -> dict:
    gt = json.loads((root / "gt.json").read_text())
    return {
        "db": gt["database"],
        "classes": (root / "classes.txt").read_text().splitlines(),
        "train": (root / "split_train.txt").read_text().splitlines(),
        "test": (root / "split_test.txt").read_text().splitlines(),
    }


def _feature_path(root: Path, split: str, mod: str, vid: str, anet: bool) -> Path:
    return root / "features" / split / mod / (f"v_{vid}.npy" if anet else f"{vid}.npy")


def _snippets(seconds: float) -> int:
    n = seconds / SNIPPET_SECONDS
    assert abs(n - round(n)) < 1e-6, seconds
    return round(n)


def _all_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _check_layout(root: Path, cfg: SyntheticConfig) -> dict:
    """Every structural promise of docs/method.md sec. 1.1; returns the parsed dataset."""
    anet = cfg.id_style == "anet"
    assert (root / "gt.json").is_file() and (root / "classes.txt").is_file()
    d = _read(root)
    db, classes = d["db"], d["classes"]
    assert len(classes) == cfg.num_classes == len(set(classes))
    assert all(c and c.strip() == c for c in classes)
    assert len(d["train"]) == cfg.num_train and len(d["test"]) == cfg.num_test
    assert len(set(d["train"]) | set(d["test"])) == cfg.num_train + cfg.num_test
    assert set(db) == set(d["train"]) | set(d["test"])
    for split, subset in (("train", cfg.train_subset), ("test", cfg.test_subset)):
        for mod in MODS:
            on_disk = sorted(p.name for p in (root / "features" / split / mod).iterdir())
            expected = sorted(_feature_path(root, split, mod, v, anet).name for v in d[split])
            assert on_disk == expected
        for vid in d[split]:
            entry = db[vid]
            assert entry["subset"] == subset
            if anet:
                assert re.fullmatch(r"[A-Za-z0-9_-]{11}", vid), vid
                assert not vid.startswith("v_")
            else:
                assert re.fullmatch(rf"video_{subset}_\d{{7}}", vid), vid
            length = _snippets(entry["duration"])
            assert cfg.min_length <= length <= cfg.max_length
            rgb = np.load(_feature_path(root, split, "rgb", vid, anet))
            flow = np.load(_feature_path(root, split, "flow", vid, anet))
            for x in (rgb, flow):
                assert x.dtype == np.float32
                assert x.shape == (length, cfg.feature_dim)
                assert np.isfinite(x).all() and (x >= 0).all()
            anns = entry["annotations"]
            assert 1 <= len(anns) <= cfg.segments_per_video[1]  # every video, train and test
            spans = []
            for a in anns:
                s, e = a["segment"]
                assert isinstance(s, float) and isinstance(e, float)
                a_, b_ = _snippets(s), _snippets(e)
                assert 0 <= a_ < b_ <= length
                assert a["label"] in classes
                spans.append((a_, b_))
            spans.sort()
            gaps_ok = all(p[1] + cfg.min_gap <= n[0] for p, n in itertools.pairwise(spans))
            assert gaps_ok, f"overlapping segments in {vid}: {spans}"
    return d


def _video_class(entry: dict, classes: list[str]) -> int:
    """The class with the longest total annotated duration (ties: first in classes.txt)."""
    dur: dict[str, float] = {}
    for a in entry["annotations"]:
        s, e = a["segment"]
        dur[a["label"]] = dur.get(a["label"], 0.0) + float(e) - float(s)
    best = max(dur.values())
    return min(classes.index(c) for c, v in dur.items() if v == best)


def _pooling_nmi(root: Path) -> tuple[float, float]:
    """NMI of k-means on (a) mean pooling, (b) ground-truth action pooling, TRAIN videos."""
    d = _read(root)
    db, classes = d["db"], d["classes"]
    mean_pool, action_pool, y = [], [], []
    for vid in d["train"]:
        x = np.concatenate([np.load(root / "features" / "train" / m / f"{vid}.npy") for m in MODS], axis=1)  # RGB first
        mask = np.zeros(len(x), dtype=bool)
        for a in db[vid]["annotations"]:
            mask[_snippets(a["segment"][0]) : _snippets(a["segment"][1])] = True
        mean_pool.append(x.mean(axis=0))
        action_pool.append(x[mask].mean(axis=0))
        y.append(_video_class(db[vid], classes))
    scores = []
    for feats in (mean_pool, action_pool):
        f = np.asarray(feats, dtype=np.float64)
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        pred = KMeans(n_clusters=len(classes), n_init=10, random_state=0).fit_predict(f)
        scores.append(normalized_mutual_info_score(y, pred, average_method="arithmetic"))
    return scores[0], scores[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_synthetic_dataset("tiny", tmp_path_factory.mktemp("tiny") / "ds", seed=3)


# ------------------------------------------------------------------------------------------------
# layout
# ------------------------------------------------------------------------------------------------


def test_tiny_layout(tiny):
    d = _check_layout(tiny, PRESETS["tiny"])
    assert d["classes"] == ["class_00", "class_01", "class_02"]
    assert d["train"][0] == "video_validation_0000001" and d["test"][0] == "video_test_0000001"
    # every listed class occurs in each split (stratified class assignment)
    for split in SPLITS:
        labels = {a["label"] for v in d[split] for a in d["db"][v]["annotations"]}
        assert labels == set(d["classes"])
    # the output directory holds exactly the layout, nothing else
    top = sorted(p.name for p in tiny.iterdir())
    assert top == ["classes.txt", "features", "gt.json", "split_test.txt", "split_train.txt"]
    assert not [p for p in tiny.parent.iterdir() if p.name != tiny.name], "temporary left behind"


def test_durations_are_snippet_multiples(tiny):
    db = _read(tiny)["db"]
    vid = next(iter(db))
    rgb = np.load(tiny / "features" / "train" / "rgb" / f"{vid}.npy")
    assert db[vid]["duration"] == pytest.approx(len(rgb) * 16 / 25)


def test_scaled_down_anet_preset(tmp_path):
    cfg = dataclasses.replace(PRESETS["anet"], num_train=5, num_test=3)
    root = write_synthetic_dataset(cfg, tmp_path / "anet", seed=0)
    d = _check_layout(root, cfg)
    assert {e["subset"] for e in d["db"].values()} == {"training", "validation"}
    assert all(1 <= len(e["annotations"]) <= 2 for e in d["db"].values())
    assert len(d["classes"]) == 100
    assert (root / "features" / "train" / "flow" / f"v_{d['train'][0]}.npy").is_file()
    assert not (root / "features" / "train" / "flow" / f"{d['train'][0]}.npy").exists()


def test_scaled_down_thumos_preset(tmp_path):
    cfg = dataclasses.replace(PRESETS["thumos"], num_train=3, num_test=2)
    root = write_synthetic_dataset(cfg, tmp_path / "thumos", seed=0)
    d = _check_layout(root, cfg)
    assert d["train"][0] == "video_validation_0000001" and d["test"][0] == "video_test_0000001"
    assert np.load(root / "features" / "test" / "rgb" / f"{d['test'][0]}.npy").shape[1] == 1024


def test_thumos_shape_statistics(tmp_path):
    # Many videos, narrow features (everything else as in the preset): segment count and the
    # multi-label rate are properties of the annotations, not of feature_dim.
    cfg = dataclasses.replace(PRESETS["thumos"], num_train=60, num_test=60, feature_dim=4)
    root = write_synthetic_dataset(cfg, tmp_path / "thumos", seed=1)
    d = _check_layout(root, cfg)
    entries = list(d["db"].values())
    n_labels = [len({a["label"] for a in e["annotations"]}) for e in entries]
    multi = np.mean([n > 1 for n in n_labels])
    assert 0.03 <= multi <= 0.3, multi
    assert max(n_labels) == 2
    segs = np.mean([len(e["annotations"]) for e in entries])
    assert 11 <= segs <= 19, segs
    lengths = np.array([_snippets(e["duration"]) for e in entries])
    assert lengths.min() >= 400 and lengths.max() <= 6000
    assert np.median(lengths) < lengths.mean()  # skewed to short videos
    assert 600 <= np.median(lengths) <= 1300


def _annotation_statistics(root: Path) -> dict[str, float]:
    entries = list(_read(root)["db"].values())
    durations = np.array([a["segment"][1] - a["segment"][0] for e in entries for a in e["annotations"]])
    counts = np.array([len(e["annotations"]) for e in entries])
    return {
        "videos": len(entries),
        "segments_mean": counts.mean(),
        "single_segment": np.mean(counts == 1),
        "duration_median_s": np.median(durations),
        "coverage": np.mean(
            [sum(a["segment"][1] - a["segment"][0] for a in e["annotations"]) / e["duration"] for e in entries]
        ),
        "multi_label": np.mean([len({a["label"] for a in e["annotations"]}) > 1 for e in entries]),
        "min_snippets": min(_snippets(e["duration"]) for e in entries),
        "max_snippets": max(_snippets(e["duration"]) for e in entries),
        "median_snippets": np.median([_snippets(e["duration"]) for e in entries]),
    }


def test_thumos_lite_follows_thumos_annotation_statistics(tmp_path):
    # THUMOS'14 validation: ~15 actions a video (median ~3 s), ~25-30% of the time, ~10% multi-label
    # videos, lengths 19 to ~2,600 snippets with a median of ~3 min.
    cfg = dataclasses.replace(PRESETS["thumos-lite"], num_train=120, num_test=1)
    stats = _annotation_statistics(write_synthetic_dataset(cfg, tmp_path / "t", seed=1))
    assert 11 <= stats["segments_mean"] <= 19, stats
    assert 2.0 <= stats["duration_median_s"] <= 4.0, stats
    assert 0.15 <= stats["coverage"] <= 0.4, stats
    assert 0.03 <= stats["multi_label"] <= 0.25, stats
    assert stats["min_snippets"] >= 19 and stats["max_snippets"] <= 2600, stats
    assert 200 <= stats["median_snippets"] <= 380, stats


def test_anet_lite_follows_activitynet_annotation_statistics(tmp_path):
    # ActivityNet v1.2: ~1.5 actions a video (most have one), long actions covering ~half of the
    # video or more, one class a video, median length ~2 min.
    cfg = dataclasses.replace(PRESETS["anet-lite"], num_train=300, num_test=1)
    stats = _annotation_statistics(write_synthetic_dataset(cfg, tmp_path / "a", seed=1))
    assert 1.3 <= stats["segments_mean"] <= 1.8, stats
    assert 0.55 <= stats["single_segment"] <= 0.8, stats
    assert 0.4 <= stats["coverage"] <= 0.7, stats
    assert stats["multi_label"] == 0, stats
    assert 130 <= stats["median_snippets"] <= 220 and stats["max_snippets"] <= 940, stats


@pytest.mark.parametrize(
    "changes",
    [
        dict(num_classes=1, num_distractor_classes=0, num_test=0),
        dict(segments_per_video=(6, 6), segment_length=(8, 12), min_gap=0, distractor_rate=2.0),
        dict(segment_fraction=(0.5, 1.0), max_action_fraction=1.0, min_length=1, length_median=3.0),
        dict(id_style="anet", train_subset="training", test_subset="validation", noise=0.0),
        dict(context_floor=1.0, context_strength=0.0, multi_label_prob=1.0, class_imbalance=3.0),
        dict(
            segment_count_law="lognormal",
            segment_count_center=3.0,
            segment_count_sigma=0.5,
            segment_count_length_exponent=0.5,
            segment_length_law="lognormal",
            segment_length_median=3.0,
            segment_length_sigma=0.6,
            class_duration_spread=0.4,
            segment_length=(1, 30),
        ),
        dict(
            segment_count_law="geometric",
            segment_count_center=1.5,
            segment_fraction=(0.2, 0.9),
            segment_fraction_total=True,
            max_action_fraction=0.95,
            multi_label_prob=0.5,
        ),
    ],
)
def test_edge_configs(tmp_path, changes):
    cfg = dataclasses.replace(PRESETS["tiny"], num_train=8, **{"num_test": 4, **changes})
    root = write_synthetic_dataset(cfg, tmp_path / "edge", seed=5)
    _check_layout(root, cfg)


def test_small_preset_has_multilabel_videos(tmp_path):
    root = write_synthetic_dataset("small", tmp_path / "small", seed=0)
    d = _check_layout(root, PRESETS["small"])
    multi = [v for v, e in d["db"].items() if len({a["label"] for a in e["annotations"]}) > 1]
    assert 5 <= len(multi) <= 60


def test_actions_carry_more_flow_energy_than_background(tiny):
    """A class-agnostic cue (motion energy, mostly in flow) separates actions from background."""
    d = _read(tiny)
    act, bg = [], []
    for vid in d["train"]:
        flow = np.load(tiny / "features" / "train" / "flow" / f"{vid}.npy")
        mask = np.zeros(len(flow), dtype=bool)
        for a in d["db"][vid]["annotations"]:
            mask[_snippets(a["segment"][0]) : _snippets(a["segment"][1])] = True
        act.append(flow[mask].mean())
        if (~mask).any():
            bg.append(flow[~mask].mean())
    assert np.mean(act) > np.mean(bg) + 0.2


# ------------------------------------------------------------------------------------------------
# determinism and atomic writing
# ------------------------------------------------------------------------------------------------


def test_same_seed_identical_bytes(tiny, tmp_path):
    again = write_synthetic_dataset(PRESETS["tiny"], tmp_path / "again", seed=3)
    a, b = _all_files(tiny), _all_files(again)
    assert a.keys() == b.keys() and len(a) == 4 + 2 * (24 + 12)
    for name in a:
        assert a[name] == b[name], name


def test_different_seed_different_features(tiny, tmp_path):
    other = write_synthetic_dataset("tiny", tmp_path / "other", seed=4)
    a, b = _all_files(tiny), _all_files(other)
    vid = "video_validation_0000001"
    for mod in MODS:
        key = f"features/train/{mod}/{vid}.npy"
        assert a[key] != b[key]
    assert a["gt.json"] != b["gt.json"]


def test_test_split_independent_of_train_size(tiny, tmp_path):
    """Per-video random streams: changing the number of train videos leaves the test split as is."""
    cfg = dataclasses.replace(PRESETS["tiny"], num_train=5)
    root = write_synthetic_dataset(cfg, tmp_path / "fewer", seed=3)
    a, b = _all_files(tiny), _all_files(root)
    test_files = [k for k in a if k.startswith("features/test/")]
    assert test_files and all(a[k] == b[k] for k in test_files)
    assert (tiny / "split_test.txt").read_bytes() == (root / "split_test.txt").read_bytes()
    db_a, db_b = _read(tiny)["db"], _read(root)["db"]
    assert all(db_a[v] == db_b[v] for v in _read(root)["test"])


def test_refuses_non_empty_out_dir_unless_overwrite(tmp_path):
    cfg = dataclasses.replace(PRESETS["tiny"], num_train=3, num_test=2)
    out = tmp_path / "ds"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(DatasetError, match="not empty"):
        write_synthetic_dataset(cfg, out, seed=0)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"], "temporary left behind"
    write_synthetic_dataset(cfg, out, seed=0, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "gt.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_empty_existing_out_dir_is_fine(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    cfg = dataclasses.replace(PRESETS["tiny"], num_train=2, num_test=1)
    assert write_synthetic_dataset(cfg, out, seed=0) == out.absolute()
    assert (out / "split_train.txt").read_text().count("\n") == 2


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="unknown synthetic preset"):
        write_synthetic_dataset("huge", tmp_path / "x", seed=0)
    with pytest.raises(ValueError, match="segment_length"):
        write_synthetic_dataset(dataclasses.replace(PRESETS["tiny"], segment_length=(5, 2)), tmp_path / "x", 0)
    with pytest.raises(ValueError, match="id_style"):
        write_synthetic_dataset(dataclasses.replace(PRESETS["tiny"], id_style="kinetics"), tmp_path / "x", 0)
    with pytest.raises(ValueError, match="seed"):
        write_synthetic_dataset("tiny", tmp_path / "x", seed=-1)
    assert not (tmp_path / "x").exists()


def test_command_line(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["synth", "--preset", "tiny", "--out", str(out), "--seed", "2", "--set", "num_train=4"]) == 0
    assert len((out / "split_train.txt").read_text().splitlines()) == 4
    for argv, message in [
        (["--preset", "tiny", "--out", str(out)], "not empty"),
        (["--preset", "huge", "--out", str(tmp_path / "x")], "unknown synthetic preset"),
        (["--preset", "tiny", "--out", str(tmp_path / "x"), "--set", "num_trains=4"], "unknown field"),
        (["--preset", "tiny", "--out", str(tmp_path / "x"), "--set", "num_train=four"], "not a valid int"),
    ]:
        with pytest.raises(SystemExit) as info:
            main(["synth", *argv])
        assert info.value.code == 2 and message in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------
# THE GAP: action pooling clusters far better than mean pooling, which is still above chance
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
def test_small_pooling_gap(tmp_path, seed):
    root = write_synthetic_dataset("small", tmp_path / "small", seed=seed)
    nmi_mean, nmi_action = _pooling_nmi(root)
    assert nmi_action > 0.85, (nmi_mean, nmi_action)
    assert 0.12 <= nmi_mean <= 0.6, (nmi_mean, nmi_action)
    assert nmi_action - nmi_mean >= 0.3, (nmi_mean, nmi_action)


# ------------------------------------------------------------------------------------------------
# thumos-lite-hard: the label-free actionness no longer finds the actions
# ------------------------------------------------------------------------------------------------


def _deviation_auc(root: Path) -> float:
    """Median over training videos of the ROC AUC of ||x_t - mean training snippet|| for the annotated snippets."""
    d = _read(root)
    videos, masks = [], []
    for vid in d["train"]:
        x = np.concatenate([np.load(root / "features" / "train" / m / f"{vid}.npy") for m in MODS], axis=1)
        mask = np.zeros(len(x), dtype=bool)
        for a in d["db"][vid]["annotations"]:
            mask[_snippets(a["segment"][0]) : _snippets(a["segment"][1])] = True
        videos.append(x)
        masks.append(mask)
    reference = np.concatenate(videos).astype(np.float64).mean(0)
    aucs = []
    for x, mask in zip(videos, masks, strict=True):
        if 0 < mask.sum() < len(mask):
            score = np.linalg.norm(x - reference, axis=1)
            pos, neg = score[mask], score[~mask]
            aucs.append(
                ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / pos.size / neg.size
            )
    return float(np.median(aucs))


def test_thumos_lite_hard_hides_the_actions_from_the_label_free_actionness(tmp_path):
    # Same annotation statistics as thumos-lite (same draws), but no shared class-agnostic action vector: the
    # distance from the mean snippet, near-perfect on thumos-lite, finds the actions far less well, while
    # pooling over the true action snippets still separates the classes.
    cfg = {
        name: dataclasses.replace(PRESETS[name], num_train=60, num_test=1)
        for name in ("thumos-lite", "thumos-lite-hard")
    }
    easy = write_synthetic_dataset(cfg["thumos-lite"], tmp_path / "easy", seed=2)
    hard = write_synthetic_dataset(cfg["thumos-lite-hard"], tmp_path / "hard", seed=2)
    assert _read(easy)["db"] == _read(hard)["db"]  # the same videos, segments and labels
    auc_easy, auc_hard = _deviation_auc(easy), _deviation_auc(hard)
    assert auc_easy > 0.95 and auc_hard < 0.8, (auc_easy, auc_hard)
    assert PRESETS["thumos-lite-hard"].actionness_strength == 0.0
