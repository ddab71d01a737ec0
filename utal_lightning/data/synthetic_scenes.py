"""The realistic synthetic family (``thumos-real*``, ``anet-real``): scene worlds without the lite presets' shortcuts.

The ``-lite`` presets of :mod:`utal_lightning.data.synthetic` are test beds with shortcuts that real I3D
features do not offer: one background vector shared by every video, a per-video constant offset (what
background subtraction cancels), temporally white noise, class context that peaks at the annotated segments,
flat class prototypes identical in train and test and, on two of them, one non-negative vector on every action
snippet (a snippet's norm alone finds the actions). This model keeps the lite presets' video counts, lengths
and annotation statistics (their size and segment fields) and replaces the signal (docs/method.md sec. 6.2)::

    z_t = level + (1 - replace * e_t) * scene_t + e_t * action_t + d_t * motion_t + camera_t + noise_t
    x_t = ReLU(z_t)

- ``scene_t``: the video's scene, drawn around the *venue* of its primary class (``num_venues`` venues, each
  shared by several classes: the scene says the venue and, by ``class_scene_strength``, a little of the class),
  plus a per-video draw (``scene_variation``) and a per-shot offset (shots of geometric length
  ``shot_length_mean``, ``shot_variation``). Flat over the video apart from the shots: it does not peak at
  the actions.
- ``action_t``: the action of an annotated segment, on its envelope ``e_t`` (ramps of ``ramp`` snippets at
  both ends): the class's ``num_phases`` phase prototypes interpolated along the segment, plus a per-instance
  offset (``instance_variation``); the test split's prototypes are shifted by ``test_shift``. It *replaces*
  ``replace`` of the scene at its peak and carries ``action_strength`` times the energy it replaced, so the
  norm is a weak cue (1.0: the same energy).
- ``motion_t``: un-annotated motion: distractor segments (people moving; ``num_distractor_classes``
  prototypes, ``distractor_rate`` per annotated segment) and camera pans (a share ``pan_prob`` of the shots
  gets one of four pan directions, mostly in flow) - the things that make "far from the video's mean" also
  fire outside the actions.
- ``noise_t``: AR(1) Gaussian noise with ``noise_correlation`` between adjacent snippets (16-frame windows
  overlap), per-dimension std ``noise``.

Modalities: the scene lies mostly in RGB (``rgb_context_share``), the action mostly in flow
(``flow_action_share``), each at total energy 2 as in the lite model. Features are non-negative.

The presets form a family of worlds, so that a default must hold across them rather than fit one:
``thumos-real`` (the scene says a little of the class; medium actions), ``thumos-real-scene`` (the scene says
much of the class), ``thumos-real-faint`` (faint actions that replace less of the scene), ``anet-real``
(ActivityNet's statistics, one or two long actions a video). Each is held inside a difficulty band by
``tests/data/test_synthetic_scenes.py``; ``utal synth --describe`` prints its label-free cues.

numpy and scipy only (no torch, no Lightning).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from utal_lightning.data import synthetic as lite

__all__ = ["SCENE_PRESETS", "SceneWorldConfig"]

_WORLD_STREAM = 2  # index of the scene world's stream under the world tag (0 and 1 are the lite model's)
_NUM_PAN_DIRECTIONS = 4


@dataclass(frozen=True)
class SceneWorldConfig(lite.SyntheticConfig):
    """The size and segment fields of :class:`~utal_lightning.data.synthetic.SyntheticConfig` plus the scene
    model's own signal fields (module docstring). Of the lite signal fields only ``background_level`` (a scalar
    level here), ``noise``, ``flow_action_share``, ``rgb_context_share`` (scene share in RGB) and the distractor
    fields are read."""

    num_venues: int = 5  # venues the classes are spread over (several classes a venue)
    venue_strength: float = 1.0  # per-dimension std of a venue's scene vector
    class_scene_strength: float = 0.3  # the class's own part of the scene (how much the scene says the class)
    scene_variation: float = 0.8  # per-video scene draw around its venue
    shot_length_mean: float = 40.0  # snippets a shot (geometric)
    shot_variation: float = 0.5  # per-shot offset of the scene
    action_strength: float = 1.3  # energy of the action relative to the scene energy it replaces (motion is energetic)
    replace: float = 0.5  # share of the scene an action replaces at its peak
    num_phases: int = 3  # phase prototypes a class, interpolated along each segment
    phase_similarity: float = 0.6  # correlation of a class's phases with its mean motion
    instance_variation: float = 0.5  # per-segment offset around the class's phases
    test_shift: float = 0.3  # the test split's prototypes are the training ones plus this much noise
    ramp: float = 2.0  # snippets of rise and fall at each end of an action or a distractor
    motion_strength: float = 1.0  # energy of an un-annotated motion (distractor) relative to an action's
    pan_prob: float = 0.25  # share of the shots with a camera pan
    pan_strength: float = 0.8  # per-dimension std of a pan's flow vector
    noise_correlation: float = 0.7  # AR(1) coefficient of the noise between adjacent snippets

    def validate(self) -> None:
        super().validate()

        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"SceneWorldConfig.{field}={getattr(self, field)!r}: {why}")

        for f in ("num_venues", "num_phases"):
            if int(getattr(self, f)) < 1:
                raise bad(f, "must be >= 1")
        if self.num_venues > self.num_classes:
            raise bad("num_venues", f"must be <= num_classes ({self.num_classes})")
        for f in ("replace", "phase_similarity", "pan_prob"):
            if not 0 <= float(getattr(self, f)) <= 1:
                raise bad(f, "must be in [0, 1]")
        if not 0 <= self.noise_correlation < 1:
            raise bad("noise_correlation", "must be in [0, 1)")
        if self.shot_length_mean < 1:
            raise bad("shot_length_mean", "must be >= 1")
        for f in (
            "venue_strength",
            "class_scene_strength",
            "scene_variation",
            "shot_variation",
            "action_strength",
            "instance_variation",
            "test_shift",
            "ramp",
            "motion_strength",
            "pan_strength",
        ):
            if float(getattr(self, f)) < 0:
                raise bad(f, "must be >= 0")

    def scene_energy(self) -> float:
        """Per-dimension std of the scene (venue + class part + video draw + shot offset)."""
        return math.sqrt(
            self.venue_strength**2 + self.class_scene_strength**2 + self.scene_variation**2 + self.shot_variation**2
        )

    def make_world(self, seed: int) -> _SceneWorld:
        return _make_scene_world(self, seed)

    def make_video(self, world, seed: int, split: str, index: int, primary: int) -> lite._Video:
        return _make_scene_video(self, world, seed, split, index, primary)


@dataclass
class _SceneWorld:
    """What every video of a dataset shares (the world stream)."""

    venue_of_class: np.ndarray  # (K,) venue index of each class
    venues: np.ndarray  # (2, V, D)
    class_scenes: np.ndarray  # (2, K, D)
    phases: dict[str, np.ndarray]  # split -> (2, K, P, D) unit-std phase prototypes
    distractors: np.ndarray  # (2, J, D) unit-std
    pans: np.ndarray  # (2, 4, D) pan directions (RGB part small)
    scene_amp: np.ndarray  # (2,) per-modality amplitude of the scene
    action_amp: np.ndarray  # (2,) per-modality amplitude of actions and motion
    duration_scale: np.ndarray  # (K,) per-class factor on segment durations (the lite segment planner reads it)


def _make_scene_world(cfg: SceneWorldConfig, seed: int) -> _SceneWorld:
    rng = lite._rng(seed, lite._TAG_WORLD, _WORLD_STREAM)
    d, k, p = cfg.feature_dim, cfg.num_classes, cfg.num_phases
    f32 = np.float32
    # Every venue gets at least one class; the rest at random (several classes share a venue).
    venue_of_class = np.concatenate([np.arange(cfg.num_venues), rng.integers(0, cfg.num_venues, k - cfg.num_venues)])
    venue_of_class = rng.permutation(venue_of_class)
    venues = rng.standard_normal((2, cfg.num_venues, d), dtype=f32)
    class_scenes = rng.standard_normal((2, k, d), dtype=f32)
    mean_motion = rng.standard_normal((2, k, 1, d), dtype=f32)
    own = rng.standard_normal((2, k, p, d), dtype=f32)
    c = cfg.phase_similarity
    train_phases = (c * mean_motion + math.sqrt(1 - c * c) * own).astype(f32)
    shift = rng.standard_normal((2, k, p, d), dtype=f32)
    test_phases = ((train_phases + cfg.test_shift * shift) / math.sqrt(1 + cfg.test_shift**2)).astype(f32)
    distractors = rng.standard_normal((2, cfg.num_distractor_classes, d), dtype=f32)
    pans = rng.standard_normal((2, _NUM_PAN_DIRECTIONS, d), dtype=f32)
    pans[0] *= 0.3  # a pan shows in flow; in RGB only as blur
    fa, rc = cfg.flow_action_share, cfg.rgb_context_share
    scene_amp = np.array([math.sqrt(2 * rc), math.sqrt(2 * (1 - rc))], dtype=f32)
    action_amp = np.array([math.sqrt(2 * (1 - fa)), math.sqrt(2 * fa)], dtype=f32)
    duration_scale = np.exp(cfg.class_duration_spread * lite._rng(seed, lite._TAG_WORLD, 1).standard_normal(k))
    return _SceneWorld(
        venue_of_class,
        venues,
        class_scenes,
        {"train": train_phases, "test": test_phases},
        distractors,
        pans,
        scene_amp,
        action_amp,
        duration_scale,
    )


def _envelope(start: int, end: int, ramp: float) -> np.ndarray:
    """(end - start,) rise and fall of ``ramp`` snippets at both ends of a segment, 1 in between (a segment
    shorter than two ramps peaks below 1)."""
    t = np.arange(start, end) + 0.5
    if ramp <= 0:
        return np.ones(end - start, dtype=np.float32)
    rise = (t - start) / ramp
    fall = (end - t) / ramp
    return np.clip(np.minimum(rise, fall), 0.0, 1.0).astype(np.float32)


def _shots(rng: np.random.Generator, length: int, mean: float) -> np.ndarray:
    """(L,) shot index of every snippet: shot lengths geometric with the given mean."""
    cuts = np.cumsum(rng.geometric(1.0 / mean, size=length + 1))
    return np.searchsorted(cuts, np.arange(length), side="right")


def _make_scene_video(
    cfg: SceneWorldConfig, world: _SceneWorld, seed: int, split: str, index: int, primary: int
) -> lite._Video:
    tag = lite._TAG_TRAIN_VIDEO if split == "train" else lite._TAG_TEST_VIDEO
    rng = lite._rng(seed, tag, index)
    vid, stem = lite._video_id(cfg, split, index, rng)
    d = cfg.feature_dim
    f32 = np.float32

    length, _, seg_cls, is_action, starts, ends = lite._plan_video(cfg, world, rng, primary)
    n = len(starts)

    # The scene: venue of the primary class + the class's part + this video's draw; shots add their offsets.
    venue = world.venue_of_class[primary]
    video_scene = (
        cfg.venue_strength * world.venues[:, venue]
        + cfg.class_scene_strength * world.class_scenes[:, primary]
        + cfg.scene_variation * rng.standard_normal((2, d), dtype=f32)
    )  # (2, D)
    shot_of = _shots(rng, length, cfg.shot_length_mean)
    num_shots = int(shot_of[-1]) + 1
    shot_offsets = cfg.shot_variation * rng.standard_normal((2, num_shots, d), dtype=f32)
    panning = rng.random(num_shots) < cfg.pan_prob
    pan_direction = rng.integers(0, _NUM_PAN_DIRECTIONS, size=num_shots)
    pan_speed = rng.uniform(0.5, 1.5, size=num_shots).astype(f32)
    instance = cfg.instance_variation * rng.standard_normal((2, n, d), dtype=f32)
    noise_draw = rng.standard_normal((2, length, d), dtype=f32)

    # Energies: at every point of its envelope an action (or a distractor) carries action_strength x the scene
    # energy it replaces there: with action_strength 1 the norm neither rises nor falls along it.
    action_scale = cfg.action_strength * cfg.scene_energy() / math.sqrt(1 + cfg.instance_variation**2)
    phases = world.phases["train" if split == "train" else "test"]
    replace_weight = np.zeros(length, dtype=f32)  # replace * envelope of the annotated actions and distractors

    feats = []
    for m in range(2):
        x = np.empty((length, d), dtype=f32)
        x[:] = world.scene_amp[m] * (video_scene[m][None] + shot_offsets[m][shot_of])
        motion = np.zeros((length, d), dtype=f32)
        for i in range(n):
            a, b = int(starts[i]), int(ends[i])
            env = _envelope(a, b, cfg.ramp)
            replaced = np.sqrt(1 - (1 - cfg.replace * env) ** 2)  # share of the scene energy replaced
            if is_action[i]:
                u = (np.arange(a, b) - a + 0.5) / (b - a) * (cfg.num_phases - 1)  # position among the phases
                lo_ = np.floor(u).astype(np.int64).clip(max=cfg.num_phases - 1)
                hi_ = np.minimum(lo_ + 1, cfg.num_phases - 1)
                w = (u - lo_).astype(f32)[:, None]
                shape = (1 - w) * phases[m, seg_cls[i], lo_] + w * phases[m, seg_cls[i], hi_]
                strength = action_scale
            else:
                shape = np.broadcast_to(world.distractors[m, seg_cls[i]], (b - a, d))
                strength = action_scale * cfg.motion_strength
            motion[a:b] += (world.action_amp[m] * strength) * replaced[:, None] * (shape + instance[m, i])
            if m == 0:
                replace_weight[a:b] = np.maximum(replace_weight[a:b], cfg.replace * env)
        x *= (1 - replace_weight)[:, None]
        x += motion
        pan = np.where(panning[shot_of], pan_speed[shot_of], 0.0).astype(f32)
        x += cfg.pan_strength * pan[:, None] * world.pans[m, pan_direction[shot_of]]
        rho = cfg.noise_correlation
        noise = lfilter([math.sqrt(1 - rho * rho)], [1.0, -rho], noise_draw[m], axis=0).astype(f32)
        x += cfg.noise * noise + f32(cfg.background_level)
        np.maximum(x, 0, out=x)
        feats.append(x)

    annotated = [(int(starts[i]), int(ends[i]), int(seg_cls[i])) for i in range(n) if is_action[i]]
    return lite._Video(vid, stem, length, annotated, feats[0], feats[1])


def _shape_of(config: lite.SyntheticConfig) -> dict:
    """A lite preset's size and segment fields (its signal fields are the lite model's)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(lite.SyntheticConfig)}


_THUMOS_REAL = SceneWorldConfig(
    **{
        **_shape_of(lite.PRESETS["thumos-lite"]),
        "noise": 0.6,
        "background_level": 0.3,
        "num_distractor_classes": 5,
        "distractor_rate": 0.3,
    },
)

SCENE_PRESETS: dict[str, SceneWorldConfig] = {
    # THUMOS'14's statistics (thumos-lite's videos and segments): 5 venues for 20 classes, the scene says a
    # little of the class, medium actions.
    "thumos-real": _THUMOS_REAL,
    # The scene says much of the class (mean pooling clusters far better; still 0.15 of NMI below the oracle).
    "thumos-real-scene": dataclasses.replace(_THUMOS_REAL, class_scene_strength=0.4),
    # Faint actions: they replace less of the scene and carry little more than its energy (the distance from the
    # mean snippet finds them barely better than chance).
    "thumos-real-faint": dataclasses.replace(_THUMOS_REAL, replace=0.3, action_strength=1.2),
    # ActivityNet v1.2's statistics (anet-lite's videos and segments): 20 venues for 100 classes.
    "anet-real": SceneWorldConfig(
        **{
            **_shape_of(lite.PRESETS["anet-lite"]),
            "num_venues": 20,
            "class_scene_strength": 0.15,  # 100 classes on 20 venues: the scene names the class among five
            "action_strength": 1.15,  # long actions: at 1.3 their norm alone would find them (AUC 0.76)
            "noise": 0.6,
            "background_level": 0.3,
            "distractor_rate": 0.3,
        },
    ),
}
