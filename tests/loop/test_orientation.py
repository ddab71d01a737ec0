"""The loop's label-free orientation of IOCNet's actionness (docs/method.md sec. 4.2.2) on the tiny preset: what the
loop reads does not depend on which way the class-agnostic heads were trained, and the paper's form reads them as
they are."""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
import torch

from tests.helpers.models import iocnet_module, randomize_agnostic_heads
from utal_lightning.data.datamodule import UTALDataModule
from utal_lightning.loop.reading import read_network
from utal_lightning.models.iocnet import IOCNet
from utal_lightning.models.modules import IOCNetModule
from utal_lightning.pseudo.clusterers import SpectralClusterer
from utal_lightning.pseudo.poolers import HASPooler
from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

pytestmark = pytest.mark.usefixtures("one_thread")


def _setting(tiny):
    datamodule = UTALDataModule(tiny, num_segments=16)
    datamodule.setup("fit")
    trainer = SimpleNamespace(datamodule=datamodule, global_rank=0, world_size=1)
    return trainer, PseudoLabeler(HASPooler(), SpectralClusterer())


def _module(datamodule, seed: int, **kwargs) -> IOCNetModule:
    torch.manual_seed(seed)
    module = iocnet_module(
        num_classes=datamodule.num_clusters,
        feature_dim=datamodule.feature_dim,
        rgb_dim=datamodule.rgb_dim,
        hidden_dim=16,
        use_co=False,
        **kwargs,
    )
    randomize_agnostic_heads(module.model, std=2.0)
    return module


def _negate_agnostic_heads(module: IOCNetModule) -> None:
    with torch.no_grad():
        for head in (module.model.attention_rgb, module.model.attention_flow):
            head.weight.neg_()
            head.bias.neg_()


@pytest.mark.parametrize("seed", range(6))
def test_what_the_loop_reads_does_not_depend_on_the_heads_sign(tiny, seed):
    trainer, pseudolabeler = _setting(tiny)
    module = _module(trainer.datamodule, seed)
    batch = next(iter(trainer.datamodule.pooling_batches()))
    reading = read_network(trainer, module, pseudolabeler, observe=False)
    first_sign, first = float(module.actionness_sign), module.localize(batch["features"], lengths=batch["lengths"])
    assert reading.reversed == (first_sign < 0) and reading.observation is None
    _negate_agnostic_heads(module)  # the same network trained "the other way round": A_ca -> 1 - A_ca
    reading = read_network(trainer, module, pseudolabeler, observe=False)
    second = module.localize(batch["features"], lengths=batch["lengths"])
    assert float(module.actionness_sign) == -first_sign
    assert reading.reversed == (first_sign > 0)
    for name in ("agnostic_attention", "h_cs", "video_scores"):
        torch.testing.assert_close(getattr(second, name), getattr(first, name), msg=name)
    torch.testing.assert_close(second.attention, 1 - first.attention)  # A_cs is not the heads': reversed with them


def test_the_oriented_actionness_runs_with_the_label_free_one(tiny):
    trainer, pseudolabeler = _setting(tiny)
    module = _module(trainer.datamodule, 0)
    for flip in (False, True):
        if flip:
            _negate_agnostic_heads(module)
        read_network(trainer, module, pseudolabeler, observe=False)
        total = []  # the slow way: Pearson per training video over its real positions, then the mean
        for batch in trainer.datamodule.pooling_batches():
            output = module.localize(batch["features"], lengths=batch["lengths"])
            reference = trainer.datamodule.label_free_reference(batch["video_index"])
            distance = (batch["features"] - reference[:, None]).norm(dim=2)
            for a, d, n in zip(output.agnostic_attention, distance, batch["lengths"].tolist(), strict=True):
                a, d = a[:n].double() - a[:n].double().mean(), d[:n].double() - d[:n].double().mean()
                total.append(float((a * d).sum() / (a.norm() * d.norm())))
        assert sum(total) / len(total) >= 0


def test_the_papers_form_reads_the_network_as_trained(tiny):
    trainer, pseudolabeler = _setting(tiny)
    module = _module(trainer.datamodule, 0, orient_actionness=False)
    batch = next(iter(trainer.datamodule.pooling_batches()))
    before = module.localize(batch["features"], lengths=batch["lengths"])
    for flip in (False, True):
        if flip:
            _negate_agnostic_heads(module)
        reading = read_network(trainer, module, pseudolabeler, observe=False)
        assert float(module.actionness_sign) == 1.0
        assert reading.reversed is None  # not measured: nothing to record
    after = module.localize(batch["features"], lengths=batch["lengths"])
    torch.testing.assert_close(after.agnostic_attention, 1 - before.agnostic_attention)


def test_the_reading_is_saved_with_the_weights(tiny):
    trainer, _ = _setting(tiny)
    module = _module(trainer.datamodule, 1)
    module.actionness_sign.fill_(-1.0)
    restored = _module(trainer.datamodule, 2)
    restored.load_state_dict(module.state_dict())
    assert float(restored.actionness_sign) == -1.0


def test_a_checkpoint_from_before_the_orientation_reads_the_network_as_trained(tiny, tmp_path):
    trainer, _ = _setting(tiny)
    module = _module(trainer.datamodule, 1)
    state = {k: v for k, v in module.state_dict().items() if k != "actionness_sign"}
    path = tmp_path / "old.ckpt"
    checkpoint = {"state_dict": state, "hyper_parameters": dict(module.hparams), "pytorch-lightning_version": "2.6.6"}
    torch.save(checkpoint, path)
    restored = IOCNetModule.load_from_checkpoint(path, network=partial(IOCNet, hidden_dim=16), weights_only=False)
    assert float(restored.actionness_sign) == 1.0
    torch.testing.assert_close(restored.model.attention_rgb.weight, module.model.attention_rgb.weight)


@pytest.mark.parametrize("orient", [True, False])
def test_the_epochs_observation_is_that_of_the_network_as_read(tiny, orient):
    """The HAS votes see the network as :meth:`IOCNetModule.localize` reads it after the orientation, though the
    loop takes both readings from one forward pass."""
    trainer, pseudolabeler = _setting(tiny)
    module = _module(trainer.datamodule, 0, orient_actionness=orient)
    for flip in (False, True):
        if flip:
            _negate_agnostic_heads(module)
        observation = read_network(trainer, module, pseudolabeler, observe=True).observation
        expected = [
            pseudolabeler.epoch_observation(module.localize(b["features"], lengths=b["lengths"]), b["lengths"])
            for b in trainer.datamodule.pooling_batches()
        ]
        torch.testing.assert_close(observation, torch.cat(expected), rtol=0, atol=0)
