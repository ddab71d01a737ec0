import itertools

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from utal_lightning.eval.clustering import (
    clustering_scores,
    contingency_matrix,
    hungarian_mapping,
    majority_mapping,
)


def brute_force_accuracy(clusters, classes, k, c):
    """Best one-to-one assignment by trying every injection of clusters into classes (or back)."""
    best = 0
    if k <= c:
        for perm in itertools.permutations(range(c), k):
            best = max(best, sum(perm[a] == b for a, b in zip(clusters, classes, strict=True)))
    else:
        for perm in itertools.permutations(range(k), c):  # perm[class] = cluster
            best = max(best, sum(perm[b] == a for a, b in zip(clusters, classes, strict=True)))
    return best / len(classes)


@pytest.mark.parametrize("seed", range(20))
def test_scores_match_sklearn_and_brute_force(seed):
    rng = np.random.default_rng(seed)
    k, c, n = rng.integers(1, 5), rng.integers(1, 5), rng.integers(2, 40)
    classes = rng.integers(0, c, n)
    clusters = np.where(rng.random(n) < 0.6, classes % k, rng.integers(0, k, n))
    scores = clustering_scores(clusters, classes, num_clusters=k)
    assert scores["nmi"] == pytest.approx(normalized_mutual_info_score(classes, clusters), abs=1e-5)
    assert scores["ari"] == pytest.approx(adjusted_rand_score(classes, clusters), abs=1e-5)
    purity = sum(np.bincount(classes[clusters == j]).max() for j in np.unique(clusters)) / n
    assert scores["purity"] == pytest.approx(purity)
    assert scores["accuracy"] == pytest.approx(
        brute_force_accuracy(clusters, classes, int(clusters.max()) + 1, int(classes.max()) + 1)
    )


def test_unannotated_videos_are_left_out():
    scores = clustering_scores(np.array([0, 0, 1, 1, 1]), np.array([2, 2, 0, 0, -1]))
    assert scores["accuracy"] == 1.0 and scores["purity"] == 1.0 and scores["nmi"] == pytest.approx(1.0)
    assert np.isnan(clustering_scores(np.array([0]), np.array([-1]))["nmi"])


def test_majority_mapping_weights():
    # cluster 0: class counts 4, 2, 1 -> class 0 weight 1, class 1 (>= half of 4) weight 0.5, class 2 none
    # cluster 1: tie 3, 3 -> both 1.0; cluster 2: empty -> nothing
    confusion = torch.tensor([[4, 2, 1], [3, 3, 0], [0, 0, 0]])
    assert majority_mapping(confusion).tolist() == [[1.0, 0.5, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_hungarian_mapping_is_one_to_one_and_optimal():
    # greedy majority would send both clusters 0 and 1 to class 0; the optimum sends cluster 1 to class 1
    confusion = torch.tensor([[5, 0, 1], [4, 3, 0], [0, 1, 6]])
    assert hungarian_mapping(confusion).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    # more clusters than classes: the unmatched cluster falls back to its majority class
    wide = torch.tensor([[5, 0], [0, 4], [3, 1]])
    assert hungarian_mapping(wide).tolist() == [[1, 0], [0, 1], [1, 0]]


def test_contingency_matrix_counts():
    m = contingency_matrix(torch.tensor([0, 1, 1, 2]), torch.tensor([1, 1, 0, 1]), 3, 2)
    assert m.tolist() == [[0, 1], [1, 1], [0, 1]]


def test_one_cluster_to_class_map_leaves_unknown_videos_out_and_follows_the_protocol():
    from utal_lightning.eval.clustering import cluster_to_class_map

    # cluster c holds class (c + 1) % 3; the video without a class and the one without a cluster count not
    clusters = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, -1, 2])
    classes = torch.tensor([1, 1, 2, 2, 2, 2, 0, 0, 0, 0, -1])
    for protocol in ("hungarian", "majority"):
        mapping = cluster_to_class_map(clusters, classes, 3, 3, protocol)
        assert mapping.shape == (3, 3) and mapping.argmax(1).tolist() == [1, 2, 0], protocol
    # two clusters of one class: one-to-one under Hungarian, both to it under the majority protocol
    crowded, truth = torch.tensor([0, 0, 1, 1, 2]), torch.tensor([1, 1, 1, 1, 0])
    assert sorted(cluster_to_class_map(crowded, truth, 3, 3).argmax(1).tolist()) == [0, 1, 2]
    assert cluster_to_class_map(crowded, truth, 3, 3, "majority").argmax(1).tolist()[:2] == [1, 1]
    with pytest.raises(ValueError, match="protocol"):
        cluster_to_class_map(crowded, truth, 3, 3, "greedy")
