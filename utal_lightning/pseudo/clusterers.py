"""Clusterers of the global video features (docs/method.md sec. 3.2); the interface:
:class:`~utal_lightning.pseudo.parts.Clusterer`."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from utal_lightning.pseudo.cluster import kmeans
from utal_lightning.pseudo.parts import Clusterer, Clustering
from utal_lightning.pseudo.spectral import spectral_clustering, validate_eigen_solver


class KMeansClusterer(Clusterer):
    """FEEL's k-means (:func:`~utal_lightning.pseudo.cluster.kmeans`): Euclidean, ``n_init`` seeded restarts;
    its centres go to the refiner (CCI) and the ranking."""

    def __init__(self, n_init: int = 10) -> None:
        self.n_init = n_init

    def cluster(self, features: Tensor, num_clusters: int, seed: int) -> Clustering:
        labels, centres = kmeans(features, num_clusters, seed=seed, n_init=self.n_init)
        return Clustering(labels=labels, centres=centres)


class SpectralClusterer(Clusterer):
    """COPL's spectral clustering (:func:`~utal_lightning.pseudo.spectral.spectral_clustering`); its affinity
    graph goes to PLRI.

    Args:
        n_init: k-means restarts on the spectral embedding.
        affinity: "dense" (docs/method.md sec. 3.2's fully connected Gaussian graph, the default) or "knn"
            (a sparse k-nearest-neighbour graph with a sparse eigensolver, for large N; PLRI's affinity
            form only).
        neighbors: k of the "knn" graph.
        eigen_solver: eigensolver of the dense graph's embedding: "auto" (default: the dense ``eigh`` on a
            GPU, for N <= 1000 or K >= N / 10; ARPACK Lanczos on the CPU otherwise), "eigh" (full dense
            decomposition on the features' device) or "arpack" (only the K wanted eigenpairs, CPU); see
            :mod:`utal_lightning.pseudo.spectral`. The "knn" graph always uses ARPACK ("auto" or "arpack").
    """

    def __init__(
        self,
        n_init: int = 10,
        affinity: Literal["dense", "knn"] = "dense",
        neighbors: int = 10,
        eigen_solver: Literal["auto", "eigh", "arpack"] = "auto",
    ) -> None:
        validate_eigen_solver(eigen_solver, affinity)
        self.n_init, self.affinity, self.neighbors, self.eigen_solver = n_init, affinity, neighbors, eigen_solver

    def cluster(self, features: Tensor, num_clusters: int, seed: int) -> Clustering:
        labels, affinity = spectral_clustering(
            features,
            num_clusters,
            seed=seed,
            n_init=self.n_init,
            affinity=self.affinity,
            n_neighbors=self.neighbors,
            eigen_solver=self.eigen_solver,
        )
        return Clustering(labels=labels, affinity=affinity)


class GroundTruthLabels(Clusterer):
    """Weakly supervised mode (the papers' "Weakly" rows): each training video's ground-truth main class as its
    cluster and its multi-hot labels as targets; videos without annotation are left out of P."""

    needs_ground_truth = True

    def cluster(
        self, features: Tensor, num_clusters: int, seed: int, ground_truth: tuple[Tensor, Tensor] | None = None
    ) -> Clustering:
        if ground_truth is None:
            raise ValueError("GroundTruthLabels needs the training videos' ground truth")
        main_class, multi_hot = ground_truth
        if multi_hot.shape[1] != num_clusters:
            raise ValueError(
                f"weak supervision needs num_clusters == number of classes ({multi_hot.shape[1]}), got {num_clusters}"
            )
        return Clustering(
            labels=main_class.clamp(min=0), rank=torch.zeros_like(main_class), known=main_class >= 0, targets=multi_hot
        )
