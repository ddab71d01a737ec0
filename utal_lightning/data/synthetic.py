"""Synthetic UTAL benchmark generator (docs/method.md sec. 6), written in the on-disk layout of docs/method.md sec. 1.1.

The generator is a test bed with known answers, not a model of real data. Each video is a sequence
of snippet features (RGB and flow, each ``feature_dim`` wide) built as::

    x_t = ReLU( background + nuisance_video + context(t) + action(t) + noise_t )

- ``background``: a shared mean vector (the same for every video and class).
- ``nuisance_video``: a per-video appearance offset shared by all of its snippets (hurts every pooling).
- ``context(t)``: class-correlated scene features, ``context_floor`` everywhere in the video rising
  to 1 inside and near the action segments (exponential decay with ``context_width`` snippets);
  the class is the one of the nearest action segment. Mostly RGB (``rgb_context_share``).
- ``action(t)``: on action snippets only: a class prototype (``prototype_separation``) plus a
  per-instance offset (``intra_class_variation``) plus a class-agnostic "motion energy" vector
  (``actionness_strength``). Mostly flow (``flow_action_share``).
- Distractor segments: actions of ``num_distractor_classes`` classes that are not in the class list
  (same actionness, no context), never annotated.
- Primary classes follow a Zipf law (``class_imbalance``); some videos carry a second class
  (``multi_label_prob``).

So mean pooling over a whole video sees the (weak, diluted) context and a diluted prototype,
while pooling over the ground-truth action snippets sees the prototype at full strength:
clustering is far better from the latter, yet the former is well above chance.

Determinism: every random draw comes from a numpy Generator seeded by ``(seed, tag, index)``:
one for the shared "world" (prototypes, background), one per split for the class assignment, one
per video. The same ``(config, seed)`` gives byte-identical files, independent of generation order.

Time: one snippet = 16 frames at 25 fps = 0.64 s; a segment over snippets ``[a, b)`` is written as
``[a * 0.64, b * 0.64]`` seconds and a video's duration is ``L * 0.64``.

numpy only (no torch, no Lightning).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from utal_lightning.data.layout import SNIPPET_SECONDS
from utal_lightning.errors import DatasetError

__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SyntheticConfig",
    "get_config",
    "override_config",
    "write_synthetic_dataset",
]


# Bumped whenever a preset's bytes for a given seed change (benchmarks/bench_quality.py regenerates data written by
# another version). 2: the scene family of synthetic_scenes.py added (the lite presets' bytes unchanged).
GENERATOR_VERSION = 2

# Seed-sequence tags (every entropy tuple has the same length: numpy pads shorter ones with zeros).
_TAG_WORLD = 0
_TAG_TRAIN_VIDEO = 1
_TAG_TEST_VIDEO = 2
_TAG_SPLIT = 3
_SPLIT_CODE = {"train": 0, "test": 1}

_ANET_ALPHABET = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"))


@dataclass(frozen=True)
class SyntheticConfig:
    """Every knob of the generator. Defaults are the ``small`` preset."""

    # --- size -------------------------------------------------------------------------------
    num_classes: int = 5  # K listed action classes (classes.txt)
    num_train: int = 120  # videos in split_train.txt
    num_test: int = 60  # videos in split_test.txt
    feature_dim: int = 64  # width of EACH modality (RGB and flow); concatenated = 2 * feature_dim
    # --- video length L (snippets): lognormal(log(median), sigma) rounded, clipped -----------
    length_median: float = 130.0
    length_sigma: float = 0.35
    min_length: int = 60
    max_length: int = 250
    # --- action segments ----------------------------------------------------------------------
    segments_per_video: tuple[int, int] = (1, 4)  # annotated segments a video, inclusive range (= bounds)
    # How many: "uniform" over segments_per_video; "lognormal" with median segment_count_center *
    # (L / length_median) ** segment_count_length_exponent (longer videos hold more actions, as in
    # THUMOS) and spread segment_count_sigma; "geometric" with mean segment_count_center (ActivityNet:
    # most videos one action). Both clipped to segments_per_video.
    segment_count_law: str = "uniform"
    segment_count_center: float = 1.0
    segment_count_sigma: float = 0.0
    segment_count_length_exponent: float = 0.0
    segment_length: tuple[int, int] = (6, 20)  # segment length in snippets, inclusive range (= bounds)
    # "uniform" over segment_length, or "lognormal" with median segment_length_median snippets and
    # spread segment_length_sigma, times a per-class duration scale exp(N(0, class_duration_spread))
    # (some classes are short, some long); clipped to segment_length.
    segment_length_law: str = "uniform"
    segment_length_median: float = 5.0
    segment_length_sigma: float = 0.0
    class_duration_spread: float = 0.0
    segment_fraction: tuple[float, float] | None = None  # if set: length = U(range) * L (overrides)
    # With segment_fraction: False = each segment's own share of L; True = the video's total action
    # share, split among its segments (ActivityNet: one long action or a few shorter ones).
    segment_fraction_total: bool = False
    max_action_fraction: float = 0.7  # segments (+ distractors) cover at most this share of L
    min_gap: int = 1  # background snippets at least between two segments
    multi_label_prob: float = 0.2  # P(a video has a second class); needs >= 2 segments
    # --- signal model (all amplitudes are per-dimension standard deviations) ------------------
    background_level: float = 0.5  # mean of the shared background vector
    background_spread: float = 0.5  # per-dimension spread of the shared background vector
    prototype_separation: float = 0.5  # amplitude of the class prototypes (action snippets)
    intra_class_variation: float = 0.6  # per-instance (segment) offset around the prototype
    actionness_strength: float = 1.0  # class-agnostic "motion energy" on every action snippet
    context_strength: float = 0.45  # amplitude of the class scene features
    context_floor: float = 0.3  # context level far from any action (share of its peak)
    context_width: float = 8.0  # decay length (snippets) of the context away from actions
    context_variation: float = 0.6  # per-video variation of the scene features of a class
    flow_action_share: float = 0.7  # share of the action energy in flow (rest in RGB)
    rgb_context_share: float = 0.85  # share of the context energy in RGB (rest in flow)
    noise: float = 1.0  # per-snippet i.i.d. Gaussian noise
    video_nuisance: float = 1.0  # per-video appearance offset shared by all its snippets
    # --- difficulty extras --------------------------------------------------------------------
    num_distractor_classes: int = 3  # action classes NOT in the class list (never annotated)
    distractor_rate: float = 0.25  # expected distractor segments per annotated segment
    class_imbalance: float = 0.5  # Zipf exponent of the primary-class frequencies (0 = balanced)
    # --- naming -------------------------------------------------------------------------------
    train_subset: str = "validation"  # gt.json "subset" of training videos
    test_subset: str = "test"  # gt.json "subset" of test videos
    id_style: str = "thumos"  # "thumos": video_<subset>_0000001; "anet": 11-char ids, files v_<id>
    class_prefix: str = "class_"  # class names: <prefix>00, <prefix>01, ...

    def validate(self) -> None:
        """Raise ValueError naming the first bad field."""

        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"SyntheticConfig.{field}={getattr(self, field)!r}: {why}")

        for f in ("num_classes", "feature_dim", "min_length"):
            if int(getattr(self, f)) < 1:
                raise bad(f, "must be >= 1")
        for f in ("num_train", "num_test", "num_distractor_classes", "min_gap"):
            if int(getattr(self, f)) < 0:
                raise bad(f, "must be >= 0")
        if self.max_length < self.min_length:
            raise bad("max_length", f"must be >= min_length ({self.min_length})")
        if self.length_median <= 0 or self.length_sigma < 0:
            raise bad("length_median", "median must be > 0 and sigma >= 0")
        lo, hi = self.segments_per_video
        if not 1 <= lo <= hi:
            raise bad("segments_per_video", "need 1 <= min <= max")
        lo, hi = self.segment_length
        if not 1 <= lo <= hi:
            raise bad("segment_length", "need 1 <= min <= max")
        if self.segment_count_law not in ("uniform", "lognormal", "geometric"):
            raise bad("segment_count_law", 'must be "uniform", "lognormal" or "geometric"')
        if self.segment_count_law != "uniform" and not self.segment_count_center >= 1:
            raise bad("segment_count_center", "must be >= 1")
        if self.segment_length_law not in ("uniform", "lognormal"):
            raise bad("segment_length_law", 'must be "uniform" or "lognormal"')
        if self.segment_length_law == "lognormal" and not self.segment_length_median > 0:
            raise bad("segment_length_median", "must be > 0")
        if self.segment_fraction is not None:
            lo, hi = self.segment_fraction
            if not 0 < lo <= hi <= 1:
                raise bad("segment_fraction", "need 0 < min <= max <= 1")
        if not 0 < self.max_action_fraction <= 1:
            raise bad("max_action_fraction", "must be in (0, 1]")
        for f in ("multi_label_prob", "flow_action_share", "rgb_context_share", "context_floor"):
            if not 0 <= float(getattr(self, f)) <= 1:
                raise bad(f, "must be in [0, 1]")
        for f in (
            "background_spread",
            "prototype_separation",
            "intra_class_variation",
            "actionness_strength",
            "context_strength",
            "context_variation",
            "noise",
            "video_nuisance",
            "distractor_rate",
            "class_imbalance",
            "segment_count_sigma",
            "segment_length_sigma",
            "class_duration_spread",
        ):
            if float(getattr(self, f)) < 0:
                raise bad(f, "must be >= 0")
        if self.context_width <= 0:
            raise bad("context_width", "must be > 0")
        if self.id_style not in ("thumos", "anet"):
            raise bad("id_style", 'must be "thumos" or "anet"')
        if not self.train_subset or not self.test_subset or self.train_subset == self.test_subset:
            raise bad("test_subset", "subset names must be non-empty and different")
        for f in ("train_subset", "test_subset", "class_prefix"):
            if any(c in getattr(self, f) for c in "/\\\n\r\t"):
                raise bad(f, "must not contain path separators or whitespace controls")

    def make_world(self, seed: int) -> _World:
        """What every video of a dataset shares (the world stream of ``seed``)."""
        return _make_world(self, seed)

    def make_video(self, world: _World, seed: int, split: str, index: int, primary: int) -> _Video:
        """Video ``index`` of ``split`` with primary class ``primary`` (its own stream of ``seed``)."""
        return _make_video(self, world, seed, split, index, primary)

    def class_names(self) -> list[str]:
        width = max(2, len(str(self.num_classes - 1)))
        return [f"{self.class_prefix}{k:0{width}d}" for k in range(self.num_classes)]


_THUMOS_LITE = SyntheticConfig(
    num_classes=20,
    num_train=200,
    num_test=210,
    feature_dim=32,
    length_median=280.0,
    length_sigma=0.75,
    min_length=19,
    max_length=2600,
    segments_per_video=(1, 100),
    segment_count_law="lognormal",
    segment_count_center=11.0,
    segment_count_sigma=0.7,
    segment_count_length_exponent=0.5,
    segment_length=(1, 60),
    segment_length_law="lognormal",
    segment_length_median=5.0,
    segment_length_sigma=0.65,
    class_duration_spread=0.4,
    max_action_fraction=0.7,
    multi_label_prob=0.12,
    num_distractor_classes=5,
    distractor_rate=0.15,
    class_imbalance=0.5,
    train_subset="validation",
    test_subset="test",
    id_style="thumos",
)


PRESETS: dict[str, SyntheticConfig] = {
    # Unit tests: a second or two.
    "tiny": SyntheticConfig(
        num_classes=3,
        num_train=24,
        num_test=12,
        feature_dim=16,
        length_median=35.0,
        length_sigma=0.3,
        min_length=20,
        max_length=60,
        segments_per_video=(1, 3),
        segment_length=(3, 10),
        multi_label_prob=0.15,
        prototype_separation=1.0,  # 16 dims: more per-dimension signal than 64-dim "small"
        video_nuisance=0.6,
        num_distractor_classes=2,
    ),
    # Demo and end-to-end tests (the defaults of SyntheticConfig).
    "small": SyntheticConfig(),
    # THUMOS'14-shaped: 200 "validation" train / 210 "test", 20 classes, 1024 + 1024 dims.
    "thumos": SyntheticConfig(
        num_classes=20,
        num_train=200,
        num_test=210,
        feature_dim=1024,
        length_median=900.0,
        length_sigma=0.6,
        min_length=400,
        max_length=6000,
        segments_per_video=(6, 26),
        segment_length=(4, 40),
        max_action_fraction=0.6,
        multi_label_prob=0.12,
        context_strength=0.15,  # 2048 dims: weaker per-dimension signal than "small" suffices
        num_distractor_classes=5,
        distractor_rate=0.15,
        class_imbalance=0.5,
        train_subset="validation",
        test_subset="test",
        id_style="thumos",
    ),
    # ActivityNet v1.2-shaped: 4819 "training" / 2383 "validation", 100 classes, 1-2 segments.
    "anet": SyntheticConfig(
        num_classes=100,
        num_train=4819,
        num_test=2383,
        feature_dim=1024,
        length_median=120.0,
        length_sigma=0.6,
        min_length=30,
        max_length=400,
        segments_per_video=(1, 2),
        segment_length=(3, 200),
        segment_fraction=(0.15, 0.6),
        max_action_fraction=0.85,
        multi_label_prob=0.0,
        context_strength=0.15,
        context_width=4.0,
        num_distractor_classes=10,
        distractor_rate=0.2,
        class_imbalance=0.3,
        train_subset="training",
        test_subset="validation",
        id_style="anet",
    ),
    # THUMOS'14's annotation statistics at a width 2 CPU cores handle (32 + 32): 200 / 210 videos of
    # 19 to 2,600 snippets (median ~3 min), ~15 actions a video (more in longer videos) with a median
    # of ~3 s (5 snippets), class-dependent durations, 12% multi-label videos, Zipf-imbalanced
    # classes, distractor motion and class-correlated scene context around the actions.
    "thumos-lite": _THUMOS_LITE,
    # thumos-lite where localization is not free: no class-agnostic "motion energy" on the actions (the
    # vector every action snippet of the other presets shares, which lets a snippet's distance from the mean
    # snippet find the actions: median per-video AUC 0.99 there, ~0.75 here), weaker class-specific action
    # evidence and stronger class scene context around the actions (as I3D's scene features): what a model
    # learns about each class's actions is what finds them. The same videos, segments and labels.
    "thumos-lite-hard": dataclasses.replace(
        _THUMOS_LITE,
        actionness_strength=0.0,
        prototype_separation=0.35,
        intra_class_variation=0.3,
        context_strength=0.6,
    ),
    # ActivityNet v1.2's statistics at 32 + 32: 4,819 / 2,383 videos, 100 classes, lengths 8 to ~940
    # snippets (median ~2 min), 1.5 actions a video (geometric: most have one), actions covering
    # ~60% of the video in all, single-label, mildly imbalanced classes, shorter-range context.
    "anet-lite": SyntheticConfig(
        num_classes=100,
        num_train=4819,
        num_test=2383,
        feature_dim=32,
        length_median=170.0,
        length_sigma=0.5,
        min_length=8,
        max_length=940,
        segments_per_video=(1, 20),
        segment_count_law="geometric",
        segment_count_center=1.5,
        segment_length=(2, 940),
        segment_fraction=(0.2, 0.95),
        segment_fraction_total=True,
        max_action_fraction=0.95,
        multi_label_prob=0.0,
        context_width=4.0,
        num_distractor_classes=10,
        distractor_rate=0.1,
        class_imbalance=0.2,
        train_subset="training",
        test_subset="validation",
        id_style="anet",
    ),
}


def get_config(config: SyntheticConfig | str) -> SyntheticConfig:
    """A preset by name, or the config itself; validated."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise DatasetError(f"unknown synthetic preset {config!r}; choose from {sorted(PRESETS)}")
        config = PRESETS[config]
    if not isinstance(config, SyntheticConfig):
        raise TypeError(f"expected SyntheticConfig or preset name, got {type(config).__name__}")
    config.validate()
    return config


# ------------------------------------------------------------------------------------------------
# Random streams
# ------------------------------------------------------------------------------------------------


def _rng(seed: int, tag: int, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, tag, index]))


@dataclass
class _World:
    """Parameters shared by all videos of a dataset (drawn from the world stream)."""

    background: np.ndarray  # (2, D) per modality
    prototypes: np.ndarray  # (2, K, D) class prototypes (unit per-dim std)
    distractors: np.ndarray  # (2, J, D) distractor prototypes
    context: np.ndarray  # (2, K, D) class scene vectors
    actionness: np.ndarray  # (2, D) class-agnostic motion energy, non-negative
    action_amp: np.ndarray  # (2,) per-modality amplitude of action evidence
    context_amp: np.ndarray  # (2,) per-modality amplitude of context evidence
    duration_scale: np.ndarray  # (K,) per-class factor on segment durations (lognormal length law)


def _make_world(cfg: SyntheticConfig, seed: int) -> _World:
    rng = _rng(seed, _TAG_WORLD, 0)
    d, k, j = cfg.feature_dim, cfg.num_classes, cfg.num_distractor_classes
    f32 = np.float32
    background = cfg.background_level + cfg.background_spread * rng.standard_normal((2, d), dtype=f32)
    prototypes = rng.standard_normal((2, k, d), dtype=f32)
    distractors = rng.standard_normal((2, j, d), dtype=f32)
    context = rng.standard_normal((2, k, d), dtype=f32)
    actionness = np.abs(rng.standard_normal((2, d), dtype=f32))
    # Energy split between modalities; total energy (sum of squares) is 2 for any share.
    fa, rc = cfg.flow_action_share, cfg.rgb_context_share
    action_amp = np.array([math.sqrt(2 * (1 - fa)), math.sqrt(2 * fa)], dtype=f32)
    context_amp = np.array([math.sqrt(2 * rc), math.sqrt(2 * (1 - rc))], dtype=f32)
    # A stream of its own, so the draws above (and the presets' bytes) do not depend on it.
    duration_scale = np.exp(cfg.class_duration_spread * _rng(seed, _TAG_WORLD, 1).standard_normal(k))
    return _World(
        background.astype(f32),
        prototypes,
        distractors,
        context,
        actionness,
        action_amp,
        context_amp,
        duration_scale,
    )


def _zipf_counts(n: int, k: int, exponent: float) -> np.ndarray:
    """Videos per class: Zipf proportions, largest-remainder rounding, every class >= 1 if n >= k."""
    w = 1.0 / np.arange(1, k + 1, dtype=np.float64) ** exponent
    w /= w.sum()
    if n >= k:
        base = np.ones(k, dtype=np.int64)
        rest = n - k
    else:
        base = np.zeros(k, dtype=np.int64)
        rest = n
    exact = w * rest
    counts = np.floor(exact).astype(np.int64)
    remainder = rest - counts.sum()
    order = np.lexsort((np.arange(k), -(exact - counts)))  # largest fraction first, ties by index
    counts[order[:remainder]] += 1
    return base + counts


def _primary_classes(cfg: SyntheticConfig, seed: int, split: str, n: int) -> np.ndarray:
    rng = _rng(seed, _TAG_SPLIT, _SPLIT_CODE[split])
    k = cfg.num_classes
    # Which class is most frequent is itself random (so class_00 is not always the head class).
    rank_to_class = rng.permutation(k)
    counts = _zipf_counts(n, k, cfg.class_imbalance)
    labels = np.repeat(rank_to_class, counts)
    return rng.permutation(labels)


# ------------------------------------------------------------------------------------------------
# One video
# ------------------------------------------------------------------------------------------------


@dataclass
class _Video:
    vid: str
    file_stem: str
    length: int
    segments: list[tuple[int, int, int]]  # (start, end_exclusive, class) annotated
    rgb: np.ndarray
    flow: np.ndarray


def _video_id(cfg: SyntheticConfig, split: str, index: int, rng: np.random.Generator) -> tuple[str, str]:
    if cfg.id_style == "thumos":
        subset = cfg.train_subset if split == "train" else cfg.test_subset
        vid = f"video_{subset}_{index + 1:07d}"
        return vid, vid
    # anet: 11 characters like YouTube ids; the first never "-" (friendlier on command lines).
    first = rng.integers(0, len(_ANET_ALPHABET) - 1)
    rest = rng.integers(0, len(_ANET_ALPHABET), size=10)
    vid = "".join(_ANET_ALPHABET[np.concatenate([[first], rest])])
    return vid, f"v_{vid}"


def _segment_count(cfg: SyntheticConfig, rng: np.random.Generator, length: int) -> int:
    """Annotated segments of a video of ``length`` snippets (``segment_count_law``), within bounds."""
    lo, hi = cfg.segments_per_video
    if cfg.segment_count_law == "lognormal":
        median = cfg.segment_count_center * (length / cfg.length_median) ** cfg.segment_count_length_exponent
        raw = rng.lognormal(math.log(median), cfg.segment_count_sigma) if cfg.segment_count_sigma > 0 else median
    else:  # geometric on 1, 2, ... with the given mean
        raw = rng.geometric(1.0 / cfg.segment_count_center)
    return int(np.clip(round(raw), lo, hi))


def _fit_budget(cfg: SyntheticConfig, lengths: np.ndarray, length: int) -> int:
    """How many segments (a prefix, annotated ones first) fit the action budget; shrinks the first if alone."""
    n = len(lengths)
    budget = max(1, math.floor(cfg.max_action_fraction * length))
    used = np.cumsum(lengths) + cfg.min_gap * np.arange(n)
    keep = max(1, int(np.sum(used <= budget)))
    lengths[0] = min(lengths[0], budget)
    return keep


def _plan_segments(
    cfg: SyntheticConfig, world: _World, rng: np.random.Generator, length: int, labels: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """Segment lengths, classes and the annotated mask of one video (annotated first, then
    distractors; placement comes after), and the video's labels that survived the budget."""
    if cfg.segment_count_law == "uniform" and cfg.segment_length_law == "uniform" and not cfg.segment_fraction_total:
        return _plan_segments_uniform(cfg, rng, length, labels)
    n_act = _segment_count(cfg, rng, length)
    n_dis = _distractor_count(cfg, rng, n_act)
    n = n_act + n_dis
    # Classes first: a segment's duration depends on its class.
    seg_cls = np.empty(n, dtype=np.int64)
    if len(labels) > 1 and n_act < 2:
        labels = labels[:1]
    seg_cls[:n_act] = rng.choice(labels, size=n_act)
    seg_cls[: len(labels)] = labels
    seg_cls[n_act:] = rng.integers(0, max(cfg.num_distractor_classes, 1), size=n_dis)
    lo, hi = cfg.segment_length
    if cfg.segment_fraction is not None:
        frac = rng.uniform(cfg.segment_fraction[0], cfg.segment_fraction[1], size=n)
        if cfg.segment_fraction_total:  # the video's total share, split among its segments
            frac = float(frac[0]) * rng.dirichlet(np.full(n, 2.0))
        raw = frac * length
    elif cfg.segment_length_law == "lognormal":
        scale = np.where(np.arange(n) < n_act, world.duration_scale[seg_cls.clip(max=cfg.num_classes - 1)], 1.0)
        raw = cfg.segment_length_median * scale * np.exp(cfg.segment_length_sigma * rng.standard_normal(n))
    else:
        raw = rng.integers(lo, hi + 1, size=n)
    lengths = np.clip(np.round(raw), lo, hi).astype(np.int64)
    keep = _fit_budget(cfg, lengths, length)
    lengths, seg_cls = lengths[:keep], seg_cls[:keep]
    n_act = min(n_act, keep)
    labels = [c for c in labels if (seg_cls[:n_act] == c).any()]
    return lengths, seg_cls, np.arange(keep) < n_act, labels


def _distractor_count(cfg: SyntheticConfig, rng: np.random.Generator, n_act: int) -> int:
    if not cfg.num_distractor_classes:
        return 0
    if cfg.distractor_rate <= 1:
        return int(rng.binomial(n_act, cfg.distractor_rate))
    return int(rng.poisson(cfg.distractor_rate * n_act))


def _plan_segments_uniform(
    cfg: SyntheticConfig, rng: np.random.Generator, length: int, labels: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """The original plan (uniform counts and lengths): its draws, in its order, keep the bytes of
    the presets that use it (tiny, small, thumos, anet) unchanged."""
    n_act = int(rng.integers(cfg.segments_per_video[0], cfg.segments_per_video[1] + 1))
    n_dis = _distractor_count(cfg, rng, n_act)
    n = n_act + n_dis
    if cfg.segment_fraction is not None:
        frac = rng.uniform(cfg.segment_fraction[0], cfg.segment_fraction[1], size=n)
        lengths = np.maximum(1, np.round(frac * length)).astype(np.int64)
        lengths = np.clip(lengths, cfg.segment_length[0], cfg.segment_length[1])
    else:
        lengths = rng.integers(cfg.segment_length[0], cfg.segment_length[1] + 1, size=n).astype(np.int64)
    keep = _fit_budget(cfg, lengths, length)
    lengths = lengths[:keep]
    n_act = min(n_act, keep)
    n = keep
    n_dis = n - n_act  # distractors that fit
    is_action = np.arange(n) < n_act

    # Classes: every label of the video appears at least once (else it is dropped).
    if len(labels) > 1 and n_act < 2:
        labels = labels[:1]
    seg_cls = np.empty(n, dtype=np.int64)
    if n_act:
        seg_cls[:n_act] = rng.choice(labels, size=n_act)
        seg_cls[: len(labels)] = labels
    if n_dis:
        seg_cls[n_act:] = rng.integers(0, cfg.num_distractor_classes, size=n_dis)
    return lengths, seg_cls, is_action, labels


class _VideoPlan(NamedTuple):
    """A video's length, labels and segments (annotated and distractors, in placement order)."""

    length: int
    labels: list[int]
    classes: np.ndarray  # (n,) class of each segment (distractor class where not annotated)
    is_action: np.ndarray  # (n,) annotated
    starts: np.ndarray  # (n,) first snippet
    ends: np.ndarray  # (n,) one past the last snippet


def _plan_video(cfg: SyntheticConfig, world, rng: np.random.Generator, primary: int) -> _VideoPlan:
    """Length, label set (primary + maybe a second class), segments and their placement (random order, random gaps
    >= ``min_gap``): the draws every signal model shares, in the order the lite presets' bytes depend on."""
    raw = cfg.length_median
    if cfg.length_sigma > 0:
        raw = rng.lognormal(math.log(cfg.length_median), cfg.length_sigma)
    length = int(np.clip(round(raw), cfg.min_length, cfg.max_length))
    labels = [int(primary)]
    if cfg.num_classes > 1 and rng.random() < cfg.multi_label_prob:
        other = int(rng.integers(0, cfg.num_classes - 1))
        labels.append(other + (other >= primary))
    lengths, seg_cls, is_action, labels = _plan_segments(cfg, world, rng, length, labels)
    n = len(lengths)
    order = rng.permutation(n)
    lengths, seg_cls, is_action = lengths[order], seg_cls[order], is_action[order]
    free = length - int(lengths.sum()) - cfg.min_gap * (n - 1)
    cuts = np.sort(rng.integers(0, free + 1, size=n))
    gaps = np.diff(np.concatenate([[0], cuts]))  # gap before each segment
    starts = np.cumsum(gaps + np.concatenate([[0], lengths[:-1] + cfg.min_gap]))
    ends = starts + lengths
    assert ends[-1] <= length, (starts, ends, length)
    return _VideoPlan(length, labels, seg_cls, is_action, starts, ends)


def _make_video(cfg: SyntheticConfig, world: _World, seed: int, split: str, index: int, primary: int) -> _Video:
    tag = _TAG_TRAIN_VIDEO if split == "train" else _TAG_TEST_VIDEO
    rng = _rng(seed, tag, index)
    vid, stem = _video_id(cfg, split, index, rng)
    d = cfg.feature_dim
    f32 = np.float32

    length, labels, seg_cls, is_action, starts, ends = _plan_video(cfg, world, rng, primary)
    n = len(starts)
    n_dis = int((~is_action).sum())

    # Snippet -> segment index (-1 = background).
    seg_of = np.full(length, -1, dtype=np.int64)
    for s, (a, b) in enumerate(zip(starts, ends, strict=True)):
        seg_of[a:b] = s
    t = np.arange(length)

    # Context profile: distance to the nearest annotated segment.
    act_idx = np.flatnonzero(is_action)
    a_st, a_en = starts[act_idx], ends[act_idx]
    dist = np.maximum(np.maximum(a_st[:, None] - t[None, :], t[None, :] - (a_en[:, None] - 1)), 0)
    nearest = act_idx[np.argmin(dist, axis=0)]
    profile = cfg.context_floor + (1 - cfg.context_floor) * np.exp(-dist.min(axis=0) / cfg.context_width)
    profile = (cfg.context_strength * profile).astype(f32)

    # Per-video draws (fixed order: the bytes depend on it).
    nuisance = cfg.video_nuisance * rng.standard_normal((2, d), dtype=f32)
    ctx_video = world.context[:, labels] + cfg.context_variation * rng.standard_normal(
        (2, len(labels), d), dtype=f32
    )  # (2, n_labels, D)
    instance = cfg.intra_class_variation * rng.standard_normal((2, n, d), dtype=f32)
    # Which of the video's labels each annotated segment shows (-1 for distractors).
    seg_label = np.full(n, -1, dtype=np.int64)
    for i, c in enumerate(labels):
        seg_label[is_action & (seg_cls == c)] = i

    on = seg_of >= 0
    seg_on = seg_of[on]
    feats = []
    for m in range(2):
        x = rng.standard_normal((length, d), dtype=f32)
        if cfg.noise != 1.0:
            x *= f32(cfg.noise)
        x += world.background[m] + nuisance[m]
        # Context (class of the nearest annotated segment).
        x += (world.context_amp[m] * profile)[:, None] * ctx_video[m][seg_label[nearest]]
        # Action / distractor evidence.
        proto = world.prototypes[m][np.where(is_action, seg_cls, 0)]
        if n_dis:
            proto[~is_action] = world.distractors[m][seg_cls[~is_action]]
        seg_vec = cfg.prototype_separation * proto + instance[m] + cfg.actionness_strength * world.actionness[m]
        x[on] += world.action_amp[m] * seg_vec.astype(f32)[seg_on]
        np.maximum(x, 0, out=x)
        feats.append(x)

    annotated = [(int(starts[s]), int(ends[s]), int(seg_cls[s])) for s in range(n) if is_action[s]]
    return _Video(vid, stem, length, annotated, feats[0], feats[1])


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------


def _seconds(snippets: int) -> float:
    return round(snippets * SNIPPET_SECONDS, 2)  # snippets * 16/25 is exact to 2 decimals


def _prepare_target(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists():
        if not out_dir.is_dir():
            raise DatasetError(f"{out_dir}: exists and is not a directory")
        if any(out_dir.iterdir()) and not overwrite:
            raise DatasetError(f"{out_dir}: exists and is not empty (overwrite it with --overwrite)")


def write_synthetic_dataset(
    config: SyntheticConfig | str,
    out_dir: str | Path,
    seed: int,
    overwrite: bool = False,
) -> Path:
    """Write a synthetic dataset (docs/method.md sec. 1.1 layout) to ``out_dir``; return its path.

    Built in a temporary sibling directory and renamed into place at the end, so ``out_dir`` is
    either absent/untouched or complete. Refuses a non-empty ``out_dir`` unless ``overwrite``.
    """
    cfg = get_config(config)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    out_dir = Path(out_dir).expanduser().absolute()
    _prepare_target(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _write_all(cfg, tmp, seed)
        _prepare_target(out_dir, overwrite)  # re-check: someone may have written meanwhile
        if out_dir.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, trash / "old")
            os.replace(tmp, out_dir)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _write_all(cfg: SyntheticConfig, root: Path, seed: int) -> None:
    os.chmod(root, 0o755)  # mkdtemp makes it 0700
    world = cfg.make_world(seed)
    names = cfg.class_names()
    database: dict[str, dict] = {}
    seen_stems: set[str] = set()
    splits = (("train", cfg.num_train, cfg.train_subset), ("test", cfg.num_test, cfg.test_subset))
    for split, n, subset in splits:
        for mod in ("rgb", "flow"):
            (root / "features" / split / mod).mkdir(parents=True, exist_ok=True)
        primaries = _primary_classes(cfg, seed, split, n)
        ids = []
        for i in range(n):
            v = cfg.make_video(world, seed, split, i, int(primaries[i]))
            if v.vid in database or v.file_stem in seen_stems:  # 64**11 ids: practically never
                raise RuntimeError(f"synthetic dataset: duplicate video id {v.vid!r}; try another seed")
            seen_stems.add(v.file_stem)
            np.save(root / "features" / split / "rgb" / f"{v.file_stem}.npy", v.rgb)
            np.save(root / "features" / split / "flow" / f"{v.file_stem}.npy", v.flow)
            database[v.vid] = {
                "subset": subset,
                "duration": _seconds(v.length),
                "annotations": [{"segment": [_seconds(a), _seconds(b)], "label": names[c]} for a, b, c in v.segments],
            }
            ids.append(v.vid)
        (root / f"split_{split}.txt").write_text("".join(f"{vid}\n" for vid in ids))
    (root / "classes.txt").write_text("".join(f"{c}\n" for c in names))
    (root / "gt.json").write_text(json.dumps({"database": database}, indent=1) + "\n")


def actionformer_positions(num_snippets: int, fps: float, stride: int = 4, window: int = 16) -> np.ndarray:
    """For each feature of the ActionFormer layout of a video of ``num_snippets`` CoLA snippets, the snippet it
    shows: feature ``i`` spans ``[t_i, t_{i+1})`` with ``t_i = (i*stride + window/2) / fps`` (docs/method.md sec. 1.1)
    and takes the snippet ``j`` (spanning ``[j*16/25, (j+1)*16/25)``) that holds its middle. As many features as
    full windows fit in the video's ``num_snippets * 16/25 * fps`` frames."""
    frames = int(np.floor(num_snippets * SNIPPET_SECONDS * fps + 1e-9))
    count = max(1, (frames - window) // stride + 1)
    middle = (np.arange(count) * stride + window / 2 + stride / 2) / fps
    return np.minimum(np.floor(middle / SNIPPET_SECONDS + 1e-9).astype(np.int64), num_snippets - 1)


def write_actionformer_copy(
    cola_root: str | Path,
    out_dir: str | Path,
    fps: float = 30.0,
    stride: int = 4,
    window: int = 16,
    name: str = "thumos14",
    feature_folder: str = "i3d_features",
    prefix: str = "",
    overwrite: bool = False,
) -> Path:
    """The videos of a CoLA-layout dataset (e.g. a ``utal synth`` one) written in the ActionFormer layout of
    docs/method.md sec. 1.1: ``annotations/<name>.json`` with ``fps``, ``duration``, ``label_id`` and capitalised
    subsets (as ActionFormer's THUMOS files), and one ``(L', D_rgb + D_flow)`` file per video, RGB first, resampled
    to ActionFormer's feature grid (:func:`actionformer_positions`). The same videos at the same seconds, so
    both layouts can be compared. Atomic like :func:`write_synthetic_dataset`."""
    from utal_lightning.data.layout import DatasetLayout, read_dataset  # no cycle at import time
    from utal_lightning.data.layouts.cola import CoLALayout

    index = read_dataset(DatasetLayout(cola_root, files=CoLALayout()), require_test_annotations=False)
    out_dir = Path(out_dir).expanduser().absolute()
    _prepare_target(out_dir, overwrite)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "annotations").mkdir()
        (tmp / feature_folder).mkdir()
        class_id = {c: i for i, c in enumerate(index.classes)}
        database: dict[str, dict] = {}
        for split, ids in index.splits.items():
            for vid in ids:
                rgb, flow = (np.load(path) for path in index.layout.feature_files(split, vid))
                taken = actionformer_positions(rgb.shape[0], fps, stride, window)
                np.save(tmp / feature_folder / f"{prefix}{vid}.npy", np.concatenate([rgb, flow], axis=1)[taken])
                annotation = index.annotations.get(vid)
                if annotation is None:
                    continue
                database[vid] = {
                    "subset": (annotation.subset or split).capitalize(),
                    "duration": annotation.duration
                    if annotation.duration is not None
                    else round(rgb.shape[0] * SNIPPET_SECONDS, 2),
                    "fps": fps,
                    "annotations": [
                        {"segment": [float(a), float(b)], "label": label, "label_id": class_id[label]}
                        for (a, b), label in zip(annotation.segments, annotation.labels, strict=True)
                    ],
                }
        (tmp / "annotations" / f"{name}.json").write_text(json.dumps({"database": database}, indent=1) + "\n")
        _prepare_target(out_dir, overwrite)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def override_config(config: SyntheticConfig | str, assignments: list[str]) -> SyntheticConfig:
    """Apply ``FIELD=VALUE`` overrides (``utal synth --set num_train=10``); tuples as JSON lists."""
    config = get_config(config)
    fields = {f.name for f in dataclasses.fields(config)}
    changes: dict[str, object] = {}
    for item in assignments:
        key, _, value = item.partition("=")
        if key not in fields:
            raise DatasetError(f"--set {item}: unknown field {key!r} of {type(config).__name__}")
        current = getattr(config, key)
        try:
            if isinstance(current, (bool, int, float, str)):
                changes[key] = type(current)(value)
            else:
                parsed = json.loads(value)
                changes[key] = tuple(parsed) if isinstance(parsed, list) else parsed
        except ValueError:
            raise DatasetError(f"--set {item}: {value!r} is not a valid {type(current).__name__}") from None
    return get_config(dataclasses.replace(config, **changes))


# The realistic scene family (thumos-real, thumos-real-scene, thumos-real-faint, anet-real): its own module, built
# on the size and segment fields above, registered here so that every preset is found by name in one table.
from utal_lightning.data.synthetic_scenes import SCENE_PRESETS  # noqa: E402 (it imports this module)

PRESETS.update(SCENE_PRESETS)
