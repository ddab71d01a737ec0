"""Clustering of global video features (docs/method.md sec. 3.2)."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from torch import Tensor


def kmeans(features: Tensor, num_clusters: int, seed: int, n_init: int = 10) -> tuple[Tensor, Tensor]:
    """docs/method.md sec. 3.2 k-means (FEEL): Euclidean, ``n_init`` restarts, seeded.

    Returns (labels (N,), centres (K', D)).

    ``K' = min(K, N)``: with more clusters than videos every video is its own cluster and the
    remaining cluster ids stay empty. Duplicate points are fine (scikit-learn may warn; silenced).
    """
    x = features.detach().double().cpu().numpy()
    k = min(num_clusters, len(x))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # duplicate points: fewer distinct clusters
        fit = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(x)
    labels = torch.as_tensor(fit.labels_.astype(np.int64))
    centres = torch.as_tensor(fit.cluster_centers_, dtype=features.dtype)
    return labels.to(features.device), centres.to(features.device)


def cross_view_agreement(features: Tensor, num_clusters: int, seed: int, views: int = 2) -> float:
    """docs/method.md sec. 3.1.3: how alike the videos cluster in each view of their global features. ``features``
    (N, D) are split into ``views`` equal column blocks (the RGB and flow halves of I3D features), each block is
    L2-normalized and clustered by :func:`kmeans` (seeded), and the mean NMI (arithmetic) over the pairs of views
    is returned. A pooling that keeps what the views share (the action, the class) and drops what each view has of
    its own (a per-view nuisance) agrees more. A view clustered into one group scores 0. Label-free."""
    from sklearn.metrics import normalized_mutual_info_score

    if views < 2 or features.shape[1] % views:
        raise ValueError(f"need >= 2 views that split the {features.shape[1]} columns evenly, got {views}")
    labels = [
        kmeans(torch.nn.functional.normalize(block.float(), dim=1), num_clusters, seed=seed)[0].cpu().numpy()
        for block in features.chunk(views, dim=1)
    ]
    if any(len(np.unique(view)) < 2 for view in labels):
        return 0.0  # a view that does not split the videos (e.g. constant features) agrees with nothing
    pairs = [(a, b) for i, a in enumerate(labels) for b in labels[i + 1 :]]
    return float(np.mean([normalized_mutual_info_score(a, b, average_method="arithmetic") for a, b in pairs]))


def most_agreeing(candidates: list[Tensor], num_clusters: int, seed: int, views: int = 2) -> tuple[int, list[float]]:
    """docs/method.md sec. 3.1.3: ``keep = argmax_j agree(j)`` over the (N, D) global features each candidate pooling
    gives (:func:`cross_view_agreement`; ties: the first). Returns (the kept index, every candidate's agreement)."""
    agreement = [cross_view_agreement(c, num_clusters, seed, views) for c in candidates]
    return max(range(len(candidates)), key=lambda j: (agreement[j], -j)), agreement
