"""The LightningModules' inference path: which maps feed which proposal source (docs/method.md sec. 5)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from tests.helpers.models import cola_module, iocnet_module, randomize_agnostic_heads
from utal_lightning.eval.detect import COLA_ACTIONNESS_THRESHOLDS, detect_with_mapping
from utal_lightning.eval.evaluator import ClassReference
from utal_lightning.models.modules import CoLAModule, IOCNetModule

MAP_THRESHOLDS = (0.0, 0.1, 0.2)
BUILD = {CoLAModule: cola_module, IOCNetModule: iocnet_module}


def _module(cls, actionness_thresholds):
    torch.manual_seed(0)
    kwargs = dict(num_classes=3, feature_dim=8, rgb_dim=4, hidden_dim=16, proposal_thresholds=MAP_THRESHOLDS)
    module = BUILD[cls](actionness_thresholds=actionness_thresholds, class_threshold=0.0, **kwargs)
    if isinstance(module, IOCNetModule):  # its A_ca starts constant (0.5): make it vary
        randomize_agnostic_heads(module.model)
        module.teacher.module.load_state_dict(module.model.state_dict())
    return module


@pytest.mark.parametrize(
    "cls, actionness_of",
    [(CoLAModule, lambda out: out.cas[0].sum(1)), (IOCNetModule, lambda out: out.agnostic_attention[0])],
    ids=["cola: sum_k CAS", "iocnet: A_ca"],
)
def test_actionness_proposals_come_from_the_class_agnostic_actionness(cls, actionness_of):
    on, off = _module(cls, COLA_ACTIONNESS_THRESHOLDS), _module(cls, ())
    batch = {"features": torch.rand(1, 60, 8, generator=torch.Generator().manual_seed(1)), "seconds_per_step": 0.64}
    mapping = torch.eye(3)
    out = on.localize(batch["features"])
    loc = on.evaluator.localization_map(out)[0]
    common = (loc, out.video_scores[0], mapping, 0.64, MAP_THRESHOLDS, 0.0, on.evaluator.detection.nms_iou)
    with_actionness = detect_with_mapping(
        *common, actionness=actionness_of(out), actionness_thresholds=COLA_ACTIONNESS_THRESHOLDS
    ).numpy()
    np.testing.assert_allclose(on.detect(batch, ClassReference(mapping)), with_actionness)
    np.testing.assert_allclose(off.detect(batch, ClassReference(mapping)), detect_with_mapping(*common).numpy())
    assert len(with_actionness) > len(off.detect(batch, ClassReference(mapping)))  # the second source adds proposals


@pytest.mark.parametrize("scoring", ["thresholded", "unthresholded"])
def test_proposal_scoring_reaches_the_map_threshold_proposals(scoring):
    torch.manual_seed(0)
    module = iocnet_module(
        num_classes=3,
        feature_dim=8,
        rgb_dim=4,
        hidden_dim=16,
        proposal_thresholds=MAP_THRESHOLDS,
        class_threshold=0.0,
        proposal_scoring=scoring,
    )
    batch = {"features": torch.rand(1, 60, 8, generator=torch.Generator().manual_seed(2)), "seconds_per_step": 0.64}
    out = module.localize(batch["features"])
    expected = detect_with_mapping(
        module.evaluator.localization_map(out)[0],
        out.video_scores[0],
        torch.eye(3),
        0.64,
        MAP_THRESHOLDS,
        0.0,
        module.evaluator.detection.nms_iou,
        thresholded_scoring=scoring == "thresholded",
    )
    np.testing.assert_allclose(module.detect(batch, ClassReference(torch.eye(3))), expected.numpy())
    with pytest.raises(ValueError, match="proposal_scoring"):
        iocnet_module(num_classes=3, feature_dim=8, rgb_dim=4, proposal_scoring="raw")


@pytest.mark.parametrize("cls", [CoLAModule, IOCNetModule])
def test_actionness_localization_uses_the_class_agnostic_actionness_for_every_class(cls):
    module = _module(cls, ())
    module.evaluator = dataclasses.replace(module.evaluator, localization="actionness")
    batch = {"features": torch.rand(1, 60, 8, generator=torch.Generator().manual_seed(3)), "seconds_per_step": 0.64}
    out = module.localize(batch["features"])
    loc = out.actionness()[0][:, None].expand(-1, 3)
    expected = detect_with_mapping(
        loc, out.video_scores[0], torch.eye(3), 0.64, MAP_THRESHOLDS, 0.0, module.evaluator.detection.nms_iou
    )
    np.testing.assert_allclose(module.detect(batch, ClassReference(torch.eye(3))), expected.numpy())
    assert not torch.equal(out.class_map()[0], loc)  # the default map differs: the option matters
    with pytest.raises(ValueError, match="localization"):
        BUILD[cls](num_classes=3, feature_dim=8, rgb_dim=4, localization="cas")


def test_centroid_class_scores_score_the_pooled_test_video_against_the_centroids():
    from utal_lightning.eval.centroids import centroid_scores
    from utal_lightning.pseudo.pooling import background_subtracted_pool

    module = _module(CoLAModule, ())
    module.evaluator = dataclasses.replace(module.evaluator, class_scores="centroids", centroid_temperature=0.2)
    features = torch.rand(1, 60, 8, generator=torch.Generator().manual_seed(4))
    out = module.localize(features)
    pooled = background_subtracted_pool(features, out.cas.sum(2))
    centroids = torch.nn.functional.normalize(torch.rand(3, 8, generator=torch.Generator().manual_seed(5)), dim=1)
    scores = centroid_scores(pooled, centroids, 0.2)[0]
    expected = detect_with_mapping(
        module.evaluator.localization_map(out)[0],
        scores,
        torch.eye(3),
        0.64,
        MAP_THRESHOLDS,
        0.0,
        module.evaluator.detection.nms_iou,
    )
    batch = {"features": features, "seconds_per_step": 0.64}
    np.testing.assert_allclose(module.detect(batch, ClassReference(torch.eye(3), centroids)), expected.numpy())
    with pytest.raises(ValueError, match="class_scores"):
        cola_module(num_classes=3, feature_dim=8, class_scores="votes")
