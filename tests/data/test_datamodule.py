"""UTALDataModule on its own (no Trainer): the pseudolabel state, its checkpointed form, and the loaders it
builds from it (what an epoch trains on, which features a batch carries, the pooling grid, the test videos)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers.datasets import CLASSES, features, write_dataset
from tests.helpers.trainer import trainer_stub
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.errors import DatasetError

T = 6
LENGTHS = [3, 5, 6, 8, 9, 12, 14, 20]  # shorter than, equal to and longer than T
VIDEOS = {f"video_validation_{i}": ("train", length, None) for i, length in enumerate(LENGTHS)}
VIDEOS["video_test_1"] = ("test", 4, [{"segment": [0.0, 1.28], "label": "Walk"}])
VIDEOS["video_test_2"] = ("test", 11, [{"segment": [1.0, 5.0], "label": "Swim"}])


@pytest.fixture()
def root(tmp_path) -> Path:
    return write_dataset(tmp_path / "data", videos=VIDEOS)


def _datamodule(root: Path, **kwargs) -> UTALDataModule:
    dm = UTALDataModule(root, num_segments=T, batch_size=3, **kwargs)
    dm.setup("fit")
    return dm


def _video_features(vid: str) -> np.ndarray:
    """(L, D) rows the store must serve for ``vid``: rgb then flow channels."""
    _, length, _ = VIDEOS[vid]
    return np.concatenate([features(vid, length, 4, "rgb"), features(vid, length, 3, "flow")], axis=1)


def _label(dm: UTALDataModule, selected: list[int], epochs: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(dm.index.train_ids)
    labels = torch.arange(n) % dm.num_clusters
    mask = torch.zeros(n, dtype=torch.bool)
    mask[selected] = True
    dm.set_pseudolabels(labels, mask, epochs=epochs)
    return labels, mask


def _epoch(dm: UTALDataModule, **trainer) -> list[dict]:
    dm.trainer = trainer_stub(**{"uses_unlabeled": False, **trainer})
    return [dm.on_after_batch_transfer(batch, 0) for batch in dm.train_dataloader()]


def test_reads_the_dataset_at_construction(root):
    dm = UTALDataModule(root, num_segments=T)
    assert dm.index.train_ids == [f"video_validation_{i}" for i in range(len(LENGTHS))]
    assert dm.index.test_ids == ["video_test_1", "video_test_2"]
    assert (dm.feature_dim, dm.rgb_dim) == (7, 4)
    assert dm.num_clusters == len(CLASSES)  # K defaults to the class list
    assert UTALDataModule(root, num_clusters=5).num_clusters == 5
    assert dm.iteration == 0 and dm.epoch_plan == [] and (dm.labels == -1).all() and not dm.selected.any()


def test_bad_arguments_and_a_missing_root_are_clear_errors(root, tmp_path):
    with pytest.raises(ValueError, match="store_memory_fraction"):
        UTALDataModule(root, store_memory_fraction=0.0)
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetError, match=f"{missing}: dataset root not found.*utal synth"):
        UTALDataModule(missing)


def test_no_training_loader_before_the_first_pseudolabels(root):
    dm = _datamodule(root)
    dm.trainer = trainer_stub()
    with pytest.raises(RuntimeError, match="no pseudolabels yet"):
        dm.train_dataloader()


def test_each_set_pseudolabels_starts_an_iteration(root):
    dm = _datamodule(root)
    _label(dm, [0, 1], epochs=3)
    _label(dm, [0, 1, 2, 3], epochs=5)
    assert dm.iteration == 2 and dm.epoch_plan == [3, 5] and dm.iteration_end_epoch == 8
    assert dm.selected_indices.tolist() == [0, 1, 2, 3]


def test_the_state_round_trips_and_refuses_other_videos(root, tmp_path):
    dm = _datamodule(root)
    labels, mask = _label(dm, [1, 4, 6], epochs=4)
    state = dm.state_dict()
    labels += 1  # the state is a copy, not a view of the live tensors
    restored = _datamodule(root)
    restored.load_state_dict(state)
    assert torch.equal(restored.labels, torch.arange(len(LENGTHS)) % 3)
    assert torch.equal(restored.selected, mask)
    assert (restored.iteration, restored.epoch_plan) == (1, [4])

    other = dict(VIDEOS)
    other["video_validation_99"] = ("train", 7, None)
    elsewhere = _datamodule(write_dataset(tmp_path / "other", videos=other))
    with pytest.raises(DatasetError, match="training videos differ"):
        elsewhere.load_state_dict(state)


def test_an_epoch_covers_the_selected_set_once_with_one_hot_targets(root):
    dm = _datamodule(root)
    labels, _ = _label(dm, [0, 2, 3, 5, 7])
    batches = _epoch(dm)
    seen = torch.cat([b["video_index"] for b in batches])
    assert sorted(seen.tolist()) == [0, 2, 3, 5, 7]
    assert [len(b["video_index"]) for b in batches] == [3, 2]
    for b in batches:
        assert torch.equal(b["targets"], torch.nn.functional.one_hot(labels[b["video_index"]], 3).float())
        assert b["supervised"].all()


def test_models_that_learn_from_u_get_every_video_with_the_p_mask(root):
    dm = _datamodule(root)
    _, mask = _label(dm, [1, 6])
    batches = _epoch(dm, uses_unlabeled=True)
    seen = torch.cat([b["video_index"] for b in batches])
    assert sorted(seen.tolist()) == list(range(len(LENGTHS)))
    for b in batches:
        assert torch.equal(b["supervised"], mask[b["video_index"]])


def test_multi_hot_targets_replace_one_hot_labels(root):
    dm = _datamodule(root)
    n = len(LENGTHS)
    targets = torch.zeros(n, 3)
    targets[:, 0] = 1.0
    targets[::2, 2] = 1.0
    dm.set_pseudolabels(torch.zeros(n, dtype=torch.int64), torch.ones(n, dtype=torch.bool), 1, targets=targets)
    for b in _epoch(dm):
        assert torch.equal(b["targets"], targets[b["video_index"]])


def test_batches_carry_each_videos_own_snippets_in_temporal_order(root):
    dm = _datamodule(root)
    _label(dm, list(range(len(LENGTHS))))
    for b in _epoch(dm):
        assert b["features"].shape == (len(b["video_index"]), T, 7)
        for i, rows in zip(b["video_index"].tolist(), b["features"], strict=True):
            own = torch.from_numpy(_video_features(dm.index.train_ids[i]))
            # every sampled row is one of the video's snippets, and positions never go backwards
            matches = (rows[:, None, :] == own[None, :, :]).all(-1)
            assert matches.any(1).all(), dm.index.train_ids[i]
            positions = matches.float().argmax(1)
            assert (positions[1:] >= positions[:-1]).all()


def test_the_order_is_seeded_by_seed_iteration_and_epoch(root):
    def order(seed: int, epoch: int) -> list[int]:
        dm = _datamodule(root, seed=seed)
        _label(dm, list(range(len(LENGTHS))))
        return torch.cat([b["video_index"] for b in _epoch(dm, epoch=epoch)]).tolist()

    assert order(0, 0) == order(0, 0)
    orders = {tuple(order(seed, epoch)) for seed in (0, 1) for epoch in (0, 1, 2)}
    assert len(orders) > 1  # 8! orders: seeds and epochs that all shuffle alike would be a bug


def test_pooling_uses_the_fixed_grid_and_zero_pads_short_videos(root):
    dm = _datamodule(root, pool_batch_size=3)
    batches = list(dm.pooling_batches())
    assert [len(b["video_index"]) for b in batches] == [3, 3, 2]
    for b in batches:
        for i, length, rows in zip(b["video_index"].tolist(), b["lengths"].tolist(), b["features"], strict=True):
            own = torch.from_numpy(_video_features(dm.index.train_ids[i]))
            L = len(own)
            assert length == min(L, T)
            # L > T: positions floor(j L / T); else the video's own snippets, then zeros
            expected = own[[j * L // T for j in range(T)]] if L > T else torch.cat([own, torch.zeros(T - L, 7)])
            assert torch.equal(rows, expected), dm.index.train_ids[i]
    shard = list(dm.pooling_batches(torch.tensor([6, 2])))
    assert shard[0]["video_index"].tolist() == [6, 2]


def test_test_videos_one_at_a_time_on_the_test_grid(root):
    dm = _datamodule(root)
    videos = list(dm.test_dataloader())
    assert [int(v["video_index"][0]) for v in videos] == [0, 1]
    short, long = videos
    assert torch.equal(short["features"][0], torch.from_numpy(_video_features("video_test_1")))  # L <= T: all of it
    assert short["features"].shape == (1, 4, 7) and long["features"].shape == (1, T, 7)
    # 0.64 s per snippet (the CoLA layout): a grid step spans L / T snippets of a long video
    assert short["seconds_per_step"] == pytest.approx(0.64)
    assert long["seconds_per_step"] == pytest.approx(0.64 * 11 / T)


def test_video_backgrounds_are_subtracted_from_every_batch_and_the_label_free_actionness_is_kept(root):
    # data.subtract_video_background: training, pooling and test features lose each video's label-free background,
    # and the label-free actionness of a pooling batch is that of the features as read.
    from utal_lightning.pseudo.pooling import deviation_actionness, label_free_background

    plain, shifted = _datamodule(root), _datamodule(root, subtract_video_background=True)
    as_read = torch.cat([plain.train_store.video(i) for i in range(len(plain.train_store))]).double().mean(0).float()
    for a, b in zip(plain.pooling_batches(), shifted.pooling_batches(), strict=True):
        index, lengths = a["video_index"], a["lengths"]
        backgrounds = torch.stack([label_free_background(plain.train_store.video(i), as_read) for i in index.tolist()])
        valid = (torch.arange(a["features"].shape[1])[None] < lengths[:, None])[..., None]
        torch.testing.assert_close(b["features"], (a["features"] - backgrounds[:, None]) * valid)
        # what the pseudolabeler pools with pool_features_as_read: the backgrounds back, the padding still zero
        torch.testing.assert_close(shifted.as_read(b), a["features"])
        torch.testing.assert_close(plain.as_read(a), a["features"])
        torch.testing.assert_close(
            deviation_actionness(b["features"], shifted.label_free_reference(index), lengths),
            deviation_actionness(a["features"], plain.label_free_reference(index), lengths),
        )
    test = shifted.test_videos()[1]
    torch.testing.assert_close(
        test["features"][0],
        plain.test_videos()[1]["features"][0] - label_free_background(plain.test_store.video(1), as_read),
    )
    for dm in (plain, shifted):
        _label(dm, selected=list(range(len(LENGTHS))))
    for a, b in zip(_epoch(plain), _epoch(shifted), strict=True):  # the same seeded samples, backgrounds off
        backgrounds = torch.stack(
            [label_free_background(plain.train_store.video(i), as_read) for i in a["video_index"].tolist()]
        )
        torch.testing.assert_close(b["features"], a["features"] - backgrounds[:, None])


@pytest.mark.parametrize("first", [True, False])
def test_pooling_the_features_as_read_pools_what_a_run_without_the_subtraction_pools(root, first):
    # docs/method.md sec. 3.1.5: with pool_features_as_read the clustering sees each video's scene although the
    # network's input lost it; without it, it sees the subtracted input.
    from types import SimpleNamespace

    from utal_lightning.loop.reading import pool_training_videos
    from utal_lightning.models.outputs import LocalizationOutput
    from utal_lightning.pseudo.clusterers import KMeansClusterer
    from utal_lightning.pseudo.poolers import AttentionPooler, DeviationPooler
    from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

    def localize(features, lengths=None):  # a fixed "network": attention from the first channel as read
        attention = torch.sigmoid(features[..., 0])
        return LocalizationOutput(attention[..., None], attention, torch.ones(len(features), 1), features)

    module = SimpleNamespace(device=torch.device("cpu"), localize=localize)

    def pooled(dm, as_read):
        labeler = PseudoLabeler(
            AttentionPooler(subtract_background=False),
            KMeansClusterer(),
            first_pooler=DeviationPooler(fraction=0.5, subtract_background=False),
            pool_features_as_read=as_read,
        )
        trainer = SimpleNamespace(datamodule=dm, global_rank=0, world_size=1)
        return pool_training_videos(trainer, module, labeler, use_model=not first, diagnostics=False).features

    plain, shifted = _datamodule(root), _datamodule(root, subtract_video_background=True)
    if first:  # the label-free weights are the same either way: only what they pool differs
        torch.testing.assert_close(pooled(shifted, as_read=True), pooled(plain, as_read=False))
    else:  # the network reads its own input (shifted); the pooled features are the features as read
        expected = []
        pooler = AttentionPooler(subtract_background=False)
        for a, b in zip(plain.pooling_batches(), shifted.pooling_batches(), strict=True):
            output = localize(b["features"])
            expected.append(pooler.video_features(output, a["features"], a["video_index"], a["lengths"])[0])
        torch.testing.assert_close(pooled(shifted, as_read=True), torch.cat(expected))
    assert not torch.allclose(pooled(shifted, as_read=False), pooled(shifted, as_read=True))
