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
