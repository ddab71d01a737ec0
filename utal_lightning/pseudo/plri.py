"""COPL PLRI: pseudolabel confidence and the P / U split (docs/method.md sec. 3.4, COPL Eq. 6-10). Pure torch.

Two forms of the confidence ``s_i``:

* ``form="affinity"`` (**the default**, docs/method.md sec. 3.4, COPL Eq. 6-8 on the spectral affinity W):
  ``a_i = mean_{j in Y_I, j != i} w_ij``, the mean affinity to the *other* members (``cohesion="others"``,
  the silhouette's cohesion; default) or, with ``cohesion="size"``, that sum divided by the cluster
  size ``|Y_I|`` as Eq. 6 literally writes it. The literal divisor scales every ``a_i`` by
  ``(|Y_I| - 1) / |Y_I|``; on a Gaussian affinity with ``sigma`` = the mean distance, all ``w_ij`` lie in a
  narrow band, that factor outweighs the cohesion margin, and nearly every video gets ``s_i < 0``
  (measured on the thumos-lite benchmark: 1-10 % of the videos in P instead of 74 %, docs/method.md
  sec. 3.4). ``b_i = max_{J != I, |Y_J| > 0} mean_{j in Y_J} w_ij`` (the nearest cluster is
  the one of *highest* mean affinity; the paper's "distance"/"min" wording sums affinities, and
  this is the reading whose sign means "more at home in its own cluster"),
  ``s_i = (a_i - b_i) / max(a_i, b_i)``.
* ``form="distance"``: the classic silhouette (Rousseeuw; ``sklearn.metrics.silhouette_samples``) on
  Euclidean distances: ``a_i = mean_{j in Y_I, j != i} d_ij``, ``b_i = min_{J != I} mean_{j in Y_J} d_ij``,
  ``s_i = (b_i - a_i) / max(a_i, b_i)``. Pass the distances (``distances=pairwise_distances(F)``);
  without them they are derived from a Gaussian W as ``d_ij = sqrt(-log w_ij)``: the Gaussian
  affinity's distances divided by ``sqrt(2) sigma``, and the silhouette is scale-invariant, so this
  is exact up to float rounding (``w_ij`` underflowing to 0 is clamped to the smallest normal float).

Both forms: a member of a singleton cluster has ``s_i = 0``; with fewer than two non-empty clusters
every ``s_i = 0`` (no "other cluster" exists; sklearn raises there); ``max(a_i, b_i) = 0`` gives 0.
Cluster ids need not be contiguous (empty ids are skipped). Computed in float64, returned in W's dtype.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["plri_confidence", "plri_split"]

_FORMS = ("affinity", "distance")
_COHESIONS = ("others", "size")


def plri_confidence(
    W: Tensor, labels: Tensor, form: str = "affinity", distances: Tensor | None = None, cohesion: str = "others"
) -> Tensor:
    """COPL Eq. 6-8: each video's confidence ``s_i`` in [-1, 1] (module docstring for both forms).

    ``W`` (N, N) affinity (its diagonal is never used), ``labels`` (N,) int cluster ids >= 0,
    ``distances`` (N, N) Euclidean distances for ``form="distance"`` (optional), ``cohesion`` the
    divisor of the affinity form's ``a_i``: "others" (``|Y_I| - 1``) or "size" (``|Y_I|``, Eq. 6
    literally). Returns (N,).
    """
    if form not in _FORMS:
        raise ValueError(f"unknown PLRI form {form!r} ({', '.join(_FORMS)})")
    if cohesion not in _COHESIONS:
        raise ValueError(f"unknown PLRI cohesion {cohesion!r} ({', '.join(_COHESIONS)})")
    if not isinstance(W, Tensor):  # a scipy.sparse kNN affinity (spectral_clustering(affinity="knn"))
        if form != "affinity":
            raise ValueError("a sparse affinity supports form='affinity' only")
        dense_free = W.tocsr().astype(np.float64)
        dense_free.setdiag(0)  # "other" members only
        return _confidence_from_sums(
            lambda onehot: torch.from_numpy(dense_free @ onehot.numpy()),
            labels.cpu().long(),
            torch.float32,
            form,
            cohesion,
        )
    if W.dim() != 2 or W.shape[0] != W.shape[1] or labels.shape != (W.shape[0],):
        raise ValueError(f"expected W (N, N) and labels (N,), got {tuple(W.shape)}, {tuple(labels.shape)}")
    n = W.shape[0]
    out_dtype = W.dtype if W.is_floating_point() else torch.float32
    labels = labels.to(W.device).long()
    if n == 0:
        return torch.zeros(0, dtype=out_dtype, device=W.device)
    if bool((labels < 0).any()):
        raise ValueError("labels must be >= 0")

    if form == "affinity":
        m = W.to(torch.float64)
    elif distances is not None:
        if distances.shape != W.shape:
            raise ValueError(f"distances {tuple(distances.shape)} must match W {tuple(W.shape)}")
        m = distances.to(device=W.device, dtype=torch.float64)
    else:
        tiny = torch.finfo(torch.float64).tiny
        m = (-torch.log(W.to(torch.float64).clamp(min=tiny, max=1.0))).sqrt()
    m = m.clone()
    m.fill_diagonal_(0)  # "other" members only: the diagonal never counts
    return _confidence_from_sums(lambda onehot: m @ onehot, labels, out_dtype, form, cohesion)


def _confidence_from_sums(
    cluster_sums, labels: Tensor, out_dtype: torch.dtype, form: str, cohesion: str = "others"
) -> Tensor:
    """Eq. 6-8 from ``cluster_sums(onehot (N, C)) -> (N, C)``.

    Per video, the sum of m_ij over each cluster's members.
    """
    num = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(labels, num).to(torch.float64)  # (N, C)
    sums = cluster_sums(onehot).to(torch.float64)  # (N, C): sum over cluster c's members (self contributes 0)
    counts = onehot.sum(0)  # (C,)
    own_size = counts[labels]
    own_sum = sums.gather(1, labels[:, None]).squeeze(1)
    other = (counts[None, :] > 0) & (torch.arange(num, device=labels.device)[None, :] != labels[:, None])
    means = sums / counts.clamp(min=1)[None, :]

    if form == "affinity":
        a = own_sum / (own_size if cohesion == "size" else (own_size - 1).clamp(min=1))
        b = torch.where(other, means, torch.full_like(means, float("-inf"))).amax(1)
        diff = a - b
    else:
        a = own_sum / (own_size - 1).clamp(min=1)
        b = torch.where(other, means, torch.full_like(means, float("inf"))).amin(1)
        diff = b - a
    denom = torch.maximum(a, b)
    ok = (own_size > 1) & other.any(1) & (denom > 0)
    s = torch.where(ok, diff / torch.where(ok, denom, torch.ones_like(denom)), torch.zeros_like(diff))
    return s.to(out_dtype)


def plri_split(confidence: Tensor, labels: Tensor, delta: float = 0.0) -> Tensor:
    """COPL Eq. 9-10: the pseudolabeled set ``P = {s_i >= delta}`` as an (N,) bool mask (U = ``~P``).

    Never-empty guard (docs/method.md sec. 3.4): a cluster with members none of which reaches delta keeps its best
    member (highest s; ties -> lowest index). NaN confidences count as -inf.
    """
    if confidence.shape != labels.shape or confidence.dim() != 1:
        raise ValueError(
            f"expected confidence (N,) and labels (N,), got {tuple(confidence.shape)}, {tuple(labels.shape)}"
        )
    n = confidence.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.bool, device=confidence.device)
    labels = labels.to(confidence.device).long()
    s = confidence if confidence.is_floating_point() else confidence.to(torch.float64)
    s = torch.nan_to_num(s, nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    selected = s >= delta  # in the confidence's dtype (a float32 s = -0.1 passes delta = -0.1)
    num = int(labels.max()) + 1
    has_any = torch.zeros(num, dtype=torch.bool, device=s.device).scatter_reduce(
        0, labels, selected, reduce="amax", include_self=True
    )
    best = torch.full((num,), float("-inf"), dtype=s.dtype, device=s.device).scatter_reduce(
        0, labels, s, reduce="amax", include_self=True
    )
    index = torch.arange(n, device=s.device)
    is_best = s == best[labels]  # every member ties at -inf when all are NaN/-inf: still one is kept
    first = torch.full((num,), n, dtype=torch.long, device=s.device).scatter_reduce(
        0, labels, torch.where(is_best, index, torch.full_like(index, n)), reduce="amin", include_self=True
    )
    guard = ~has_any[labels] & (first[labels] == index)
    return selected | guard
