from fractions import Fraction

import pytest
import torch

from utal_lightning.pseudo.cluster import kmeans
from utal_lightning.pseudo.pooling import attention_pool, minmax_over_time
from utal_lightning.pseudo.select import iis_beta, iis_select


def test_iis_beta_schedules():
    assert [iis_beta(i, 4, "constant") for i in range(1, 5)] == [Fraction(1, 4), Fraction(1, 2), Fraction(3, 4), 1]
    mu = Fraction(21, 20)  # 1.05 as written
    expected = [(mu**i - 1) / (mu**10 - 1) for i in range(1, 11)]
    assert [iis_beta(i, 10, "variable", 1.05) for i in range(1, 11)] == expected
    assert iis_beta(10, 10, "variable", 1.05) == 1
    # variable speed starts slower than constant and catches up at I_max (mu > 1)
    assert iis_beta(1, 10, "variable", 1.05) < iis_beta(1, 10, "constant")
    assert iis_beta(3, 5, "variable", 1.0) == Fraction(3, 5)  # the mu -> 1 limit
    assert iis_beta(3, 5, "none") == 1
    with pytest.raises(ValueError):
        iis_beta(1, 5, "linear")
    with pytest.raises(ValueError):
        iis_beta(1, 5, "variable", 0.0)


def test_iis_select_quota_per_cluster():
    # cluster sizes: 0 -> 5, 1 -> 1, 2 -> 4 (cluster 3 empty); ranks inside each cluster 0..n_k-1
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 2, 2, 2, 2])
    rank = torch.tensor([4, 0, 3, 1, 2, 0, 2, 0, 3, 1])
    selected = iis_select(labels, rank, beta=Fraction(1, 2))
    # quotas: floor(2.5) = 2, max(1, floor(0.5)) = 1, floor(2) = 2
    assert selected.tolist() == [False, True, False, True, False, True, False, True, False, True]
    assert iis_select(labels, rank, beta=Fraction(1, 100)).sum() == 3  # at least one per non-empty cluster
    assert bool(iis_select(labels, rank, beta=1).all())
    with pytest.raises(TypeError):
        iis_select(labels, rank, beta=0.5)  # a float product is what exact quotas avoid


def _one_cluster(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.zeros(n, dtype=torch.long), torch.randperm(n, generator=torch.Generator().manual_seed(n))


def test_iis_constant_quota_is_exact():
    # Eq. 11 at i = 7 of 10 on a cluster of 90: 7 * 90 // 10 = 63; the float product 0.7 * 90 floors to 62
    assert int(0.7 * 90) == 62
    beta = iis_beta(7, 10, "constant")
    assert beta == Fraction(7, 10)
    labels, rank = _one_cluster(90)
    selected = iis_select(labels, rank, beta)
    assert int(selected.sum()) == 63 and torch.equal(selected, rank < 63)


@pytest.mark.parametrize(
    "mu,i,i_max,n,hand_beta,hand_quota",
    [
        # (6/5 - 1) / ((6/5)^2 - 1) = (1/5) / (11/25) = 5/11; 5/11 of 11 = 5 (floats give 4.999...)
        (1.2, 1, 2, 11, Fraction(5, 11), 5),
        # (11/10 - 1) / ((11/10)^3 - 1) = (1/10) / (331/1000) = 100/331; of 331: 100 (floats: 99.99...)
        (1.1, 1, 3, 331, Fraction(100, 331), 100),
        # ((21/20)^3 - 1) / ((21/20)^10 - 1) = (1261/8000) / (6439880978201/10240000000000)
        #   = 1614080000000/6439880978201; of 90: 145267200000000 // 6439880978201 = 22
        (1.05, 3, 10, 90, Fraction(1614080000000, 6439880978201), 22),
    ],
)
def test_iis_variable_quota_is_exact(mu, i, i_max, n, hand_beta, hand_quota):
    assert iis_beta(i, i_max, "variable", mu) == hand_beta
    assert iis_beta(i, i_max, "variable", str(mu)) == iis_beta(i, i_max, "variable", Fraction(str(mu))) == hand_beta
    labels, rank = _one_cluster(n)
    assert int(iis_select(labels, rank, iis_beta(i, i_max, "variable", mu)).sum()) == hand_quota


def test_attention_pool_uniform_is_mean_and_weighted_is_weighted():
    x = torch.rand(2, 5, 3)
    torch.testing.assert_close(attention_pool(x), torch.nn.functional.normalize(x.mean(1), dim=1))
    s = torch.zeros(2, 5)
    s[:, 1] = 0.7
    torch.testing.assert_close(attention_pool(x, s), torch.nn.functional.normalize(x[:, 1], dim=1))


def test_kmeans_edge_cases_do_not_crash():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    labels, centres = kmeans(x, 5, seed=0)  # K > N and duplicates
    assert labels.shape == (3,) and centres.shape[0] <= 3 and labels[0] == labels[1]
    data = torch.rand(30, 4, generator=torch.Generator().manual_seed(0))
    a, _ = kmeans(data, 3, seed=7)
    b, _ = kmeans(data, 3, seed=7)
    assert torch.equal(a, b) and len(set(a.tolist())) == 3


def test_minmax_over_time_uses_real_positions_only():
    x = torch.tensor([[1.0, 3.0, 2.0, 99.0], [5.0, 5.0, 5.0, 5.0], [0.0, -2.0, 4.0, 1.0]])
    out = minmax_over_time(x, lengths=torch.tensor([3, 4, 4]))
    torch.testing.assert_close(
        out, torch.tensor([[0.0, 1.0, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [2 / 6, 0.0, 1.0, 3 / 6]])
    )


def test_feel_pools_with_minmax_actionness_by_default():
    # CoLA's actionness sum_k CAS is >> 1 on every snippet: sigmoid(.) is ~1 everywhere (Eq. 1 as
    # written pools like the mean); rescaled to [0, 1] per video, the background snippet gets weight 0.
    from utal_lightning.models.outputs import LocalizationOutput
    from utal_lightning.pseudo.clusterers import KMeansClusterer
    from utal_lightning.pseudo.poolers import AttentionPooler
    from utal_lightning.pseudo.pooling import background_subtracted_pool
    from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

    def feel(**pooling):
        return PseudoLabeler(pooler=AttentionPooler(**pooling), clusterer=KMeansClusterer())

    features = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])
    cas = torch.tensor([[[10.0, 2.0], [3.0, 3.0], [20.0, 1.0]]])  # actionness 12, 6, 21
    output = LocalizationOutput(
        cas=cas, attention=torch.sigmoid(cas.sum(2)), video_scores=torch.ones(1, 2) / 2, embeddings=features
    )
    weights = torch.tensor([[6 / 15, 0.0, 1.0]])
    expected = torch.nn.functional.normalize(torch.einsum("bt,btd->bd", weights, features), dim=1)
    paper_pooling = feel(subtract_background=False)
    pooled, used = paper_pooling.video_features(output, features, torch.tensor([0]))
    torch.testing.assert_close(pooled, expected)
    torch.testing.assert_close(used, weights)  # the weights it pooled with, for the diagnostics
    as_written, _ = feel(attention="sigmoid", subtract_background=False).video_features(
        output, features, torch.tensor([0])
    )
    torch.testing.assert_close(as_written, attention_pool(features, torch.sigmoid(cas.sum(2))))
    # the default subtracts the (1 - w)-weighted rest of the video (docs/method.md sec. 3.1.2)
    torch.testing.assert_close(
        feel().video_features(output, features, torch.tensor([0]))[0],
        background_subtracted_pool(features, weights),
    )
    with pytest.raises(ValueError, match="attention"):
        AttentionPooler(attention="softmax")


@pytest.mark.parametrize("pooler", ["AttentionPooler", "HASPooler"])
def test_iteration_one_pools_by_the_label_free_actionness_or_the_mean(pooler):
    from utal_lightning.pseudo import poolers
    from utal_lightning.pseudo.clusterers import KMeansClusterer
    from utal_lightning.pseudo.pooling import background_subtracted_pool, top_fraction_weights
    from utal_lightning.pseudo.pseudolabeler import PseudoLabeler

    def labeler(first_pooler=None):
        return PseudoLabeler(getattr(poolers, pooler)(), KMeansClusterer(), first_pooler=first_pooler)

    features = torch.rand((2, 9, 3), generator=torch.Generator().manual_seed(0))
    label_free = torch.rand((2, 9), generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([9, 6])
    pooled, _ = labeler().video_features(None, features, torch.arange(2), lengths, label_free)
    torch.testing.assert_close(pooled, background_subtracted_pool(features, label_free, lengths))
    top, _ = labeler(poolers.DeviationPooler(fraction=0.3, subtract_background=False)).video_features(
        None, features, torch.arange(2), lengths, label_free
    )
    weights = top_fraction_weights(label_free, 0.3, lengths)  # 2 of 9, 1 of 6 snippets
    assert weights.sum(1).tolist() == [2.0, 1.0]
    torch.testing.assert_close(top, attention_pool(features, weights, lengths))
    mean, none = labeler(poolers.MeanPooler()).video_features(None, features, torch.arange(2), lengths, label_free)
    torch.testing.assert_close(mean, attention_pool(features, lengths=lengths))
    assert none is None  # the mean: no weights
    with pytest.raises(ValueError, match="label-free"):
        labeler().video_features(None, features, torch.arange(2), lengths)
    with pytest.raises(ValueError, match="fraction"):
        poolers.DeviationPooler(fraction=1.5)
