"""Selectors of the pseudolabeled set P (docs/method.md sec. 3.4); the interface:
:class:`~utal_lightning.pseudo.parts.Selector`."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from utal_lightning.pseudo.cci import rank_within_clusters
from utal_lightning.pseudo.parts import Selector
from utal_lightning.pseudo.plri import plri_confidence, plri_split
from utal_lightning.pseudo.select import iis_beta, iis_select
from utal_lightning.pseudo.spectral import gaussian_affinity, pairwise_distances


class SelectAll(Selector):
    """Every (labelled) video is in P (the CoLA-UTAL baseline; weak supervision)."""

    def select(self, features, clustering, iteration, max_iterations) -> tuple[Tensor, Tensor]:
        return torch.ones_like(clustering.labels, dtype=torch.bool), self.ranking(features, clustering)


class IISSelector(Selector):
    """FEEL's IIS self-paced selection (Eq. 10-12): the top ``beta_i`` of each cluster by rank.

    Args:
        schedule: "variable" (Eq. 12, ``(mu^i - 1) / (mu^I - 1)``), "constant" (Eq. 11, ``i / I``) or
            "none" (every video).
        mu: the speed of the variable schedule (1.05).
    """

    def __init__(self, schedule: Literal["variable", "constant", "none"] = "variable", mu: float = 1.05) -> None:
        iis_beta(1, 1, schedule, mu)  # validate the schedule now, not mid-run
        self.schedule, self.mu = schedule, mu

    def select(self, features, clustering, iteration, max_iterations) -> tuple[Tensor, Tensor]:
        rank = self.ranking(features, clustering)
        beta = iis_beta(iteration, max_iterations, self.schedule, self.mu)
        return iis_select(clustering.labels, rank, beta), rank


class PLRISelector(Selector):
    """COPL's PLRI (Eq. 6-10): each video's confidence on the clustering's affinity graph (spectral
    clustering's; for a clusterer without one, the same fully connected Gaussian graph built here), P =
    {confidence >= delta}, ranked by confidence.

    Args:
        delta: the confidence threshold (0).
        form: "affinity" (docs/method.md sec. 3.4's reading of Eq. 6-10) or "distance" (classic silhouette;
            not with a sparse kNN graph).
        cohesion: the affinity form's cohesion ``a_i``: "others" (mean affinity to the other members of the
            cluster) or "size" (their sum divided by the cluster size, Eq. 6 as printed: biased low, it leaves
            most videos below delta = 0; see :mod:`utal_lightning.pseudo.plri`).
    """

    def __init__(
        self,
        delta: float = 0.0,
        form: Literal["affinity", "distance"] = "affinity",
        cohesion: Literal["others", "size"] = "others",
    ) -> None:
        if form not in ("affinity", "distance"):
            raise ValueError(f"form must be affinity or distance, got {form!r}")
        if cohesion not in ("others", "size"):
            raise ValueError(f"cohesion must be others or size, got {cohesion!r}")
        self.delta, self.form, self.cohesion = delta, form, cohesion

    def select(self, features, clustering, iteration, max_iterations) -> tuple[Tensor, Tensor]:
        labels = clustering.labels
        affinity = clustering.affinity
        if affinity is None:
            affinity, _ = gaussian_affinity(features.detach().to(torch.float64))
        distances = pairwise_distances(features) if self.form == "distance" else None
        # A sparse (knn) affinity lives on the host: bring its confidences to the labels' device.
        confidence = plri_confidence(affinity, labels, form=self.form, distances=distances, cohesion=self.cohesion).to(
            labels.device
        )
        selected = plri_split(confidence, labels, self.delta)
        rank = rank_within_clusters(-confidence[:, None].expand(-1, int(labels.max()) + 1).double(), labels)
        return selected, rank
