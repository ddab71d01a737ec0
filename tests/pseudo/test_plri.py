"""COPL PLRI (docs/method.md sec. 3.4, Eq. 6-10): confidence forms and the P / U split."""

import numpy as np
import pytest
import torch
from sklearn.metrics import silhouette_samples

from utal_lightning.pseudo.plri import plri_confidence, plri_split
from utal_lightning.pseudo.spectral import gaussian_affinity, pairwise_distances


def _affinity_reference(w, labels, cohesion="others"):
    """Plain double loop of the docs/method.md's affinity form (a_i over the other members, or / |Y_I|)."""
    n = len(labels)
    members = {c: [j for j in range(n) if labels[j] == c] for c in set(labels)}
    out = []
    for i in range(n):
        own = members[labels[i]]
        if len(own) == 1 or len(members) == 1:
            out.append(0.0)
            continue
        a = sum(w[i][j] for j in own if j != i) / (len(own) - 1 if cohesion == "others" else len(own))
        b = max(sum(w[i][j] for j in m) / len(m) for c, m in members.items() if c != labels[i])
        out.append((a - b) / max(a, b) if max(a, b) > 0 else 0.0)
    return out


def _data(seed, n=40, k=4):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, 6, generator=gen, dtype=torch.float64) * 1.5
    labels = torch.randint(0, k, (n,), generator=gen)
    x = centres[labels] + torch.randn(n, 6, generator=gen, dtype=torch.float64)
    return x, labels


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_affinity_form_matches_double_loop(seed):
    x, labels = _data(seed)
    labels[0] = 7  # a singleton with a gap in the ids (5, 6 empty)
    w, _ = gaussian_affinity(x)
    s = plri_confidence(w, labels)
    ref = _affinity_reference(w.tolist(), labels.tolist())
    np.testing.assert_allclose(s.numpy(), ref, atol=1e-12)
    assert s[0] == 0 and (s.abs() <= 1).all()
    assert (s != 0).sum() > 30  # the reference is not trivially zero
    literal = plri_confidence(w, labels, cohesion="size")  # Eq. 6 as printed: / |Y_I|
    np.testing.assert_allclose(literal.numpy(), _affinity_reference(w.tolist(), labels.tolist(), "size"), atol=1e-12)
    assert (literal <= s + 1e-12).all() and (literal < s).any()  # the literal divisor only lowers a_i
    with pytest.raises(ValueError, match="cohesion"):
        plri_confidence(w, labels, cohesion="n")


@pytest.mark.parametrize("seed", [0, 3])
def test_distance_form_matches_sklearn_silhouette(seed):
    x, labels = _data(seed, n=50, k=5)
    labels[3] = 9  # singleton: sklearn gives 0 as well
    d = pairwise_distances(x)
    w, _ = gaussian_affinity(x)
    s = plri_confidence(w, labels, form="distance", distances=d)
    ref = silhouette_samples(x.numpy(), labels.numpy(), metric="euclidean")
    np.testing.assert_allclose(s.numpy(), ref, atol=1e-10)
    # derived from the Gaussian W alone (scale-invariant): the same numbers
    np.testing.assert_allclose(plri_confidence(w, labels, form="distance").numpy(), ref, atol=1e-6)
    # and the two forms differ (they are different quantities)
    assert not torch.allclose(plri_confidence(w, labels), s)


def test_singletons_single_cluster_and_bad_form():
    x, _ = _data(4, n=6)
    w, _ = gaussian_affinity(x)
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    for form in ("affinity", "distance"):
        s = plri_confidence(w, labels, form=form)
        assert s[3] == 0 and (s[[0, 1, 2, 4, 5]] != 0).all()
        assert (plri_confidence(w, torch.zeros(6, dtype=torch.long), form=form) == 0).all()  # one cluster
        assert (plri_confidence(w, torch.arange(6), form=form) == 0).all()  # all singletons
    with pytest.raises(ValueError):
        plri_confidence(w, labels, form="cosine")


def test_affinity_form_sign_means_at_home():
    # two tight, far-apart groups: everyone is at home (s > 0); swap one label: that one is not (s < 0)
    x = torch.tensor([[0.0, 0], [0.1, 0], [0, 0.1], [5, 5], [5.1, 5], [5, 5.1]], dtype=torch.float64)
    w, _ = gaussian_affinity(x)
    good = torch.tensor([0, 0, 0, 1, 1, 1])
    assert (plri_confidence(w, good) > 0).all()
    bad = torch.tensor([0, 0, 1, 1, 1, 1])
    s = plri_confidence(w, bad)
    assert s[2] < 0 and s[0] > 0 and s[3] > 0


def test_split_threshold_and_guard():
    s = torch.tensor([0.5, -0.1, 0.0, -0.3, -0.2, -0.2, 0.2, -0.05])
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 3, 3])  # cluster 2 empty
    p = plri_split(s, labels)  # delta = 0: s >= 0 (inclusive)
    # cluster 1 has no member >= 0: keeps its best (-0.2 at 4 and 5 tie -> index 4)
    assert p.tolist() == [True, False, True, False, True, False, True, False]
    p = plri_split(s, labels, delta=-0.1)
    assert p.tolist() == [True, True, True, False, True, False, True, True]
    p = plri_split(s, labels, delta=0.6)  # nothing passes: one per non-empty cluster
    assert p.tolist() == [True, False, False, False, True, False, True, False]
    assert int(p.sum()) == 3
    p = plri_split(s, labels, delta=-1.0)
    assert bool(p.all())


def test_split_guard_on_real_confidences():
    x, labels = _data(5, n=60, k=6)
    w, _ = gaussian_affinity(x)
    s = plri_confidence(w, labels)
    for delta in (0.0, 0.3, 0.9):
        p = plri_split(s, labels, delta)
        assert set(labels[p].tolist()) == set(labels.tolist())  # never an empty class
        assert (p | (s < delta)).all() and (p[s >= delta]).all()  # only the guard adds members below delta
        assert int((p & (s < delta)).sum()) <= len(set(labels.tolist()))
