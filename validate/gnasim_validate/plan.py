"""Host-side bookkeeping for the Triton kernel: gnasim's static tile plan as small int32 tables.

The kernel never reasons about tiles. For every axis, dilation group and Q tile on that axis it
reads four numbers from a table built here:

* ``kv_lo``   first KV tile (group-local tile index) the Q tile visits,
* ``kv_n``    how many consecutive KV tiles it visits on this axis (gnasim's ``visited``),
* ``full_lo``, ``full_hi``  the KV tiles ``[full_lo, full_hi)`` that every real query of the Q
  tile attends completely on this axis (empty when the tile holds no real query).

A (Q tile, KV tile) pair is fully dense iff it is fully dense on every axis, so the kernel skips
the element mask exactly when ``full_lo[d] <= j[d] < full_hi[d]`` for all axes ``d``. The visited
KV tiles are the box ``kv_lo[d] .. kv_lo[d] + kv_n[d] - 1`` (a Cartesian product over axes).

The kernel is written for rank 3; lower ranks get leading singleton axes (length 1, window 1,
tile 1), on which every query attends its one key.

numpy only: no torch import here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnasim.config import GNAConfig
from gnasim.plan.axis import AxisParams
from gnasim.plan.tiling import AxisPlan, axis_plan
from gnasim.plan.windows import group_lengths, window_end, window_extents, window_start

KERNEL_RANK = 3


@dataclass(frozen=True)
class KernelAxis(AxisParams):
    """One axis as the kernel sees it (singleton axes pad rank up to 3)."""

    q_tiles: int          # Q tiles per dilation group
    kv_tiles: int         # KV tiles per dilation group
    table: np.ndarray     # int32 (dilation, q_tiles, 4): kv_lo, kv_n, full_lo, full_hi

    @property
    def left(self) -> int:
        return window_extents(self.window)[0]

    @property
    def right(self) -> int:
        return window_extents(self.window)[1]


def kernel_axis(plan: AxisPlan) -> KernelAxis:
    """The kernel table of one axis, read from gnasim's static :class:`AxisPlan` rows."""
    if plan.mode != "static":
        raise ValueError("the Triton kernel runs token-permuted data: it needs a static KV tiling plan")
    kvt = plan.kv_tile
    full = plan.full
    full_lo = np.where(full > 0, plan.full_first // kvt, 0)
    table = np.stack([plan.kv_first // kvt, plan.visited, full_lo, full_lo + full], axis=-1)
    return KernelAxis(plan.length, plan.window, plan.stride, plan.dilation, plan.causal,
                      plan.q_tile, kvt, plan.q_tiles_per_group, plan.kv_tiles_per_group,
                      table.astype(np.int32))


def _singleton_axis() -> KernelAxis:
    return KernelAxis(1, 1, 1, 1, False, 1, 1, 1, 1, np.array([[[0, 1, 0, 1]]], dtype=np.int32))


@dataclass(frozen=True)
class KernelPlan:
    """Everything the kernel launch needs that does not depend on the tensors."""

    config: GNAConfig
    axes: tuple[KernelAxis, ...]          # always KERNEL_RANK axes, leading singletons first
    rank: int                             # the problem's own rank

    @property
    def q_tile_size(self) -> int:
        return int(np.prod([a.q_tile for a in self.axes]))

    @property
    def kv_tile_size(self) -> int:
        return int(np.prod([a.kv_tile for a in self.axes]))

    @property
    def q_tiles(self) -> int:
        """Q tiles per dilation group (programs along grid axis 0)."""
        return int(np.prod([a.q_tiles for a in self.axes]))

    @property
    def kv_tiles(self) -> int:
        return int(np.prod([a.kv_tiles for a in self.axes]))

    @property
    def groups(self) -> int:
        return int(np.prod([a.dilation for a in self.axes]))

    @property
    def fully_block_sparse(self) -> bool:
        """No visited pair needs the element mask (every pair full on every axis)."""
        for a in self.axes:
            t = a.table
            if not np.all((t[..., 2] == t[..., 0]) & (t[..., 3] == t[..., 0] + t[..., 1])):
                return False
        return True

    def packed_table(self, mask_all: bool = False) -> np.ndarray:
        """All axis tables in one int32 array ``(rows, 4)``, axis after axis (see ``table_bases``).

        With ``mask_all`` every full range is emptied, so the kernel masks every visited pair.
        """
        rows = [a.table.reshape(-1, 4) for a in self.axes]
        packed = np.concatenate(rows, axis=0).copy()
        if mask_all:
            packed[:, 2:] = 0
        return np.ascontiguousarray(packed, dtype=np.int32)

    @property
    def table_bases(self) -> tuple[int, int, int]:
        """First row of each axis in :meth:`packed_table`."""
        bases, at = [], 0
        for a in self.axes:
            bases.append(at)
            at += a.table.shape[0] * a.table.shape[1]
        return tuple(bases)

    def expected_visits(self) -> np.ndarray:
        """KV tiles visited per program, shape ``(groups, q_tiles)`` in the kernel's order.

        Groups and Q tiles are both row-major over the axes (axis 0 slowest).
        """
        out = np.ones((1, 1), dtype=np.int64)
        for a in self.axes:
            v = a.table[..., 1].astype(np.int64)            # (D, nq)
            out = np.einsum("ab,cd->acbd", out, v).reshape(out.shape[0] * v.shape[0], -1)
        return out

    def expected_partial(self, mask_all: bool = False) -> np.ndarray:
        """Visited pairs that apply the element mask, per program, same shape as above."""
        visits = self.expected_visits()
        if mask_all:
            return visits
        full = np.ones((1, 1), dtype=np.int64)
        for a in self.axes:
            f = np.maximum(a.table[..., 3] - a.table[..., 2], 0).astype(np.int64)
            full = np.einsum("ab,cd->acbd", full, f).reshape(full.shape[0] * f.shape[0], -1)
        return visits - full


def kernel_plan(config: GNAConfig) -> KernelPlan:
    """Build the kernel tables of a config whose tiles are set (static KV tiling)."""
    if not config.has_tiles:
        raise ValueError("q_tile/kv_tile: the kernel needs tile shapes")
    if config.rank > KERNEL_RANK:
        raise ValueError(f"input_size: the kernel supports ranks 1 to {KERNEL_RANK}, got {config.rank}")
    axes = [kernel_axis(axis_plan(config.input_size[d], config.window_size[d], config.stride[d],
                                  config.dilation[d], config.causal[d], config.q_tile[d],
                                  config.kv_tile[d], "static"))
            for d in range(config.rank)]
    axes = [_singleton_axis()] * (KERNEL_RANK - config.rank) + axes
    return KernelPlan(config, tuple(axes), config.rank)


# ---------------------------------------------------------------------------------------------
# backward (KV-stationary) tables


@dataclass(frozen=True)
class BackwardTables:
    """The KV-stationary backward plan of a :class:`KernelPlan` as int32 tables.

    ``tables[d]`` has shape ``(dilation, kv_tiles, 4)`` per kernel axis (singletons included):
    ``q_lo``, ``q_n`` (the box of Q tiles the KV tile visits, from gnasim's backward plan) and
    ``full_lo``, ``full_hi`` (the Q tiles ``[full_lo, full_hi)`` whose every query slot attends
    every real key of the KV tile on this axis). A pair is fully dense iff it is on every axis.
    """

    tables: tuple[np.ndarray, ...]

    def packed_table(self, mask_all: bool = False) -> np.ndarray:
        """All axis tables in one int32 array ``(rows, 4)``; ``mask_all`` empties the full ranges."""
        packed = np.concatenate([t.reshape(-1, 4) for t in self.tables], axis=0).copy()
        if mask_all:
            packed[:, 2:] = 0
        return np.ascontiguousarray(packed, dtype=np.int32)

    @property
    def table_bases(self) -> tuple[int, ...]:
        """First row of each axis in :meth:`packed_table`."""
        sizes = [t.shape[0] * t.shape[1] for t in self.tables]
        return tuple(int(s) for s in np.cumsum([0] + sizes[:-1]))

    def _per_program(self, values) -> np.ndarray:
        out = np.ones((1, 1), dtype=np.int64)
        for t in self.tables:
            v = values(t.astype(np.int64))                   # (D, nkv)
            out = np.einsum("ab,cd->acbd", out, v).reshape(out.shape[0] * v.shape[0], -1)
        return out

    def expected_visits(self) -> np.ndarray:
        """Q tiles visited per backward program, ``(groups, kv_tiles)``, row-major over axes."""
        return self._per_program(lambda t: t[..., 1])

    def expected_partial(self, mask_all: bool = False) -> np.ndarray:
        """Visited pairs that apply the element mask, per program, same shape as above."""
        visits = self.expected_visits()
        if mask_all:
            return visits
        return visits - self._per_program(lambda t: np.maximum(t[..., 3] - t[..., 2], 0))


def backward_tables(plan: KernelPlan) -> BackwardTables:
    """The backward kernel's tables: the visited boxes of gnasim's KV-stationary plan, and the
    fully dense Q-tile ranges found from the forward windows of each Q tile's first and last slot
    (checked against the plan's count of fully dense pairs)."""
    from gnasim.plan.backward import backward_axis_plan

    tables = []
    for a in plan.axes:
        if a.length == 1 and a.window == 1 and a.q_tiles == 1 and a.kv_tiles == 1:
            tables.append(np.array([[[0, 1, 0, 1]]], dtype=np.int32))
            continue
        bp = backward_axis_plan(a.length, a.window, a.stride, a.dilation, a.causal, a.q_tile,
                                a.kv_tile)
        D, nq, nkv, qt, kvt = a.dilation, a.q_tiles, a.kv_tiles, a.q_tile, a.kv_tile
        table = np.zeros((D, nkv, 4), dtype=np.int64)
        table[..., 0] = bp.q_first // qt
        table[..., 1] = bp.visited
        q0 = np.arange(nq, dtype=np.int64) * qt               # first slot of each Q tile
        k0 = np.arange(nkv, dtype=np.int64) * kvt             # first slot of each KV tile
        for g, Lg in enumerate(group_lengths(a.length, D)):
            Lg = int(Lg)
            real_q = q0 + qt <= Lg                            # no padding slot in the Q tile
            first_start = window_start(q0 + qt - 1, Lg, a.window, a.stride, a.causal)
            last_end = window_end(q0, Lg, a.window, a.stride, a.causal)
            last_key = np.minimum(k0 + kvt, Lg) - 1           # last real key (k0 if none)
            # windows are monotone: the tile's last slot starts latest, its first slot ends first
            full = (real_q[None, :] & (k0[:, None] < Lg)
                    & (first_start[None, :] <= k0[:, None]) & (last_end[None, :] > last_key[:, None]))
            count = full.sum(axis=1)
            lo = np.where(count > 0, full.argmax(axis=1), 0)
            if not np.array_equal(full.sum(axis=1), np.where(
                    count > 0, nq - full[:, ::-1].argmax(axis=1) - lo, 0)):
                raise AssertionError(f"fully dense Q tiles are not contiguous on axis {a}")
            table[g, :, 2] = lo
            table[g, :, 3] = lo + count
        if not np.array_equal(table[..., 3] - table[..., 2], bp.full):
            raise AssertionError(f"fully dense ranges disagree with gnasim's backward plan on {a}")
        inside = (table[..., 2] >= table[..., 0]) & (table[..., 3] <= table[..., 0] + table[..., 1])
        if not np.all(inside | (table[..., 3] == table[..., 2])):
            raise AssertionError(f"a fully dense range leaves the visited box on axis {a}")
        tables.append(table.astype(np.int32))
    return BackwardTables(tuple(tables))
