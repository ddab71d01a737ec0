"""Regression: weakly supervised IOCNet must not localize the gaps between actions (issue #10).

On long videos with many short actions, IOCNet's class-agnostic attention A_ca used to train into an
inverted map (high on background, low on the actions) for about half of the seeds: L_asl's positives
are the top-l snippets of h_cs, which A_ca dominates, so the ordering of A_ca's randomly initialized
head was reinforced whichever way it pointed. The heads now start at zero (docs/method.md, sec. 4.2).
This trains the real `utal fit` path (EMA teacher, feature shift, all COPL losses) on ground-truth
video labels of a small THUMOS-shaped dataset, for several seeds, and checks the teacher's maps on
the test videos.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.paths import CONFIGS
from utal_lightning.cli import main
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.data.synthetic import PRESETS, write_synthetic_dataset
from utal_lightning.models.iocnet import IOCNet
from utal_lightning.models.modules import IOCNetModule

T = 128
SEEDS = (4, 5, 6)  # with the default Conv1d init of the heads, A_ca inverted for 4 and 5 (2 of seeds 0-9)


@pytest.fixture(scope="module")
def thumos_shaped(tmp_path_factory) -> Path:
    # THUMOS'14 annotation statistics (~15 actions of ~3 s a video), short videos, 128 + 128 channels.
    cfg = dataclasses.replace(PRESETS["thumos-lite"], num_train=24, num_test=8, feature_dim=128, max_length=600)
    return write_synthetic_dataset(cfg, tmp_path_factory.mktemp("data") / "thumos_shaped", seed=0)


def action_mask(annotation, length: int, positions: int) -> np.ndarray:
    """Which of a video's grid positions (``positions`` of its ``length`` snippets) lie inside a segment."""
    seconds = (np.arange(positions) + 0.5) * length / positions * 16 / 25
    inside = np.zeros(positions, dtype=bool)
    for start, end in annotation.segments:
        inside |= (seconds >= start) & (seconds < end)
    return inside


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_weak_iocnet_attention_is_high_on_actions_not_between_them(thumos_shaped, tmp_path, seed):
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "thumos_copl.yaml"),
            "--config",
            str(CONFIGS / "ablations" / "weak.yaml"),
            "--data.init_args.root",
            str(thumos_shaped),
            "--trainer.default_root_dir",
            str(tmp_path),
            "--trainer.accelerator=cpu",
            "--trainer.enable_progress_bar=false",
            "--trainer.enable_model_summary=false",
            "--trainer.logger=false",
            "--seed_everything",
            str(seed),
            "--data.init_args.num_segments",
            str(T),
            "--data.init_args.batch_size=8",
            "--model.init_args.network.init_args.hidden_dim=32",
            "--model.init_args.shift_channels=64",
            "--model.init_args.optimizer.init_args.lr=0.001",
            "--loop.epochs_per_iteration=30",
            "--loop.test_iterations=none",
        ]
    )
    module = IOCNetModule.load_from_checkpoint(
        tmp_path / "checkpoints" / "last.ckpt",
        network=partial(IOCNet, hidden_dim=32),
        map_location="cpu",
        weights_only=False,
    )
    # the input the network was trained on (the shipped config subtracts each video's background)
    dm = UTALDataModule(thumos_shaped, num_segments=T, subtract_video_background=True)
    dm.setup("test")
    gaps_ca, gaps_h = [], []
    for i, vid in enumerate(dm.index.test_ids):
        batch = dm.test_videos()[i]
        out = module.localize(batch["features"])  # the EMA teacher
        annotation = dm.index.annotations[vid]
        inside = action_mask(annotation, int(dm.test_store.lengths[i]), out.cas.shape[1])
        label = dm.index.classes.index(annotation.main_label())
        a_ca, h = out.agnostic_attention[0].numpy(), out.h_cs[0, :, label].numpy()
        gaps_ca.append(a_ca[inside].mean() - a_ca[~inside].mean())
        gaps_h.append(h[inside].mean() - h[~inside].mean())
    # Every test video: A_ca higher on its actions than between them, clearly so on average (an
    # inverted map is lower on every video), and so is the localization map of its class.
    assert min(gaps_ca) > 0 and np.mean(gaps_ca) > 0.1, gaps_ca
    assert min(gaps_h) > 0, gaps_h
