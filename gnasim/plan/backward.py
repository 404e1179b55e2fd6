"""The backward tile plan: for every KV tile, which Q tiles a KV-stationary kernel visits.

NATTEN's Hopper and Blackwell backward kernels are KV-stationary (SHI-Labs/NATTEN @ 8c8729f,
``NeighborhoodAttentionBackwardMask::get_trip_count`` in
``csrc/include/natten/cuda/fna_{hopper,blackwell}/collective/fna_fusion_bwd.hpp``): a CTA owns
one KV tile and iterates over the Q tiles of a box, per axis (dilation-group-local coordinates, ``L = L_g``)::

    q_lo = floor(q_start(kv0) / t_q) * t_q
    q_hi = ceil(q_end(kv1) / t_q) * t_q          # kv1 = last slot of the KV tile, may be padding

where ``[q_start(j), q_end(j))`` is the *inverse window* of key ``j``: the range of queries that
attend it. :func:`inverse_window_bounds` uses the kernels' closed forms
(``get_bwd_win_start/end`` and ``get_bwd_stride_offset``, ``off = S - S//2 - 1``, in the same
``fna_fusion_bwd.hpp``); for a real key they equal the exact min/max of attending queries
(checked against the brute-force mask in ``tests/test_backward.py``). For a padding key they give
``q_end = L``, the value of the last real key, so a KV tile with any real key visits exactly the
hull of the Q tiles holding a query that attends one of its keys. A KV tile made only of padding
(possible with uneven dilation groups) still runs the kernel's box: the closed forms on its first
and last slot, as the kernel computes them.

This module is the KV-stationary direction of the per-axis engine (:mod:`gnasim.plan.axis`),
:mod:`gnasim.plan.tiling` with the roles of Q and KV swapped. A (KV tile, Q tile)
pair is *fully dense* when every real key of the KV tile is attended by every query slot of the Q
tile; a padding query slot never attends, so a Q tile holding padding is never fully dense with
anything, while padding key slots do not matter (a KV tile with no real key has no fully dense
pair). Otherwise a visited pair is *partial*. Since inverse windows are contiguous and monotone,
per axis the fully dense Q tiles of a KV tile are those inside ``[q_start(last real key),
q_end(first key))`` (one run, starting at query ``full_first``), and a pair is fully dense iff it
is fully dense on every axis.

Everything is per axis (:class:`BackwardAxisPlan`, per dilation group and KV tile) and combined by
products (:class:`BackwardPlan`); no N x N mask is built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gnasim.errors import ConfigError
from gnasim.plan.axis import FIRST, AxisTiles, Direction, GroupTiles, build_axes, cdiv, row_view
from gnasim.plan.cache import BoundedCache
from gnasim.plan.product import KVStationary, ProductPlan
from gnasim.plan.windows import inverse_window_bounds, inverse_window_pieces

__all__ = ["BackwardAxisPlan", "BackwardPlan", "backward_axis_plan", "backward_axis_plans",
           "backward_flops", "backward_plan", "backward_rows", "inverse_window_bounds"]


def backward_rows(idx: np.ndarray, Lg, K, S, causal, qt, kvt) -> np.ndarray:
    """Rows (:data:`gnasim.plan.axis.ROWS`: visited, full, q_first, real keys, full_first) of KV
    tiles ``idx`` of one dilation group of length ``Lg``; parameters may be arrays aligned with
    ``idx``."""
    k0 = idx * kvt
    n = len(k0)
    real = np.clip(Lg - k0, 0, kvt)
    has = real > 0
    last_real = k0 + np.maximum(real, 1) - 1
    tile3 = lambda a: np.concatenate([a, a, a]) if np.ndim(a) else a
    starts, ends = inverse_window_bounds(np.concatenate([k0, last_real, k0 + kvt - 1]),
                                         tile3(Lg), tile3(K), tile3(S), tile3(causal))
    q_lo = starts[:n] // qt
    visited = np.maximum(cdiv(ends[2 * n:], qt) - q_lo, 0)
    latest_start = starts[n:2 * n]    # every real key is attended from here on ...
    earliest_end = ends[:n]           # ... up to here (exclusive); q_end <= Lg: no padding
    run_lo = cdiv(latest_start, qt)
    full = np.where(has, np.maximum(earliest_end // qt - run_lo, 0), 0)
    q_first = q_lo * qt
    full_first = np.where(full > 0, run_lo * qt, q_first)
    return np.stack([visited, full, q_first, real, full_first]).astype(np.int64)


BACKWARD = Direction("backward", backward_rows, inverse_window_pieces, q_stationary=False)


@dataclass(frozen=True)
class BackwardAxisPlan(AxisTiles):
    """Per-axis backward statistics for every (dilation group, KV tile) on one axis.

    ``groups[i]`` holds the KV tiles of the i-th distinct group length; ``weights[i]`` groups have
    that length (the first ``L % D`` groups are one longer). Array views (``visited`` ...) have
    shape ``(dilation, kv_tiles_per_group)``.
    """

    q_tiles_per_group: int
    kv_tiles_per_group: int
    groups: tuple[GroupTiles, ...] = ()
    weights: tuple[int, ...] = ()

    q_first = row_view(FIRST, "First query (group-local) of the first Q tile visited.")

    @property
    def direction(self) -> Direction:
        return BACKWARD


BackwardAxisKey = tuple  # (length, window, stride, dilation, causal, q_tile, kv_tile)
_PLANS: BoundedCache[BackwardAxisKey, BackwardAxisPlan] = BoundedCache(8192)


def _build(keys: list[BackwardAxisKey]) -> list[BackwardAxisPlan]:
    return [BackwardAxisPlan(*key, built.q_tiles_per_group, built.kv_tiles_per_group,
                             built.groups, built.weights)
            for key, built in zip(keys, build_axes(keys, BACKWARD))]


def backward_axis_plans(keys: list[BackwardAxisKey]) -> list[BackwardAxisPlan]:
    """Backward plans of many axes, the uncached ones computed together. Cached (bounded)."""
    keys = [(int(L), int(K), int(S), int(D), bool(c), int(qt), int(kvt))
            for L, K, S, D, c, qt, kvt in keys]
    return _PLANS.get_many(keys, _build)


def backward_axis_plan(length: int, window: int, stride: int, dilation: int, causal: bool,
                       q_tile: int, kv_tile: int) -> BackwardAxisPlan:
    """Backward statistics of one axis (all dilation groups). Cached: plans are immutable."""
    return backward_axis_plans([(length, window, stride, dilation, causal, q_tile, kv_tile)])[0]


@dataclass(frozen=True)
class BackwardPlan(ProductPlan, KVStationary):
    """The whole problem's KV-stationary tile plan, combined from per-axis plans by products.
    ``kv_tiles`` are the backward CTAs (per batch and head)."""

    axes: tuple[BackwardAxisPlan, ...]


def backward_plan(config, q_tile: tuple[int, ...], kv_tile: tuple[int, ...]) -> BackwardPlan:
    """The backward plan of a :class:`~gnasim.config.GNAConfig` with backward tile shapes."""
    if len(q_tile) != config.rank or len(kv_tile) != config.rank:
        raise ConfigError(f"bwd_q_tile/bwd_kv_tile: tile ranks {len(q_tile)}/{len(kv_tile)} do "
                          f"not match input_size rank {config.rank}")
    if min(q_tile) < 1 or min(kv_tile) < 1:
        raise ConfigError("bwd_q_tile/bwd_kv_tile: tile extents must be >= 1")
    return BackwardPlan(tuple(backward_axis_plans(
        [(config.input_size[d], config.window_size[d], config.stride[d], config.dilation[d],
          config.causal[d], q_tile[d], kv_tile[d]) for d in range(config.rank)])))


def backward_flops(pairs: int, batch: int, heads: int, head_dim: int, head_dim_v: int) -> int:
    """Backward FLOPs over ``pairs`` (query, key) pairs, cuDNN's convention: ``2 * (3 * d_qk +
    2 * d_v)`` per pair (NVIDIA/cudnn-frontend @ 3929da2,
    ``benchmark/sdpa_benchmark_training/benchmark_single_sdpa.py``).

    That is the recomputed ``S = QK^T`` and ``dQ``, ``dK`` (``d_qk`` each) plus ``dP = dO V^T`` and
    ``dV`` (``d_v`` each), two FLOPs per multiply-add; 2.5x the forward count when ``d_qk = d_v``.
    """
    return int(pairs) * 2 * (3 * head_dim + 2 * head_dim_v) * batch * heads
