"""A label-free floor for mAP: mean-pooling k-means clusters and a feature-deviation actionness.

No training. It runs the evaluation path end to end (store -> clusters -> class mapping -> proposals
-> NMS -> ActivityNet JSON -> mAP) and gives the number the learned methods must beat:
- cluster the L2-normalized mean-pooled training videos with seeded k-means (docs/method.md sec. 3.2, iteration 1);
- map clusters to classes with the Hungarian protocol on the *training* ground truth (docs/method.md sec. 3.5);
- actionness of a test snippet = its distance from the mean training snippet (background dominates
  untrimmed videos, so far-from-average snippets are more often actions);
- class scores = softmax over negative distances to the cluster centres, mapped to classes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from sklearn.cluster import KMeans
from torch import Tensor

from utal_lightning.data.layout import DatasetLayout, read_dataset
from utal_lightning.data.store import FeatureStore
from utal_lightning.eval.clustering import clustering_scores, contingency_matrix, hungarian_mapping
from utal_lightning.eval.io import write_detections
from utal_lightning.eval.nms import nms
from utal_lightning.eval.proposals import detect_video, select_classes


def mean_pool(store: FeatureStore) -> Tensor:
    """(N, D) mean over all snippets of each video, in one scatter-add."""
    owner = torch.repeat_interleave(torch.arange(len(store)), store.lengths)
    sums = torch.zeros((len(store), store.feature_dim), dtype=torch.float64).index_add_(
        0, owner, store.features.double()
    )
    return (sums / store.lengths[:, None]).float()


def run_mean_pooling_baseline(
    layout: DatasetLayout,
    out: str | Path,
    num_segments: int | None = None,
    seed: int = 0,
    num_clusters: int | None = None,
    class_threshold: float = 0.2,
    thresholds: tuple[float, ...] = tuple(np.arange(0.0, 0.25, 0.025)),
    nms_iou: float = 0.6,
    temperature: float = 0.05,
) -> dict[str, object]:
    """Write the baseline's test detections to ``out``; return its training clustering scores."""
    index = read_dataset(layout)
    layout = index.layout  # resolved: "auto" -> the layout found
    train = FeatureStore.from_index(index, layout.train_split)
    test = FeatureStore.from_index(index, layout.test_split)
    k = num_clusters or index.num_classes

    pooled = torch.nn.functional.normalize(mean_pool(train), dim=1)
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(pooled.numpy())
    clusters = torch.as_tensor(kmeans.labels_, dtype=torch.int64)
    centres = torch.as_tensor(kmeans.cluster_centers_, dtype=torch.float32)
    targets = torch.as_tensor(index.class_targets(index.train_ids))
    annotated = targets >= 0
    mapping = hungarian_mapping(contingency_matrix(clusters[annotated], targets[annotated], k, index.num_classes))

    background = train.features.double().mean(0).float()
    detections = []
    for i in range(len(test)):
        grid = test.test_grid(i, num_segments or 750)
        x = test.gather(torch.tensor([i]), grid[None])[0]  # (T_used, D)
        actionness = (x - background).norm(dim=1)
        video = torch.nn.functional.normalize(x.mean(0), dim=0)
        cluster_probs = torch.softmax(-((centres - video) ** 2).sum(1) / temperature, dim=0)
        class_scores = cluster_probs @ mapping
        keep = select_classes(class_scores, class_threshold)
        loc_maps = actionness[:, None].expand(-1, index.num_classes)
        rows = detect_video(
            loc_maps,
            class_scores,
            keep,
            thresholds,
            test.seconds_per_position(i, len(grid)),
            seconds_offset=test.seconds_offset(i),
        )
        rows = rows[nms(rows[:, :2], rows[:, 2], nms_iou, labels=rows[:, 3])]
        detections.append(rows.numpy())
    write_detections(out, test.video_ids, detections, index.classes)
    scores = clustering_scores(clusters, targets, num_clusters=k)
    return {
        "detections": str(out),
        "test_videos": len(test),
        **{f"train_cluster/{k_}": round(v, 4) for k_, v in scores.items()},
    }
