"""Flat (1-D) tiling of a multi-dimensional layout, exact, without an N x N mask.

The tokens stay in row-major order (axis 0 slowest, no token permutation, dilation groups
interleaved). A Q tile is a run of ``q_tile`` consecutive tokens, a KV tile a run of ``kv_tile``;
the sequence is padded to whole tiles and padding is never attended. This is FlexAttention with a
plain mask (NATTEN's Flex backend without tile shapes), whose block mask keeps exactly the KV
tiles holding at least one attended pair:

* a (Q tile, KV tile) pair is *visited* when some query of the Q tile attends some key of the
  KV tile, and *full* when every query slot attends every key slot: padding on either side makes
  a pair partial, as in Flex's block mask (box tiling, :mod:`gnasim.plan.tiling`, discards padded
  query rows instead: only the last flat Q tile can differ);
* a KV tile that no query of the Q tile attends is skipped, wherever it lies.

How it is counted. A run of consecutive tokens splits into at most ``2 * rank - 1`` boxes (a
partial row, whole rows, whole planes, ...). The mask is a product of per-axis masks and windows
are monotone in the query, so the keys a box of queries attends are a product, per axis, of one
key progression per dilation group present. Such a product is a list of flat key runs; rows (then
planes) merge into one run while the gaps between them are shorter than a KV tile, since such a
gap cannot hide a whole tile. Per Q tile, the KV tiles hit by the union of its runs are counted
by interval union on the tile grid. The keys *every* query attends form one product (per axis,
the intersection of the windows of the tile's coordinates), and the KV tiles lying wholly inside
its exact runs are the full ones. The work grows with the number of runs (for HunyuanVideo with
128-token tiles, about 18 per box: one per frame of the window), never with ``tokens ** 2``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.plan.axis import cdiv
from gnasim.plan.product import QStationary, prod
from gnasim.plan.windows import attended_keys_total, group_lengths, window_bounds

TILING = "flat"
# Most key runs enumerated at once (memory stays bounded on large problems).
RUNS_PER_CHUNK = 1 << 21


@dataclass(frozen=True, eq=False)
class FlatPlan(QStationary):
    """Per-Q-tile counts of a flat tiling, with the attribute names of :class:`TilePlan`.

    ``visited[i]``/``full[i]`` are the KV tiles Q tile ``i`` visits and the fully dense ones among
    them. ``q_tile``/``kv_tile`` are one-element tuples (tokens along the flattening).
    """

    input_size: tuple[int, ...]
    q_tile_tokens: int
    kv_tile_tokens: int
    visited: np.ndarray
    full: np.ndarray
    attended_pairs: int

    mode = TILING             # no KV tiling mode: the block mask lists visited tiles one by one
    dilation_groups = 1       # no token permutation: groups are not folded into the batch

    @property
    def tokens(self) -> int:
        return prod(self.input_size)

    @property
    def q_tile(self) -> tuple[int, ...]:
        return (self.q_tile_tokens,)

    @property
    def kv_tile(self) -> tuple[int, ...]:
        return (self.kv_tile_tokens,)

    @property
    def q_tile_size(self) -> int:
        return self.q_tile_tokens

    @property
    def kv_tile_size(self) -> int:
        return self.kv_tile_tokens

    @property
    def q_tiles(self) -> int:
        return cdiv(self.tokens, self.q_tile_tokens)

    @property
    def kv_tiles(self) -> int:
        return cdiv(self.tokens, self.kv_tile_tokens)

    @cached_property
    def tile_pairs_visited(self) -> int:
        return int(self.visited.sum())

    @cached_property
    def tile_pairs_full(self) -> int:
        return int(self.full.sum())

    @cached_property
    def visited_max(self) -> int:
        return int(self.visited.max())

    def visited_histogram(self) -> dict[int, int]:
        """{KV tiles visited: number of Q tiles visiting that many}."""
        vals, counts = np.unique(self.visited, return_counts=True)
        return {int(v): int(c) for v, c in zip(vals, counts)}

    def full_partial_histogram(self) -> dict[tuple[int, int], int]:
        """{(full, partial) KV tiles of a Q tile: number of Q tiles}."""
        pairs, counts = np.unique(np.stack([self.full, self.visited - self.full], axis=1),
                                  axis=0, return_counts=True)
        return {(int(f), int(p)): int(c) for (f, p), c in zip(pairs, counts)}


def flat_plan(config: GNAConfig, q_tile: int, kv_tile: int) -> FlatPlan:
    """The exact flat tiling of ``config`` with runs of ``q_tile`` / ``kv_tile`` tokens."""
    for name, t in (("q_tile", q_tile), ("kv_tile", kv_tile)):
        if isinstance(t, bool) or not isinstance(t, (int, np.integer)):
            raise ConfigError(f"{name}: flat tiling takes one token count, got {t!r}")
        if t < 1:
            raise ConfigError(f"{name}: must be >= 1 token, got {t}")
    ax = _Axes(config)
    q_tile, kv_tile = int(q_tile), int(kv_tile)
    n_q = cdiv(ax.tokens, q_tile)
    owner, lo, hi = _tile_boxes(ax, n_q, q_tile)
    visited = _visited(ax, owner, lo, hi, n_q, kv_tile)
    full = _full(ax, owner, lo, hi, n_q, q_tile, kv_tile)
    visited.flags.writeable = full.flags.writeable = False
    return FlatPlan(tuple(config.input_size), q_tile, kv_tile, visited, full, _attended(config))


class _Axes:
    """The per-axis parameters as numpy vectors, with the row-major strides of the layout."""

    def __init__(self, c: GNAConfig) -> None:
        self.rank = c.rank
        self.L = np.array(c.input_size, dtype=np.int64)
        self.K = np.array(c.window_size, dtype=np.int64)
        self.S = np.array(c.stride, dtype=np.int64)
        self.D = np.array(c.dilation, dtype=np.int64)
        self.C = np.array(c.causal, dtype=bool)
        self.M = np.concatenate([np.cumprod(self.L[::-1])[::-1][1:], [1]]).astype(np.int64)
        self.tokens = int(np.prod(self.L))


def _attended(c: GNAConfig) -> int:
    total = 1
    for L, K, S, D, causal in zip(c.input_size, c.window_size, c.stride, c.dilation, c.causal):
        total *= sum(attended_keys_total(int(Lg), K, S, causal) for Lg in group_lengths(L, D))
    return total


# -- Q tiles as boxes ------------------------------------------------------------------------

def _tile_boxes(ax: _Axes, n_q: int, q_tile: int):
    """Split every Q tile's real tokens ``[i*t, min((i+1)*t, N))`` into boxes of coordinates.

    Returns ``owner`` (the Q tile of each box) and ``lo``/``hi`` (per-axis half-open coordinate
    intervals, shape ``(boxes, rank)``). Slot 0 is the middle box on the first axis ``h`` where
    the first and last token differ; slots ``1..r-1`` climb from the first token up to axis
    ``h`` (the rest of its row, plane, ...); slots ``r..2r-2`` descend to the last token.
    """
    r, L, M = ax.rank, ax.L, ax.M
    first = np.arange(n_q, dtype=np.int64) * q_tile
    last = np.minimum(first + q_tile, ax.tokens) - 1
    a = (first[:, None] // M) % L
    z = (last[:, None] // M) % L
    differ = a != z
    h = np.where(differ.any(axis=1), differ.argmax(axis=1), r - 1)[:, None]
    E = np.arange(r)[None, :]
    below = E > h
    a_aligned = ~((a != 0) & below).any(axis=1, keepdims=True)      # nothing left of a below h
    z_aligned = ~((z != L - 1) & below).any(axis=1, keepdims=True)  # nothing right of z
    los, his, oks = [], [], []
    # the middle box: prefix fixed, axis h from a_h (or a_h + 1) to z_h (or z_h + 1)
    lo = np.where(E < h, a, np.where(E == h, a + ~a_aligned, 0))
    hi = np.where(E < h, a + 1, np.where(E == h, z + z_aligned, L))
    los.append(lo), his.append(hi), oks.append((hi > lo).all(axis=1))
    for d in range(1, r):   # up from the first token: the rest of its axis-d line
        step = int(d != r - 1)
        lo = np.where(E < d, a, np.where(E == d, a + step, 0))
        hi = np.where(E < d, a + 1, L)
        ok = (d > h[:, 0]) & ~a_aligned[:, 0] & (a[:, d] + step < L[d])
        los.append(lo), his.append(hi), oks.append(ok)
    for d in range(1, r):   # down to the last token: the start of its axis-d line
        end = z + int(d == r - 1)
        lo = np.where(E < d, z, 0)
        hi = np.where(E < d, z + 1, np.where(E == d, end, L))
        ok = (d > h[:, 0]) & ~z_aligned[:, 0] & (end[:, d] > 0)
        los.append(lo), his.append(hi), oks.append(ok)
    ok = np.stack(oks, axis=1)
    owner = np.broadcast_to(np.arange(n_q)[:, None], ok.shape)[ok]
    return owner, np.stack(los, axis=1)[ok], np.stack(his, axis=1)[ok]


# -- key sets as products of progressions, and their flat runs --------------------------------

def _window_progressions(ax: _Axes, d: int, lo: np.ndarray, hi: np.ndarray):
    """Keys the queries ``[lo, hi)`` attend on axis ``d``: one progression per dilation group,
    as ``(first key, count, step)`` arrays of shape ``(len(lo), D)`` (count 0: group absent)."""
    L, K, S, D, causal = (int(ax.L[d]), int(ax.K[d]), int(ax.S[d]), int(ax.D[d]), bool(ax.C[d]))
    lo, hi = lo[:, None], hi[:, None]
    g = np.arange(D, dtype=np.int64)[None, :]
    present = (hi - lo >= D) | ((g - lo) % D < hi - lo)
    q_first = (lo + (g - lo) % D) // D
    q_last = (hi - 1 - (hi - 1 - g) % D) // D
    Lg = group_lengths(L, D)[g]
    start, _ = window_bounds(q_first, Lg, K, S, causal)
    _, end = window_bounds(q_last, Lg, K, S, causal)
    count = np.where(present, np.maximum(end - start, 0), 0)
    return start * D + g, count, np.full_like(count, D)


def _run_shape(ax: _Axes, first: np.ndarray, count: np.ndarray, step: np.ndarray, merge: int):
    """How products of per-axis progressions (arrays of shape ``(P, rank)``) break into runs.

    From the last axis up, the copies of the unit below (one key, one row, one plane, ...) merge
    into one run while the gaps between them are shorter than ``merge`` keys; the axes above
    the first that does not merge are enumerated key by key. With ``merge = 1`` runs are exact
    (only touching keys merge); with ``merge = kv_tile`` no gap inside a run can hold a whole KV
    tile, so a run hits exactly the KV tiles its keys hit. Returns ``radix`` (keys enumerated per
    axis, shape ``(P, rank)``) and each product's run length.
    """
    lo = np.zeros(len(first), dtype=np.int64)
    hi = np.ones(len(first), dtype=np.int64)
    merged = np.ones(len(first), dtype=bool)
    radix = np.ones_like(count)
    for d in range(ax.rank - 1, -1, -1):
        pitch = step[:, d] * ax.M[d]
        merged &= (count[:, d] == 1) | (pitch - (hi - lo) < merge)
        lo = np.where(merged, first[:, d] * ax.M[d] + lo, lo)
        hi = np.where(merged, first[:, d] * ax.M[d] + (count[:, d] - 1) * pitch + hi, hi)
        radix[:, d] = np.where(merged, 1, count[:, d])
    return radix, hi - lo


def _runs(ax: _Axes, first: np.ndarray, radix: np.ndarray):
    """``(owner, start)`` of every run of the products, in flat order within each product.

    Every progression on axis ``d`` steps by the axis's dilation, so products with the same
    ``radix`` share their run offsets (``i_d * D_d * M_d`` summed over the enumerated axes): each
    such class is one broadcast sum written into place, with no division.
    """
    n_runs = radix.prod(axis=1)
    offset = np.cumsum(n_runs) - n_runs
    base = first @ ax.M
    start = np.empty(int(n_runs.sum()), dtype=np.int64)
    shapes, which = np.unique(radix, axis=0, return_inverse=True)
    for k, shape in enumerate(shapes):
        members = np.nonzero(which.ravel() == k)[0]
        grid = np.zeros(1, dtype=np.int64)
        for d in range(ax.rank):
            grid = (grid[:, None] + np.arange(shape[d]) * (ax.D[d] * ax.M[d])).ravel()
        start[(offset[members, None] + np.arange(len(grid))).ravel()] = \
            (base[members, None] + grid).ravel()
    return np.repeat(np.arange(len(first)), n_runs), start


def _product_boxes(ax: _Axes, owner, lo, hi):
    """The products of per-axis progressions whose union is the keys the boxes attend."""
    parts = [_window_progressions(ax, d, lo[:, d], hi[:, d]) for d in range(ax.rank)]
    shape = (len(owner),) + tuple(int(x) for x in ax.D)
    fields = []
    for j in range(3):
        cols = []
        for d, part in enumerate(parts):
            view = [1] * (ax.rank + 1)
            view[0], view[d + 1] = len(owner), int(ax.D[d])
            cols.append(np.broadcast_to(part[j].reshape(view), shape).reshape(len(owner), -1))
        fields.append(np.stack(cols, axis=2))
    first, count, step = (f.reshape(-1, ax.rank) for f in fields)
    box_owner = np.repeat(owner, int(np.prod(ax.D)))
    keep = (count > 0).all(axis=1)
    return box_owner[keep], first[keep], count[keep], step[keep]


def _chunks(tile_of_product: np.ndarray, runs_per_product: np.ndarray, n_q: int):
    """Ranges of products, cut at Q tile boundaries, each with about RUNS_PER_CHUNK runs."""
    per_tile = np.bincount(tile_of_product, weights=runs_per_product, minlength=n_q)
    cum_tile = np.cumsum(per_tile)
    cuts = np.searchsorted(cum_tile, np.arange(RUNS_PER_CHUNK, cum_tile[-1], RUNS_PER_CHUNK))
    tile_cuts = np.unique(np.concatenate([[0], cuts + 1, [n_q]]).clip(0, n_q))
    product_cuts = np.searchsorted(tile_of_product, tile_cuts)
    return list(itertools.pairwise(product_cuts))


def _visited(ax: _Axes, owner, lo, hi, n_q: int, kv_tile: int) -> np.ndarray:
    """KV tiles hit by the union of each Q tile's key runs (interval union on the tile grid)."""
    tile, first, count, step = _product_boxes(ax, owner, lo, hi)
    n_kv = cdiv(ax.tokens, kv_tile)
    visited = np.zeros(n_q, dtype=np.int64)
    radix, length = _run_shape(ax, first, count, step, kv_tile)
    for s, e in _chunks(tile, radix.prod(axis=1), n_q):
        run_owner, start = _runs(ax, first[s:e], radix[s:e])
        q = tile[s:e][run_owner]
        length_q = length[s:e][run_owner]
        base = q * (n_kv + 1)         # keeps tiles of different Q tiles apart after sorting
        t_lo = base + start // kv_tile
        t_hi = base - (-(start + length_q) // kv_tile)
        order = np.argsort(t_lo, kind="stable")
        t_lo, t_hi, q = t_lo[order], t_hi[order], q[order]
        reach = np.maximum.accumulate(t_hi)
        before = np.concatenate([[np.iinfo(np.int64).min], reach[:-1]])
        new = np.maximum(t_hi - np.maximum(t_lo, before), 0)
        visited += np.bincount(q, weights=new, minlength=n_q).astype(np.int64)
    return visited


def _full(ax: _Axes, owner, lo, hi, n_q: int, q_tile: int, kv_tile: int) -> np.ndarray:
    """KV tiles lying wholly inside the keys every query of the Q tile attends (none when the
    tile holds padding: a padding query attends nothing)."""
    r = ax.rank
    first = np.zeros((n_q, r), dtype=np.int64)
    count = np.zeros((n_q, r), dtype=np.int64)
    step = np.broadcast_to(ax.D, (n_q, r)).copy()
    heads = np.searchsorted(owner, np.arange(n_q))     # first box of each tile (owner is sorted)
    for d in range(r):
        L, K, S, D, causal = (int(ax.L[d]), int(ax.K[d]), int(ax.S[d]), int(ax.D[d]),
                              bool(ax.C[d]))
        q_min = np.minimum.reduceat(lo[:, d], heads)
        q_max = np.maximum.reduceat(hi[:, d] - 1, heads)
        one_group = np.ones(n_q, dtype=bool)
        if D > 1:   # queries of two dilation groups share no key
            wide = np.maximum.reduceat(hi[:, d] - lo[:, d], heads) > 1
            residue = lo[:, d] % D
            one_group = ~wide & (np.minimum.reduceat(residue, heads)
                                 == np.maximum.reduceat(residue, heads))
        g = q_min % D
        Lg = group_lengths(L, D)[g]
        start, _ = window_bounds(q_max // D, Lg, K, S, causal)
        _, end = window_bounds(q_min // D, Lg, K, S, causal)
        first[:, d] = start * D + g
        count[:, d] = np.where(one_group, np.maximum(end - start, 0), 0)
    radix, length = _run_shape(ax, first, count, step, 1)
    # a run shorter than a KV tile holds no whole tile: those products are never enumerated
    padded = np.arange(1, n_q + 1) * q_tile > ax.tokens     # the last tile, when cut short
    keep = (count > 0).all(axis=1) & (length >= kv_tile) & ~padded
    tile = np.nonzero(keep)[0]
    full = np.zeros(n_q, dtype=np.int64)
    if not len(tile):
        return full
    first, step, radix, length = first[keep], step[keep], radix[keep], length[keep]
    for s, e in _chunks(tile, radix.prod(axis=1), n_q):
        run_owner, start = _runs(ax, first[s:e], radix[s:e])
        end = start + length[s:e][run_owner]
        whole = np.maximum(end // kv_tile + (start // -kv_tile), 0)
        full += np.bincount(tile[s:e][run_owner], weights=whole, minlength=n_q).astype(np.int64)
    return full
