"""CCI: clustering confidence improvement (docs/method.md sec. 3.3, FEEL Eq. 2-9), exact and batched over centres.

docs/method.md sec. 3.3 defines, for every centre ``c`` separately, k-reciprocal re-ranking on the point set
``{c} + videos`` (N + 1 points). Done literally that is K passes over an (N+1) x (N+1) matrix. This
module computes the same numbers without forming such a matrix (memory O(N k1^2) shared, O(N M)
while step 1 runs, plus O(N k1) per centre of a batch):

1. **One chunked video-video pass** (``chunk_size`` rows at a time, no N x N matrix held): each
   video's row maximum, its top-L video list in (distance, index) order (L = the longest list any
   step needs), and a cache of its M = min(N, max(128, L + 1)) nearest videos with their distances
   (O(N M) memory, freed after step 1). The expanded sets need d(p, u) also for the "two-hop" videos
   u = L[L[p, j], i] (j < k1 + 1, i < round(k1/2) + 1), the only non-neighbours they can contain:
   each is looked up in p's cache (binary search in its index-sorted row), and the pairs not found
   there are computed directly as ``|a|^2 + |b|^2 - 2ab`` on the pair (chunked gather-dot). Misses
   are ~5% of the pairs on well-clustered data (0% when M >= N) but most of them when the data has
   little neighbourhood structure (two-hop videos are then not near p); found and computed values
   differ only by floating-point rounding. The lists come from the cache too; a row whose L-th
   value ties with the cache's largest (ties reaching its edge) is sorted in full instead.
2. **A centre only inserts itself into lists.** In the graph of ``c``, video p's list is its video
   list with ``c`` inserted at ``pos_c(p)`` = the number of videos strictly closer than ``c`` (the
   centre is point 0, so it wins ties). A prefix of length n holds ``c`` iff ``pos < n`` and the
   video of slot j iff ``j + [pos <= j] < n``; "p is in q's list" is the same test on p's slot in
   q's list (tables computed once). So every reciprocal set of every point of every centre graph
   is an elementwise test, O(N k1) per centre, and the expansion rule's overlap counts are
   elementwise over the two-hop tables, O(N k1^2 / 2) per centre, with no set intersections.
3. **Expansion only where something changed.** The video-only graph's expanded sets are computed
   once. In ``c``'s graph a video's expanded set can differ only if its k1-reciprocal set changed, or
   the round(k1/2)-set of one of its k1-reciprocal members did (both detected exactly by comparing
   masks); only those rows, and the centre's own, are expanded again (all rows in the worst case,
   when a centre enters every video's list: a hub, common for cluster means in high dimension).
4. **Values are recomputed, supports reused.** Video p's row normaliser in ``c``'s graph is
   ``max(rowmax_p, d(p, c))``; V = exp(-d_E) is recomputed on every row's support with it.
5. **Only the centre's Jaccard row.** ``d_J(c, v)`` needs ``min(V_qe[c, j], V_qe[v, j])`` only on the
   support of the centre's query-expanded row: V is gathered on those columns, query-expanded for
   every video, and ``sum_j max = S_c + S_v - sum_j min`` (S = row sums).

Conventions (shared with the reference ``tests/reference/cci.py``): neighbour lists are ordered by
the raw squared distance (the order of the row-normalised d_E row), ties by point index with the
centre first; ``round(k1/2)`` is Python's ``round`` (half to even, as ``np.around`` in the re-ranking
code the paper cites; 10 for k1 = 20); the lists top-(k1+1), top-(round(k1/2)+1) and top-k2 are
each clamped to the N + 1 points; the expansion rule is strict (> 2/3); a row whose maximum
distance is 0 is not rescaled; an empty expanded set gives a zero V row. Squared distances are
``|a|^2 + |b|^2 - 2ab`` clamped at 0 (self exactly 0). Everything runs on the inputs' device in their
dtype (float16/bfloat16 in float32). ``chunk_size`` and ``centre_batch`` change results only by
floating-point rounding (matrix-product blocking, summation order), never a list or a label by
themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CCIResult", "cci_list_lengths", "cci_refine", "rank_within_clusters"]

_BIG = 1 << 40  # "not in the list" position / index sentinel (int64)
_ELEMENTS = 1 << 23  # elements per chunk of the temporary tensors
_HOP_CACHE = 128  # nearest videos per row kept from the distance pass to look two-hop distances up in


@dataclass(frozen=True)
class CCIResult:
    """CCI output for N videos and K centres."""

    distance: Tensor  # (N, K) refined d(c_k, v) = gamma * d_J + (1 - gamma) * d_E (Eq. 7)
    labels: Tensor  # (N,) int64 argmin_k distance (Eq. 8-9), ties -> lowest k
    rank: Tensor  # (N,) int64 rank inside its (new) cluster by distance, 0 = most confident (Eq. 10)
    jaccard: Tensor  # (N, K) d_J(c_k, v) (Eq. 6)
    euclidean: Tensor  # (N, K) d_E(c_k, v): squared distance over the centre row's maximum


def cci_list_lengths(n_videos: int, k1: int, k2: int) -> tuple[int, int, int]:
    """Prefix lengths (k1-list, round(k1/2)-list, query-expansion list) on N + 1 points, clamped."""
    n_points = n_videos + 1
    return min(k1 + 1, n_points), min(round(k1 / 2) + 1, n_points), min(k2, n_points)


def rank_within_clusters(distance: Tensor, labels: Tensor) -> Tensor:
    """FEEL Eq. 10: each video's 0-based rank among its cluster's members by ``distance[n, labels[n]]``
    ascending, ties by video index. ``distance`` (N, K), ``labels`` (N,) -> (N,) int64."""
    labels = labels.long()
    n = labels.numel()
    if n == 0:
        return torch.zeros(0, dtype=torch.long, device=labels.device)
    own = distance.gather(1, labels[:, None]).squeeze(1)
    order = torch.sort(own, stable=True).indices
    order = order[torch.sort(labels[order], stable=True).indices]  # by (label, distance, index)
    counts = torch.bincount(labels, minlength=distance.shape[1])
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long, device=labels.device)
    rank[order] = torch.arange(n, device=labels.device) - start[labels[order]]
    return rank


def _list_slot(keys: Tensor, key_slot: Tensor, n: int, owner: Tensor, member: Tensor) -> Tensor:
    """member's slot in owner's list (broadcast), _BIG where it is not there.

    ``keys`` are the sorted ``owner * n + member`` of all list entries, ``key_slot`` their slots.
    """
    key = owner * n + member
    at = torch.searchsorted(keys, key).clamp_(max=keys.numel() - 1)
    return torch.where(keys[at] == key, key_slot[at], _BIG)


def _nearest(values: Tensor, m: int, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per row of ``values`` (R, C), k < m <= C (or k <= m = C): m smallest entries (any of those tied
    at the m-th value) as (columns ascending, their values), and the k smallest in (value, column)
    order as (values, columns). Each (R, m) / (R, k)."""
    rows, cols = values.shape
    if m >= cols:
        full = torch.sort(values, dim=1, stable=True)
        every = torch.arange(cols, device=values.device).expand(rows, cols)
        return every, values, full.values[:, :k], full.indices[:, :k]
    picked, index = torch.topk(values, m, dim=1, largest=False, sorted=False)
    cache_i, perm = torch.sort(index, dim=1)
    cache_d = picked.gather(1, perm)
    order = torch.sort(cache_d, dim=1, stable=True).indices[:, :k]  # (value, column) within the cache
    top_d, top_i = cache_d.gather(1, order), cache_i.gather(1, order)
    if k:
        # Columns outside the cache are >= its largest value: the top-k is exact unless its k-th
        # value ties with that (a tie reaching the cache's edge); such rows are sorted in full.
        edge = (top_d[:, -1] >= cache_d.amax(1)).nonzero().squeeze(1)
        if edge.numel():
            full = torch.sort(values[edge], dim=1, stable=True)
            top_d[edge], top_i[edge] = full.values[:, :k], full.indices[:, :k]
    return cache_i, cache_d, top_d, top_i


def _smallest(values: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k smallest entries of each row in (value, column) order: (values, columns), each (R, k)."""
    return _nearest(values, min(k + 1, values.shape[1]), k)[2:]


def _rows(table: Tensor, index: Tensor) -> Tensor:
    """``table.flatten(0, 1)[index]`` (the rows b * N + p of a (B, N, ...) table) by one index_select."""
    flat = table.reshape(-1, *table.shape[2:])
    return flat.index_select(0, index.reshape(-1)).view(*index.shape, *table.shape[2:])


def _sparse_rows(m: int, rows: Tensor, cols: Tensor, vals: Tensor, n_cols: int) -> tuple[Tensor, Tensor]:
    """(row, col, val) triples -> per row the distinct cols ascending (-1-padded, (m, W)) with a val."""
    key, perm = torch.sort(rows * n_cols + cols, stable=True)
    keep = torch.ones_like(key, dtype=torch.bool)
    keep[1:] = key[1:] != key[:-1]
    rows, cols, vals = rows[perm][keep], cols[perm][keep], vals[perm][keep]
    count = torch.bincount(rows, minlength=m)
    width = int(count.max()) if rows.numel() else 0
    slot = torch.arange(rows.numel(), device=rows.device) - (torch.cumsum(count, 0) - count)[rows]
    out_c = torch.full((m, width), -1, dtype=cols.dtype, device=cols.device)
    out_v = torch.zeros((m, width), dtype=vals.dtype, device=vals.device)
    out_c[rows, slot] = cols
    out_v[rows, slot] = vals
    return out_c, out_v


def _pad(t: Tensor, width: int, value) -> Tensor:
    if t.shape[-1] >= width:
        return t
    pad = torch.full((*t.shape[:-1], width - t.shape[-1]), value, dtype=t.dtype, device=t.device)
    return torch.cat([t, pad], dim=-1)


def _cat_rows(parts: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    width = max(u.shape[1] for u, _ in parts)
    return torch.cat([_pad(u, width, -1) for u, _ in parts]), torch.cat([_pad(d, width, 0) for _, d in parts])


@dataclass
class _State:
    """One batch of B centre graphs (the video-only graph is a batch of one 'centre at infinity')."""

    pos: Tensor  # (B, N) the centre's slot in each video's list = videos strictly closer than it
    crank: Tensor  # (B, N) rank of each video in the centre's own list (_BIG past its end)
    centre_list: Tensor  # (B, lc) the centre's nearest videos in (distance, index) order
    dc: Tensor  # (B, N) squared centre-video distances
    mask_k: Tensor  # (B, N, wk) slot j of p's list is in p's k1-reciprocal set
    c_k: Tensor  # (B, N) the centre is in p's k1-reciprocal set
    mask_h: Tensor  # (B, N, wh) the same for round(k1/2)
    c_h: Tensor  # (B, N)
    size_h: Tensor  # (B, N) size of p's round(k1/2)-reciprocal set


class _Graph:
    """Everything shared by all centres: video neighbour lists, two-hop tables, video-only sets."""

    def __init__(self, x: Tensor, k1: int, k2: int, chunk: int, hop_cache: int | None = None) -> None:
        self.x, self.chunk = x, chunk
        n = self.n = x.shape[0]
        self.n1, self.nh, self.n2 = cci_list_lengths(n, k1, k2)
        lv = self.lv = min(max(self.n1, self.nh, self.n2), n)  # video slots kept per list
        wk, wh = self.wk, self.wh = min(self.n1, lv), min(self.nh, lv)
        dev = x.device
        self.sq = (x * x).sum(1)

        # 1. One chunked video-video pass: row maxima, top-lv lists in (distance, index) order, and
        # each row's mc nearest videos (index-sorted, with distances) as a cache for the two-hop pairs.
        mc = min(n, max(hop_cache or _HOP_CACHE, lv + 1))
        self.row_max = torch.empty(n, dtype=x.dtype, device=dev)
        self.list_d = torch.empty((n, lv), dtype=x.dtype, device=dev)
        self.list_i = torch.empty((n, lv), dtype=torch.long, device=dev)
        cache_i = torch.empty((n, mc), dtype=torch.long, device=dev)
        cache_d = torch.empty((n, mc), dtype=x.dtype, device=dev)
        for s, e, d in self._distance_rows():
            self.row_max[s:e] = d.amax(1)
            cache_i[s:e], cache_d[s:e], self.list_d[s:e], self.list_i[s:e] = _nearest(d, mc, lv)
        lists = self.list_i

        # Two-hop tables over j < wk (p's k1-list) and i < wh (the round(k1/2)-list of q = L[p, j]):
        # u = L[q, i]; whether u is in p's k1-list and p in u's, for sure (slot < n1 - 1) or unless
        # the centre is inserted before it (slot n1 - 1), as bits of hop_code; and d(p, u). Slots are
        # found by binary search among the sorted keys owner * N + member of all list entries.
        keys, order = (torch.arange(n, device=dev)[:, None] * n + lists).view(-1).sort()
        key_slot = order % lv

        self.rev = torch.empty((n, lv), dtype=torch.long, device=dev)  # p's slot in L[L[p, j]]
        self.hop_u = lists[lists[:, :wk], :wh]
        self.hop_code = torch.empty(self.hop_u.shape, dtype=torch.uint8, device=dev)
        self.hop_d = torch.empty(self.hop_u.shape, dtype=x.dtype, device=dev)
        self.hop_misses = 0
        n1 = self.n1
        step = max(1, _ELEMENTS // (wk * wh))
        for s in range(0, n, step):
            e = min(n, s + step)
            me = torch.arange(s, e, device=dev)
            hop_u = self.hop_u[s:e]
            self.rev[s:e] = _list_slot(keys, key_slot, n, lists[s:e], me[:, None])
            hop_rank = _list_slot(keys, key_slot, n, me[:, None, None], hop_u)  # u's slot in L[p]
            hop_rev = _list_slot(keys, key_slot, n, hop_u, me[:, None, None])  # p's slot in L[u]
            self.hop_code[s:e] = (
                (hop_rank < n1 - 1).to(torch.uint8) | ((hop_rank == n1 - 1).to(torch.uint8) << 1)
                | ((hop_rev < n1 - 1).to(torch.uint8) << 2) | ((hop_rev == n1 - 1).to(torch.uint8) << 3)
            )  # fmt: skip
            # d(p, u): looked up in p's cache (binary search in its index-sorted row), the misses
            # computed directly (|a|^2 + |b|^2 - 2ab on the pair; no second distance pass).
            u = hop_u.reshape(e - s, wk * wh)
            at = torch.searchsorted(cache_i[s:e], u).clamp_(max=mc - 1)
            hit = cache_i[s:e].gather(1, at) == u
            hd = cache_d[s:e].gather(1, at)
            r, j = (~hit).nonzero(as_tuple=True)
            if r.numel():
                hd[r, j] = self._pair_distances(r + s, u[r, j])
                self.hop_misses += r.numel()
            self.hop_d[s:e] = hd.view(e - s, wk, wh)
        del cache_i, cache_d, keys, key_slot
        self.list_k = lists[:, :wk].contiguous()
        self.list_dk = self.list_d[:, :wk].contiguous()

        # 3. The video-only graph (the centre infinitely far) and its expanded sets.
        far = torch.full((1, n), _BIG, dtype=torch.long, device=dev)
        self.mask_k0, c_k0 = self._reciprocal(far, far, self.n1, wk)
        self.mask_h0, c_h0 = self._reciprocal(far, far, self.nh, wh)
        base = _State(
            pos=far, crank=far, centre_list=torch.zeros((1, 0), dtype=torch.long, device=dev),
            dc=torch.zeros((1, n), dtype=x.dtype, device=dev), mask_k=self.mask_k0, c_k=c_k0,
            mask_h=self.mask_h0, c_h=c_h0, size_h=self.mask_h0.sum(-1),
        )  # fmt: skip
        self.mask_k0, self.mask_h0 = self.mask_k0[0], self.mask_h0[0]
        every = torch.arange(n, device=dev)
        self.u0, self.d0 = self._expand_videos(base, torch.zeros_like(every), every)

    def _distance_rows(self):
        """Chunks (start, end, (end - start, N) squared distances; self exactly 0)."""
        x, n, dev = self.x, self.n, self.x.device
        for s in range(0, n, self.chunk):
            e = min(n, s + self.chunk)
            d = torch.addmm(self.sq[s:e, None] + self.sq[None, :], x[s:e], x.T, alpha=-2.0).clamp_(min=0)
            d[torch.arange(e - s, device=dev), torch.arange(s, e, device=dev)] = 0
            yield s, e, d

    def _reciprocal(self, pos: Tensor, crank: Tensor, n: int, w: int) -> tuple[Tensor, Tensor]:
        """Reciprocal sets of every video for prefix length n in each centre graph: mask (B, N, w)
        over p's video slots, and c_in (B, N), the centre in p's set. "p in the top-n of q" holds
        iff p's slot in q's video list, plus one if the centre is inserted before it, is < n."""
        slot = torch.arange(w, device=pos.device)
        in_p = (slot + (pos[..., None] <= slot)) < n
        rev = self.rev[:, :w]
        pos_q = pos.index_select(1, self.list_i[:, :w].reshape(-1)).view(*pos.shape, w)
        in_q = (rev + (pos_q <= rev)) < n
        return in_p & in_q, (pos < n) & (crank + 1 < n)

    def _gram(self, rows: Tensor, cols: Tensor) -> Tensor:
        """Squared distances between videos rows (M,) and cols (M, m), |a|^2 + |b|^2 - 2ab."""
        a, b = self.x.index_select(0, rows), self.x.index_select(0, cols.reshape(-1)).view(*cols.shape, -1)
        dot = torch.einsum("md,mkd->mk", a, b)
        d = (self.sq[rows][:, None] + self.sq[cols] - 2 * dot).clamp_(min=0)
        return torch.where(cols == rows[:, None], torch.zeros_like(d), d)

    def _pair_distances(self, a: Tensor, b: Tensor) -> Tensor:
        """Squared distances of the video pairs (a[i], b[i]) as in ``_gram``, in chunks of pairs."""
        out = torch.empty(a.shape, dtype=self.x.dtype, device=self.x.device)
        step = max(1, _ELEMENTS // (2 * self.x.shape[1]))
        for s in range(0, a.numel(), step):
            out[s : s + step] = self._gram(a[s : s + step], b[s : s + step, None])[:, 0]
        return out

    def _expand_videos(self, t: _State, rb: Tensor, rp: Tensor) -> tuple[Tensor, Tensor]:
        """Expanded sets (graph indices: videos, centre = N; -1 = none) and their squared distances
        for the video rows rp of the centre graphs rb, in chunks of rows."""
        step = max(1, (_ELEMENTS // 4) // (self.wk * self.wh))
        parts = [self._expand_chunk(t, rb[s : s + step], rp[s : s + step]) for s in range(0, rb.numel(), step)]
        if not parts:
            none = torch.zeros((0, 0), dtype=torch.long, device=rb.device)
            return none, none.to(self.x.dtype)
        return _cat_rows(parts)

    def _expand_chunk(self, t: _State, rb: Tensor, rp: Tensor) -> tuple[Tensor, Tensor]:
        n, n1, nh, wk, wh = self.n, self.n1, self.nh, self.wk, self.wh
        m = rb.numel()
        rows = rb * n + rp  # (graph, video) row ids; tables are gathered by flat index_select
        mk, ck = _rows(t.mask_k, rows), _rows(t.c_k, rows)  # p's k1-reciprocal set
        q = self.list_k.index_select(0, rp)
        rows_q = rb[:, None] * n + q
        vh, ch_q, size_q = _rows(t.mask_h, rows_q), _rows(t.c_h, rows_q), _rows(t.size_h, rows_q)  # q's sets
        hu = self.hop_u.index_select(0, rp)
        # u in p's k1-list and p in u's (hop_code bits 0/1: u sure/at the edge of p's list, 2/3: p of
        # u's); an edge slot counts only if the centre is not inserted before it (pos >= n1). In 0/1
        # uint8 arithmetic (much faster than comparisons), viewed as bool at the end.
        far = (t.pos >= n1).to(torch.uint8)
        far_p, far_u = _rows(far, rows)[:, None, None], _rows(far, rb[:, None, None] * n + hu)
        code = self.hop_code.index_select(0, rp)
        in_rk = ((code | ((code >> 1) & far_p)) & ((code >> 2) | ((code >> 3) & far_u)) & 1).view(torch.bool)
        inside = (vh & in_rk).sum(-1, dtype=torch.int32) + (ch_q & ck[:, None])
        accept = mk & (3 * inside > 2 * size_q)  # strictly more than 2/3
        dc_p = _rows(t.dc, rows)
        # Extra members: videos of accepted sets outside p's k1-set, the centre if it comes that
        # way, and (below) videos of the centre's own round(k1/2)-set; as (row, member, distance).
        hop = (accept[..., None] & vh & ~in_rk).view(-1).nonzero().squeeze(1)  # flat (row, j, i)
        r1 = hop // (wk * wh)
        r2 = ((accept & ch_q).any(-1) & ~ck).nonzero().squeeze(1)
        rows_x = [r1, r2]
        cols = [hu.view(-1).index_select(0, hop), torch.full_like(r2, n)]
        vals = [self.hop_d.view(-1).index_select(0, rp[r1] * (wk * wh) + hop % (wk * wh)), dc_p[r2]]

        # The centre as a member of p's k1-set brings its own round(k1/2)-set (itself + videos).
        rows_c = ck.nonzero().squeeze(1)
        if rows_c.numel() and nh > 1:
            b_c, p_c = rb[rows_c], rp[rows_c]
            cl = t.centre_list.index_select(0, b_c)[:, : nh - 1]
            cl_ok = _rows(t.pos, b_c[:, None] * n + cl) < nh
            cl_in = (cl[..., None] == torch.where(mk[rows_c], q[rows_c], -1)[:, None, :]).any(-1)
            accept_c = 3 * (1 + (cl_ok & cl_in).sum(-1)) > 2 * (1 + cl_ok.sum(-1))
            r3, i3 = (accept_c[:, None] & cl_ok & ~cl_in).nonzero(as_tuple=True)
            rows_x.append(rows_c[r3])
            cols.append(cl[r3, i3])
            vals.append(self._pair_distances(p_c[r3], cl[r3, i3]))
        extra_u, extra_d = _sparse_rows(m, torch.cat(rows_x), torch.cat(cols), torch.cat(vals), n + 1)
        members_u = torch.cat([torch.where(mk, q, -1), torch.where(ck, n, -1)[:, None], extra_u], 1)
        members_d = torch.cat([self.list_dk.index_select(0, rp), dc_p[:, None], extra_d], 1)
        return members_u, members_d

    def _expand_centres(self, t: _State) -> tuple[Tensor, Tensor]:
        """Expanded set of each centre in its own graph (B, W) and the squared distances."""
        n, n1, wh = self.n, self.n1, self.wh
        b = t.pos.shape[0]
        b2, b3 = torch.arange(b, device=t.pos.device)[:, None], torch.arange(b, device=t.pos.device)[:, None, None]
        cl = t.centre_list[:, : n1 - 1]
        ok = t.pos.gather(1, cl) < n1  # k1-reciprocal with the centre
        vh, ch_q, size_q = t.mask_h[b2, cl], t.c_h[b2, cl], t.size_h[b2, cl]
        hu = self.list_i[cl, :wh]
        in_rk = (t.crank[b3, hu] + 1 < n1) & (t.pos[b3, hu] < n1)
        inside = (vh & in_rk).sum(-1) + ch_q  # the centre is in its own set
        accept = ok & (3 * inside > 2 * size_q)
        r, j, i = (accept[..., None] & vh & ~in_rk).nonzero(as_tuple=True)
        extra_u, extra_d = _sparse_rows(b, r, hu[r, j, i], t.dc[r, hu[r, j, i]], n + 1)
        own = torch.full((b, 1), n, dtype=torch.long, device=t.pos.device)
        members_u = torch.cat([own, torch.where(ok, cl, -1), extra_u], 1)
        zero = torch.zeros((b, 1), dtype=t.dc.dtype, device=t.dc.device)
        members_d = torch.cat([zero, t.dc.gather(1, cl), extra_d], 1)
        return members_u, members_d

    # ------------------------------------------------------------------ per centre batch
    def centre_batch(self, dc: Tensor) -> tuple[Tensor, Tensor]:
        """d_J and d_E (each (B, N)) of B centres with squared centre-video distances dc (B, N)."""
        n, dev = self.n, dc.device
        b = dc.shape[0]
        bidx = torch.arange(b, device=dev)
        n1, nh, n2 = self.n1, self.nh, self.n2

        # 2. The centre's place in every list and its own list.
        pos = torch.zeros((b, n), dtype=torch.long, device=dev)
        step = max(1, _ELEMENTS // max(1, b * self.lv))
        for s in range(0, n, step):
            pos[:, s : s + step] = (self.list_d[None, s : s + step] < dc[:, s : s + step, None]).sum(-1)
        lc = min(max(n1, nh, n2) - 1, n)
        _, centre_list = _smallest(dc, lc)
        crank = torch.full((b, n), _BIG, dtype=torch.long, device=dev)
        crank.scatter_(1, centre_list, torch.arange(lc, device=dev).expand(b, lc).contiguous())
        mask_k, c_k = self._reciprocal(pos, crank, n1, self.wk)
        mask_h, c_h = self._reciprocal(pos, crank, nh, self.wh)
        t = _State(pos, crank, centre_list, dc, mask_k, c_k, mask_h, c_h, mask_h.sum(-1) + c_h)

        # 3. Rows whose expanded set may differ from the video-only graph (exact test), re-expanded.
        changed_k = (mask_k != self.mask_k0).any(-1) | c_k
        changed_h = (mask_h != self.mask_h0).any(-1) | c_h
        changed_q = changed_h.index_select(1, self.list_k.view(-1)).view(b, n, self.wk)
        redo = changed_k | (mask_k & changed_q).any(-1)
        rb, rp = redo.nonzero(as_tuple=True)
        u_new, d_new = _cat_rows([self._expand_videos(t, rb, rp), self._expand_centres(t)])
        rows_b = torch.cat([rb, bidx])
        rows_p = torch.cat([rp, torch.full((b,), n, dtype=torch.long, device=dev)])

        # 4. Current supports and V values of all N + 1 rows of every centre graph.
        width = max(self.u0.shape[1], u_new.shape[1])
        u_cur = torch.full((b, n + 1, width), -1, dtype=torch.long, device=dev)
        d_cur = torch.zeros((b, n + 1, width), dtype=dc.dtype, device=dev)
        u_cur[:, :n, : self.u0.shape[1]] = self.u0
        d_cur[:, :n, : self.u0.shape[1]] = self.d0
        u_cur[rows_b, rows_p] = _pad(u_new, width, -1)
        d_cur[rows_b, rows_p] = _pad(d_new, width, 0)
        dc_max = dc.amax(1)
        norm = torch.cat([torch.maximum(self.row_max[None], dc), dc_max[:, None]], dim=1)  # (B, N+1)
        norm = torch.where(norm > 0, norm, torch.ones_like(norm))
        w = torch.where(u_cur >= 0, torch.exp(-d_cur / norm[..., None]), torch.zeros_like(d_cur))
        w_sum = w.sum(-1, keepdim=True)
        v = w / torch.where(w_sum > 0, w_sum, torch.ones_like(w_sum))
        row_sum = v.sum(-1)  # (B, N+1): 1, or 0 for an empty set
        del w, d_cur

        # 5. The centre's query-expanded row: its support, V on those columns, every video's row.
        centre_qe = torch.cat([torch.full((b, 1), n, dtype=torch.long, device=dev), centre_list[:, : n2 - 1]], 1)
        near = u_cur[bidx[:, None], centre_qe].flatten(1)
        r, j = (near >= 0).nonzero(as_tuple=True)
        support, _ = _sparse_rows(b, r, near[r, j], torch.zeros(r.shape, dtype=dc.dtype, device=dev), n + 1)
        s_width = support.shape[1]
        colmap = torch.full((b, n + 2), s_width, dtype=torch.long, device=dev)  # column -> slot (S = dump)
        slot_ids = torch.arange(s_width, device=dev).expand(b, s_width)
        colmap.scatter_(1, torch.where(support >= 0, support, n + 1), torch.where(support >= 0, slot_ids, s_width))
        colmap[:, n + 1] = s_width
        slots = colmap.gather(1, torch.where(u_cur >= 0, u_cur, n + 1).flatten(1)).view_as(u_cur)
        v_sub = torch.zeros((b, n + 1, s_width + 1), dtype=dc.dtype, device=dev)
        v_sub.scatter_(2, slots, v)
        v_sub = v_sub[..., :s_width]
        del u_cur, v, slots

        i = torch.arange(n2, device=dev)
        before = self.list_i[:, i.clamp(max=self.lv - 1)]  # (N, n2)
        after = self.list_i[:, (i - 1).clamp(min=0, max=self.lv - 1)]
        p = pos[..., None]
        qe = torch.where(i < p, before, torch.where(i == p, n, after))  # (B, N, n2)
        acc = torch.zeros((b, n, s_width), dtype=dc.dtype, device=dev)
        for j in range(n2):
            acc += _rows(v_sub, bidx[:, None] * (n + 1) + qe[..., j])
        qe_v = acc / n2
        qe_c = v_sub[bidx[:, None], centre_qe].sum(1) / n2  # (B, S)
        inter = torch.minimum(qe_v, qe_c[:, None, :]).sum(-1)  # (B, N)
        s_v = row_sum[bidx[:, None, None], qe].sum(-1) / n2
        s_c = row_sum[bidx[:, None], centre_qe].sum(-1) / n2
        d_j = 1.0 - inter / (s_c[:, None] + s_v - inter)
        d_e = dc / torch.where(dc_max > 0, dc_max, torch.ones_like(dc_max))[:, None]
        return d_j, d_e


def cci_refine(
    features: Tensor,
    centres: Tensor,
    k1: int = 20,
    k2: int = 6,
    gamma: float = 0.7,
    chunk_size: int | None = None,
    centre_batch: int | None = None,
) -> CCIResult:
    """docs/method.md sec. 3.3 CCI of N videos ``features`` (N, D) against K ``centres`` (K, D).

    ``chunk_size``: video rows per chunk of the video-video distance pass (default: about 8M
    elements per chunk); ``centre_batch``: centres processed together (default: about 2^25
    elements of per-centre tables). Either changes results only by floating-point rounding.
    Inputs are detached; the outputs carry no gradient.
    """
    if features.dim() != 2 or centres.dim() != 2 or features.shape[1] != centres.shape[1]:
        raise ValueError(
            f"features (N, D) and centres (K, D) expected, got {tuple(features.shape)} and {tuple(centres.shape)}"
        )
    if features.shape[0] < 1 or centres.shape[0] < 1:
        raise ValueError("CCI needs at least one video and one centre")
    if k1 < 0 or k2 < 1:
        raise ValueError(f"CCI needs k1 >= 0 and k2 >= 1, got k1={k1}, k2={k2}")
    if (chunk_size is not None and chunk_size < 1) or (centre_batch is not None and centre_batch < 1):
        raise ValueError(f"chunk_size and centre_batch must be positive, got {chunk_size}, {centre_batch}")
    x = features.detach()
    if not x.is_floating_point():
        raise TypeError(f"features must be floating point, got {x.dtype}")
    if x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    c = centres.detach().to(device=x.device, dtype=x.dtype)
    if not (torch.isfinite(x).all() and torch.isfinite(c).all()):
        raise ValueError("CCI features and centres must be finite")
    x, c = x.contiguous(), c.contiguous()
    n, k = x.shape[0], c.shape[0]
    chunk = chunk_size or max(1, _ELEMENTS // n)

    graph = _Graph(x, k1, k2, chunk)
    dc_all = torch.addmm((c * c).sum(1)[:, None] + graph.sq[None, :], c, x.T, alpha=-2.0).clamp_(min=0)
    if centre_batch is None:
        # Per centre about 5 (N+1) x W tables (W ~ the widest expanded set), 3 (N+1) x S ones
        # (S ~ the centre's query-expanded support, measured ~1.3 W) and 4 N x L ones.
        w0 = graph.u0.shape[1] + 16
        per_centre = (n + 1) * (5 * w0 + 6 * w0 + 4 * graph.lv)
        centre_batch = max(1, (1 << 25) // per_centre)
    d_j = torch.empty((k, n), dtype=x.dtype, device=x.device)
    d_e = torch.empty((k, n), dtype=x.dtype, device=x.device)
    for s in range(0, k, centre_batch):
        e = min(k, s + centre_batch)
        d_j[s:e], d_e[s:e] = graph.centre_batch(dc_all[s:e])
    distance = (gamma * d_j + (1.0 - gamma) * d_e).T.contiguous()
    labels = torch.argmin(distance, dim=1)
    return CCIResult(
        distance=distance,
        labels=labels,
        rank=rank_within_clusters(distance, labels),
        jaccard=d_j.T.contiguous(),
        euclidean=d_e.T.contiguous(),
    )
