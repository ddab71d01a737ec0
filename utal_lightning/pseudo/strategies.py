"""Pseudolabel strategies: *how* one outer iteration pools, clusters, refines and selects (docs/method.md sec. 2).

A strategy is one object chosen in the config; the refresh Callback only decides *when* it runs
and the DataModule only holds its result. Every strategy works with every model, because models
return one output type (:class:`~utal_lightning.models.outputs.LocalizationOutput`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.cci import cci_refine, rank_within_clusters
from utal_lightning.pseudo.cluster import kmeans
from utal_lightning.pseudo.has import has_attention, has_pool, vote
from utal_lightning.pseudo.plri import plri_confidence, plri_split
from utal_lightning.pseudo.pooling import (
    attention_pool,
    background_subtracted_pool,
    minmax_over_time,
    top_fraction_weights,
)
from utal_lightning.pseudo.select import iis_beta, iis_select
from utal_lightning.pseudo.spectral import pairwise_distances, spectral_clustering, validate_eigen_solver


@dataclass
class PseudoLabels:
    """The result of one pseudolabel stage for all N training videos."""

    labels: Tensor  # (N,) int64 cluster of each video
    selected: Tensor  # (N,) bool: the pseudolabeled set P (the rest is U)
    rank: Tensor  # (N,) int64 rank inside its cluster, 0 = most confident
    targets: Tensor | None = None  # (N, K) multi-hot training targets when not one-hot(labels)


InitialPooling = Literal["deviation", "mean"]


class PseudoLabelStrategy:
    """Interface: pool each video (per batch, from the model's output), then label all videos.

    A strategy that ``observes_epochs`` sees a no-grad pass of the inference model over every
    training video after each epoch (``observe``), e.g. to vote across epochs; its state goes into
    checkpoints through the loop Callback. One that ``needs_ground_truth`` (weak supervision only)
    receives the training videos' ground truth in ``assign``.

    Iteration 1 has no model: ``initial_pooling`` says how videos are pooled then (docs/method.md sec. 3.1.1):
    "deviation" by the label-free actionness (distance from the mean training snippet), rescaled to [0, 1] over
    each video, or, with ``deviation_fraction`` set, over its top ``deviation_fraction`` snippets by it; or "mean"
    over all snippets (both papers). With ``subtract_background``
    every weighted pooling subtracts the mean of the video's other snippets (docs/method.md sec. 3.1.2).
    """

    observes_epochs: bool = False
    needs_ground_truth: bool = False
    initial_pooling: InitialPooling = "mean"
    deviation_fraction: float | None = None
    subtract_background: bool = False

    def _set_pooling(
        self, initial_pooling: InitialPooling, deviation_fraction: float | None, subtract_background: bool
    ) -> None:
        if initial_pooling not in ("deviation", "mean"):
            raise ValueError(f"initial_pooling must be deviation or mean, got {initial_pooling!r}")
        if deviation_fraction is not None and not 0.0 < deviation_fraction <= 1.0:
            raise ValueError(f"deviation_fraction must be None or in (0, 1], got {deviation_fraction}")
        self.initial_pooling, self.deviation_fraction = initial_pooling, deviation_fraction
        self.subtract_background = subtract_background

    def initial_weights(self, lengths: Tensor | None, label_free: Tensor | None) -> Tensor | None:
        """Iteration 1's pooling weights (B, T), or None for the mean."""
        if self.initial_pooling == "mean":
            return None
        if label_free is None:
            raise ValueError("deviation pooling needs the label-free actionness of the batch")
        if self.deviation_fraction is None:
            return minmax_over_time(label_free, lengths)
        return top_fraction_weights(label_free, self.deviation_fraction, lengths)

    def pooling_weights(
        self,
        output: LocalizationOutput | None,
        features: Tensor,
        video_index: Tensor,
        lengths: Tensor | None = None,
        label_free: Tensor | None = None,
    ) -> Tensor | None:
        """(B, T) weight of each snippet in its video's global feature, or None for the mean; ``output`` is None
        at iteration 1 (no model yet). ``lengths`` (B,): real positions of a zero-padded batch (videos shorter
        than T are pooled on their own snippets only, docs/method.md sec. 3.1); ``label_free`` (B, T): the label-free
        actionness (:func:`~utal_lightning.pseudo.pooling.deviation_actionness`)."""
        raise NotImplementedError

    def pool(self, features: Tensor, weights: Tensor | None, lengths: Tensor | None = None) -> Tensor:
        """(B, D) global features from :meth:`pooling_weights`: the mean where there are none, else the weighted
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
    ) -> Tensor:
        """Global features (B, D) of a batch of videos on their fixed grid (arguments as :meth:`pooling_weights`)."""
        return self.pool(features, self.pooling_weights(output, features, video_index, lengths, label_free), lengths)

    def assign(
        self,
        video_features: Tensor,
        num_clusters: int,
        iteration: int,
        max_iterations: int,
        seed: int,
        ground_truth: tuple[Tensor, Tensor] | None = None,
    ) -> PseudoLabels:
        """Cluster, refine and select (iteration is 1-based). ``ground_truth`` = (main class (N,),
        multi-hot (N, C)) of the training videos, given only to strategies that need it."""
        raise NotImplementedError

    def start_iteration(self) -> None:
        """New labels were handed out: forget per-iteration state."""

    def epoch_observation(self, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        """(B, ...) what to remember of one epoch's no-grad output for a batch of training videos
        (``lengths`` as in :meth:`video_features`)."""
        raise NotImplementedError

    def observe(self, observations: Tensor) -> None:
        """One epoch's observations of all N training videos (gathered across ranks, in video order)."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class FEELStrategy(PseudoLabelStrategy):
    """FEEL (docs/method.md sec. 3.1-3.4): attention pooling (Eq. 1), seeded k-means, CCI re-ranking and
    re-assignment (Eq. 2-9), IIS self-paced selection (Eq. 10-12).

    With ``use_cci=False`` videos are ranked by Euclidean distance to their k-means centre; with
    ``iis_schedule="none"`` every video is selected. Both off is the CoLA-UTAL baseline.

    Args:
        attention: the pooling weights ``s_t`` of Eq. 1 from the previous model's class-agnostic
            actionness ``a`` (CoLA: ``sum_k CAS``; IOCNet: ``A_ca``): "minmax" (default) rescales ``a``
            to [0, 1] over each video, "sigmoid" is Eq. 1 as written, ``sigmoid(sum_k CAS)`` (IOCNet:
            ``A_ca``). CoLA's CAS is non-negative and its sum over K classes is far above 1 on
            background snippets too, so the sigmoid is ~1 everywhere and Eq. 1 as written pools like
            the mean (docs/method.md sec. 3.1).
        initial_pooling, deviation_fraction: iteration 1's pooling (:class:`PseudoLabelStrategy`): "deviation"
            (default, docs/method.md sec. 3.1.1; by the whole rescaled actionness, or its top fraction) or "mean"
            (the paper).
        subtract_background: pool each video's attended snippets minus the rest of the video (default,
            docs/method.md sec. 3.1.2), or the attended snippets alone (the paper).
    """

    def __init__(
        self,
        attention: Literal["minmax", "sigmoid"] = "minmax",
        use_cci: bool = True,
        cci_k1: int = 20,
        cci_k2: int = 6,
        cci_gamma: float = 0.7,
        iis_schedule: Literal["variable", "constant", "none"] = "variable",
        iis_mu: float = 1.05,
        kmeans_n_init: int = 10,
        initial_pooling: InitialPooling = "deviation",
        deviation_fraction: float | None = None,
        subtract_background: bool = True,
    ) -> None:
        self._set_pooling(initial_pooling, deviation_fraction, subtract_background)
        iis_beta(1, 1, iis_schedule, iis_mu)  # validate the schedule name now, not mid-run
        if attention not in ("minmax", "sigmoid"):
            raise ValueError(f"attention must be minmax or sigmoid, got {attention!r}")
        self.attention = attention
        self.use_cci = use_cci
        self.cci_k1, self.cci_k2, self.cci_gamma = cci_k1, cci_k2, cci_gamma
        self.iis_schedule, self.iis_mu = iis_schedule, iis_mu
        self.kmeans_n_init = kmeans_n_init

    def pooling_weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor | None:
        if output is None:
            return self.initial_weights(lengths, label_free)
        if self.attention == "minmax":
            return minmax_over_time(output.actionness(), lengths)
        return output.agnostic_attention if output.agnostic_attention is not None else output.attention

    def assign(self, video_features, num_clusters, iteration, max_iterations, seed, ground_truth=None) -> PseudoLabels:
        labels, centres = kmeans(video_features, num_clusters, seed=seed, n_init=self.kmeans_n_init)
        if self.use_cci:
            refined = cci_refine(video_features, centres, k1=self.cci_k1, k2=self.cci_k2, gamma=self.cci_gamma)
            labels, rank = refined.labels, refined.rank
        else:
            rank = rank_within_clusters(torch.cdist(video_features.double(), centres.double()), labels)
        beta = iis_beta(iteration, max_iterations, self.iis_schedule, self.iis_mu)
        return PseudoLabels(labels=labels, selected=iis_select(labels, rank, beta), rank=rank)


class COPLStrategy(PseudoLabelStrategy):
    """COPL (docs/method.md sec. 3.1, 3.2, 3.4): HAS pooling with cross-epoch voting, spectral clustering, PLRI.

    Votes come from the inference model's (IOCNet: the EMA teacher's) no-grad pass over every
    training video on its fixed grid after each epoch of an iteration (docs/method.md sec. 3.1: a fixed grid is
    needed to add attention across epochs; random training crops would not line up). Iteration 1
    pools by the mean. Models without a class-agnostic branch (CoLA) use their class-specific
    attention for both HAS branches.

    Args:
        has_gamma: keep ``max(1, T // gamma)`` snippets (20 THUMOS, 2 ActivityNet).
        has_alpha: vote decay (0.9 THUMOS, 0.5 ActivityNet); the newest epoch weighs most.
        has_branch: "both" (COPL), or "cs" / "ca" (single-branch ablations, COPL Tables 3-4).
        has_filter: keep only snippets above the median in both branches (ablation: off).
        has_voting: accumulate across epochs (ablation: off = the last epoch only).
        plri_delta: P = {confidence >= delta}.
        plri_form: "affinity" (docs/method.md sec. 3.4's reading of Eq. 6-10) or "distance" (classic silhouette).
        plri_cohesion: the affinity form's cohesion ``a_i``: "others" (mean affinity to the other
            members of the cluster) or "size" (their sum divided by the cluster size, Eq. 6 as
            printed: biased low, it leaves most videos below delta = 0; see ``pseudo.plri``).
        spectral_n_init: k-means restarts on the spectral embedding.
        spectral_affinity: "dense" (docs/method.md sec. 3.2's fully connected Gaussian graph, the default) or "knn"
            (a sparse k-nearest-neighbour graph with a sparse eigensolver, for large N).
        spectral_neighbors: k of the "knn" graph.
        spectral_eigen_solver: eigensolver of the dense graph's embedding: "auto" (default: the dense
            ``eigh`` on a GPU, for N <= 1000 or K >= N / 10; ARPACK Lanczos on the CPU otherwise),
            "eigh" (full dense decomposition on the features' device) or "arpack" (only the K wanted
            eigenpairs, CPU); see :mod:`utal_lightning.pseudo.spectral`. The "knn" graph always uses
            ARPACK ("auto" or "arpack" only).
        initial_pooling, deviation_fraction: iteration 1's pooling (:class:`PseudoLabelStrategy`): "deviation"
            (default, docs/method.md sec. 3.1.1; by the whole rescaled actionness, or its top fraction) or "mean"
            (the paper).
        subtract_background: pool each video's attended snippets minus the rest of the video (default,
            docs/method.md sec. 3.1.2), or the attended snippets alone (the paper).
    """

    observes_epochs = True

    def __init__(
        self,
        has_gamma: float = 20.0,
        has_alpha: float = 0.9,
        has_branch: Literal["both", "cs", "ca"] = "both",
        has_filter: bool = True,
        has_voting: bool = True,
        plri_delta: float = 0.0,
        plri_form: Literal["affinity", "distance"] = "affinity",
        plri_cohesion: Literal["others", "size"] = "others",
        spectral_n_init: int = 10,
        spectral_affinity: Literal["dense", "knn"] = "dense",
        spectral_neighbors: int = 10,
        spectral_eigen_solver: Literal["auto", "eigh", "arpack"] = "auto",
        initial_pooling: InitialPooling = "deviation",
        deviation_fraction: float | None = None,
        subtract_background: bool = True,
    ) -> None:
        self._set_pooling(initial_pooling, deviation_fraction, subtract_background)
        if spectral_affinity == "knn" and plri_form != "affinity":
            raise ValueError("the sparse knn affinity supports plri_form='affinity' only")
        if has_branch not in ("both", "cs", "ca"):
            raise ValueError(f"has_branch must be both, cs or ca, got {has_branch!r}")
        if plri_form not in ("affinity", "distance"):
            raise ValueError(f"plri_form must be affinity or distance, got {plri_form!r}")
        validate_eigen_solver(spectral_eigen_solver, spectral_affinity)
        self.has_gamma, self.has_alpha = has_gamma, has_alpha
        self.has_branch, self.has_filter, self.has_voting = has_branch, has_filter, has_voting
        if plri_cohesion not in ("others", "size"):
            raise ValueError(f"plri_cohesion must be others or size, got {plri_cohesion!r}")
        self.plri_delta, self.plri_form, self.plri_cohesion = plri_delta, plri_form, plri_cohesion
        self.spectral_n_init = spectral_n_init
        self.spectral_affinity, self.spectral_neighbors = spectral_affinity, spectral_neighbors
        self.spectral_eigen_solver = spectral_eigen_solver
        self.votes: Tensor | None = None  # (N, T) accumulated HAS attention of this iteration

    def _has(self, output: LocalizationOutput, lengths: Tensor | None) -> Tensor:
        agnostic = output.agnostic_attention if output.agnostic_attention is not None else output.attention
        return has_attention(
            output.attention,
            agnostic,
            self.has_gamma,
            lengths=lengths,
            branch=self.has_branch,
            use_filter=self.has_filter,
        )

    def epoch_observation(self, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        return self._has(output, lengths).float()

    def observe(self, observations: Tensor) -> None:
        current = observations.float().cpu()
        self.votes = vote(self.votes, current, self.has_alpha) if self.has_voting else current

    def start_iteration(self) -> None:
        self.votes = None

    def pooling_weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor | None:
        if output is None:
            return self.initial_weights(lengths, label_free)
        if self.votes is not None:
            return self.votes[video_index.cpu()].to(features.device)
        return self._has(output, lengths)

    def weighted_pool(self, features: Tensor, weights: Tensor, lengths: Tensor | None = None) -> Tensor:
        """COPL Eq. 5 (:func:`has_pool`)."""
        return has_pool(features, weights, lengths)

    def assign(self, video_features, num_clusters, iteration, max_iterations, seed, ground_truth=None) -> PseudoLabels:
        labels, affinity = spectral_clustering(
            video_features,
            num_clusters,
            seed=seed,
            n_init=self.spectral_n_init,
            affinity=self.spectral_affinity,
            n_neighbors=self.spectral_neighbors,
            eigen_solver=self.spectral_eigen_solver,
        )
        distances = pairwise_distances(video_features) if self.plri_form == "distance" else None
        # The sparse (knn) affinity lives on the host: bring its confidences to the labels' device.
        confidence = plri_confidence(
            affinity, labels, form=self.plri_form, distances=distances, cohesion=self.plri_cohesion
        ).to(labels.device)
        selected = plri_split(confidence, labels, self.plri_delta)
        rank = rank_within_clusters(-confidence[:, None].expand(-1, int(labels.max()) + 1).double(), labels)
        return PseudoLabels(labels=labels, selected=selected, rank=rank)

    def state_dict(self) -> dict:
        return {"votes": self.votes}

    def load_state_dict(self, state: dict) -> None:
        self.votes = state.get("votes")


class GroundTruthLabels(PseudoLabelStrategy):
    """Weakly supervised mode (the papers' "Weakly" rows): the training videos' ground-truth
    video-level labels (multi-hot), every annotated video selected, one iteration."""

    needs_ground_truth = True

    def pooling_weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor | None:
        return None  # the mean; unused: labels come from the ground truth

    def assign(self, video_features, num_clusters, iteration, max_iterations, seed, ground_truth=None) -> PseudoLabels:
        if ground_truth is None:
            raise ValueError("GroundTruthLabels needs the training videos' ground truth")
        main_class, multi_hot = ground_truth
        if multi_hot.shape[1] != num_clusters:
            raise ValueError(
                f"weak supervision needs num_clusters == number of classes ({multi_hot.shape[1]}), got {num_clusters}"
            )
        annotated = main_class >= 0
        return PseudoLabels(
            labels=main_class.clamp(min=0), selected=annotated, rank=torch.zeros_like(main_class), targets=multi_hot
        )
