"""The tile plan: for every Q tile, which KV tiles a kernel visits and which of those are fully dense.

Everything is computed per axis (:class:`AxisPlan`, by the engine of :mod:`gnasim.plan.axis`) and
combined by products (:class:`TilePlan`): the GNA mask is an AND of per-axis masks, so per-tile
counts, their sums, maxima and histograms factorise. No N x N mask is ever built here (see
:mod:`gnasim.reference` for the slow check).

Tiling follows the kernels (SHI-Labs/NATTEN @ 8c8729f: ``get_trip_count`` in
``csrc/include/natten/cuda/fna_{hopper,blackwell}/collective/fna_fusion.hpp``, token permutation
in ``src/natten/token_permute/torch_impl.py``, Ampere's KV loop in
``csrc/include/natten/cuda/fna/na_utils.cuh``): each axis is split into ``D`` dilation groups, each
group padded to ``ceil(L / (t * D)) * t`` tokens, and

* ``static`` KV tiling (Hopper, Blackwell, Flex; token-permuted): a Q tile visits KV tiles
  ``floor(start(first q) / t_kv)`` up to ``ceil(end(last q) / t_kv)`` on the KV tile grid;
  ``last q`` may lie in the padding (the leader rule clamps it). A Q tile made only of padding
  (a dilation group shorter than its padded length) is still launched by the kernel, so it is
  charged that clamped box: its ``visited`` count is the window of the last stride group, never
  zero, and none of its pairs is fully dense. This is a definition choice of the counts, made to
  match the launched CTAs;
* ``dynamic`` KV tiling (Ampere FNA, no permutation): iteration starts exactly at
  ``start(first q)`` and steps by ``t_kv`` up to ``end(last real q)``; Q tiles with no real query
  do no work.

A (Q tile, KV tile) pair is *fully dense* when every real query of the Q tile attends every key
slot of the KV tile (a padding slot never is attended); otherwise it is *partial*. Per axis the
fully dense KV tiles of a Q tile are one contiguous run, starting at key ``full_first``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from gnasim.errors import ConfigError
from gnasim.plan.axis import (FIRST, REAL, AxisTiles, Direction, GroupTiles, build_axes, cdiv,
                              row_view)
from gnasim.plan.cache import BoundedCache, clear_all
from gnasim.plan.product import ProductPlan, QStationary, prod
from gnasim.plan.windows import attended_keys_total, window_bounds, window_pieces

KVTiling = Literal["static", "dynamic"]
KV_TILINGS: tuple[str, ...] = ("static", "dynamic")


def forward_rows(idx: np.ndarray, Lg, K, S, causal, qt, kvt, mode: str) -> np.ndarray:
    """Rows (:data:`gnasim.plan.axis.ROWS`) of Q tiles ``idx`` of one dilation group of length
    ``Lg``. The parameters may be arrays aligned with ``idx`` (one numpy pass, many axes)."""
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
        visited = cdiv(e1, kvt) - lo
        kv_first = lo * kvt
        run_lo = cdiv(full_start, kvt)
        full = np.maximum(full_end // kvt - run_lo, 0)
        run_first = run_lo * kvt
    else:
        e1 = end[n:2 * n]
        visited = cdiv(e1 - s0, kvt)
        kv_first = s0
        j_lo = cdiv(full_start - s0, kvt)
        j_hi = (full_end - s0) // kvt
        full = np.maximum(np.minimum(j_hi, visited) - j_lo, 0)
        # the last tile is cut short at e1: it is full if it ends inside every window (it is
        # then tile j_hi, right after the run [j_lo, j_hi))
        tail = (e1 == full_end) & (visited - 1 >= np.maximum(j_lo, j_hi))
        full = full + tail
        visited = np.where(has, visited, 0)
        run_first = s0 + j_lo * kvt
    full = np.where(has, full, 0)
    full_first = np.where(full > 0, run_first, kv_first)
    return np.stack([visited, full, kv_first, real, full_first]).astype(np.int64)


def _direction(mode: str) -> Direction:
    rows = lambda idx, Lg, K, S, causal, qt, kvt: forward_rows(idx, Lg, K, S, causal, qt, kvt,
                                                              mode)
    return Direction(f"forward-{mode}", rows, window_pieces, q_stationary=True)


DIRECTIONS: dict[str, Direction] = {m: _direction(m) for m in KV_TILINGS}


@dataclass(frozen=True)
class AxisPlan(AxisTiles):
    """Per-axis tile statistics for every (dilation group, Q tile) on one axis.

    Dilation groups have one of two lengths: the first ``n_long`` groups have ``ceil(L / D)``
    tokens (``groups[0]``), the others one fewer (``groups[1]``). Array views (``visited`` ...)
    have shape ``(dilation, q_tiles_per_group)``; ``kv_first`` is the first key (group-local token)
    of the first KV tile visited, a multiple of ``kv_tile`` in static mode; ``full_first`` the
    first key of the fully dense KV run (``kv_first`` when the run is empty).
    """

    mode: str
    q_tiles_per_group: int
    kv_tiles_per_group: int
    groups: tuple[GroupTiles, ...] = ()
    weights: tuple[int, ...] = ()
    attended: int = 0

    kv_first = row_view(FIRST, "First key (group-local) of the first KV tile visited.")
    real_queries = row_view(REAL, "Real (non-padding) queries of each Q tile.")

    @property
    def direction(self) -> Direction:
        return DIRECTIONS[self.mode]


AxisKey = tuple  # (length, window, stride, dilation, causal, q_tile, kv_tile, mode)
_PLANS: BoundedCache[AxisKey, AxisPlan] = BoundedCache(8192)


def _build(keys: list[AxisKey]) -> list[AxisPlan]:
    out: dict[AxisKey, AxisPlan] = {}
    for mode in dict.fromkeys(k[7] for k in keys):
        if mode not in KV_TILINGS:
            raise ConfigError(f"kv_tiling: '{mode}' is not one of {list(KV_TILINGS)}")
        these = [k for k in keys if k[7] == mode]
        for key, built in zip(these, build_axes([k[:7] for k in these], DIRECTIONS[mode])):
            _, K, S, _, causal = key[:5]
            attended = sum(w * attended_keys_total(Lg, K, S, causal)
                           for Lg, w in zip(built.lengths, built.weights))
            out[key] = AxisPlan(*key, built.q_tiles_per_group, built.kv_tiles_per_group,
                                built.groups, built.weights, int(attended))
    return [out[k] for k in keys]


def axis_plans(keys: list[AxisKey]) -> list[AxisPlan]:
    """Plans of many axes, the uncached ones computed together in one numpy pass per KV mode.

    A key is ``(length, window, stride, dilation, causal, q_tile, kv_tile, mode)``. Plans are
    immutable and cached (bounded).
    """
    return _PLANS.get_many(keys, _build)


def axis_plan(length: int, window: int, stride: int, dilation: int, causal: bool,
              q_tile: int, kv_tile: int, mode: str = "static") -> AxisPlan:
    """Tile statistics of one axis (all dilation groups). Cached: plans are immutable."""
    return axis_plans([(length, window, stride, dilation, bool(causal), q_tile, kv_tile, mode)])[0]


def clear_plan_cache() -> None:
    """Forget every cached plan and per-axis statistic (for benchmarks of cold predictions)."""
    clear_all()


@dataclass(frozen=True)
class TilePlan(ProductPlan, QStationary):
    """The whole problem's tile plan (Q-stationary), combined from per-axis plans by products."""

    axes: tuple[AxisPlan, ...]

    @property
    def mode(self) -> str:
        return self.axes[0].mode

    @cached_property
    def attended_pairs(self) -> int:
        return prod(a.attended for a in self.axes)


def _axis_keys(config, mode: str) -> list[AxisKey]:
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
