"""Per-axis statistics of many axis options at once: the factors every sweep row multiplies."""

from __future__ import annotations

from types import SimpleNamespace

from gnasim.plan.cache import BoundedCache
from gnasim.plan.fast_path import natten_fast_path
from gnasim.plan.tiling import AxisKey, axis_plans

# per-axis statistics, in this column order
STATS: tuple[str, ...] = ("vsum", "fsum", "vmax", "att", "qt", "kvt", "dvmax", "dvsum", "datt",
                          "fast")
STAT_INDEX: dict[str, int] = {name: i for i, name in enumerate(STATS)}

_STATS_CACHE: BoundedCache[AxisKey, tuple[int, ...]] = BoundedCache(65536)


def _compute(keys: list[AxisKey]) -> list[tuple[int, ...]]:
    dense = [(k[0], k[0], 1, 1, k[4], k[5], k[6], k[7]) for k in keys]
    plans = axis_plans(keys + dense)
    n = len(keys)
    out = []
    for key, p, d in zip(keys, plans[:n], plans[n:]):
        L, K, S, D, c, qt, kvt, _ = key
        axis_cfg = SimpleNamespace(rank=1, input_size=(L,), window_size=(K,), stride=(S,),
                                   dilation=(D,), causal=(c,), q_tile=(qt,), kv_tile=(kvt,))
        out.append((p.visited_sum, p.full_sum, p.visited_max, p.attended,
                    D * p.q_tiles_per_group, D * p.kv_tiles_per_group,
                    d.visited_max, d.visited_sum, d.attended, int(natten_fast_path(axis_cfg))))
    return out


def axis_stats_many(keys: list[AxisKey]) -> list[tuple[int, ...]]:
    """Per-axis factors (named by :data:`STATS`) of many axis options ``(L, K, S, D, causal, qt,
    kvt, mode)``: visited/full tile sums, worst Q tile, attended keys, Q/KV tiles, the same axis of
    the dense (self-attention) baseline, and NATTEN's fast-path predicate for the axis. The plans
    missing from the cache are computed together (:func:`gnasim.plan.tiling.axis_plans`)."""
    return _STATS_CACHE.get_many(keys, _compute)


def axis_stats(length: int, window: int, stride: int, dilation: int, causal: bool,
               q_tile: int, kv_tile: int, mode: str = "static") -> tuple[int, ...]:
    """Per-axis factors of one axis option (see :func:`axis_stats_many`)."""
    return axis_stats_many([(length, window, stride, dilation, bool(causal), q_tile, kv_tile,
                             mode)])[0]
