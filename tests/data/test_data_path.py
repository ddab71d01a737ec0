"""The training data path: loader batches carry uniforms, features are gathered after transfer.

The reference here re-derives one epoch from the documented contract alone: with
``s = seed * 1_000_003 + iteration * 10_007 + epoch``, the video order is a permutation drawn from a
generator seeded ``2 s`` and every batch draws its (B, T) uniforms, in turn, from one seeded
``2 s + 1``; positions follow docs/method.md sec. 1.2 bin by bin (plain Python) and features come from ``np.load``
of each video's files.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.helpers.datasets import write_dataset
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.data.store import FeatureStore

T = 6


def reference_position(length: int, t: int, i: int, u: float) -> int:
    low = math.floor(i * length / t)
    high = math.floor((i + 1) * length / t) if i < t - 1 else length - 1
    high = max(low, high)
    return low + min(math.floor(u * (high - low + 1)), high - low)


def reference_epoch(dm: UTALDataModule, seed: int, iteration: int, epoch: int) -> list[tuple[list[int], np.ndarray]]:
    base = seed * 1_000_003 + iteration * 10_007 + epoch
    ids = dm.index.train_ids
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(2 * base)).tolist()
    generator = torch.Generator().manual_seed(2 * base + 1)
    batches = []
    for start in range(0, len(order), dm.batch_size):
        videos = order[start : start + dm.batch_size]
        uniform = torch.rand((len(videos), T), generator=generator).tolist()
        rows = []
        for v, u in zip(videos, uniform, strict=True):
            full = np.concatenate([np.load(path) for path in dm.layout.feature_files("train", ids[v])], axis=1).astype(
                np.float32
            )
            rows.append(full[[reference_position(len(full), T, i, u[i]) for i in range(T)]])
        batches.append((videos, np.stack(rows)))
    return batches


@pytest.fixture()
def many_videos(tmp_path):
    """Nine training videos of lengths 1..40 (shorter and longer than T) and one test video."""
    videos = {
        f"video_validation_{i}": ("train", length, None) for i, length in enumerate([1, 3, 5, 6, 7, 13, 20, 33, 40])
    }
    videos["video_test_1"] = ("test", 12, [{"segment": [1.0, 5.0], "label": "Walk"}])
    return write_dataset(tmp_path / "data", videos=videos)


def batches_of(dm: UTALDataModule) -> list[dict]:
    return [dm.on_after_batch_transfer(batch, 0) for batch in dm.train_dataloader()]


def labelled(root, **kwargs) -> UTALDataModule:
    dm = UTALDataModule(root, num_segments=T, batch_size=4, seed=3, **kwargs)
    dm.setup("fit")
    n = len(dm.index.train_ids)
    dm.set_pseudolabels(torch.arange(n) % 3, torch.ones(n, dtype=torch.bool), epochs=1)
    return dm


def test_device_path_batches_equal_the_reference_sampling(many_videos):
    dm = labelled(many_videos)
    got = batches_of(dm)
    expected = reference_epoch(dm, seed=3, iteration=1, epoch=0)
    assert [b["video_index"].tolist() for b in got] == [videos for videos, _ in expected]
    for batch, (_, features) in zip(got, expected, strict=True):
        assert batch["features"].dtype == torch.float32
        np.testing.assert_array_equal(batch["features"].numpy(), features)
    # The loader itself carries no features on the device path: only indices, uniforms, labels.
    raw = next(iter(dm.train_dataloader()))
    assert "features" not in raw and raw["uniform"].shape == (4, T)


@pytest.mark.parametrize("store_dtype,dtype", [("float16", torch.float16), ("bfloat16", torch.bfloat16)])
def test_half_precision_store_gives_rounded_float32_batches(many_videos, store_dtype, dtype):
    full = batches_of(labelled(many_videos))
    half_dm = labelled(many_videos, store_dtype=store_dtype)
    assert half_dm.train_store.features.dtype == dtype
    half = batches_of(half_dm)
    for a, b in zip(full, half, strict=True):
        assert torch.equal(a["video_index"], b["video_index"]) and b["features"].dtype == torch.float32
        assert torch.equal(b["features"], a["features"].to(dtype).float())


def test_pooling_batches_use_the_fixed_grid(many_videos):
    # docs/method.md sec. 1.2's test grid: T spread positions when L > T, else the video's own L snippets, zero-padded.
    dm = labelled(many_videos)
    dm.pool_batch_size = 4
    ids = dm.index.train_ids
    seen, short = [], 0
    for batch in dm.pooling_batches():
        for v, rows, n in zip(batch["video_index"].tolist(), batch["features"], batch["lengths"].tolist(), strict=True):
            full = np.concatenate([np.load(path) for path in dm.layout.feature_files("train", ids[v])], axis=1)
            if len(full) > T:
                assert n == T
                np.testing.assert_array_equal(rows.numpy(), full[[i * len(full) // T for i in range(T)]])
            else:
                short += 1
                assert n == len(full)
                np.testing.assert_array_equal(rows[:n].numpy(), full)
                assert not rows[n:].any()
            seen.append(v)
    assert seen == list(range(len(ids)))
    assert short > 0  # the fixture has videos shorter than T


def test_store_options_are_checked(many_videos):
    with pytest.raises(ValueError, match="store_dtype"):
        UTALDataModule(many_videos, store_dtype="int8")
    with pytest.raises(ValueError, match="store_device"):
        UTALDataModule(many_videos, store_device="gpu")
    with pytest.raises(ValueError, match="store_memory_fraction"):
        UTALDataModule(many_videos, store_memory_fraction=0.0)


@pytest.mark.parametrize(
    "store_device,free,expected",
    [("auto", 10_000, "device"), ("auto", 100, "host"), ("device", 100, "device"), ("host", 10**9, "host")],
)
def test_placement_on_a_gpu(many_videos, monkeypatch, store_device, free, expected):
    """Which way a store goes on a CUDA device (the GPU calls themselves are stubbed on this CPU)."""
    dm = UTALDataModule(many_videos, num_segments=T, store_device=store_device, store_memory_fraction=0.5)
    store = FeatureStore.load(dm.layout, "train", dm.index.train_ids)
    assert 100 < store.nbytes * 2 <= 10_000  # the stubbed free memory brackets the "auto" budget
    moves = []
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, 10**10))
    monkeypatch.setattr(FeatureStore, "to", lambda self, device: moves.append("device") or self)
    monkeypatch.setattr(FeatureStore, "pin_memory", lambda self: moves.append("host") or self)
    dm._place(store, torch.device("cuda", 0))
    assert moves == [expected]
    moves.clear()
    dm._place(store, torch.device("cpu"))
    assert moves == []  # CPU runs keep the store where it is


@pytest.mark.gpu
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (UTAL_TEST_CUDA=1)")
@pytest.mark.parametrize("store_device", ["device", "host"])
def test_cuda_batches_equal_cpu_batches(many_videos, store_device):
    cpu = batches_of(labelled(many_videos))
    dm = labelled(many_videos, store_device=store_device)
    dm.train_store = dm._place(dm.train_store, torch.device("cuda", 0))
    dm.trainer = None
    dm._root_device = lambda: torch.device("cuda", 0)
    for a, raw in zip(cpu, dm.train_dataloader(), strict=True):
        batch = dm.on_after_batch_transfer({k: v.cuda() for k, v in raw.items()}, 0)
        assert batch["features"].is_cuda and torch.equal(batch["features"].cpu(), a["features"])


def test_short_videos_are_pooled_and_voted_on_their_own_snippets(many_videos):
    # docs/method.md sec. 3.1: a video with L < T is pooled on its own L snippets (masked in the padded batch), the HAS
    # median, top-k (k from L) and vote use only those; a model's output there equals its output on the
    # video alone (IOCNet's k=3 conv zero-pads the sequence end like the batch padding).
    from utal_lightning.models.iocnet import IOCNet
    from utal_lightning.pseudo.clusterers import KMeansClusterer, SpectralClusterer
    from utal_lightning.pseudo.has import has_attention, has_pool
    from utal_lightning.pseudo.poolers import AttentionPooler, HASPooler, MeanPooler
    from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

    dm = UTALDataModule(many_videos, num_segments=T, batch_size=4)
    dm.setup("fit")
    store = dm.train_store
    torch.manual_seed(0)
    net = IOCNet(num_classes=2, feature_dim=dm.feature_dim, rgb_dim=dm.rgb_dim, hidden_dim=8).eval()
    copl = PseudoLabeler(HASPooler(gamma=2, subtract_background=False), SpectralClusterer())
    feel = PseudoLabeler(AttentionPooler(), KMeansClusterer(), first_pooler=MeanPooler())
    checked = 0
    with torch.no_grad():
        for batch in dm.pooling_batches():
            out, lengths = net(batch["features"]), batch["lengths"]
            votes = copl.epoch_observation(out, lengths)
            pooled, _ = copl.video_features(out, batch["features"], batch["video_index"], lengths)
            means, _ = feel.video_features(None, batch["features"], batch["video_index"], lengths)
            for row, v in enumerate(batch["video_index"].tolist()):
                x = store.video(v)[None]
                n = x.shape[1]
                if n > T:
                    continue
                alone = net(x)
                expected = has_attention(alone.attention, alone.agnostic_attention, 2)  # k = max(1, n // 2)
                torch.testing.assert_close(votes[row, :n], expected[0])
                assert not votes[row, n:].any()
                torch.testing.assert_close(pooled[row], has_pool(x, expected)[0])
                torch.testing.assert_close(means[row], torch.nn.functional.normalize(x[0].mean(0), dim=0))
                checked += 1
    assert checked == 4  # lengths 1, 3, 5, 6
