"""One outer iteration's pseudolabel stage as a pipeline of parts: pool -> cluster -> refine -> select
(docs/method.md sec. 2; the parts in :mod:`utal_lightning.pseudo.parts`).

FEEL, COPL, their cross combinations and the weak (ground-truth) labeller are configs of one
:class:`PseudoLabeler` (``configs/``); the refresh Callback only decides *when* it runs and the
DataModule only holds its result. Every part works with every model, because models return one
output type (:class:`~utal_lightning.models.outputs.LocalizationOutput`).
"""

from __future__ import annotations

from torch import Tensor

from utal_lightning.models.outputs import LocalizationOutput
from utal_lightning.pseudo.parts import Clusterer, Pooler, PseudoLabels, Refiner, Selector
from utal_lightning.pseudo.poolers import DeviationPooler
from utal_lightning.pseudo.selectors import SelectAll


class PseudoLabeler:
    """Pool each training video, cluster, optionally refine, select.

    Args:
        pooler: pools every iteration after the first, from the previous model's output (e.g.
            ``AttentionPooler``: FEEL Eq. 1; ``HASPooler``: COPL).
        clusterer: e.g. ``KMeansClusterer`` (FEEL), ``SpectralClusterer`` (COPL), ``GroundTruthLabels`` (weak).
        selector: e.g. ``IISSelector`` (FEEL), ``PLRISelector`` (COPL), ``SelectAll`` (default).
        refiner: e.g. ``CCIRefiner`` (FEEL), or None (default).
        first_pooler: pools iteration 1, when there is no model yet: ``DeviationPooler`` (default, the
            label-free pooling, docs/method.md sec. 3.1.1) or ``MeanPooler`` (both papers).
        pool_features_as_read: pool the training videos' features as read, not the networks' input (which has
            each video's label-free background subtracted with the DataModule's ``subtract_video_background``,
            docs/method.md sec. 4.3): the network learns on the scene-free input, the clustering keeps the scene
            (docs/method.md sec. 3.1.5). No effect without that subtraction.
    """

    def __init__(
        self,
        pooler: Pooler,
        clusterer: Clusterer,
        selector: Selector | None = None,
        refiner: Refiner | None = None,
        first_pooler: Pooler | None = None,
        pool_features_as_read: bool = False,
    ) -> None:
        self.pooler, self.clusterer, self.refiner = pooler, clusterer, refiner
        self.selector = selector if selector is not None else SelectAll()
        self.first_pooler = first_pooler if first_pooler is not None else DeviationPooler()
        self.pool_features_as_read = pool_features_as_read

    @property
    def observes_epochs(self) -> bool:
        """The pooler sees a no-grad pass over every training video after each epoch (HAS voting)."""
        return self.pooler.observes_epochs

    @property
    def needs_ground_truth(self) -> bool:
        """The clusterer takes the training videos' ground truth (weak supervision only)."""
        return self.clusterer.needs_ground_truth

    def pooler_for(self, output: LocalizationOutput | None) -> Pooler:
        """The pooler of a pass: :attr:`first_pooler` when there is no model output yet, else :attr:`pooler`."""
        return self.first_pooler if output is None else self.pooler

    def video_features(
        self,
        output: LocalizationOutput | None,
        features: Tensor,
        video_index: Tensor,
        lengths: Tensor | None = None,
        label_free: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """(B, D) global features of a batch of videos on their fixed grid, and the (B, T) snippet weights they were
        pooled with (None: the mean); arguments as :meth:`~utal_lightning.pseudo.parts.Pooler.weights`."""
        return self.pooler_for(output).video_features(output, features, video_index, lengths, label_free)

    def settle(self, pooled: Tensor, first: bool, num_clusters: int, seed: int) -> tuple[Tensor, dict | None]:
        """The (N, D) global features to cluster from :meth:`video_features` of every training video (``first``:
        iteration 1's pooler), and what its pooler chose (:meth:`~utal_lightning.pseudo.parts.Pooler.choice`)."""
        pooler = self.first_pooler if first else self.pooler
        return pooler.settle(pooled, num_clusters, seed), pooler.choice()

    def assign(
        self,
        video_features: Tensor,
        num_clusters: int,
        iteration: int,
        max_iterations: int,
        seed: int,
        ground_truth: tuple[Tensor, Tensor] | None = None,
    ) -> PseudoLabels:
        """Cluster, refine and select (``iteration`` is 1-based). ``ground_truth`` = (main class (N,), multi-hot
        (N, C)) of the training videos, given only where :attr:`needs_ground_truth`."""
        if self.needs_ground_truth:
            clustering = self.clusterer.cluster(video_features, num_clusters, seed, ground_truth=ground_truth)
        else:
            clustering = self.clusterer.cluster(video_features, num_clusters, seed)
        if self.refiner is not None:
            clustering = self.refiner.refine(video_features, clustering)
        selected, rank = self.selector.select(video_features, clustering, iteration, max_iterations)
        if clustering.known is not None:
            selected = selected & clustering.known
        return PseudoLabels(labels=clustering.labels, selected=selected, rank=rank, targets=clustering.targets)

    # The pooler's across-epoch state (HAS votes), forwarded for the loop and its checkpoints.
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
