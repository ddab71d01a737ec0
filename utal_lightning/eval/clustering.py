"""Clustering metrics and cluster-to-class mappings.

docs/method.md sec. 3.5 and sec. 5 "Clustering metrics".

Everything here is evaluation: it reads ground truth and must never feed a training decision.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor
from torchmetrics.functional.clustering import adjusted_rand_score, normalized_mutual_info_score


def _as_long(x: Tensor | np.ndarray) -> Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, Tensor) else x).to(torch.int64).cpu()


def contingency_matrix(clusters: Tensor, classes: Tensor, num_clusters: int, num_classes: int) -> Tensor:
    """(num_clusters, num_classes) counts of videos per (cluster, class) pair."""
    flat = clusters * num_classes + classes
    return torch.bincount(flat, minlength=num_clusters * num_classes).reshape(num_clusters, num_classes)


def hungarian_mapping(confusion: Tensor) -> Tensor:
    """docs/method.md sec. 3.5 Hungarian: one-to-one cluster -> class weights (K, C) maximizing the matched count.

    With more clusters than classes, the clusters left unmatched fall back to their majority class
    (so no cluster's detections are dropped); with K == C (the default) the map is a permutation.
    """
    counts = confusion.cpu().numpy()
    rows, cols = linear_sum_assignment(counts, maximize=True)
    weights = torch.zeros(confusion.shape, dtype=torch.float32)
    weights[torch.as_tensor(rows), torch.as_tensor(cols)] = 1.0
    unmatched = torch.as_tensor(sorted(set(range(counts.shape[0])) - set(rows.tolist())), dtype=torch.int64)
    if len(unmatched):
        weights[unmatched, confusion[unmatched].argmax(1)] = 1.0
    return weights


def majority_mapping(confusion: Tensor) -> Tensor:
    """docs/method.md sec. 3.5 majority-soft (TCAM/FEEL protocol): weights (K, C) per cluster.

    The most frequent class(es) of a cluster weigh 1.0; any other class with at least half the top
    count weighs 0.5. An empty cluster maps to nothing (all zeros).
    """
    counts = confusion.to(torch.float32)
    top = counts.max(1, keepdim=True).values
    weights = torch.where(counts >= 0.5 * top, 0.5, 0.0)
    weights = torch.where(counts == top, 1.0, weights)
    return torch.where(top > 0, weights, torch.zeros_like(weights))


def purity(confusion: Tensor) -> float:
    """Fraction of videos whose cluster's majority class is their class."""
    total = int(confusion.sum())
    return float(confusion.max(1).values.sum()) / total if total else float("nan")


def cluster_to_class_map(
    clusters: Tensor, classes: Tensor, num_clusters: int, num_classes: int, protocol: str = "hungarian"
) -> Tensor:
    """docs/method.md sec. 3.5: the (K, C) evaluation map from the videos whose cluster and class are both known
    (``>= 0``): "hungarian" (:func:`hungarian_mapping`, the main number) or "majority" (:func:`majority_mapping`,
    the TCAM / FEEL protocol). The one place every evaluation (the models' tests, the pseudolabels' records, the
    baseline) maps clusters to classes."""
    if protocol not in ("hungarian", "majority"):
        raise ValueError(f"protocol must be 'hungarian' or 'majority', got {protocol!r}")
    clusters, classes = torch.as_tensor(clusters), torch.as_tensor(classes)
    known = (classes >= 0) & (clusters >= 0)
    confusion = contingency_matrix(clusters[known], classes[known], num_clusters, num_classes)
    return hungarian_mapping(confusion) if protocol == "hungarian" else majority_mapping(confusion)


def hungarian_accuracy(confusion: Tensor) -> float:
    """Accuracy under the best one-to-one cluster -> class assignment."""
    counts = confusion.cpu().numpy()
    rows, cols = linear_sum_assignment(counts, maximize=True)
    total = counts.sum()
    return float(counts[rows, cols].sum() / total) if total else float("nan")


def clustering_scores(
    clusters: Tensor | np.ndarray, classes: Tensor | np.ndarray, num_clusters: int | None = None
) -> dict[str, float]:
    """NMI (arithmetic), ARI, purity and Hungarian accuracy of ``clusters`` against ``classes``.

    Videos whose class is -1 (no annotation) are left out. Returns NaNs when no video is left.
    """
    clusters, classes = _as_long(clusters), _as_long(classes)
    keep = classes >= 0
    clusters, classes = clusters[keep], classes[keep]
    if clusters.numel() == 0:
        return {"nmi": float("nan"), "ari": float("nan"), "purity": float("nan"), "accuracy": float("nan")}
    num_clusters = max(int(num_clusters or 0), int(clusters.max()) + 1)
    confusion = contingency_matrix(clusters, classes, num_clusters, int(classes.max()) + 1)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse invariant checks")  # torchmetrics internals, harmless
        nmi = float(normalized_mutual_info_score(clusters, classes, average_method="arithmetic"))
        ari = float(adjusted_rand_score(clusters, classes))
    if confusion.count_nonzero() == 1:  # one cluster holding one class: identical partitions (sklearn's 1.0)
        nmi = 1.0
    return {"nmi": nmi, "ari": ari, "purity": purity(confusion), "accuracy": hungarian_accuracy(confusion)}
