"""The PseudoLabeler's plumbing: each composition of parts gives what the methods' chains of pure functions
give, and parts that meet without what they usually get (centres, a graph) build it as documented."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from tests.reference.cci import reference_cci, reference_rank_within_clusters
from utal_lightning.pseudo.clusterers import GroundTruthLabels, KMeansClusterer, SpectralClusterer
from utal_lightning.pseudo.parts import Clustering
from utal_lightning.pseudo.poolers import MeanPooler
from utal_lightning.pseudo.pseudolabeler import PseudoLabeler
from utal_lightning.pseudo.refiners import CCIRefiner
from utal_lightning.pseudo.selectors import IISSelector, PLRISelector, SelectAll


def _blobs(seed: int, n_per: int = 12, k: int = 3, d: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 3
    return torch.cat([c + torch.randn(n_per, d, generator=g) for c in centres]).double()


def _quota_selection(labels: np.ndarray, rank: np.ndarray, beta: Fraction) -> np.ndarray:
    """Plain loop: in each cluster of n members keep the max(1, floor(beta n)) best ranked."""
    selected = np.zeros(len(labels), dtype=bool)
    for k in set(labels.tolist()):
        members = np.flatnonzero(labels == k)
        quota = max(1, beta.numerator * len(members) // beta.denominator)
        selected[members] = rank[members] < quota
    return selected


def _confidence_ranks(labels: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Plain loop: rank inside the cluster by confidence, highest first, ties by index."""
    rank = np.zeros(len(labels), dtype=np.int64)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if labels[j] == labels[i] and (confidence[j], -j) > (confidence[i], -i):
                rank[i] += 1
    return rank


def _gaussian_graph(x: np.ndarray) -> np.ndarray:
    """COPL's fully connected graph by hand: sigma = mean over all N^2 ordered pairs of the distance."""
    d = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    return np.exp(-(d**2) / (2 * d.mean() ** 2))


def _affinity_confidence(w: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """docs/method.md sec. 3.4's affinity form by hand: a = mean affinity to the other members, b = the largest
    mean affinity to another cluster, s = (a - b) / max(a, b); 0 for singletons and with one cluster."""
    out = np.zeros(len(labels))
    clusters = sorted(set(labels.tolist()))
    for i in range(len(labels)):
        own = [j for j in range(len(labels)) if labels[j] == labels[i] and j != i]
        if not own or len(clusters) == 1:
            continue
        a = np.mean([w[i, j] for j in own])
        b = max(np.mean([w[i, j] for j in np.flatnonzero(labels == k)]) for k in clusters if k != labels[i])
        out[i] = (a - b) / max(a, b)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_feel_parts_are_kmeans_then_cci_then_iis(seed):
    x = _blobs(seed)
    feel = PseudoLabeler(MeanPooler(), KMeansClusterer(n_init=4), IISSelector("constant"), CCIRefiner(k1=5, k2=2))
    out = feel.assign(x, 3, iteration=2, max_iterations=4, seed=seed)
    kmeans = KMeansClusterer(n_init=4).cluster(x, 3, seed)
    cci = reference_cci(x.numpy(), kmeans.centres.numpy(), k1=5, k2=2, gamma=0.7)
    np.testing.assert_array_equal(out.labels.numpy(), cci["labels"])
    rank = reference_rank_within_clusters(cci["distance"], cci["labels"])
    np.testing.assert_array_equal(out.rank.numpy(), rank)
    np.testing.assert_array_equal(out.selected.numpy(), _quota_selection(cci["labels"], rank, Fraction(2, 4)))


def test_without_a_refiner_videos_rank_by_distance_to_their_kmeans_centre():
    x = _blobs(3)
    out = PseudoLabeler(MeanPooler(), KMeansClusterer(), SelectAll()).assign(x, 3, 1, 1, seed=0)
    kmeans = KMeansClusterer().cluster(x, 3, 0)
    distance = torch.cdist(x, kmeans.centres.double()).numpy()
    np.testing.assert_array_equal(out.rank.numpy(), reference_rank_within_clusters(distance, kmeans.labels.numpy()))
    assert out.selected.all()


def test_cci_without_centres_refines_against_the_cluster_means():
    x = _blobs(4)
    labels = torch.tensor([0, 1, 2] * 12)  # a clustering with no centres (e.g. spectral)
    refined = CCIRefiner(k1=5, k2=2).refine(x, Clustering(labels=labels))
    means = np.stack([x.numpy()[labels.numpy() == k].mean(0) for k in range(3)])
    np.testing.assert_array_equal(refined.labels.numpy(), reference_cci(x.numpy(), means, k1=5, k2=2)["labels"])


@pytest.mark.parametrize("clusterer", [SpectralClusterer(n_init=4), KMeansClusterer(n_init=4)])
def test_plri_selects_by_confidence_on_the_gaussian_graph(clusterer):
    # spectral clustering hands PLRI its graph; k-means has none, so PLRI builds the same graph itself
    x = _blobs(5, n_per=8)
    labels = PseudoLabeler(MeanPooler(), clusterer, PLRISelector()).assign(x, 3, 1, 3, seed=0).labels.numpy()
    confidence = _affinity_confidence(_gaussian_graph(x.numpy()), labels)
    levels = np.unique(confidence)
    middle = len(levels) // 2
    delta = float(levels[middle - 1] + levels[middle]) / 2  # halfway between two videos: leaves some out
    out = PseudoLabeler(MeanPooler(), clusterer, PLRISelector(delta=delta)).assign(x, 3, 1, 3, seed=0)
    np.testing.assert_array_equal(out.labels.numpy(), labels)
    np.testing.assert_array_equal(out.selected.numpy(), confidence >= delta)
    np.testing.assert_array_equal(out.rank.numpy(), _confidence_ranks(labels, confidence))
    assert 0 < out.selected.sum() < len(labels)


def test_the_weak_labeller_takes_the_ground_truth_and_leaves_unannotated_videos_out():
    main_class = torch.tensor([2, 0, -1, 1, 2])
    multi_hot = torch.tensor([[0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 1], [0, 0, 1]])
    weak = PseudoLabeler(MeanPooler(), GroundTruthLabels(), SelectAll())
    assert weak.needs_ground_truth
    out = weak.assign(torch.zeros(5, 2), 3, 1, 1, seed=0, ground_truth=(main_class, multi_hot))
    assert out.labels.tolist() == [2, 0, 0, 1, 2] and out.selected.tolist() == [True, True, False, True, True]
    assert out.targets is multi_hot and out.rank.tolist() == [0] * 5
    with pytest.raises(ValueError, match="num_clusters"):
        weak.assign(torch.zeros(5, 2), 4, 1, 1, seed=0, ground_truth=(main_class, multi_hot))
