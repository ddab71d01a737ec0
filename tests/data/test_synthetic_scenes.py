"""The realistic scene family (utal_lightning/data/synthetic_scenes.py): inside its difficulty band, without the lite
presets' shortcuts, deterministic, and ``utal synth --describe`` read against an independent computation.

The band and the shortcuts are measured here with numpy and scikit-learn on the files as written, never through the
project's loaders or its own cue function (which is checked against this reference separately).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score, roc_auc_score

from utal_lightning.baseline import label_free_cues
from utal_lightning.cli import main
from utal_lightning.data.layout import SNIPPET_SECONDS, DatasetLayout
from utal_lightning.data.synthetic import PRESETS, write_synthetic_dataset
from utal_lightning.data.synthetic_scenes import SCENE_PRESETS, SceneWorldConfig

MODS = ("rgb", "flow")
THUMOS_FAMILY = ("thumos-real", "thumos-real-scene", "thumos-real-faint")


def _videos(root: Path, split: str = "train"):
    """(features (L, 2D) RGB first, action mask (L,), class of the longest annotated duration) per video."""
    gt = json.loads((root / "gt.json").read_text())["database"]
    classes = (root / "classes.txt").read_text().split()
    for vid in (root / f"split_{split}.txt").read_text().split():
        stem = vid if (root / "features" / split / "rgb" / f"{vid}.npy").exists() else f"v_{vid}"  # ActivityNet: v_
        x = np.concatenate([np.load(root / "features" / split / m / f"{stem}.npy") for m in MODS], axis=1)
        mask = np.zeros(len(x), dtype=bool)
        duration: dict[str, float] = {}
        for a in gt[vid]["annotations"]:
            s, e = (round(t / SNIPPET_SECONDS) for t in a["segment"])
            mask[s:e] = True
            duration[a["label"]] = duration.get(a["label"], 0.0) + e - s
        label = classes.index(max(sorted(duration), key=lambda c: duration[c]))
        yield x.astype(np.float64), mask, label


def reference_cues(root: Path) -> dict[str, float]:
    """Median per-video AUC of the distance from the mean training snippet and of the snippet norm; NMI of
    k-means on mean pooling and on pooling over the annotated snippets (the oracle)."""
    videos = list(_videos(root))
    reference = np.concatenate([x for x, _, _ in videos]).mean(axis=0)
    distance, norm, mean_pool, oracle_pool, labels = [], [], [], [], []
    for x, mask, label in videos:
        if mask.all() or not mask.any():
            continue
        distance.append(roc_auc_score(mask, np.linalg.norm(x - reference, axis=1)))
        norm.append(roc_auc_score(mask, np.linalg.norm(x, axis=1)))
        mean_pool.append(x.mean(axis=0))
        oracle_pool.append(x[mask].mean(axis=0))
        labels.append(label)
    nmi = {}
    for name, pooled in (("mean", mean_pool), ("oracle", oracle_pool)):
        f = np.asarray(pooled)
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        clusters = KMeans(n_clusters=len(set(labels)), n_init=10, random_state=0).fit_predict(f)
        nmi[name] = normalized_mutual_info_score(labels, clusters)
    return {
        "distance_auc": float(np.median(distance)),
        "norm_auc": float(np.median(norm)),
        "mean_nmi": nmi["mean"],
        "oracle_nmi": nmi["oracle"],
    }


def _write(tmp_path: Path, preset: str, seed: int, **changes) -> Path:
    cfg = dataclasses.replace(PRESETS[preset], **{"num_test": 2, **changes})
    return write_synthetic_dataset(cfg, tmp_path / f"{preset}-{seed}", seed=seed)


BAND_CASES = [(p, s) for p in THUMOS_FAMILY for s in (100, 101, 102)] + [("anet-real", 100)]


@pytest.mark.parametrize(("preset", "seed"), BAND_CASES)
def test_each_realistic_preset_stays_inside_its_difficulty_band(tmp_path, preset, seed):
    # anet-real: a fifth of its 4,819 training videos (still ~9 a class) keeps the test in seconds.
    changes = {"num_train": 1000} if preset == "anet-real" else {}
    cues = reference_cues(_write(tmp_path, preset, seed, **changes))
    assert 0.5 < cues["distance_auc"] <= 0.8, cues  # a label-free cue, not a shortcut
    assert 0.3 <= cues["norm_auc"] <= 0.7, cues  # the norm alone finds neither the actions nor the background
    assert cues["oracle_nmi"] >= cues["mean_nmi"] + 0.15, cues  # room for attention to earn its pooling


def test_the_family_spans_worlds(tmp_path):
    """The scene world's mean pooling clusters better than the base world's (its scene says more of the class),
    the faint world's label-free distance finds its actions worse (means over the development seeds)."""
    cues = {p: [reference_cues(_write(tmp_path, p, s)) for s in (100, 101, 102)] for p in THUMOS_FAMILY}

    def mean(preset: str, key: str) -> float:
        return float(np.mean([c[key] for c in cues[preset]]))

    assert mean("thumos-real-scene", "mean_nmi") > mean("thumos-real", "mean_nmi") + 0.03
    assert mean("thumos-real-faint", "distance_auc") < mean("thumos-real", "distance_auc") - 0.05


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    cfg = dataclasses.replace(PRESETS["thumos-real"], num_train=60, num_test=4)
    return write_synthetic_dataset(cfg, tmp_path_factory.mktemp("real") / "ds", seed=5)


def _background_spread(root: Path) -> tuple[float, float]:
    """Median over videos of (how far a video's background mean lies from the mean of all videos' backgrounds,
    how far the quarters of its background lie from its background mean)."""
    across, within = [], []
    for x, mask, _ in _videos(root):
        bg = x[~mask]
        across.append(bg.mean(axis=0))
        within.append(np.mean([np.linalg.norm(q.mean(axis=0) - bg.mean(axis=0)) for q in np.array_split(bg, 4)]))
    spread = np.linalg.norm(np.asarray(across) - np.mean(across, axis=0), axis=1)
    return float(np.median(spread)), float(np.median(within))


def test_no_shared_background_and_no_constant_video_offset(real, tmp_path):
    """No vector shared by every video's background, and no constant per-video offset that background subtraction
    cancels: backgrounds differ across videos far more than within one, and within one they move with its shots and
    pans (more than with both switched off)."""
    across, within = _background_spread(real)
    assert across > 2 * within
    cfg = dataclasses.replace(PRESETS["thumos-real"], num_train=60, num_test=4, shot_variation=0.0, pan_prob=0.0)
    _, within_without_shots = _background_spread(write_synthetic_dataset(cfg, tmp_path / "no-shots", seed=5))
    assert within > 1.3 * within_without_shots


def test_noise_is_temporally_correlated(real):
    """Adjacent snippets' deviations from their video's background mean correlate (16-frame windows overlap)."""
    lag1 = []
    for x, mask, _ in _videos(real):
        r = x - x[~mask].mean(axis=0)
        keep = ~mask[:-1] & ~mask[1:]
        a, b = r[:-1][keep].ravel(), r[1:][keep].ravel()
        lag1.append(np.corrcoef(a, b)[0, 1])
    assert np.median(lag1) > 0.5


def test_features_are_non_negative_float32_and_deterministic(real, tmp_path):
    cfg = dataclasses.replace(PRESETS["thumos-real"], num_train=60, num_test=4)
    again = write_synthetic_dataset(cfg, tmp_path / "again", seed=5)
    files = sorted(p.relative_to(real) for p in real.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for f in files:
        assert (real / f).read_bytes() == (again / f).read_bytes(), f
        if f.suffix == ".npy":
            x = np.load(real / f)
            assert x.dtype == np.float32 and (x >= 0).all() and np.isfinite(x).all()


def test_the_test_split_shows_shifted_prototypes(tmp_path):
    """Class prototypes are not identical in train and test: with the shift switched off the oracle-pooled class
    means of the two splits agree better than with it."""

    def split_gap(test_shift: float) -> float:
        cfg = dataclasses.replace(PRESETS["thumos-real"], num_train=80, num_test=80, test_shift=test_shift)
        root = write_synthetic_dataset(cfg, tmp_path / f"shift-{test_shift}", seed=9)
        means = []
        for split in ("train", "test"):
            by_class: dict[int, list[np.ndarray]] = {}
            for x, mask, label in _videos(root, split):
                by_class.setdefault(label, []).append(x[mask].mean(axis=0))
            means.append({c: np.mean(v, axis=0) for c, v in by_class.items()})
        shared = sorted(set(means[0]) & set(means[1]))
        return float(np.mean([np.linalg.norm(means[0][c] - means[1][c]) for c in shared]))

    assert split_gap(0.8) > split_gap(0.0) + 0.1


def test_scene_presets_keep_the_lite_annotation_statistics():
    """The family reuses the lite presets' size and segment fields (the real datasets' statistics)."""
    for name, lite_name in (("thumos-real", "thumos-lite"), ("anet-real", "anet-lite")):
        scene, lite = SCENE_PRESETS[name], PRESETS[lite_name]
        for field in ("num_classes", "num_train", "num_test", "length_median", "segment_count_law", "segment_length"):
            assert getattr(scene, field) == getattr(lite, field), (name, field)
    assert isinstance(PRESETS["thumos-real-faint"], SceneWorldConfig)


@pytest.mark.parametrize(
    ("field", "value"),
    [("num_venues", 0), ("num_venues", 21), ("replace", 1.5), ("noise_correlation", 1.0), ("shot_length_mean", 0.5)],
)
def test_bad_scene_fields_are_named(field, value):
    with pytest.raises(ValueError, match=f"SceneWorldConfig.{field}="):
        dataclasses.replace(PRESETS["thumos-real"], **{field: value}).validate()


def test_describe_agrees_with_the_reference(tmp_path, capsys):
    """``utal synth --describe``'s AUCs are the reference's (same median over the same videos; the grid holds every
    snippet of these videos) and its NMIs order the poolings as the reference does."""
    root = _write(tmp_path, "thumos-real", 11, num_train=80, max_length=700)
    reference = reference_cues(root)
    cues = label_free_cues(DatasetLayout(root), num_segments=750)
    assert cues["distance_auc"] == pytest.approx(reference["distance_auc"], abs=1e-4)
    assert cues["norm_auc"] == pytest.approx(reference["norm_auc"], abs=1e-4)
    assert cues["oracle_nmi"] > cues["mean_nmi"] + 0.1
    assert reference["oracle_nmi"] > reference["mean_nmi"] + 0.1
    assert main(["synth", "--preset", "thumos-real", "--seed", "11", "--set", "num_train=80", "--set", "num_test=2",
                 "--set", "max_length=700", "--describe"]) == 0  # fmt: skip
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["preset"] == "thumos-real"
    assert printed["distance_auc"] == pytest.approx(reference["distance_auc"], abs=1e-4)
    assert set(printed) >= {"norm_auc", "mean_nmi", "deviation_top_nmi", "baseline_nmi", "oracle_nmi"}


def test_synth_without_out_or_describe_is_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["synth", "--preset", "thumos-real"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]
