"""Straightforward per-centre reference of CCI (docs/method.md sec. 3.3, FEEL Eq. 2-7), numpy float64.

For every centre separately it builds the dense (N+1) x (N+1) squared-distance matrix of
``{c_k} + videos`` (centre = point 0), and follows the k-reciprocal re-ranking recipe point by
point, exactly as docs/method.md sec. 3.3 words it. It is deliberately slow and plain; the production code in
``utal_lightning.pseudo.cci`` must agree with it. Conventions shared with production (stated in
the production module docstring too):

- neighbour lists are ordered by the raw squared distance (the row normaliser is a positive
  per-row constant, so this is the order of d_E's row), ties by point index (centre first);
- ``round(k1 / 2)`` is Python's ``round`` (half to even, as ``np.around`` in the re-ranking code);
- list lengths are clamped to the N + 1 points: top-(k1+1), top-(round(k1/2)+1), top-k2;
- a row whose maximum is 0 is left unnormalised (all zeros), an empty expanded set gives a zero V row.
"""

from __future__ import annotations

import numpy as np


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def reference_cci_centre(dvv: np.ndarray, dvc: np.ndarray, k1: int, k2: int, gamma: float) -> dict[str, np.ndarray]:
    """One centre. ``dvv`` (N, N) video-video and ``dvc`` (N,) video-centre squared distances.
    Returns d, d_J and d_E of the centre against every video, each (N,)."""
    n_videos = len(dvc)
    n = n_videos + 1
    dist = np.empty((n, n))
    dist[0, 0] = 0.0
    dist[0, 1:] = dvc
    dist[1:, 0] = dvc
    dist[1:, 1:] = dvv
    row_max = dist.max(1)
    d_e = dist / np.where(row_max > 0, row_max, 1.0)[:, None]
    order = np.argsort(dist, axis=1, kind="stable")  # (distance, index)

    n1 = min(k1 + 1, n)
    nh = min(round(k1 / 2) + 1, n)
    n2 = min(k2, n)

    def reciprocal(m: int) -> list[set[int]]:
        forward = order[:, :m]  # (n, m): top-m of each point, itself included
        backward = order[forward, :m]  # (n, m, m): top-m of each of those
        mutual = (backward == np.arange(n)[:, None, None]).any(-1)
        return [set(forward[p][mutual[p]].tolist()) for p in range(n)]

    r_k = reciprocal(n1)
    r_h = reciprocal(nh)
    v = np.zeros((n, n))
    for p in range(n):
        expanded = set(r_k[p])
        for q in r_k[p]:
            if 3 * len(r_h[q] & r_k[p]) > 2 * len(r_h[q]):  # strictly more than 2/3
                expanded |= r_h[q]
        cols = np.array(sorted(expanded), dtype=np.int64)
        if len(cols):
            w = np.exp(-d_e[p, cols])
            v[p, cols] = w / w.sum()
    v_qe = np.zeros((n, n))
    for i in range(n2):
        v_qe += v[order[:, i]]
    v_qe /= n2
    centre_row = v_qe[0]
    inter = np.minimum(centre_row[None, :], v_qe[1:]).sum(1)
    union = np.maximum(centre_row[None, :], v_qe[1:]).sum(1)
    d_j = 1.0 - inter / union
    d_e_cv = d_e[0, 1:]
    return {"distance": gamma * d_j + (1.0 - gamma) * d_e_cv, "jaccard": d_j, "euclidean": d_e_cv}


def reference_cci(
    features, centres, k1: int = 20, k2: int = 6, gamma: float = 0.7, centre_ids=None
) -> dict[str, np.ndarray]:
    """All (or the listed) centres, one at a time. Returns (N, len(centre_ids)) arrays ``distance``,
    ``jaccard``, ``euclidean`` and, when all centres are given, ``labels`` (argmin, ties -> lowest k)."""
    x = np.asarray(features, dtype=np.float64)
    c = np.asarray(centres, dtype=np.float64)
    ids = list(range(len(c))) if centre_ids is None else list(centre_ids)
    dvv = _sq_distances(x, x)
    np.fill_diagonal(dvv, 0.0)
    dvc = _sq_distances(x, c)
    cols = [reference_cci_centre(dvv, dvc[:, k], k1, k2, gamma) for k in ids]
    out = {key: np.stack([col[key] for col in cols], axis=1) for key in ("distance", "jaccard", "euclidean")}
    if centre_ids is None:
        out["labels"] = np.argmin(out["distance"], axis=1)
    return out


def reference_rank_within_clusters(distance: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Plain loop: rank of each video among its cluster's members by (d(c_label, v), index)."""
    n = len(labels)
    rank = np.zeros(n, dtype=np.int64)
    for i in range(n):
        own = distance[i, labels[i]]
        for j in range(n):
            if labels[j] == labels[i]:
                other = distance[j, labels[j]]
                if other < own or (other == own and j < i):
                    rank[i] += 1
    return rank
