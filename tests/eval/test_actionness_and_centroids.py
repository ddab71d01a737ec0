"""Per-video snippet AUC against scikit-learn, and centroid class scores against their definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from utal_lightning.eval.actionness import mean_auc, snippet_auc
from utal_lightning.eval.centroids import centroid_scores, cluster_centroids


def test_snippet_auc_equals_sklearn_with_ties_and_padding():
    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 4, (6, 40), generator=g).float()  # many ties
    positives = torch.rand((6, 40), generator=g) > 0.7
    lengths = torch.tensor([40, 31, 12, 7, 25, 3])
    scores[:, -1] = 99.0  # padding of the short videos must not count
    positives[5, :3] = torch.tensor([True, False, False])
    auc = snippet_auc(scores, positives, lengths)
    for b in range(len(scores)):
        n = int(lengths[b])
        expected = roc_auc_score(positives[b, :n].numpy(), scores[b, :n].numpy())
        assert auc[b].item() == pytest.approx(expected, abs=1e-12), b


def test_snippet_auc_is_undefined_without_both_kinds_and_the_mean_skips_it():
    scores = torch.tensor([[0.1, 0.9, 0.5], [0.3, 0.2, 0.1]])
    positives = torch.tensor([[False, True, False], [True, True, True]])
    auc = snippet_auc(scores, positives)
    assert auc[0].item() == 1.0 and math.isnan(auc[1].item())
    assert mean_auc(auc) == 1.0 and mean_auc(auc[1:]) is None


def test_cluster_centroids_are_normalized_member_means_and_empty_clusters_score_zero():
    pooled = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 0.0]])
    labels = torch.tensor([0, 0, 2, -1])  # cluster 1 empty; the last video has no label
    centroids = cluster_centroids(pooled, labels, 3)
    torch.testing.assert_close(centroids[0], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    torch.testing.assert_close(centroids[2], torch.tensor([1.0, 1.0]) / math.sqrt(2))
    assert torch.isnan(centroids[1]).all()
    video = torch.tensor([[0.6, 0.8]])
    scores = centroid_scores(video, centroids, temperature=0.5)
    d0 = float(((centroids[0] - video[0]) ** 2).sum())
    expected = np.exp(-d0 / 0.5) / (2 * np.exp(-d0 / 0.5))  # clusters 0 and 2 tie, 1 is empty
    assert scores[0, 1].item() == 0.0
    assert scores[0, 0].item() == pytest.approx(expected) and scores[0, 2].item() == pytest.approx(expected)


def test_centroid_scores_prefer_the_nearest_centre():
    centroids = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    scores = centroid_scores(torch.tensor([[0.9, 0.1], [0.2, 0.8]]), centroids, temperature=0.05)
    assert scores.argmax(1).tolist() == [0, 1] and torch.allclose(scores.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="temperature"):
        centroid_scores(torch.zeros(1, 2), centroids, temperature=0.0)
