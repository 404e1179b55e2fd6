"""The tile plan: for every Q tile, which KV tiles a kernel visits and which of those are fully dense.

Everything is computed per axis (:class:`AxisPlan`) and combined by products (:class:`TilePlan`):
the GNA mask is an AND of per-axis masks, so per-tile counts, their sums, maxima and histograms
factorise. No N x N mask is ever built here (see :mod:`gnasim.reference` for the slow check).

Tiling follows the kernels (``natten-kernels.md``): each axis is split into ``D`` dilation groups,
each group padded to ``ceil(L / (t * D)) * t`` tokens, and

* ``static`` KV tiling (Hopper, Blackwell, Flex; token-permuted): a Q tile visits KV tiles
  ``floor(start(first q) / t_kv)`` up to ``ceil(end(last q) / t_kv)`` on the KV tile grid;
  ``last q`` may lie in the padding (the leader rule clamps it);
* ``dynamic`` KV tiling (Ampere FNA, no permutation): iteration starts exactly at
  ``start(first q)`` and steps by ``t_kv`` up to ``end(last real q)``; Q tiles with no real query
  do no work.

A (Q tile, KV tile) pair is *fully dense* when every real query of the Q tile attends every key
slot of the KV tile (a padding slot never is attended); otherwise it is *partial*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

import math

import numpy as np

from gnasim.plan.windows import attended_keys_total, window_bounds, window_extents

KVTiling = Literal["static", "dynamic"]
KV_TILINGS: tuple[str, ...] = ("static", "dynamic")


def _cdiv(a, b):
    return -(-a // b)


def _unique_pairs(first: np.ndarray, second: np.ndarray,
                  weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (first, second) pairs, sorted, with the summed weight of each (both >= 0)."""
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    base = int(second.max()) + 1 if second.size else 1
    codes, inv = np.unique(first * base + second, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=weights, minlength=len(codes))
    return np.stack([codes // base, codes % base], axis=1), np.rint(counts).astype(np.int64)


# Q tiles far from both borders repeat with a period (in tiles): past that many tiles on the axis,
# only the borders and one period are computed, and the period is counted ``repeats`` times.
PERIODIC_MIN_TILES = 4096


@dataclass(frozen=True)
class GroupTiles:
    """Per-Q-tile values of one dilation group: ``head``, then ``block`` repeated ``repeats`` times
    (each repeat adds ``step`` to every row), then ``tail``. Rows: visited, full, kv_first, real."""

    head: np.ndarray
    block: np.ndarray
    repeats: int
    step: np.ndarray
    tail: np.ndarray
    sums: np.ndarray   # (3, 4): row sums of head, block, tail
    maxs: np.ndarray   # (3, 4): row maxima of head, block, tail (-1 when empty)

    def materialise(self) -> np.ndarray:
        """All rows, shape (4, q_tiles)."""
        if not self.repeats:
            return np.concatenate([self.head, self.tail], axis=1)
        p = self.block.shape[1]
        reps = np.tile(self.block, (1, self.repeats))
        reps += np.repeat(np.arange(self.repeats, dtype=np.int64), p)[None, :] * self.step[:, None]
        return np.concatenate([self.head, reps, self.tail], axis=1)

    def row_sum(self, row: int) -> int:
        r, p = self.repeats, self.block.shape[1]
        head, block, tail = self.sums[:, row].tolist()
        return head + tail + r * block + int(self.step[row]) * p * r * (r - 1) // 2

    def row_max(self, row: int) -> int:
        head, block, tail = self.maxs[:, row].tolist()
        if self.repeats:  # steps are never negative
            return max(head, tail, block + int(self.step[row]) * (self.repeats - 1))
        return max(head, tail)

    def pair_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (visited, full) pairs over the Q tiles and how many tiles have each."""
        if self.repeats and (self.step[0] or self.step[1]):
            rows = self.materialise()
            return _unique_pairs(rows[0], rows[1], np.ones(rows.shape[1], np.int64))
        pairs = np.concatenate([self.head[:2], self.block[:2], self.tail[:2]], axis=1).T
        weights = np.concatenate([np.ones(self.head.shape[1], np.int64),
                                  np.full(self.block.shape[1], self.repeats, np.int64),
                                  np.ones(self.tail.shape[1], np.int64)])
        keep = weights > 0
        return _unique_pairs(pairs[keep, 0], pairs[keep, 1], weights[keep])


@dataclass(frozen=True)
class AxisPlan:
    """Per-axis tile statistics for every (dilation group, Q tile) on one axis.

    Dilation groups have one of two lengths: the first ``n_long`` groups have ``ceil(L / D)``
    tokens (``groups[0]``), the others one fewer (``groups[1]``). Array views (``visited`` ...)
    have shape ``(dilation, q_tiles_per_group)``; ``kv_first`` is the first key (group-local token)
    of the first KV tile visited, a multiple of ``kv_tile`` in static mode.
    """

    length: int
    window: int
    stride: int
    dilation: int
    causal: bool
    q_tile: int
    kv_tile: int
    mode: str
    q_tiles_per_group: int
    kv_tiles_per_group: int
    groups: tuple[GroupTiles, ...] = field(repr=False)
    n_long: int = 0
    attended: int = 0

    @property
    def padded_q_length(self) -> int:
        """Padded length of the axis for Q (all groups)."""
        return self.q_tiles_per_group * self.q_tile * self.dilation

    @property
    def padded_kv_length(self) -> int:
        return self.kv_tiles_per_group * self.kv_tile * self.dilation

    @property
    def _weights(self) -> tuple[int, ...]:
        return (self.n_long, self.dilation - self.n_long)[: len(self.groups)]

    @cached_property
    def _rows(self) -> np.ndarray:
        parts = [g.materialise() for g in self.groups]
        which = np.repeat(np.arange(len(parts)), self._weights)
        out = np.stack(parts)[which].transpose(1, 0, 2)
        out.flags.writeable = False
        return out

    @property
    def visited(self) -> np.ndarray:
        return self._rows[0]

    @property
    def full(self) -> np.ndarray:
        return self._rows[1]

    @property
    def kv_first(self) -> np.ndarray:
        return self._rows[2]

    @property
    def real_queries(self) -> np.ndarray:
        return self._rows[3]

    @cached_property
    def visited_sum(self) -> int:
        return sum(w * g.row_sum(0) for g, w in zip(self.groups, self._weights))

    @cached_property
    def full_sum(self) -> int:
        return sum(w * g.row_sum(1) for g, w in zip(self.groups, self._weights))

    @cached_property
    def visited_max(self) -> int:
        return max(g.row_max(0) for g in self.groups)

    def pair_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (visited, full) pairs over all Q tiles of the axis, with their counts."""
        pairs, counts = [], []
        for g, w in zip(self.groups, self._weights):
            u, c = g.pair_counts()
            pairs.append(u)
            counts.append(c * w)
        pairs = np.concatenate(pairs)
        return _unique_pairs(pairs[:, 0], pairs[:, 1], np.concatenate(counts))


def _tile_rows(idx: np.ndarray, Lg, K, S, causal, qt, kvt, mode: str) -> np.ndarray:
    """Rows (visited, full, kv_first, real) for the Q tiles ``idx``. The axis parameters may be
    arrays aligned with ``idx`` (one numpy pass serves many axes and groups)."""
    q0 = idx * qt
    real = np.minimum(np.maximum(Lg - q0, 0), qt)
    has = real > 0
    # last real query of each tile (first query for empty tiles, which are masked out below)
    b = q0 + np.maximum(real, 1) - 1
    n = len(q0)
    tile3 = lambda a: np.concatenate([a, a, a]) if np.ndim(a) else a
    start, end = window_bounds(np.concatenate([q0, b, q0 + qt - 1]), tile3(Lg), tile3(K),
                               tile3(S), tile3(causal))
    s0 = start[:n]
    full_start = start[n:2 * n]     # the latest start of any real query
    full_end = end[:n]              # the earliest end of any real query
    if mode == "static":
        e1 = end[2 * n:]
        lo = s0 // kvt
        visited = _cdiv(e1, kvt) - lo
        kv_first = lo * kvt
        full = np.maximum(full_end // kvt - _cdiv(full_start, kvt), 0)
    else:
        e1 = end[n:2 * n]
        visited = _cdiv(e1 - s0, kvt)
        kv_first = s0
        j_lo = _cdiv(full_start - s0, kvt)
        j_hi = (full_end - s0) // kvt
        full = np.maximum(np.minimum(j_hi, visited) - j_lo, 0)
        # the last tile is cut short at e1: it is full if it ends inside every window
        tail = (e1 == full_end) & (visited - 1 >= np.maximum(j_lo, j_hi))
        full = full + tail
        visited = np.where(has, visited, 0)
    full = np.where(has, full, 0)
    return np.stack([visited, full, kv_first, real]).astype(np.int64)


def _runs(Lg: int, K: int, S: int, causal: bool, qt: int, kvt: int, nq: int):
    """How one dilation group's Q tiles split into ``head, block x repeats, tail``.

    Returns ``(head, block, tail, repeats, step)`` with each part a ``(lo, hi)`` tile range.
    Two runs repeat exactly. (1) Interior tiles (every query real, no window clamped at a
    border): shifting a tile by ``lcm(S, qt, kvt)`` tokens shifts all its windows and KV tiles by
    the same amount. (2) A window spanning the whole group (the dense baseline): every real tile
    sees the same window (non-causal), or ``start = 0`` and ``end = q + 1`` (causal), so counts
    grow by a fixed step per period.
    """
    explicit = ((0, nq), (0, 0), (0, 0), 0, (0, 0, 0, 0))
    if nq < PERIODIC_MIN_TILES:
        return explicit
    real_tiles = Lg // qt
    if K == Lg:
        p = 1 if not causal else math.lcm(qt, kvt) // qt
        grow = 0 if not causal else p * qt // kvt
        repeats = real_tiles // p
        return (0, 0), (0, p), (repeats * p, nq), repeats, (grow, grow, 0, 0)
    left, right = (K - 1, 0) if causal else window_extents(K)
    centre = S - 1 if causal else S // 2
    first = _cdiv(left + S, qt)
    last = min((Lg - right - centre - qt) // qt + 1, real_tiles)     # exclusive
    period = math.lcm(S, qt, kvt)
    p = period // qt
    repeats = (last - first) // p if last > first else 0
    if repeats < 2:
        return explicit
    mid = first + repeats * p
    return (0, first), (first, first + p), (mid, nq), repeats, (0, 0, period, 0)


AxisKey = tuple  # (length, window, stride, dilation, causal, q_tile, kv_tile, mode)
_PLANS: dict[AxisKey, AxisPlan] = {}
_MAX_CACHED = 8192


def axis_plans(keys: list[AxisKey]) -> list[AxisPlan]:
    """Plans of many axes, the uncached ones computed together in one numpy pass per KV mode.

    A key is ``(length, window, stride, dilation, causal, q_tile, kv_tile, mode)``. Plans are
    immutable and cached.
    """
    missing = [k for k in dict.fromkeys(keys) if k not in _PLANS]
    if missing:
        if len(_PLANS) + len(missing) > _MAX_CACHED:
            _PLANS.clear()
        for mode in {k[7] for k in missing}:
            if mode not in KV_TILINGS:
                from gnasim.errors import ConfigError
                raise ConfigError(f"kv_tiling: '{mode}' is not one of {list(KV_TILINGS)}")
            _build([k for k in missing if k[7] == mode], mode)
    return [_PLANS[k] for k in keys]


def _build(keys: list[AxisKey], mode: str) -> None:
    groups = []   # per key: list of (Lg, runs)
    requests = []  # (lo, hi, Lg, K, S, causal, qt, kvt)
    for (L, K, S, D, causal, qt, kvt, _) in keys:
        nq = _cdiv(L, qt * D)
        # dilation groups have one of two lengths: the first L % D groups are one token longer
        long_len, n_long = -(-L // D), L % D or D
        lens = [long_len] + ([long_len - 1] if n_long < D else [])
        per = []
        for Lg in lens:
            runs = _runs(Lg, K, S, causal, qt, kvt, nq)
            per.append((Lg, runs))
            for lo, hi in runs[:3]:
                requests.append((lo, hi, Lg, K, S, causal, qt, kvt))
        groups.append(per)
    sizes = [hi - lo for lo, hi, *_ in requests]
    idx = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi, *_ in requests])
    params = [np.repeat(np.array([r[j] for r in requests], dtype=np.int64), sizes) for j in range(2, 8)]
    rows = _tile_rows(idx, params[0], params[1], params[2], params[3].astype(bool),
                      params[4], params[5], mode)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    csum = np.concatenate([np.zeros((4, 1), np.int64), np.cumsum(rows, axis=1)], axis=1)
    sums = (csum[:, ends] - csum[:, starts]).T
    nonempty = np.asarray(sizes) > 0
    maxs = np.full((len(sizes), 4), -1, dtype=np.int64)
    if nonempty.any():
        maxs[nonempty] = np.maximum.reduceat(rows, starts[nonempty], axis=1).T
    it = iter(range(len(sizes)))
    for key, per in zip(keys, groups):
        L, K, S, D, causal, qt, kvt, _ = key
        tiles = []
        attended = 0
        n_long = L % D or D
        for gi, (Lg, runs) in enumerate(per):
            i = next(it)
            next(it), next(it)
            head, block, tail = (rows[:, starts[j]:ends[j]] for j in (i, i + 1, i + 2))
            tiles.append(GroupTiles(head, block, runs[3], np.array(runs[4], dtype=np.int64), tail,
                                    sums[i:i + 3], maxs[i:i + 3]))
            attended += (n_long if gi == 0 else D - n_long) * attended_keys_total(Lg, K, S, causal)
        _PLANS[key] = AxisPlan(L, K, S, D, causal, qt, kvt, mode, _cdiv(L, qt * D),
                               _cdiv(L, kvt * D), tuple(tiles), n_long, int(attended))


def axis_plan(length: int, window: int, stride: int, dilation: int, causal: bool,
              q_tile: int, kv_tile: int, mode: str = "static") -> AxisPlan:
    """Tile statistics of one axis (all dilation groups). Cached: plans are immutable."""
    return axis_plans([(length, window, stride, dilation, bool(causal), q_tile, kv_tile, mode)])[0]


def clear_plan_cache() -> None:
    """Forget every cached axis plan (for benchmarks of cold predictions)."""
    _PLANS.clear()


axis_plan.cache_clear = clear_plan_cache  # type: ignore[attr-defined]


def _product_distribution(dists: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Distribution of a product of independent per-axis values (values, counts)."""
    vals, counts = np.array([1], dtype=np.int64), np.array([1], dtype=np.int64)
    for v, c in dists:
        pv = np.multiply.outer(vals, v).ravel()
        pc = np.multiply.outer(counts, c).ravel()
        vals, inv = np.unique(pv, return_inverse=True)
        counts = np.bincount(inv, weights=pc, minlength=len(vals)).astype(np.int64)
    return vals, counts


class ProductPlan:
    """Totals of a plan whose per-tile counts are products of per-axis counts.

    Subclasses hold ``axes``, each with ``q_tile``, ``kv_tile``, ``dilation``,
    ``q_tiles_per_group``, ``kv_tiles_per_group``, ``visited_sum``, ``full_sum`` and
    ``visited_max``: sums and maxima over all tiles of a product are products of per-axis ones.
    """

    axes: tuple

    @property
    def q_tile(self) -> tuple[int, ...]:
        return tuple(a.q_tile for a in self.axes)

    @property
    def kv_tile(self) -> tuple[int, ...]:
        return tuple(a.kv_tile for a in self.axes)

    @property
    def q_tiles(self) -> int:
        """Q tiles of the padded layout, dilation groups included."""
        return _prod(a.dilation * a.q_tiles_per_group for a in self.axes)

    @property
    def kv_tiles(self) -> int:
        """KV tiles of the padded layout, dilation groups included."""
        return _prod(a.dilation * a.kv_tiles_per_group for a in self.axes)

    @property
    def q_tile_size(self) -> int:
        return _prod(self.q_tile)

    @property
    def kv_tile_size(self) -> int:
        return _prod(self.kv_tile)

    @cached_property
    def tile_pairs_visited(self) -> int:
        return _prod(a.visited_sum for a in self.axes)

    @cached_property
    def tile_pairs_full(self) -> int:
        return _prod(a.full_sum for a in self.axes)

    @property
    def tile_pairs_partial(self) -> int:
        return self.tile_pairs_visited - self.tile_pairs_full

    @cached_property
    def visited_max(self) -> int:
        """The most tiles one CTA visits (the worst tile of the plan)."""
        return _prod(a.visited_max for a in self.axes)

    @property
    def fully_block_sparse(self) -> bool:
        """Every visited tile pair is fully dense (no element mask needed anywhere)."""
        return self.tile_pairs_partial == 0


@dataclass(frozen=True)
class TilePlan(ProductPlan):
    """The whole problem's tile plan (Q-stationary), combined from per-axis plans by products."""

    axes: tuple[AxisPlan, ...]

    @property
    def mode(self) -> str:
        return self.axes[0].mode

    @property
    def dilation_groups(self) -> int:
        return _prod(a.dilation for a in self.axes)

    @property
    def kv_tiles_visited_max(self) -> int:
        return self.visited_max

    @property
    def kv_tiles_visited_mean(self) -> float:
        return self.tile_pairs_visited / self.q_tiles

    @cached_property
    def attended_pairs(self) -> int:
        return _prod(a.attended for a in self.axes)

    def visited_histogram(self) -> dict[int, int]:
        """{KV tiles visited: number of Q tiles visiting that many}."""
        dists = []
        for a in self.axes:
            pairs, counts = a.pair_counts()
            vals, inv = np.unique(pairs[:, 0], return_inverse=True)
            dists.append((vals, np.bincount(inv, weights=counts).astype(np.int64)))
        vals, counts = _product_distribution(dists)
        return {int(v): int(c) for v, c in zip(vals, counts)}

    def full_partial_histogram(self) -> dict[tuple[int, int], int]:
        """{(full, partial) KV tiles of a Q tile: number of Q tiles}, for per-tile cost models."""
        per_axis = [a.pair_counts() for a in self.axes]
        out: dict[tuple[int, int], int] = {(1, 1): 1}
        for uniq, counts in per_axis:
            nxt: dict[tuple[int, int], int] = {}
            for (v0, f0), c0 in out.items():
                for (v, f), c in zip(uniq.tolist(), counts.tolist()):
                    key = (v0 * v, f0 * f)
                    nxt[key] = nxt.get(key, 0) + c0 * c
            out = nxt
        return {(f, v - f): c for (v, f), c in sorted(out.items())}


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _axis_keys(config, mode: str) -> list[AxisKey]:
    from gnasim.errors import ConfigError
    if not config.has_tiles:
        raise ConfigError("q_tile/kv_tile: tile shapes are required (give them or a hardware profile)")
    if len(config.q_tile) != config.rank or len(config.kv_tile) != config.rank:
        raise ConfigError(f"q_tile/kv_tile: tile rank must match input_size rank {config.rank}")
    return [(config.input_size[d], config.window_size[d], config.stride[d], config.dilation[d],
             bool(config.causal[d]), config.q_tile[d], config.kv_tile[d], mode)
            for d in range(config.rank)]


def tile_plan(config, mode: str = "static") -> TilePlan:
    """The tile plan of a :class:`~gnasim.config.GNAConfig` whose tiles are set."""
    return TilePlan(tuple(axis_plans(_axis_keys(config, mode))))


def tile_plans(configs: list, mode: str = "static") -> list[TilePlan]:
    """Plans of several configs, their uncached axes computed in one pass."""
    keys = [_axis_keys(c, mode) for c in configs]
    plans = axis_plans([k for ks in keys for k in ks])
    out, i = [], 0
    for ks in keys:
        out.append(TilePlan(tuple(plans[i:i + len(ks)])))
        i += len(ks)
    return out
