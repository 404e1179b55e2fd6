"""The per-axis plan engine, shared by the Q-stationary (forward) and KV-stationary (backward) plans.

A plan *direction* names its stationary side (Q tiles forward, KV tiles backward), a vectorised
row function giving, for stationary tiles of one dilation group, the rows :data:`ROWS`:

* ``visited``     tiles of the other side the CTA visits on this axis,
* ``full``        how many of those are fully dense (they form one contiguous run),
* ``first``       first token (group-local) of the first visited tile,
* ``real``        real (non-padding) tokens of the stationary tile,
* ``full_first``  first token of the fully dense run (``first`` when the run is empty),

and the *pieces* of its window rule (:func:`~gnasim.plan.windows.window_pieces`,
:func:`~gnasim.plan.windows.inverse_window_pieces`): index ranges on which every window bound a
row reads either stays constant or moves with the index. Shifting a tile inside one piece by ``P =
lcm(S, t_q, t_kv)`` tokens (``lcm(t_q, t_kv)`` where no bound needs stride multiples) then moves
each row by a fixed step (``0``, ``+-P / t`` or ``P``), up to monotone clamps (``max(., 0)``).

The engine splits an axis into dilation groups (two distinct lengths at most: the first ``L % D``
groups are one token longer), and each long group (``PERIODIC_MIN_TILES`` stationary tiles or
more) into :class:`Segment` s: explicit tiles near piece borders, and per piece one block of ``p``
tiles repeated with its step. A run is checked on its first two blocks and its last; where a
clamp starts to bind inside a run (monotone, so at most once) the run is cut there, found by
probing. The cost of a plan grows with the number of pieces and the period, not with the token
count.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gnasim.plan.windows import Piece, group_lengths

ROWS: tuple[str, ...] = ("visited", "full", "first", "real", "full_first")
VISITED, FULL, FIRST, REAL, FULL_FIRST = range(len(ROWS))

# Axes with fewer stationary tiles per group than this are computed tile by tile (one numpy pass
# over many axes is cheaper than finding their pieces).
PERIODIC_MIN_TILES = 4096

# (idx, Lg, K, S, causal, qt, kvt) -> rows (len(ROWS), len(idx)); parameters may be arrays
RowFunction = Callable[..., np.ndarray]
PieceFunction = Callable[[int, int, int, bool], list[Piece]]


def cdiv(a, b):
    """Ceiling division of integers or integer arrays."""
    return -(-a // b)


def unique_pairs(first: np.ndarray, second: np.ndarray,
                 weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (first, second) pairs, sorted, with the summed weight of each (both >= 0)."""
    first = np.asarray(first, dtype=np.int64)
    second = np.asarray(second, dtype=np.int64)
    base = int(second.max()) + 1 if second.size else 1
    codes, inv = np.unique(first * base + second, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=weights, minlength=len(codes))
    return np.stack([codes // base, codes % base], axis=1), np.rint(counts).astype(np.int64)


@dataclass(frozen=True)
class Direction:
    """One plan direction: its row function, its window pieces, and which tile is stationary."""

    name: str
    rows: RowFunction
    pieces: PieceFunction
    q_stationary: bool

    def tile(self, q_tile: int, kv_tile: int) -> int:
        return q_tile if self.q_stationary else kv_tile


@dataclass(frozen=True)
class Segment:
    """``block`` (rows of ``p`` consecutive tiles) repeated ``repeats`` times, each repeat adding
    ``step`` to every row. An explicit stretch of tiles is one block repeated once."""

    block: np.ndarray
    repeats: int
    step: np.ndarray
    sums: tuple[int, ...]   # row sums of the block
    maxs: tuple[int, ...]   # row maxima of the block

    @property
    def tiles(self) -> int:
        return self.block.shape[1] * self.repeats

    def materialise(self, rows: int = len(ROWS)) -> np.ndarray:
        """The first ``rows`` rows of every tile, shape ``(rows, tiles)``."""
        block, step = self.block[:rows], self.step[:rows]
        if self.repeats == 1:
            return block
        p = block.shape[1]
        out = np.tile(block, (1, self.repeats))
        out += np.repeat(np.arange(self.repeats, dtype=np.int64), p)[None, :] * step[:, None]
        return out

    def row_sum(self, row: int) -> int:
        r, p, step = self.repeats, self.block.shape[1], int(self.step[row])
        return r * self.sums[row] + step * p * r * (r - 1) // 2

    def row_max(self, row: int) -> int:
        return self.maxs[row] + max(int(self.step[row]), 0) * (self.repeats - 1)


@dataclass(frozen=True)
class GroupTiles:
    """Every stationary tile of one dilation group, as consecutive segments."""

    segments: tuple[Segment, ...]

    def materialise(self) -> np.ndarray:
        """All rows, shape ``(len(ROWS), tiles)``."""
        return np.concatenate([s.materialise() for s in self.segments], axis=1)

    def row_sum(self, row: int) -> int:
        return sum(s.row_sum(row) for s in self.segments)

    def row_max(self, row: int) -> int:
        return max((s.row_max(row) for s in self.segments if s.tiles), default=-1)

    def front_points(self) -> tuple[int, set[tuple[int, int]]]:
        """Tiles with a visited tile, and (full, partial) points that include every tile no
        other dominates. Along a stepping run a tile's rows move linearly, so when full and
        partial move the same way (or stay) one end of the run dominates it; when they move
        apart every point of the run counts (partial tiles of one axis are a few at most, so
        such runs are short)."""
        nz, points = 0, set()
        for s in self.segments:
            v0, f0 = s.block[VISITED], s.block[FULL]
            sv, sf = int(s.step[VISITED]), int(s.step[FULL])
            r = s.repeats
            if sv == 0 and sf == 0:                     # every repeat has the block's rows
                some = v0 >= 1
                nz += r * int(some.sum())
                points.update(zip(f0[some].tolist(), (v0 - f0)[some].tolist()))
                continue
            for v, f in zip(v0.tolist(), f0.tolist()):
                # k in [lo, hi): the repeats in which this tile visits something (v + k sv >= 1)
                if sv == 0:
                    lo, hi = (0, r) if v >= 1 else (0, 0)
                elif sv > 0:
                    lo, hi = max(0, -(-(1 - v) // sv)), r
                else:
                    lo, hi = 0, min(r, -(-(v) // -sv) if v >= 1 else 0)
                if hi <= lo:
                    continue
                nz += hi - lo
                dm = sv - sf
                if sf * dm >= 0:
                    ks = {lo, hi - 1}
                else:
                    ks = range(lo, hi)
                points.update((f + k * sf, v - f + k * dm) for k in ks)
        return nz, points

    def pair_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (visited, full) pairs over the tiles and how many tiles have each."""
        pairs, weights = [], []
        for s in self.segments:
            if s.step[VISITED] or s.step[FULL]:
                rows = s.materialise(2)     # visited, full
                pairs.append(rows)
                weights.append(np.ones(rows.shape[1], np.int64))
            else:
                pairs.append(s.block[:2])
                weights.append(np.full(s.block.shape[1], s.repeats, np.int64))
        pairs_a = np.concatenate(pairs, axis=1)
        return unique_pairs(pairs_a[0], pairs_a[1], np.concatenate(weights))


@dataclass(frozen=True)
class AxisParams:
    """The parameters of one axis, as every per-axis plan (and the kernels' tables) names them."""

    length: int
    window: int
    stride: int
    dilation: int
    causal: bool
    q_tile: int
    kv_tile: int


def row_view(row: int, doc: str) -> property:
    """A read-only property: row ``row`` of :attr:`AxisTiles.rows`, shape ``(dilation, tiles)``."""
    return property(lambda self: self.rows[row], doc=doc)


class AxisTiles(AxisParams):
    """What both per-axis plans share: rows per (dilation group, stationary tile), kept as
    :class:`GroupTiles` per distinct group length (``groups``, with ``weights`` groups each), and
    their sums, maxima and distributions computed without expanding the periodic runs.

    Subclasses are frozen dataclasses that add ``q_tiles_per_group``, ``kv_tiles_per_group``,
    ``groups`` and ``weights`` to the :class:`AxisParams`, and name their :data:`direction`.
    """

    q_tiles_per_group: int
    kv_tiles_per_group: int
    groups: tuple[GroupTiles, ...]
    weights: tuple[int, ...]

    visited = row_view(VISITED, "Tiles of the other side visited per stationary tile.")
    full = row_view(FULL, "Fully dense tiles among the visited ones, per stationary tile.")
    full_first = row_view(FULL_FIRST, "First token (group-local) of each tile's fully dense run "
                                      "(the first visited token when the run is empty).")

    @property
    def direction(self) -> Direction:
        raise NotImplementedError

    @cached_property
    def rows(self) -> np.ndarray:
        """All rows, shape ``(len(ROWS), dilation, tiles per group)`` (read-only)."""
        parts = [g.materialise() for g in self.groups]
        which = np.repeat(np.arange(len(parts)), self.weights)
        out = np.stack(parts)[which].transpose(1, 0, 2)
        out.flags.writeable = False
        return out

    def rows_at(self, group: int, tiles) -> np.ndarray:
        """Rows of stationary tiles ``tiles`` of dilation group ``group`` only (no expansion of
        the axis: cheap on any length), shape ``(len(ROWS), len(tiles))``."""
        Lg = int(group_lengths(self.length, self.dilation)[group])
        idx = np.atleast_1d(np.asarray(tiles, dtype=np.int64))
        return self.direction.rows(idx, Lg, self.window, self.stride, self.causal, self.q_tile,
                                   self.kv_tile)

    @property
    def n_long(self) -> int:
        """Dilation groups of the longer length (``groups[0]``)."""
        return self.weights[0]

    @property
    def padded_q_length(self) -> int:
        """Padded length of the axis for Q (all groups)."""
        return self.q_tiles_per_group * self.q_tile * self.dilation

    @property
    def padded_kv_length(self) -> int:
        """Padded length of the axis for KV (all groups)."""
        return self.kv_tiles_per_group * self.kv_tile * self.dilation

    @cached_property
    def visited_sum(self) -> int:
        return sum(w * g.row_sum(VISITED) for g, w in zip(self.groups, self.weights))

    @cached_property
    def full_sum(self) -> int:
        return sum(w * g.row_sum(FULL) for g, w in zip(self.groups, self.weights))

    @cached_property
    def visited_max(self) -> int:
        return max(g.row_max(VISITED) for g in self.groups)

    def pair_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (visited, full) pairs over all stationary tiles of the axis, with counts."""
        pairs, counts = [], []
        for g, w in zip(self.groups, self.weights):
            u, c = g.pair_counts()
            pairs.append(u)
            counts.append(c * w)
        pairs_a = np.concatenate(pairs)
        return unique_pairs(pairs_a[:, 0], pairs_a[:, 1], np.concatenate(counts))

    def front(self) -> tuple[int, tuple[int, ...], tuple[int, ...]]:
        """Stationary tiles that visit a tile of the other side, and the (full, visited) tiles
        of the tiles no other dominates in (full, partial) tiles, most full first. Computed per
        segment without expanding stepping runs (see :meth:`GroupTiles.front_points`)."""
        nz, points = 0, set()
        for g, w in zip(self.groups, self.weights):
            n, pts = g.front_points()
            nz += n * w
            points |= pts
        front: list[tuple[int, int]] = []
        for f, m in sorted(points, reverse=True):
            if not front or m > front[-1][1]:
                front.append((f, m))
        front = front or [(0, 0)]
        return nz, tuple(f for f, _ in front), tuple(f + m for f, m in front)

    def visited_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct visited values over all stationary tiles of the axis, with counts."""
        pairs, counts = self.pair_counts()
        vals, inv = np.unique(pairs[:, 0], return_inverse=True)
        return vals, np.bincount(inv.ravel(), weights=counts, minlength=len(vals)).astype(np.int64)


# -- building --------------------------------------------------------------------------------

EngineKey = tuple  # (length, window, stride, dilation, causal, q_tile, kv_tile)


@dataclass(frozen=True)
class BuiltAxis:
    """The engine's output for one key: Q and KV tiles per group, the groups per length, the
    lengths."""

    q_tiles_per_group: int
    kv_tiles_per_group: int
    groups: tuple[GroupTiles, ...]
    weights: tuple[int, ...]
    lengths: tuple[int, ...]


def split_groups(length: int, dilation: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The distinct dilation-group lengths and how many groups have each (long ones first)."""
    long_len, n_long = cdiv(length, dilation), length % dilation or dilation
    if n_long == dilation:
        return (long_len,), (dilation,)
    return (long_len, long_len - 1), (n_long, dilation - n_long)


@dataclass
class _Run:
    lo: int          # first tile
    p: int           # tiles per block
    repeats: int
    step: np.ndarray | None = None


def _rows_for(direction: Direction, ranges: list[tuple[int, int, tuple]]) -> np.ndarray:
    """Rows of many tile ranges ``(lo, hi, (Lg, K, S, causal, qt, kvt))`` in one numpy pass."""
    sizes = [hi - lo for lo, hi, _ in ranges]
    if not ranges or not sum(sizes):
        return np.zeros((len(ROWS), 0), np.int64)
    idx = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi, _ in ranges])
    cols = list(zip(*[prm for _, _, prm in ranges]))
    Lg, K, S, causal, qt, kvt = (np.repeat(np.array(c, dtype=np.int64), sizes) for c in cols)
    return direction.rows(idx, Lg, K, S, causal.astype(bool), qt, kvt)


_PROBES = 32   # blocks probed per numpy pass when a run is cut


def _last_affine(direction: Direction, run: _Run, prm: tuple, first: np.ndarray,
                 step: np.ndarray) -> int:
    """The most blocks of ``run`` that follow block 0 plus whole steps (at least 2; the last block
    does not). The rows leave their affine course at most once, so the blocks are probed at up to
    :data:`_PROBES` evenly spaced places per numpy pass and the bracket narrowed."""
    good, bad = 2, run.repeats     # blocks [0, good) are affine, block bad - 1 is not
    p = run.p
    probes = max(1, min(_PROBES, (1 << 16) // p))
    while bad - good > 1:
        mids = np.unique(np.linspace(good + 1, bad - 1, min(bad - good - 1, probes))
                         .round().astype(np.int64)).tolist()
        rows = _rows_for(direction, [(run.lo + (m - 1) * p, run.lo + m * p, prm) for m in mids])
        rows = rows.reshape(len(ROWS), len(mids), p)
        expect = first[:, None, :] + (np.array(mids) - 1)[None, :, None] * step[:, None, None]
        ok = (rows == expect).all(axis=(0, 2))
        if ok.all():
            good = mids[-1]
        else:
            i = int(np.argmin(ok))
            bad = mids[i]
            good = mids[i - 1] if i else good
    return good


def _confirm(direction: Direction, run: _Run, prm: tuple, rows3: np.ndarray) -> list[_Run]:
    """Runs confirmed inside candidate ``run`` from its blocks 0, 1 and last (``rows3``).

    Every row is an affine function of the block index up to monotone clamps, so a row leaves its
    affine course at most once: the longest affine prefix is found by probing (:func:`_last_affine`),
    and the rest of the candidate is tried again as a run of its own.
    """
    out: list[_Run] = []
    p = run.p
    while run.repeats >= 3:
        b0, b1, bl = rows3[:, :p], rows3[:, p:2 * p], rows3[:, 2 * p:]
        diff = b1 - b0
        step = diff[:, 0]
        if (diff == step[:, None]).all():
            if (bl == b0 + (run.repeats - 1) * step[:, None]).all():
                out.append(_Run(run.lo, p, run.repeats, step))
                return out
            good = _last_affine(direction, run, prm, b0, step)
            out.append(_Run(run.lo, p, good, step))
            taken = good
        else:
            taken = 1                       # a clamp switches inside block 0 or 1: explicit
        run = _Run(run.lo + taken * p, p, run.repeats - taken)
        if run.repeats >= 3:
            rows3 = _rows_for(direction, [(run.lo, run.lo + 2 * p, prm),
                                          (run.lo + (run.repeats - 1) * p,
                                           run.lo + run.repeats * p, prm)])
    return out


def build_axes(keys: list[EngineKey], direction: Direction) -> list[BuiltAxis]:
    """Segments of many axes, their explicit tiles computed together in one numpy pass."""
    layout = []      # per key: (stationary tiles per group, lengths, weights,
                     #           [(prm, [runs]) per length], (Q, KV tiles per group))
    candidates = []  # (key index, length index, run, prm)
    for ki, key in enumerate(keys):
        L, K, S, D, qt, kvt = (int(key[i]) for i in (0, 1, 2, 3, 5, 6))
        causal = bool(key[4])
        T = direction.tile(qt, kvt)
        tiles = (cdiv(L, qt * D), cdiv(L, kvt * D))     # Q and KV tiles per group
        n = direction.tile(*tiles)                      # stationary ones
        lengths, weights = split_groups(L, D)
        per = []
        for li, Lg in enumerate(lengths):
            prm = (Lg, K, S, causal, qt, kvt)
            per.append((prm, []))
            if n < PERIODIC_MIN_TILES:
                continue
            for lo_tok, hi_tok, needs_stride in direction.pieces(Lg, K, S, causal):
                p = math.lcm(S if needs_stride else 1, qt, kvt) // T
                t0, t1 = cdiv(lo_tok, T), hi_tok // T
                if (t1 - t0) // p >= 3:
                    candidates.append((ki, li, _Run(t0, p, (t1 - t0) // p), prm))
        layout.append((n, lengths, weights, per, tiles))

    # confirm the candidate runs on their first two and last blocks (one pass for all)
    ranges = []
    for _, _, r, prm in candidates:
        ranges += [(r.lo, r.lo + 2 * r.p, prm),
                   (r.lo + (r.repeats - 1) * r.p, r.lo + r.repeats * r.p, prm)]
    rows = _rows_for(direction, ranges)
    at = 0
    for ki, li, r, prm in candidates:
        rows3 = rows[:, at:at + 3 * r.p]
        at += 3 * r.p
        layout[ki][3][li][1].extend(_confirm(direction, r, prm, rows3))

    # explicit stretches between runs, and one block per run (one pass for all)
    ranges, kinds, spans = [], [], []
    for n, _, _, per, _ in layout:
        span = []
        for prm, runs in per:
            begin, pos = len(ranges), 0
            for r in runs:
                if r.lo > pos:
                    ranges.append((pos, r.lo, prm))
                    kinds.append(None)
                ranges.append((r.lo, r.lo + r.p, prm))
                kinds.append(r)
                pos = r.lo + r.p * r.repeats
            if n > pos:
                ranges.append((pos, n, prm))
                kinds.append(None)
            span.append((begin, len(ranges)))
        spans.append(span)
    rows = _rows_for(direction, ranges)
    sizes = np.array([hi - lo for lo, hi, _ in ranges], dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    csum = np.concatenate([np.zeros((len(ROWS), 1), np.int64), np.cumsum(rows, axis=1)], axis=1)
    sums = (csum[:, ends] - csum[:, starts]).T.tolist()
    maxs = np.full((len(sizes), len(ROWS)), -1, dtype=np.int64)
    nonempty = sizes > 0
    if nonempty.any():
        maxs[nonempty] = np.maximum.reduceat(rows, starts[nonempty], axis=1).T
    maxs_l = maxs.tolist()
    zero = np.zeros(len(ROWS), np.int64)

    def segment(i: int) -> Segment:
        r = kinds[i]
        block = rows[:, starts[i]:ends[i]]
        return Segment(block, r.repeats if r else 1, r.step if r else zero, tuple(sums[i]),
                       tuple(maxs_l[i]))

    return [BuiltAxis(*tiles, tuple(GroupTiles(tuple(segment(i) for i in range(b, e)))
                                    for b, e in span), weights, lengths)
            for (_, lengths, weights, _, tiles), span in zip(layout, spans)]
