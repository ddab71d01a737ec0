"""The evaluator room: one object for the map, the class scores, the localization map, detections and the mAP."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

from tests.helpers.models import cola_module, iocnet_module
from utal_lightning.eval.detect import DetectionSettings, detect_with_mapping
from utal_lightning.eval.evaluator import ClassReference, Evaluator
from utal_lightning.models.modules import as_settings
from utal_lightning.reporting.iteration import attention_figure

K = 3


class CountingEvaluator(Evaluator):
    """An Evaluator that counts its cluster maps."""

    calls: ClassVar[list] = []

    def cluster_map(self, *args):
        self.calls.append(args)
        return super().cluster_map(*args)


def _datamodule(labels: list[int], truth: list[int]) -> SimpleNamespace:
    ids = [f"v{i}" for i in range(len(labels))]
    index = SimpleNamespace(train_ids=ids, num_classes=K, class_targets=lambda _: list(truth))
    return SimpleNamespace(index=index, labels=torch.tensor(labels), num_clusters=K)


def test_the_cluster_map_is_computed_once_per_set_of_pseudolabels():
    module = cola_module(num_classes=K, feature_dim=8, hidden_dim=16)
    CountingEvaluator.calls = []
    module.evaluator = CountingEvaluator()
    datamodule = _datamodule([0, 0, 1, 1, 2, 2], [1, 1, 2, 2, 0, 0])
    first = module.cluster_to_class(datamodule)
    assert module.cluster_to_class(datamodule) is first and len(CountingEvaluator.calls) == 1
    assert first.argmax(1).tolist() == [1, 2, 0]
    datamodule.labels = torch.tensor(
        [2, 2, 0, 0, 1, 1]
    )  # the next iteration's labels (a new tensor, as set_pseudolabels)
    second = module.cluster_to_class(datamodule)
    assert len(CountingEvaluator.calls) == 2 and second.argmax(1).tolist() == [2, 0, 1]
    assert module.cluster_to_class(datamodule) is second and len(CountingEvaluator.calls) == 2


def test_the_evaluator_is_saved_as_plain_values_and_read_back():
    evaluator = Evaluator(
        detection=DetectionSettings(class_threshold=0.1, nms_iou=0.7, actionness_thresholds=(0.1, 0.2)),
        class_mapping="majority",
        class_scores="centroids",
        localization="actionness",
        centroid_temperature=0.2,
        tious=[0.5, 0.75],
    )
    module = iocnet_module(num_classes=K, feature_dim=8, rgb_dim=4, hidden_dim=16)
    module = type(module)(module.network, evaluator=evaluator, num_classes=K, feature_dim=8, rgb_dim=4)
    saved = module.hparams["evaluator"]
    assert isinstance(saved, dict) and isinstance(saved["detection"], dict)  # weights_only checkpoints load it
    assert as_settings(Evaluator, saved) == evaluator
    assert evaluator.tious == (0.5, 0.75)


def test_a_config_s_evaluator_keeps_the_defaults_it_leaves_out():
    read = Evaluator.from_config({"class_scores": "centroids", "detection": {"nms_iou": 0.7}})
    assert read == Evaluator(class_scores="centroids", detection=DetectionSettings(nms_iou=0.7))
    assert Evaluator.from_config({}) == Evaluator()


@pytest.mark.parametrize(
    "field, value",
    [("class_mapping", "greedy"), ("class_scores", "votes"), ("localization", "cas"), ("centroid_temperature", 0.0)],
)
def test_the_evaluator_rejects_unknown_choices(field, value):
    with pytest.raises(ValueError, match=field):
        Evaluator(**{field: value})


def test_the_map_in_use_is_the_model_s_own_or_the_actionness():
    torch.manual_seed(0)
    module = iocnet_module(num_classes=K, feature_dim=8, rgb_dim=4, hidden_dim=16)
    out = module.localize(torch.rand(1, 20, 8))
    torch.testing.assert_close(Evaluator().localization_map(out), out.h_cs)  # IOCNet localizes with h_cs
    by_actionness = Evaluator(localization="actionness").localization_map(out)
    torch.testing.assert_close(by_actionness, out.agnostic_attention[..., None].expand(-1, -1, K))


def test_the_figure_reads_the_test_pass_s_detections():
    torch.manual_seed(0)
    module = cola_module(num_classes=K, feature_dim=8, hidden_dim=16, class_threshold=0.0)
    generator = torch.Generator().manual_seed(1)
    videos = [
        {"features": torch.rand(1, 30, 8, generator=generator), "seconds_per_step": 0.5, "seconds_offset": 2.0}
        for _ in range(4)
    ]
    datamodule = SimpleNamespace(test_videos=lambda: videos)
    reference = ClassReference(torch.eye(K))
    detections = {i: module.detect(batch, reference) for i, batch in enumerate(videos)}
    readings = module.read_test_videos(datamodule, detections, count=3)
    assert [r.video_index for r in readings] == [0, 1, 2]
    for reading, batch in zip(readings, videos, strict=False):
        out = module.localize(batch["features"])
        top = int(out.video_scores[0].argmax())
        assert reading.top_cluster == top
        np.testing.assert_allclose(reading.top_map, out.cas[0, :, top].numpy())
        np.testing.assert_allclose(reading.seconds, 2.0 + 0.5 * np.arange(30))
        assert reading.detections is detections[reading.video_index]
    annotations = {"v0": SimpleNamespace(segments=np.array([[3.0, 5.0]]), labels=["a"])}
    figure = attention_figure(readings, ["v0", "v1", "v2", "v3"], annotations, ["a", "b", "c"])
    panels = [ax for ax in figure.axes if ax.get_lines()]
    assert len(panels) == 3  # one panel per video read
    for ax, reading in zip(panels, readings, strict=True):
        labels = [line.get_label() for line in ax.get_lines()]
        assert any(f"cluster {reading.top_cluster}" in label for label in labels), labels
        attention = next(line for line in ax.get_lines() if line.get_label() == "actionness (rescaled)")
        expected = (reading.actionness - reading.actionness.min()) / np.ptp(reading.actionness)
        np.testing.assert_allclose(attention.get_ydata(), expected, atol=1e-6)


def test_detect_maps_is_detect_with_mapping_under_the_settings():
    settings = DetectionSettings(class_threshold=0.0, proposal_thresholds=(0.1, 0.3), nms_iou=0.5, upsample_scale=4)
    evaluator = Evaluator(detection=settings)
    generator = torch.Generator().manual_seed(2)
    local, scores = torch.rand(40, K, generator=generator), torch.softmax(torch.randn(K, generator=generator), 0)
    mapping = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    expected = detect_with_mapping(local, scores, mapping, 0.25, (0.1, 0.3), 0.0, 0.5, scale=4, seconds_offset=1.0)
    np.testing.assert_allclose(evaluator.detect_maps(local, scores, mapping, 0.25, 1.0), expected.numpy())
    unthresholded = dataclasses.replace(
        evaluator, detection=dataclasses.replace(settings, proposal_scoring="unthresholded")
    )
    assert not np.array_equal(unthresholded.detect_maps(local, scores, mapping, 0.25, 1.0), expected.numpy())


def test_without_classes_each_pseudo_class_is_its_own_class():
    # discovery in unannotated videos (no class anywhere): detections name the K pseudo-classes
    labels = torch.tensor([0, 1, 2, 3, 3])
    assert torch.equal(Evaluator().cluster_map(labels, np.full(5, -1), 4, 0), torch.eye(4))
    with_classes = Evaluator().cluster_map(labels, np.array([1, 0, 2, 2, 2]), 4, 3)
    assert with_classes.shape == (4, 3)  # with classes: the map to them, as before
