"""Class scores of a video from the cluster centroids of pooled video features (docs/method.md sec. 5.2).

A test video joins the cluster whose centre is nearest to its pooled feature, as the pseudolabel stage put
the training videos there: ``scores = softmax_k(-||c_k - v||^2 / temperature)``. Used by the label-free
baseline (k-means centres) and, with ``class_scores: centroids``, by the trained models (the mean pooled
feature of each pseudo-class's videos in P).
"""

from __future__ import annotations

import torch
from torch import Tensor


def cluster_centroids(pooled: Tensor, labels: Tensor, num_clusters: int) -> Tensor:
    """(K, D) L2-normalized mean of the pooled features (N, D) of each cluster's videos (``labels`` (N,), -1 =
    none); NaN rows for clusters without videos (:func:`centroid_scores` gives them score 0)."""
    pooled = pooled.double()
    known = labels >= 0
    sums = torch.zeros((num_clusters, pooled.shape[1]), dtype=pooled.dtype, device=pooled.device)
    sums.index_add_(0, labels[known].to(pooled.device), pooled[known])
    counts = torch.bincount(labels[known].cpu(), minlength=num_clusters).to(pooled.device)
    centres = torch.nn.functional.normalize(sums, dim=1)
    return torch.where(counts[:, None] > 0, centres, torch.full_like(centres, float("nan"))).float()


def centroid_scores(pooled: Tensor, centroids: Tensor, temperature: float = 0.05) -> Tensor:
    """(B, K) ``softmax_k(-||c_k - v||^2 / temperature)`` of pooled features (B, D) against centroids (K, D);
    a NaN centroid (an empty cluster) scores 0."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    distances = ((centroids.to(pooled)[None] - pooled[:, None]) ** 2).sum(2)
    logits = torch.where(torch.isnan(distances), torch.full_like(distances, float("-inf")), -distances / temperature)
    return torch.softmax(logits, dim=1)
