"""Poolers: each training video's global feature (docs/method.md sec. 3.1); the interface:
:class:`~utal_lightning.pseudo.parts.Pooler`."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.cluster import most_agreeing
from utal_lightning.pseudo.has import has_attention, has_pool, vote
from utal_lightning.pseudo.parts import Pooler
from utal_lightning.pseudo.pooling import anchored_blend, minmax_over_time, top_fraction_weights


class MeanPooler(Pooler):
    """Every snippet alike: the mean (both papers' iteration 1; the weak labeller's pooling)."""

    def weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor | None:
        return None


class DeviationPooler(Pooler):
    """The label-free pooling (docs/method.md sec. 3.1.1): weights by each snippet's distance from the mean
    training snippet, rescaled to [0, 1] over each video, or, with ``fraction`` set, a 0/1 weight on its top
    ``fraction`` of snippets by it. Nothing trained: the default iteration-1 pooler and the baseline's.

    Args:
        fraction: None (the whole rescaled distance) or in (0, 1] (THUMOS 0.1, ActivityNet 0.25).
        subtract_background: as :class:`~utal_lightning.pseudo.parts.Pooler`.
    """

    def __init__(self, fraction: float | None = None, subtract_background: bool = True) -> None:
        super().__init__(subtract_background)
        if fraction is not None and not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be None or in (0, 1], got {fraction}")
        self.fraction = fraction

    def weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor:
        if label_free is None:
            raise ValueError("deviation pooling needs the label-free actionness of the batch")
        if self.fraction is None:
            return minmax_over_time(label_free, lengths)
        return top_fraction_weights(label_free, self.fraction, lengths)


class AttentionPooler(Pooler):
    """FEEL Eq. 1 (docs/method.md sec. 3.1): weights from the previous model's class-agnostic actionness ``a``
    (CoLA: ``sum_k CAS``; IOCNet: ``A_ca``).

    Args:
        attention: "minmax" (default) rescales ``a`` to [0, 1] over each video; "sigmoid" is Eq. 1 as
            written, ``sigmoid(sum_k CAS)`` (IOCNet: ``A_ca``). CoLA's CAS is non-negative and its sum over
            K classes is far above 1 on background snippets too, so the sigmoid is ~1 everywhere and Eq. 1
            as written pools like the mean (docs/method.md sec. 3.1).
        subtract_background: as :class:`~utal_lightning.pseudo.parts.Pooler`.
    """

    def __init__(self, attention: Literal["minmax", "sigmoid"] = "minmax", subtract_background: bool = True) -> None:
        super().__init__(subtract_background)
        if attention not in ("minmax", "sigmoid"):
            raise ValueError(f"attention must be minmax or sigmoid, got {attention!r}")
        self.attention = attention

    def weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor:
        if output is None:
            raise ValueError("attention pooling needs a model's output (iteration 1 is the first pooler's)")
        if self.attention == "minmax":
            return minmax_over_time(output.actionness(), lengths)
        return output.agnostic_attention if output.agnostic_attention is not None else output.attention


class HASPooler(Pooler):
    """COPL's HAS pooling with cross-epoch voting (docs/method.md sec. 3.1, COPL Eq. 3-5).

    Votes come from the inference model's (IOCNet: the EMA teacher's) no-grad pass over every training
    video on its fixed grid after each epoch of an iteration (a fixed grid is needed to add attention
    across epochs; random training crops would not line up). Models without a class-agnostic branch
    (CoLA) use their class-specific attention for both HAS branches.

    Args:
        gamma: keep ``max(1, T // gamma)`` snippets (20 THUMOS, 2 ActivityNet).
        alpha: vote decay (0.9 THUMOS, 0.5 ActivityNet); the newest epoch weighs most.
        branch: "both" (COPL), or "cs" / "ca" (single-branch ablations, COPL Tables 3-4).
        use_filter: keep only snippets above the median in both branches (ablation: off).
        voting: accumulate across epochs (ablation: off = the last epoch only).
        subtract_background: as :class:`~utal_lightning.pseudo.parts.Pooler`; without it the weighted
            snippets are pooled by COPL Eq. 5.
    """

    observes_epochs = True

    def __init__(
        self,
        gamma: float = 20.0,
        alpha: float = 0.9,
        branch: Literal["both", "cs", "ca"] = "both",
        use_filter: bool = True,
        voting: bool = True,
        subtract_background: bool = True,
    ) -> None:
        super().__init__(subtract_background)
        if branch not in ("both", "cs", "ca"):
            raise ValueError(f"branch must be both, cs or ca, got {branch!r}")
        self.gamma, self.alpha = gamma, alpha
        self.branch, self.use_filter, self.voting = branch, use_filter, voting
        self.votes: Tensor | None = None  # (N, T) accumulated HAS attention of this iteration

    def _has(self, output: LocalizationOutput, lengths: Tensor | None) -> Tensor:
        agnostic = output.agnostic_attention if output.agnostic_attention is not None else output.attention
        return has_attention(
            output.attention, agnostic, self.gamma, lengths=lengths, branch=self.branch, use_filter=self.use_filter
        )

    def weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor:
        if self.votes is not None:
            return self.votes[video_index.cpu()].to(features.device)
        if output is None:
            raise ValueError("HAS pooling needs a model's output or votes (iteration 1 is the first pooler's)")
        return self._has(output, lengths)

    def weighted_pool(self, features: Tensor, weights: Tensor, lengths: Tensor | None = None) -> Tensor:
        """COPL Eq. 5 (:func:`~utal_lightning.pseudo.has.has_pool`)."""
        return has_pool(features, weights, lengths)

    def epoch_observation(self, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        return self._has(output, lengths).float()

    def observe(self, observations: Tensor) -> None:
        current = observations.float().cpu()
        self.votes = vote(self.votes, current, self.alpha) if self.voting else current

    def start_iteration(self) -> None:
        self.votes = None

    def state_dict(self) -> dict:
        return {"votes": self.votes}

    def load_state_dict(self, state: dict) -> None:
        self.votes = state.get("votes")


class AgreementChoicePooler(Pooler):
    """Pools every training video each way its ``candidates`` do and keeps, for the whole training set, the way whose
    views cluster most alike (:func:`~utal_lightning.pseudo.cluster.cross_view_agreement`, docs/method.md sec.
    3.1.3): a label-free choice made anew at every pseudolabel stage, on the user's own training videos. Whether
    subtracting the rest of a video helps depends on the data (it cancels a per-video nuisance, and with it a
    scene that carries the class); this lets the data say.

    Args:
        candidates: the poolings to choose from (e.g. ``DeviationPooler`` with and without
            ``subtract_background``); ties go to the first.
        views: column blocks the agreement compares (2: the RGB and flow halves of two-stream features).
    """

    def __init__(self, candidates: list[Pooler], views: int = 2) -> None:
        super().__init__(subtract_background=False)  # each candidate pools its own way
        if len(candidates) < 1:
            raise ValueError("AgreementChoicePooler needs at least one candidate")
        self.candidates, self.views = list(candidates), views
        self.kept: int | None = None  # which candidate settle() kept in this pseudolabel stage
        self.agreement: list[float] | None = None

    @property
    def observes_epochs(self) -> bool:  # type: ignore[override]
        return any(c.observes_epochs for c in self.candidates)

    def weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor | None:
        pooler = self.candidates[self.kept or 0]  # the diagnostics' weights: the kept (or first) candidate's
        return pooler.weights(output, features, video_index, lengths, label_free)

    def video_features(self, output, features, video_index, lengths=None, label_free=None):
        if self.kept is not None:
            return self.candidates[self.kept].video_features(output, features, video_index, lengths, label_free)
        pooled = [c.video_features(output, features, video_index, lengths, label_free) for c in self.candidates]
        return torch.cat([p for p, _ in pooled], dim=1), pooled[0][1]

    def settle(self, pooled: Tensor, num_clusters: int, seed: int) -> Tensor:
        if self.kept is not None:
            return pooled
        blocks = pooled.chunk(len(self.candidates), dim=1)
        self.kept, self.agreement = most_agreeing(list(blocks), num_clusters, seed, self.views)
        return blocks[self.kept]

    def choice(self) -> dict | None:
        if self.kept is None:
            return None
        return {"kept": self.kept, "agreement": [round(a, 4) for a in self.agreement or []]}

    def epoch_observation(self, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        return next(c for c in self.candidates if c.observes_epochs).epoch_observation(output, lengths)

    def observe(self, observations: Tensor) -> None:
        for c in self.candidates:
            if c.observes_epochs:
                c.observe(observations)

    def start_iteration(self) -> None:
        self.kept, self.agreement = None, None
        for c in self.candidates:
            c.start_iteration()

    def state_dict(self) -> dict:
        return {"kept": self.kept, "agreement": self.agreement, "candidates": [c.state_dict() for c in self.candidates]}

    def load_state_dict(self, state: dict) -> None:
        self.kept, self.agreement = state.get("kept"), state.get("agreement")
        for c, s in zip(self.candidates, state.get("candidates") or [{}] * len(self.candidates), strict=True):
            c.load_state_dict(s)


class AnchoredPooler(Pooler):
    """Each iteration's pooling held towards a label-free one (docs/method.md sec. 3.1.4,
    :func:`~utal_lightning.pseudo.pooling.anchored_blend`): a memory of where the loop started, as SpCL's and ODC's
    feature memories keep a cluster from drifting with one noisy model. For ``pooler`` (iterations after the first).

    Args:
        pooler: the model's pooling (``AttentionPooler``, ``HASPooler``); its weights, epoch votes and state are this
            pooler's.
        anchor: the label-free pooling (default ``DeviationPooler(fraction=0.25, subtract_background=False)``).
        weight: the anchor's share in [0, 1].
    """

    def __init__(self, pooler: Pooler, anchor: Pooler | None = None, weight: float = 0.5) -> None:
        super().__init__(subtract_background=False)  # each part pools its own way
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"weight must be in [0, 1], got {weight}")
        self.pooler, self.weight = pooler, weight
        self.anchor = anchor if anchor is not None else DeviationPooler(fraction=0.25, subtract_background=False)

    @property
    def observes_epochs(self) -> bool:  # type: ignore[override]
        return self.pooler.observes_epochs

    def weights(self, output, features, video_index, lengths=None, label_free=None) -> Tensor | None:
        return self.pooler.weights(output, features, video_index, lengths, label_free)

    def video_features(self, output, features, video_index, lengths=None, label_free=None):
        pooled, weights = self.pooler.video_features(output, features, video_index, lengths, label_free)
        anchor, _ = self.anchor.video_features(None, features, video_index, lengths, label_free)
        return anchored_blend(pooled, anchor, self.weight), weights

    def epoch_observation(self, output: LocalizationOutput, lengths: Tensor | None = None) -> Tensor:
        return self.pooler.epoch_observation(output, lengths)

    def observe(self, observations: Tensor) -> None:
        self.pooler.observe(observations)

    def start_iteration(self) -> None:
        self.pooler.start_iteration()

    def state_dict(self) -> dict:
        return self.pooler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.pooler.load_state_dict(state)
