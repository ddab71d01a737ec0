"""The four kinds of part a :class:`~utal_lightning.pseudo.pseudolabeler.PseudoLabeler` is built from
(docs/method.md sec. 2; docs/architecture.md "Adding a part").

One outer iteration's pseudolabel stage is *pool -> cluster -> refine -> select*:

* a :class:`Pooler` turns each training video's snippets into one global feature (from the previous
  model's output, or label-free at iteration 1);
* a :class:`Clusterer` groups the N global features into K clusters (:class:`Clustering`);
* an optional :class:`Refiner` re-assigns and ranks the members of each cluster;
* a :class:`Selector` picks the reliable videos (the pseudolabeled set P; the rest is U) and says each
  video's rank inside its cluster.

Each part is a small class with one job, chosen by ``class_path`` in a config; a new one is a subclass
in a new file. Parts are pure tensor code: no Lightning, no loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.cci import rank_within_clusters
from utal_lightning.pseudo.pooling import attention_pool, background_subtracted_pool


@dataclass
class PseudoLabels:
    """The result of one pseudolabel stage for all N training videos."""

    labels: Tensor  # (N,) int64 cluster of each video
    selected: Tensor  # (N,) bool: the pseudolabeled set P (the rest is U)
    rank: Tensor  # (N,) int64 rank inside its cluster, 0 = most confident
    targets: Tensor | None = None  # (N, K) multi-hot training targets when not one-hot(labels)


@dataclass
class Clustering:
    """What a :class:`Clusterer` found, and what a :class:`Refiner` may change.

    ``labels`` (N,) int64 in [0, K); ``centres`` (K', D) where the algorithm has them (k-means);
    ``affinity`` (N, N), dense tensor or ``scipy.sparse`` matrix, where it built a graph (spectral
    clustering: PLRI reuses it); ``rank`` (N,) int64 rank inside the cluster once something ranked the
    members (0 = most confident); ``known`` (N,) bool: the videos that have a label at all (None:
    every video); ``targets`` (N, K) multi-hot training targets when not one-hot(labels).
    """

    labels: Tensor
    centres: Tensor | None = None
    affinity: Any = None
    rank: Tensor | None = None
    known: Tensor | None = None
    targets: Tensor | None = None


def cluster_means(features: Tensor, labels: Tensor) -> Tensor:
    """(K, D) mean feature of each cluster id in [0, max(labels)] (zeros for an empty one)."""
    k = int(labels.max()) + 1
    sums = torch.zeros(k, features.shape[1], dtype=features.dtype, device=features.device)
    sums.index_add_(0, labels, features)
    counts = torch.bincount(labels, minlength=k).clamp(min=1).to(features.dtype)
    return sums / counts[:, None]


def centre_ranking(features: Tensor, clustering: Clustering) -> Tensor:
    """(N,) each video's rank inside its cluster by Euclidean distance to the cluster's centre (the
    clusterer's centres, else the cluster means): the rank of a clustering nothing else ranked."""
    centres = clustering.centres if clustering.centres is not None else cluster_means(features, clustering.labels)
    return rank_within_clusters(torch.cdist(features.double(), centres.double()), clustering.labels)


class Pooler:
    """Where each snippet's weight in its video's global feature comes from, and how the weighted
    snippets become that feature (docs/method.md sec. 3.1).

    Args:
        subtract_background: pool the weighted snippets minus the mean of the video's other snippets
            (docs/method.md sec. 3.1.2), or the weighted snippets alone (the papers: :meth:`weighted_pool`).
    """

    observes_epochs: bool = False  # True: sees a no-grad pass over every training video after each epoch

    def __init__(self, subtract_background: bool = True) -> None:
        self.subtract_background = subtract_background

    def weights(
        self,
        output: LocalizationOutput | None,
        features: Tensor,
        video_index: Tensor,
        lengths: Tensor | None = None,
        label_free: Tensor | None = None,
    ) -> Tensor | None:
        """(B, T) weight of each snippet in its video's global feature, or None for the mean. ``output``: the
        previous model's (None at iteration 1: no model yet); ``lengths`` (B,): real positions of a zero-padded
        batch (videos shorter than T are pooled on their own snippets only); ``label_free`` (B, T): the
        label-free actionness (:func:`~utal_lightning.pseudo.pooling.deviation_actionness`)."""
        raise NotImplementedError

    def pool(self, features: Tensor, weights: Tensor | None, lengths: Tensor | None = None) -> Tensor:
        """(B, D) global features from :meth:`weights`: the mean where there are none, else the weighted
        pooling (:meth:`weighted_pool`), minus the rest of the video with ``subtract_background``."""
        if weights is None:
            return attention_pool(features, lengths=lengths)
        if self.subtract_background:
            return background_subtracted_pool(features, weights, lengths)
        return self.weighted_pool(features, weights, lengths)

    def weighted_pool(self, features: Tensor, weights: Tensor, lengths: Tensor | None = None) -> Tensor:
        """The papers' attention pooling (FEEL Eq. 1)."""
        return attention_pool(features, weights, lengths)

    def video_features(
        self,
        output: LocalizationOutput | None,
        features: Tensor,
        video_index: Tensor,
        lengths: Tensor | None = None,
        label_free: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """(B, D') global features of a batch of videos and the (B, T) weights they were pooled with (None: the
        mean); arguments as :meth:`weights`. A pooler that pools several ways returns them side by side until
        :meth:`settle` has kept one."""
        weights = self.weights(output, features, video_index, lengths, label_free)
        return self.pool(features, weights, lengths), weights

    def settle(self, pooled: Tensor, num_clusters: int, seed: int) -> Tensor:
        """(N, D) the global features the clusterer gets, from :meth:`video_features` of all N training videos (the
        same on every rank): these themselves, unless the pooler pools several ways and keeps one here."""
        return pooled

    def choice(self) -> dict | None:
        """What :meth:`settle` kept and why (for the iteration's record), or None."""
        return None

    # Across-epoch observation (only where ``observes_epochs``); the state goes into checkpoints.
    def epoch_observation(self, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) what to remember of one epoch's no-grad output for a batch of training videos."""
        raise NotImplementedError

    def observe(self, observations: Tensor) -> None:
        """One epoch's observations of all N training videos (gathered across ranks, in video order)."""

    def start_iteration(self) -> None:
        """New labels were handed out: forget per-iteration state."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class Clusterer:
    """Groups N global video features into ``num_clusters`` clusters (docs/method.md sec. 3.2).

    A clusterer that ``needs_ground_truth`` (weak supervision only) is called with the training
    videos' ground truth, ``ground_truth=(main class (N,), multi-hot (N, C))``.
    """

    needs_ground_truth: bool = False

    def cluster(self, features: Tensor, num_clusters: int, seed: int) -> Clustering:
        """Cluster ``features`` (N, D) into at most ``num_clusters`` clusters, seeded by ``seed``."""
        raise NotImplementedError


class Refiner:
    """Re-assigns and ranks the videos of a clustering (docs/method.md sec. 3.3)."""

    def refine(self, features: Tensor, clustering: Clustering) -> Clustering:
        raise NotImplementedError


class Selector:
    """Picks the pseudolabeled set P (docs/method.md sec. 3.4) and each video's rank inside its cluster."""

    def select(
        self, features: Tensor, clustering: Clustering, iteration: int, max_iterations: int
    ) -> tuple[Tensor, Tensor]:
        """(selected (N,) bool, rank (N,) int64) at ``iteration`` (1-based) of ``max_iterations``."""
        raise NotImplementedError

    @staticmethod
    def ranking(features: Tensor, clustering: Clustering) -> Tensor:
        """The clustering's rank if something ranked it, else by distance to the centres (:func:`centre_ranking`)."""
        return clustering.rank if clustering.rank is not None else centre_ranking(features, clustering)
