"""The label-free choice between poolings (docs/method.md sec. 3.1.3): cross_view_agreement, AgreementChoicePooler."""

from __future__ import annotations

import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score

from utal_lightning.pseudo.cluster import cross_view_agreement, kmeans
from utal_lightning.pseudo.clusterers import KMeansClusterer
from utal_lightning.pseudo.parts import Pooler
from utal_lightning.pseudo.poolers import AgreementChoicePooler, DeviationPooler, HASPooler
from utal_lightning.pseudo.pseudolabeler import PseudoLabeler


def _views(n: int, k: int, d: int, shared: bool, seed: int = 0) -> torch.Tensor:
    """(n, 2d): two views of n videos in k well-separated groups; ``shared``: both views group the videos alike,
    else the second view groups them by an unrelated label."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % k
    other = labels if shared else torch.randperm(n, generator=g) % k
    centres = 5 * torch.randn(2, k, d, generator=g)
    x = torch.cat([centres[0][labels], centres[1][other]], dim=1)
    return x + 0.3 * torch.randn(n, 2 * d, generator=g)


def test_views_that_group_alike_agree_and_unrelated_ones_do_not():
    assert cross_view_agreement(_views(60, 4, 8, shared=True), 4, seed=0) == pytest.approx(1.0)
    assert cross_view_agreement(_views(60, 4, 8, shared=False), 4, seed=0) < 0.3


def test_agreement_is_the_nmi_of_the_views_own_clusterings():
    x = _views(40, 3, 6, shared=False, seed=3)
    x[:20, 6:] = x[:20, :6]  # half of the videos: the second view repeats the first
    halves = [torch.nn.functional.normalize(h, dim=1) for h in x.chunk(2, dim=1)]
    a, b = (kmeans(h, 3, seed=7)[0].numpy() for h in halves)  # the slow way: each view by hand
    assert cross_view_agreement(x, 3, seed=7) == pytest.approx(normalized_mutual_info_score(a, b))


def test_a_view_that_does_not_split_the_videos_agrees_with_nothing():
    x = _views(30, 3, 4, shared=True)
    x[:, :4] = 1.0  # the first view is the same for every video
    assert cross_view_agreement(x, 3, seed=0) == 0.0
    assert cross_view_agreement(torch.ones(30, 8), 3, seed=0) == 0.0  # even both (sklearn's NMI would say 1)


def test_views_must_split_the_columns():
    with pytest.raises(ValueError, match="views"):
        cross_view_agreement(torch.randn(10, 7), 2, seed=0)
    with pytest.raises(ValueError, match="views"):
        cross_view_agreement(torch.randn(10, 8), 2, seed=0, views=1)


class _Fixed(Pooler):
    """A pooler whose global features are given (row = video index)."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__(subtract_background=False)
        self.table = table
        self.started = 0

    def weights(self, output, features, video_index, lengths=None, label_free=None):
        return torch.full(features.shape[:2], float(self.table[0, 0]))

    def video_features(self, output, features, video_index, lengths=None, label_free=None):
        return self.table[video_index], self.weights(output, features, video_index)

    def start_iteration(self) -> None:
        self.started += 1


def test_the_pooler_keeps_the_candidate_whose_views_agree():
    disagree, agree = _Fixed(_views(48, 4, 5, shared=False)), _Fixed(_views(48, 4, 5, shared=True, seed=1))
    chooser = AgreementChoicePooler([disagree, agree])
    features, index = torch.zeros(48, 3, 10), torch.arange(48)
    both, weights = chooser.video_features(None, features, index)
    assert both.shape == (48, 20) and torch.equal(weights, disagree.weights(None, features, index))
    kept = chooser.settle(both, 4, seed=0)
    assert torch.equal(kept, agree.table)
    assert chooser.choice()["kept"] == 1 and chooser.choice()["agreement"][1] == pytest.approx(1.0)
    # until the next stage it pools the kept way only (e.g. the baseline's test videos)
    assert torch.equal(chooser.video_features(None, features, index)[0], agree.table)
    state = chooser.state_dict()
    chooser.start_iteration()
    assert chooser.choice() is None and disagree.started == agree.started == 1
    assert chooser.video_features(None, features, index)[0].shape == (48, 20)
    chooser.load_state_dict(state)
    assert chooser.choice()["kept"] == 1


def test_ties_go_to_the_first_candidate():
    table = _views(30, 3, 4, shared=True)
    chooser = AgreementChoicePooler([_Fixed(table), _Fixed(table.clone())])
    chooser.settle(torch.cat([table, table], dim=1), 3, seed=0)
    assert chooser.choice()["kept"] == 0


def test_it_observes_epochs_when_a_candidate_votes_and_forwards_the_votes():
    voting = [HASPooler(gamma=1, subtract_background=s) for s in (True, False)]
    chooser = AgreementChoicePooler(voting)
    assert chooser.observes_epochs and not AgreementChoicePooler([DeviationPooler()]).observes_epochs
    votes = torch.rand(5, 7)
    chooser.observe(votes)
    assert all(torch.equal(p.votes, votes) for p in voting)


def test_the_pseudolabeler_settles_with_the_pooler_of_the_stage():
    table = _views(24, 3, 4, shared=True)
    first = AgreementChoicePooler([_Fixed(torch.zeros(24, 8)), _Fixed(table)])
    labeler = PseudoLabeler(pooler=DeviationPooler(), clusterer=KMeansClusterer(), first_pooler=first)
    pooled, _ = labeler.video_features(None, torch.zeros(24, 2, 8), torch.arange(24))
    features, choice = labeler.settle(pooled, first=True, num_clusters=3, seed=0)
    assert torch.equal(features, table) and choice["kept"] == 1
    later = torch.randn(24, 8)
    assert labeler.settle(later, first=False, num_clusters=3, seed=0) == (later, None)  # a plain pooler: as is
