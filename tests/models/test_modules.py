"""The LightningModules on their own: a training step is the model's loss on the batch (IOCNet: the student on
shifted features against the teacher on the originals), Adam over the network, the EMA teacher after each
optimizer step, the inference and evaluation models, and the cluster -> class map of the evaluation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from tests.helpers.models import cola_module, iocnet_module, randomize_agnostic_heads
from utal_lightning.models.augment import temporal_shift
from utal_lightning.models.cola import CoLA
from utal_lightning.models.copl_losses import IOCNetLoss, iocnet_loss
from utal_lightning.models.losses import cola_training_loss
from utal_lightning.models.modules import CoLAModule, IOCNetModule, ema_warmup_decay

pytestmark = pytest.mark.usefixtures("one_thread")

B, T, D, RGB, K = 4, 16, 12, 6, 3


def _cola(**kwargs) -> CoLAModule:
    return cola_module(num_classes=K, feature_dim=D, hidden_dim=16, r_easy=2, r_hard=4, m=1, M=2, **kwargs)


def _iocnet(**kwargs) -> IOCNetModule:
    torch.manual_seed(0)
    module = iocnet_module(num_classes=K, feature_dim=D, rgb_dim=RGB, hidden_dim=8, top_l_divisor=4, **kwargs)
    randomize_agnostic_heads(module.model)
    if module.teacher is not None:  # a teacher different from the student, as after some training
        module.teacher.update_parameters(module.model)
        randomize_agnostic_heads(module.model)
    return module


def _batch(supervised: list[bool] | None = None) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    labels = torch.tensor([0, 1, 2, 1])
    return {
        "features": torch.randn(B, T, D, generator=generator),
        "targets": torch.nn.functional.one_hot(labels, K).float(),
        "supervised": torch.tensor(supervised or [True, True, False, True]),
        "video_index": torch.arange(B),
    }


def _recording(module) -> list[tuple]:
    """Replace the module's logging (it needs a Trainer) with a record of what it would log."""
    logged: list[tuple] = []
    module.log_progress = lambda loss, parts, batch_size: logged.append((loss.detach(), parts, batch_size))
    return logged


def test_cola_step_is_the_training_loss_on_the_batch():
    module = _cola(lambda_ctr=0.05, temperature=0.2)
    logged = _recording(module)
    batch = _batch()
    torch.manual_seed(7)  # dropout and the snippet mining draw from the global RNG
    loss = module.training_step(batch, 0)
    torch.manual_seed(7)
    output = module.model(batch["features"])
    expected, parts = cola_training_loss(output, batch["targets"], module.model.r_easy, module.loss, training=True)
    assert (module.loss.lambda_ctr, module.loss.temperature, module.loss.r_hard) == (0.05, 0.2, 4)
    assert torch.allclose(loss, expected)
    assert logged[0][2] == B and set(logged[0][1]) == set(parts)
    loss.backward()
    assert all(p.grad is not None for p in module.model.parameters())


def test_iocnet_step_trains_the_student_on_shifted_features_against_the_teacher():
    module = _iocnet(shift_channels=4, lambda_co=3.0)
    _recording(module)
    batch = _batch()
    torch.manual_seed(11)
    loss = module.training_step(batch, 0)
    torch.manual_seed(11)
    with torch.no_grad():
        teacher = module.teacher.module(batch["features"])
    student = module.model(temporal_shift(batch["features"], 4))
    expected, _ = iocnet_loss(student, teacher, batch["targets"], batch["supervised"], module.loss)
    assert module.loss.lambda_co == 3.0
    assert torch.allclose(loss, expected)
    loss.backward()
    assert all(p.grad is None for p in module.teacher.parameters())  # the teacher is no optimizer's business
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.parameters())


def test_iocnet_without_co_has_no_teacher_and_no_shift():
    module = _iocnet(use_co=False)
    _recording(module)
    batch = _batch()
    torch.manual_seed(3)
    loss = module.training_step(batch, 0)
    output = module.model(batch["features"])
    expected, _ = iocnet_loss(output, None, batch["targets"], batch["supervised"], IOCNetLoss(use_co=False))
    assert module.teacher is None and torch.allclose(loss, expected)
    assert module.inference_model is module.model
    assert module.evaluation_models() == {"": module.model}


def test_adam_over_the_network_with_the_configured_lr_and_decay():
    for module in (_cola(lr=3e-3, weight_decay=1e-5), _iocnet(lr=3e-3, weight_decay=1e-5)):
        optimizer = module.configure_optimizers()
        assert isinstance(optimizer, torch.optim.Adam)
        assert optimizer.defaults["lr"] == 3e-3 and optimizer.defaults["weight_decay"] == 1e-5
        optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
        assert optimized == {id(p) for p in module.model.parameters()}  # the student only, never the teacher


def test_the_teacher_follows_each_optimizer_step_with_the_warm_up_decay():
    module = _iocnet(ema_decay=0.99)
    _recording(module)
    optimizer = module.configure_optimizers()
    batch = _batch()
    updates = int(module.teacher.n_averaged)
    for step in range(2):
        before = {k: v.clone() for k, v in module.teacher.module.state_dict().items()}

        def closure(step=step):
            optimizer.zero_grad()
            loss = module.training_step(batch, step)
            loss.backward()
            return loss

        module.optimizer_step(0, step, optimizer, closure)
        d = float(ema_warmup_decay(torch.tensor(float(updates)), 0.99))
        for name, student in module.model.state_dict().items():
            if student.is_floating_point():
                expected = d * before[name] + (1 - d) * student
                assert torch.allclose(module.teacher.module.state_dict()[name], expected, atol=1e-6), name
        updates += 1
        assert int(module.teacher.n_averaged) == updates


def test_inference_uses_the_teacher_and_both_models_are_evaluated():
    module = _iocnet()
    assert module.inference_model is module.teacher.module
    assert module.evaluation_models() == {"": module.teacher.module, "_student": module.model}
    assert IOCNetModule.uses_unlabeled and not CoLAModule.uses_unlabeled


def test_localize_runs_in_eval_mode_and_restores_the_mode():
    module = _cola(dropout=0.7)
    module.train()
    features = _batch()["features"]
    first, second = module.localize(features), module.localize(features)
    assert torch.equal(first.cas, second.cas)  # no dropout
    assert module.model.training
    with torch.no_grad():
        module.model.eval()
        assert torch.equal(module.model(features).cas, first.cas)


def _datamodule(labels: list[int], truth: list[int], num_classes: int = 3) -> SimpleNamespace:
    """What cluster_to_class reads: the training pseudolabels, the training ground truth (-1: none)."""
    ids = [f"v{i}" for i in range(len(labels))]
    index = SimpleNamespace(train_ids=ids, num_classes=num_classes, class_targets=lambda _: list(truth))
    return SimpleNamespace(index=index, labels=torch.tensor(labels), num_clusters=3)


def test_clusters_map_to_classes_by_training_ground_truth():
    # cluster c holds class (c + 1) % 3, with one mistake; the unannotated video and the unlabelled one count not
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2, -1, 2]
    truth = [1, 1, 2, 2, 2, 2, 0, 0, 0, 0, -1]
    for mapping in ("hungarian", "majority"):
        matrix = _cola(class_mapping=mapping).cluster_to_class(_datamodule(labels, truth))
        assert matrix.shape == (3, 3)
        assert matrix.argmax(1).tolist() == [1, 2, 0], mapping
    # two clusters of one class: the Hungarian map stays one-to-one, the majority map does not
    crowded = _datamodule([0, 0, 1, 1, 2], [1, 1, 1, 1, 0])
    one_to_one = _cola(class_mapping="hungarian").cluster_to_class(crowded).argmax(1).tolist()
    assert sorted(one_to_one) == [0, 1, 2]
    assert _cola(class_mapping="majority").cluster_to_class(crowded).argmax(1).tolist()[:2] == [1, 1]


def test_choices_are_checked_at_construction():
    with pytest.raises(ValueError, match="class_mapping"):
        _cola(class_mapping="greedy")
    with pytest.raises(ValueError, match="proposal_scoring"):
        _cola(proposal_scoring="both")


def test_the_network_is_built_from_the_arguments():
    module = _cola(dropout=0.3, cls_loss="ce")
    assert isinstance(module.model, CoLA) and module.model.dropout.p == 0.3 and module.loss.cls_loss == "ce"
    assert module.training_model is module.model  # no compile unless asked
    # saved for checkpoints as plain values (weights_only loads), the callables left out
    assert module.hparams["loss"]["cls_loss"] == "ce" and module.hparams["num_classes"] == K
    assert "network" not in module.hparams and "optimizer" not in module.hparams
    assert _iocnet(shift_channels=10_000).shift_channels == D  # at most every channel


def test_centroid_reference_pools_the_training_videos_of_p_with_the_inference_model():
    # docs/method.md sec. 5.2: centroid k = L2Norm(mean over P's videos of pseudo-class k of their pooled features),
    # each pooled with the inference model's class-agnostic actionness, minus the rest of the video.
    from utal_lightning.pseudo.pooling import background_subtracted_pool

    module = _iocnet(class_scores="centroids")
    generator = torch.Generator().manual_seed(3)
    batches = [
        {"features": torch.randn(3, T, D, generator=generator), "lengths": torch.tensor([T, 9, 5])},
        {"features": torch.randn(2, T, D, generator=generator), "lengths": torch.tensor([12, T])},
    ]
    for b in batches:  # pooling batches zero the padding
        b["features"] *= (torch.arange(T)[None] < b["lengths"][:, None])[..., None]
    labels, selected = torch.tensor([0, 2, 0, 1, 2]), torch.tensor([True, True, False, True, True])
    datamodule = SimpleNamespace(
        labels=labels,
        selected=selected,
        num_clusters=K,
        pooling_batches=lambda: iter(batches),
        index=SimpleNamespace(
            train_ids=[f"v{i}" for i in range(5)], class_targets=lambda ids: [0, 1, 0, 2, 1], num_classes=K
        ),
    )
    reference = module.class_reference(datamodule)
    mapping, centroids = reference.mapping, reference.centroids
    pooled = []
    for b in batches:
        with torch.no_grad():
            out = module.teacher.module.eval()(b["features"], b["lengths"])
        pooled.append(background_subtracted_pool(b["features"], out.agnostic_attention, b["lengths"]))
    pooled = torch.cat(pooled)
    for k, members in ((0, [0]), (1, [3]), (2, [1, 4])):  # video 2 (cluster 0) is in U: left out
        expected = torch.nn.functional.normalize(pooled[members].mean(0), dim=0)
        torch.testing.assert_close(centroids[k], expected)
    assert mapping.shape == (K, K)
    network = _iocnet()
    assert network.class_reference(datamodule).centroids is None  # the papers' class scores need no centroids
