"""Pseudolabel strategies: *how* one outer iteration pools, clusters, refines and selects (SPEC 2).

A strategy is one object chosen in the config; the refresh Callback only decides *when* it runs
and the DataModule only holds its result. Every strategy works with every model, because models
return one output type (:class:`~utal_lightning.models.outputs.LocalizationOutput`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.cci import cci_refine, rank_within_clusters
from utal_lightning.pseudo.cluster import kmeans
from utal_lightning.pseudo.pooling import attention_pool
from utal_lightning.pseudo.select import iis_beta, iis_select


@dataclass
class PseudoLabels:
    """The result of one pseudolabel stage for all N training videos."""

    labels: Tensor  # (N,) int64 cluster of each video
    selected: Tensor  # (N,) bool: the pseudolabeled set P (the rest is U)
    rank: Tensor  # (N,) int64 rank inside its cluster, 0 = most confident


class PseudoLabelStrategy:
    """Interface: pool each video (per batch, from the model's output), then label all videos."""

    def video_features(self, output: LocalizationOutput | None, features: Tensor) -> Tensor:
        """Global features (B, D) of a batch of videos sampled to T snippets; ``output`` is None
        at iteration 1 (no model yet)."""
        raise NotImplementedError

    def assign(self, video_features: Tensor, num_clusters: int, iteration: int, max_iterations: int, seed: int) -> PseudoLabels:
        """Cluster, refine and select (iteration is 1-based)."""
        raise NotImplementedError


class FEELStrategy(PseudoLabelStrategy):
    """FEEL (SPEC 3.1-3.4): attention pooling (Eq. 1), seeded k-means, CCI re-ranking and
    re-assignment (Eq. 2-9), IIS self-paced selection (Eq. 10-12).

    With ``use_cci=False`` videos are ranked by Euclidean distance to their k-means centre; with
    ``iis_schedule="none"`` every video is selected. Both off is the CoLA-UTAL baseline.
    """

    def __init__(
        self,
        use_cci: bool = True,
        cci_k1: int = 20,
        cci_k2: int = 6,
        cci_gamma: float = 0.7,
        iis_schedule: str = "variable",
        iis_mu: float = 1.05,
        kmeans_n_init: int = 10,
    ) -> None:
        iis_beta(1, 1, iis_schedule, iis_mu)  # validate the schedule name now, not mid-run
        self.use_cci = use_cci
        self.cci_k1, self.cci_k2, self.cci_gamma = cci_k1, cci_k2, cci_gamma
        self.iis_schedule, self.iis_mu = iis_schedule, iis_mu
        self.kmeans_n_init = kmeans_n_init

    def video_features(self, output: LocalizationOutput | None, features: Tensor) -> Tensor:
        if output is None:
            return attention_pool(features)
        attention = output.agnostic_attention if output.agnostic_attention is not None else output.attention
        return attention_pool(features, attention)

    def assign(self, video_features: Tensor, num_clusters: int, iteration: int, max_iterations: int, seed: int) -> PseudoLabels:
        labels, centres = kmeans(video_features, num_clusters, seed=seed, n_init=self.kmeans_n_init)
        if self.use_cci:
            refined = cci_refine(video_features, centres, k1=self.cci_k1, k2=self.cci_k2, gamma=self.cci_gamma)
            labels, rank = refined.labels, refined.rank
        else:
            rank = rank_within_clusters(torch.cdist(video_features.double(), centres.double()), labels)
        beta = iis_beta(iteration, max_iterations, self.iis_schedule, self.iis_mu)
        return PseudoLabels(labels=labels, selected=iis_select(labels, rank, beta), rank=rank)
