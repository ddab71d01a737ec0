import math

import pytest
import torch

from utal_lightning.pseudo.cluster import kmeans
from utal_lightning.pseudo.pooling import attention_pool
from utal_lightning.pseudo.select import adaptive_epochs, iis_beta, iis_select


def test_iis_beta_schedules():
    assert [iis_beta(i, 4, "constant") for i in range(1, 5)] == [0.25, 0.5, 0.75, 1.0]
    mu = 1.05
    expected = [(mu**i - 1) / (mu**10 - 1) for i in range(1, 11)]
    assert [iis_beta(i, 10, "variable", mu) for i in range(1, 11)] == pytest.approx(expected)
    assert iis_beta(10, 10, "variable", mu) == pytest.approx(1.0)
    # variable speed starts slower than constant and catches up at I_max (mu > 1)
    assert iis_beta(1, 10, "variable", mu) < iis_beta(1, 10, "constant")
    assert iis_beta(3, 5, "none") == 1.0
    with pytest.raises(ValueError):
        iis_beta(1, 5, "linear")


def test_iis_select_quota_per_cluster():
    # cluster sizes: 0 -> 5, 1 -> 1, 2 -> 4 (cluster 3 empty); ranks inside each cluster 0..n_k-1
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 2, 2, 2, 2])
    rank = torch.tensor([4, 0, 3, 1, 2, 0, 2, 0, 3, 1])
    selected = iis_select(labels, rank, beta=0.5)
    # quotas: floor(2.5) = 2, max(1, floor(0.5)) = 1, floor(2) = 2
    assert selected.tolist() == [False, True, False, True, False, True, False, True, False, True]
    assert iis_select(labels, rank, beta=0.01).sum() == 3  # at least one per non-empty cluster
    assert bool(iis_select(labels, rank, beta=1.0).all())


@pytest.mark.parametrize("e_max,selected,n,expected", [(460, 100, 200, 230), (30, 1, 4819, 1), (20, 5, 8, 13), (10, 1, 4, 3)])
def test_adaptive_epochs(e_max, selected, n, expected):
    assert adaptive_epochs(e_max, selected, n) == expected == max(1, math.floor(e_max * selected / n + 0.5))


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
