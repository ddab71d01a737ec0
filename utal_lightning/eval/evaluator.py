"""The evaluator: from a model's output on a test video to scored detections (docs/method.md sec. 3.5, 5).

One :class:`Evaluator` (a model config's ``model.init_args.evaluator``) holds every inference setting and does
each step once, for every caller: the models' test and predict steps, the loop's in-loop test, the attention
figure and the label-free baseline.

- the cluster -> class map from the training pseudolabels and the *training* ground truth (:meth:`cluster_map`;
  the modules compute it once per set of pseudolabels);
- a test video's (pseudo-)class scores: the network's, or nearness to each pseudo-class's centroid
  (:meth:`video_scores`, sec. 5.2);
- the map whose runs are proposals: the model's class map, or its class-agnostic actionness (:meth:`localization_map`,
  sec. 5.3);
- proposals, scoring, the map to classes and NMS (:meth:`detect_maps`), and the mAP (:meth:`score`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from utal_lightning.data.layout import VideoAnnotation
from utal_lightning.eval.centroids import centroid_scores, cluster_centroids
from utal_lightning.eval.clustering import cluster_to_class_map
from utal_lightning.eval.detect import DetectionSettings, detect_with_mapping, detection_map_on_videos
from utal_lightning.eval.detection_map import THUMOS_TIOUS, DetectionMAP
from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.pooling import background_subtracted_pool


@dataclass(frozen=True)
class ClassReference:
    """What a test video's classes are read against, fixed for a test pass: the (K, C) cluster -> class map and,
    with ``class_scores="centroids"``, the (K, D) pseudo-class centroids (else None)."""

    mapping: Tensor
    centroids: Tensor | None = None


@dataclass(frozen=True)
class VideoReading:
    """One test video as the evaluator read it, for figures: the positions' times (s), the class-agnostic actionness,
    the localization map of the top-scoring pseudo-class (by the network's video scores) and the detections."""

    video_index: int
    seconds: np.ndarray
    actionness: np.ndarray
    top_cluster: int
    top_map: np.ndarray
    detections: np.ndarray


@dataclass(frozen=True)
class Evaluator:
    """How a trained model is evaluated (docs/method.md sec. 3.5, 5): ``model.init_args.evaluator``.

    Args:
        detection: how a localization map becomes detections (:class:`~utal_lightning.eval.detect.DetectionSettings`:
            class threshold, proposal thresholds and scoring, actionness thresholds, NMS IoU, upsampling).
        class_mapping: cluster -> class map for evaluation: "hungarian" (main number) or "majority"
            (FEEL/TCAM protocol).
        class_scores: a test video's (pseudo-)class scores: "network" (the model's video scores: the papers) or
            "centroids" (nearness of its pooled feature to each pseudo-class's centroid, docs/method.md sec. 5.2).
        localization: the map a kept class's proposals come from: "class_map" (the model's class-specific map:
            CoLA's CAS, IOCNet's h_cs; the papers) or "actionness" (its class-agnostic actionness, the same for
            every class; docs/method.md sec. 5.3).
        centroid_temperature: temperature of the "centroids" softmax over negative squared distances.
        tious: tIoU thresholds of the test mAP (THUMOS 0.1:0.1:0.7, ActivityNet 0.5:0.05:0.95).
    """

    detection: DetectionSettings = field(default_factory=DetectionSettings)
    class_mapping: Literal["hungarian", "majority"] = "hungarian"
    class_scores: Literal["network", "centroids"] = "network"
    localization: Literal["class_map", "actionness"] = "class_map"
    centroid_temperature: float = 0.05
    tious: tuple[float, ...] = tuple(THUMOS_TIOUS.tolist())

    def __post_init__(self) -> None:
        if isinstance(self.detection, Mapping):  # a checkpoint's plain dict (LocalizationModule.save_settings)
            object.__setattr__(self, "detection", DetectionSettings(**self.detection))
        if self.class_mapping not in ("hungarian", "majority"):
            raise ValueError(f"class_mapping must be 'hungarian' or 'majority', got {self.class_mapping!r}")
        if self.class_scores not in ("network", "centroids"):
            raise ValueError(f"class_scores must be 'network' or 'centroids', got {self.class_scores!r}")
        if self.localization not in ("class_map", "actionness"):
            raise ValueError(f"localization must be 'class_map' or 'actionness', got {self.localization!r}")
        if self.centroid_temperature <= 0:
            raise ValueError(f"centroid_temperature must be > 0, got {self.centroid_temperature}")
        object.__setattr__(self, "tious", tuple(float(t) for t in self.tious))

    @classmethod
    def from_config(cls, evaluator: Mapping[str, Any]) -> Evaluator:
        """The evaluator of a model config's ``model.init_args.evaluator``; what it leaves out keeps its default."""
        settings = {f.name: evaluator[f.name] for f in fields(cls) if f.name in evaluator}
        settings["detection"] = DetectionSettings.from_config(evaluator.get("detection") or {})
        return cls(**settings)

    # ------------------------------------------------------------------ classes
    def cluster_map(self, labels: Tensor, train_targets: Any, num_clusters: int, num_classes: int) -> Tensor:
        """(K, C) evaluation map from the training pseudolabels and the *training* ground truth (-1: none), by
        ``class_mapping`` (docs/method.md sec. 3.5). A dataset without classes (``num_classes`` 0: discovery in
        unannotated videos): the identity, each pseudo-class its own class."""
        if num_classes == 0:
            return torch.eye(num_clusters)
        return cluster_to_class_map(labels, train_targets, num_clusters, num_classes, self.class_mapping)

    @staticmethod
    def pooled_feature(features: Tensor, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        """(B, D) a video's feature for centroid class scores: its snippets weighted by the model's class-agnostic
        actionness, minus the rest of the video (docs/method.md sec. 3.1.2, 5.2)."""
        return background_subtracted_pool(features, output.actionness(), lengths)

    @staticmethod
    def centroids(pooled: Tensor, labels: Tensor, selected: Tensor, num_clusters: int) -> Tensor:
        """(K, D) the centroid of each pseudo-class's videos in P (``pooled`` (N, D) by :meth:`pooled_feature`)."""
        in_p = labels.where(selected, labels.new_full((), -1))
        return cluster_centroids(pooled, in_p.to(pooled.device), num_clusters)

    def centroid_scores(self, pooled: Tensor, centroids: Tensor) -> Tensor:
        """(B, K) ``softmax_k(-||c_k - v||^2 / centroid_temperature)`` (docs/method.md sec. 5.2)."""
        return centroid_scores(pooled, centroids, self.centroid_temperature)

    def video_scores(self, output: LocalizationOutput, features: Tensor, reference: ClassReference) -> Tensor:
        """(B, K) a batch of test videos' (pseudo-)class scores: the network's, or with centroids in ``reference``
        the nearness of their pooled features to them."""
        if reference.centroids is None:
            return output.video_scores
        return self.centroid_scores(self.pooled_feature(features, output), reference.centroids)

    def localization_map(self, output: LocalizationOutput) -> Tensor:
        """(B, T, K) map whose thresholded runs are proposals: the model's class map (CoLA's CAS, IOCNet's h_cs) or,
        with ``localization="actionness"``, its class-agnostic actionness for every class."""
        if self.localization == "actionness":
            return output.actionness()[..., None].expand(-1, -1, output.cas.shape[2])
        return output.class_map()

    def read(
        self,
        output: LocalizationOutput,
        video_index: int,
        seconds_per_step: float,
        seconds_offset: float,
        detections: np.ndarray,
    ) -> VideoReading:
        """:class:`VideoReading` of one test video (a batch of one) from the model's output."""
        top = int(output.video_scores[0].argmax())
        steps = np.arange(output.cas.shape[1])
        return VideoReading(
            video_index=video_index,
            seconds=seconds_offset + steps * seconds_per_step,
            actionness=output.actionness()[0].float().cpu().numpy(),
            top_cluster=top,
            top_map=self.localization_map(output)[0, :, top].float().cpu().numpy(),
            detections=detections,
        )

    # ------------------------------------------------------------------ detections
    def detect(
        self,
        output: LocalizationOutput,
        features: Tensor,
        reference: ClassReference,
        seconds_per_step: float,
        seconds_offset: float = 0.0,
    ) -> np.ndarray:
        """Detections ``[start_s, end_s, score, class]`` of one test video (a batch of one) from the model's output."""
        actionness = output.actionness()[0] if self.detection.actionness_thresholds else None
        return self.detect_maps(
            self.localization_map(output)[0],
            self.video_scores(output, features, reference)[0],
            reference.mapping,
            seconds_per_step,
            seconds_offset,
            actionness,
        )

    def detect_maps(
        self,
        localization_map: Tensor,
        video_scores: Tensor,
        mapping: Tensor,
        seconds_per_step: float,
        seconds_offset: float = 0.0,
        actionness: Tensor | None = None,
    ) -> np.ndarray:
        """Detections of one video from its (T, K) localization map, (K,) class scores and the (K, C) map, by
        :attr:`detection` (``actionness`` (T,): CoLA's second proposal source, with ``actionness_thresholds``)."""
        settings = self.detection
        rows = detect_with_mapping(
            localization_map.float().cpu(),
            video_scores.float().cpu(),
            mapping,
            float(seconds_per_step),
            settings.proposal_thresholds,
            settings.class_threshold,
            settings.nms_iou,
            scale=settings.upsample_scale,
            actionness=None if actionness is None else actionness.float().cpu(),
            actionness_thresholds=settings.actionness_thresholds,
            thresholded_scoring=settings.proposal_scoring == "thresholded",
            seconds_offset=float(seconds_offset),
        )
        return rows.numpy()

    def score(
        self,
        annotations: Mapping[str, VideoAnnotation],
        video_ids: Sequence[str],
        detections: Mapping[int, np.ndarray],
        classes: Sequence[str],
    ) -> DetectionMAP:
        """mAP at :attr:`tious` of detections by video index into ``video_ids`` (a video without detections counts
        as such)."""
        rows = [detections.get(i, np.zeros((0, 4))) for i in range(len(video_ids))]
        return detection_map_on_videos(annotations, video_ids, rows, classes, self.tious)
