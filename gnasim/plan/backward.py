"""The backward tile plan: for every KV tile, which Q tiles a KV-stationary kernel visits.

NATTEN's Hopper and Blackwell backward kernels are KV-stationary (``natten-kernels.md`` 2.3,
``NeighborhoodAttentionBackwardMask::get_trip_count``): a CTA owns one KV tile and iterates over
the Q tiles of a box, per axis (dilation-group-local coordinates, ``L = L_g``)::

    q_lo = floor(q_start(kv0) / t_q) * t_q
    q_hi = ceil(q_end(kv1) / t_q) * t_q          # kv1 = last slot of the KV tile, may be padding

where ``[q_start(j), q_end(j))`` is the *inverse window* of key ``j``: the range of queries that
attend it. :func:`inverse_window_bounds` uses the kernels' closed forms (``natten-kernels.md``
1.1, ``off = S - S//2 - 1``); for a real key they equal the exact min/max of attending queries
(checked against the brute-force mask in ``tests/test_backward.py``). For a padding key they give
``q_end = L``, the value of the last real key, so a KV tile with any real key visits exactly the
hull of the Q tiles holding a query that attends one of its keys. A KV tile made only of padding
(possible with uneven dilation groups) still runs the kernel's box: the closed forms on its first
and last slot, as the kernel computes them.

This module mirrors :mod:`gnasim.tiling` with the roles of Q and KV swapped. A (KV tile, Q tile)
pair is *fully dense* when every real key of the KV tile is attended by every query slot of the Q
tile; a padding query slot never attends, so a Q tile holding padding is never fully dense with
anything, while padding key slots do not matter (a KV tile with no real key has no fully dense
pair). Otherwise a visited pair is *partial*. Since inverse windows are contiguous and monotone,
per axis the fully dense Q tiles of a KV tile are those inside ``[q_start(last real key),
q_end(first key))``, and a pair is fully dense iff it is fully dense on every axis.

Everything is per axis (:class:`BackwardAxisPlan`, per dilation group and KV tile) and combined by
products (:class:`BackwardPlan`); no N x N mask is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from gnasim.plan.tiling import ProductPlan, _cdiv, _product_distribution
from gnasim.plan.windows import window_extents


def inverse_window_bounds(j, length: int, window: int, stride: int,
                          causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """``(q_start, q_end)`` of keys ``j`` (group-local): the queries attending key ``j`` are
    ``[q_start, q_end)``. The kernels' closed forms (``get_bwd_win_start/end``)."""
    j = np.asarray(j, dtype=np.int64)
    left, right = window_extents(window)
    off = stride - stride // 2 - 1
    if causal:
        q_start = j
        q_end = np.minimum(((j + window) // stride + (j + window >= length)) * stride, length)
    else:
        q_start = (np.where(j >= window, j - right + off, 0) // stride) * stride
        q_end = np.where(j >= length - window, length,
                         ((j + left + off + 1) // stride) * stride)
    return q_start, q_end


def _kv_tile_rows(Lg: int, K: int, S: int, causal: bool, qt: int, kvt: int,
                  nkv: int) -> np.ndarray:
    """Rows (visited, full, q_first, real keys) of one dilation group's KV tiles."""
    k0 = np.arange(nkv, dtype=np.int64) * kvt
    real = np.clip(Lg - k0, 0, kvt)
    has = real > 0
    last_real = k0 + np.maximum(real, 1) - 1
    starts, ends = inverse_window_bounds(np.concatenate([k0, last_real, k0 + kvt - 1]),
                                         Lg, K, S, causal)
    q_lo = starts[:nkv] // qt
    visited = np.maximum(_cdiv(ends[2 * nkv:], qt) - q_lo, 0)
    latest_start = starts[nkv:2 * nkv]    # every real key is attended from here on ...
    earliest_end = ends[:nkv]             # ... up to here (exclusive); q_end <= Lg: no padding
    full = np.maximum(earliest_end // qt - _cdiv(latest_start, qt), 0)
    full = np.where(has, full, 0)
    return np.stack([visited, full, q_lo * qt, real]).astype(np.int64)


@dataclass(frozen=True)
class BackwardAxisPlan:
    """Per-axis backward statistics for every (dilation group, KV tile) on one axis.

    ``rows[i]`` holds the rows (visited, full, q_first, real keys) of the i-th distinct group
    length; ``weights[i]`` groups have that length (the first ``L % D`` groups are one longer).
    """

    length: int
    window: int
    stride: int
    dilation: int
    causal: bool
    q_tile: int
    kv_tile: int
    q_tiles_per_group: int
    kv_tiles_per_group: int
    rows: tuple[np.ndarray, ...]
    weights: tuple[int, ...]

    def _stack(self, row: int) -> np.ndarray:
        return np.repeat(np.stack([r[row] for r in self.rows]), self.weights, axis=0)

    @property
    def visited(self) -> np.ndarray:
        """Q tiles visited, shape ``(dilation, kv_tiles_per_group)``."""
        return self._stack(0)

    @property
    def full(self) -> np.ndarray:
        return self._stack(1)

    @property
    def q_first(self) -> np.ndarray:
        """First query (group-local) of the first Q tile visited."""
        return self._stack(2)

    @cached_property
    def visited_sum(self) -> int:
        return sum(w * int(r[0].sum()) for r, w in zip(self.rows, self.weights))

    @cached_property
    def full_sum(self) -> int:
        return sum(w * int(r[1].sum()) for r, w in zip(self.rows, self.weights))

    @cached_property
    def visited_max(self) -> int:
        return max(int(r[0].max()) for r in self.rows)

    def visited_counts(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct Q-tiles-visited values over all KV tiles of the axis, with their counts."""
        vals = np.concatenate([r[0] for r in self.rows])
        weights = np.concatenate([np.full(r.shape[1], w, np.int64)
                                  for r, w in zip(self.rows, self.weights)])
        uniq, inv = np.unique(vals, return_inverse=True)
        return uniq, np.bincount(inv.ravel(), weights=weights,
                                 minlength=len(uniq)).astype(np.int64)


BackwardAxisKey = tuple  # (length, window, stride, dilation, causal, q_tile, kv_tile)
_PLANS: dict[BackwardAxisKey, BackwardAxisPlan] = {}
_MAX_CACHED = 4096


def backward_axis_plan(length: int, window: int, stride: int, dilation: int, causal: bool,
                       q_tile: int, kv_tile: int) -> BackwardAxisPlan:
    """Backward statistics of one axis (all dilation groups). Cached: plans are immutable."""
    key = (int(length), int(window), int(stride), int(dilation), bool(causal), int(q_tile),
           int(kv_tile))
    plan = _PLANS.get(key)
    if plan is None:
        L, K, S, D, causal, qt, kvt = key
        nq, nkv = _cdiv(L, qt * D), _cdiv(L, kvt * D)
        long_len, n_long = -(-L // D), L % D or D
        lens = [long_len] + ([long_len - 1] if n_long < D else [])
        weights = (n_long, D - n_long)[: len(lens)]
        rows = []
        for Lg in lens:
            r = _kv_tile_rows(Lg, K, S, causal, qt, kvt, nkv)
            r.flags.writeable = False
            rows.append(r)
        plan = BackwardAxisPlan(L, K, S, D, causal, qt, kvt, nq, nkv, tuple(rows), weights)
        if len(_PLANS) >= _MAX_CACHED:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


@dataclass(frozen=True)
class BackwardPlan(ProductPlan):
    """The whole problem's KV-stationary tile plan, combined from per-axis plans by products.
    ``kv_tiles`` are the backward CTAs (per batch and head)."""

    axes: tuple[BackwardAxisPlan, ...]

    @property
    def q_tiles_visited_max(self) -> int:
        return self.visited_max

    @property
    def q_tiles_visited_mean(self) -> float:
        return self.tile_pairs_visited / self.kv_tiles

    def visited_histogram(self) -> dict[int, int]:
        """{Q tiles visited: number of KV tiles visiting that many}."""
        vals, counts = _product_distribution([a.visited_counts() for a in self.axes])
        return {int(v): int(c) for v, c in zip(vals, counts)}


def backward_plan(config, q_tile: tuple[int, ...], kv_tile: tuple[int, ...]) -> BackwardPlan:
    """The backward plan of a :class:`~gnasim.config.GNAConfig` with backward tile shapes."""
    from gnasim.errors import ConfigError
    if len(q_tile) != config.rank or len(kv_tile) != config.rank:
        raise ConfigError(f"bwd_q_tile/bwd_kv_tile: tile ranks {len(q_tile)}/{len(kv_tile)} do "
                          f"not match input_size rank {config.rank}")
    if min(q_tile) < 1 or min(kv_tile) < 1:
        raise ConfigError("bwd_q_tile/bwd_kv_tile: tile extents must be >= 1")
    return BackwardPlan(tuple(
        backward_axis_plan(config.input_size[d], config.window_size[d], config.stride[d],
                           config.dilation[d], bool(config.causal[d]), q_tile[d], kv_tile[d])
        for d in range(config.rank)))


def backward_flops(pairs: int, batch: int, heads: int, head_dim: int, head_dim_v: int) -> int:
    """Backward FLOPs over ``pairs`` (query, key) pairs, cuDNN's convention
    (``benchmark_single_sdpa.py``, ``hardware.md`` 5): ``2 * (3 * d_qk + 2 * d_v)`` per pair.

    That is the recomputed ``S = QK^T`` and ``dQ``, ``dK`` (``d_qk`` each) plus ``dP = dO V^T`` and
    ``dV`` (``d_v`` each), two FLOPs per multiply-add; 2.5x the forward count when ``d_qk = d_v``.
    """
    return int(pairs) * 2 * (3 * head_dim + 2 * head_dim_v) * batch * heads
