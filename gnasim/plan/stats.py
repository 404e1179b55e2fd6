"""Per-axis statistics of many axis options at once: the factors every sweep row multiplies."""

from __future__ import annotations


from types import SimpleNamespace


from gnasim.plan.fast_path import natten_fast_path
from gnasim.plan.tiling import axis_plans




# per-axis statistics, in this column order
_STATS = ("vsum", "fsum", "vmax", "att", "qt", "kvt", "dvmax", "dvsum", "datt", "fast")
_S = {name: i for i, name in enumerate(_STATS)}


# -- per-axis statistics ----------------------------------------------------------------------

_STATS_CACHE: dict[tuple, tuple[int, ...]] = {}


def axis_stats_many(keys: list[tuple]) -> list[tuple[int, ...]]:
    """Per-axis factors (see ``_STATS``) of many axis options ``(L, K, S, D, causal, qt, kvt,
    mode)``: visited/full tile sums, worst Q tile, attended keys, Q/KV tiles, the same axis of the
    dense (self-attention) baseline, and NATTEN's fast-path predicate for the axis. The plans
    missing from the cache are computed together (:func:`gnasim.tiling.axis_plans`)."""
    missing = [k for k in dict.fromkeys(keys) if k not in _STATS_CACHE]
    if missing:
        dense = [(k[0], k[0], 1, 1, k[4], k[5], k[6], k[7]) for k in missing]
        plans = axis_plans(missing + dense)
        n = len(missing)
        for key, p, d in zip(missing, plans[:n], plans[n:]):
            L, K, S, D, c, qt, kvt, _ = key
            axis_cfg = SimpleNamespace(rank=1, input_size=(L,), window_size=(K,), stride=(S,),
                                       dilation=(D,), causal=(c,), q_tile=(qt,), kv_tile=(kvt,))
            _STATS_CACHE[key] = (p.visited_sum, p.full_sum, p.visited_max, p.attended,
                                 D * p.q_tiles_per_group, D * p.kv_tiles_per_group,
                                 d.visited_max, d.visited_sum, d.attended,
                                 int(natten_fast_path(axis_cfg)))
    return [_STATS_CACHE[k] for k in keys]


def axis_stats(length: int, window: int, stride: int, dilation: int, causal: bool,
               q_tile: int, kv_tile: int, mode: str = "static") -> tuple[int, ...]:
    """Per-axis factors of one axis option (see :func:`axis_stats_many`)."""
    return axis_stats_many([(length, window, stride, dilation, bool(causal), q_tile, kv_tile,
                             mode)])[0]

