"""Sweep blocks of flat (1-D) tiling: their kernels and tile token counts.

A flat plan is not a product of per-axis plans (a run of tokens crosses rows of the layout), so
the vectorised block path of :mod:`gnasim.explore.columns` does not apply: a flat block keeps
its per-axis options (the rows are the same grid as a box sweep's) and computes each row's
record with :func:`gnasim.prediction.simulate`, exactly as ``predict --tiling flat`` does. That
costs one exact flat plan per row (about 10 ms for HunyuanVideo's 115,200 tokens with 128-token
tiles), so flat sweeps run thousands of rows a minute, not millions.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from gnasim.config import format_tile
from gnasim.errors import ConfigError
from gnasim.prediction import flat_kernel

FlatTiles = tuple[tuple[int], tuple[int]]     # ((Q tokens,), (KV tokens,)): a block's tiles


def flat_kernels(spec: Any, profile: Any) -> list[Any]:
    """The kernels of a flat sweep: each named one, else the profile's flat-tiling kernel;
    ``all`` means every flat-tiling kernel of the profile."""
    if profile is None:
        return [None]
    if spec.kernel == "all":
        return [k for k in profile.kernels if k.tiling == "flat"] or [flat_kernel(profile, None)]
    return [flat_kernel(profile, k) for k in spec.kernel]


def _tokens(grids: Any) -> list[int | None]:
    if grids is None:
        return [None]
    return list(dict.fromkeys(v for g in grids for v in g[0]))


def flat_tile_candidates(spec: Any, kern: Any, rank: int, head_dim: int, skipped: list[str],
                         where: str) -> list[FlatTiles]:
    """(Q tokens, KV tokens) of a flat sweep: the spec's token counts (``q_tile``/``kv_tile``
    or rank-1 ``tiles`` pairs), ``all`` of the kernel's flat tiles, or by default the tiles
    :func:`~gnasim.prediction.simulate` takes (the flat kernel's default, or the token counts
    of a box kernel's default tiles for the rank)."""
    if spec.tiles == "all":
        if kern is None or kern.tiling != "flat":
            skipped.append(f"{where}: tiles 'all' of flat tiling needs a flat-tiling kernel")
            return []
        return [((q,), (kv,)) for q, kv in kern.flat_tiles(head_dim)]
    if isinstance(spec.tiles, tuple):
        out = []
        for q, kv in spec.tiles:
            if len(q) != 1:
                skipped.append(f"tile {format_tile(q)}/{format_tile(kv)}: flat tiling takes "
                               "token counts like 128/128")
            else:
                out.append((q, kv))
        return out
    default = None
    if kern is not None and kern.tiling == "flat":
        default = kern.flat_tiles(head_dim)[0]
    elif kern is not None:
        box = kern.default_tile(rank, head_dim)
        default = (math.prod(box[0]), math.prod(box[1])) if box is not None else None
    out = []
    for q, kv in itertools.product(_tokens(spec.q_tile), _tokens(spec.kv_tile)):
        if q is None or kv is None:
            if default is None:
                if kern is None:
                    raise ConfigError("q_tile/kv_tile: flat tiling without a hardware profile "
                                      "needs both token counts")
                skipped.append(f"{where}: kernel {kern.name} ships no rank-{rank} tile shape")
                continue
            q = q if q is not None else default[0]
            kv = kv if kv is not None else default[1]
        out.append(((q,), (kv,)))
    return list(dict.fromkeys(out))
