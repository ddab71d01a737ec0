"""Refiners of a clustering (docs/method.md sec. 3.3); the interface: :class:`~utal_lightning.pseudo.parts.Refiner`."""

from __future__ import annotations

from dataclasses import replace

from torch import Tensor

from utal_lightning.pseudo.cci import cci_refine
from utal_lightning.pseudo.parts import Clustering, Refiner, cluster_means


class CCIRefiner(Refiner):
    """FEEL's CCI (Eq. 2-9, :func:`~utal_lightning.pseudo.cci.cci_refine`): k-reciprocal re-ranking against the
    cluster centres (the clusterer's, else the cluster means), re-assignment and the rank inside each cluster.

    Args:
        k1, k2: the k-reciprocal list lengths (20, 6).
        gamma: weight of the Jaccard distance against the Euclidean one (0.7).
    """

    def __init__(self, k1: int = 20, k2: int = 6, gamma: float = 0.7) -> None:
        self.k1, self.k2, self.gamma = k1, k2, gamma

    def refine(self, features: Tensor, clustering: Clustering) -> Clustering:
        centres = clustering.centres if clustering.centres is not None else cluster_means(features, clustering.labels)
        refined = cci_refine(features, centres, k1=self.k1, k2=self.k2, gamma=self.gamma)
        return replace(clustering, labels=refined.labels, rank=refined.rank)
