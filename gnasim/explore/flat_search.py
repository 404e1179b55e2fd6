"""The stride search of :mod:`gnasim.explore.recommend` under flat (1-D) tiling.

Under box tiling every count is a product of per-axis counts, so the whole stride grid costs
one plan per axis and stride. A flat tile is a run of tokens across rows of the layout, so its
counts are not products: here every stride vector gets its own exact flat plan
(:func:`gnasim.plan.flat.flat_plan`), and the Pareto set, the best stride and the smallest
block-sparse stride are read off the full grid. That is ``prod(K_d)`` plans (about 10 ms each
for HunyuanVideo with 128-token tiles), so the grid is capped at :data:`MAX_FLAT_STRIDES`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from gnasim.bounds import amdahl
from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.explore.recommend import StrideSearch, pareto_mask
from gnasim.hardware.profile import HardwareProfile
from gnasim.plan.flat import TILING, flat_plan
from gnasim.prediction import flat_kernel, flat_tile_sizes

# Most stride vectors one flat search plans (HunyuanVideo's 18x24x24 window has 10,368).
MAX_FLAT_STRIDES = 20_000


@dataclass
class FlatStrideSearch(StrideSearch):
    """A stride search over flat plans. ``config.q_tile``/``config.kv_tile`` hold the token
    counts as one-element tuples (for display); block-sparsity is read per stride."""

    @property
    def _sparse(self) -> np.ndarray:
        return self.vsum == self.fsum

    def fully_block_sparse(self, stride: tuple[int, ...]) -> bool:
        return bool(self._sparse[tuple(s - 1 for s in stride)])

    @property
    def smallest_block_sparse(self) -> tuple[int, ...] | None:
        """The perfectly block-sparse stride of the smallest size (then the first), or None."""
        hits = [tuple(int(v) + 1 for v in ix) for ix in np.argwhere(self._sparse)]
        return min(hits, key=lambda s: (math.prod(s), s)) if hits else None

    def best_stride(self) -> tuple[int, ...]:
        """The smallest stride (by size, then order) reaching the highest tile bound."""
        best = np.argwhere(self.vmax == self.vmax.min())
        return min((tuple(int(v) + 1 for v in ix) for ix in best),
                   key=lambda s: (math.prod(s), s))


def search_flat_strides(config: GNAConfig, q_tile: int, kv_tile: int,
                        hardware: str | None = None, kernel: str | None = None,
                        attention_fraction: float | None = None, full_attention_steps: int = 0,
                        total_steps: int | None = None,
                        notes: tuple[str, ...] = ()) -> FlatStrideSearch:
    """Score every stride ``1..K_d`` of ``config`` under flat tiles of ``q_tile``/``kv_tile``
    tokens (one exact flat plan per stride vector)."""
    windows = config.window_size
    total = math.prod(windows)
    if total > MAX_FLAT_STRIDES:
        raise ConfigError(f"window_size: the flat stride search plans each of the {total:,} "
                          f"stride vectors of window {'x'.join(map(str, windows))} one by one; "
                          f"at most {MAX_FLAT_STRIDES:,} (give a smaller window)")
    shape = tuple(windows)
    vmax, vsum, fsum, att = (np.zeros(shape, dtype=np.int64) for _ in range(4))
    for stride in itertools.product(*(range(1, k + 1) for k in windows)):
        plan = flat_plan(config.replace(stride=stride), q_tile, kv_tile)
        at = tuple(s - 1 for s in stride)
        vmax[at], vsum[at] = plan.kv_tiles_visited_max, plan.tile_pairs_visited
        fsum[at], att[at] = plan.tile_pairs_full, plan.attended_pairs
    dense = flat_plan(config.dense(), q_tile, kv_tile)
    shown = config.replace(stride=1).model_copy(update={"q_tile": (q_tile,),
                                                         "kv_tile": (kv_tile,)})
    return FlatStrideSearch(
        config=shown, mode=TILING, hardware=hardware, kernel=kernel, vmax=vmax, vsum=vsum,
        fsum=fsum, attended=att, dense_vmax=dense.kv_tiles_visited_max,
        dense_vsum=dense.tile_pairs_visited, dense_attended=dense.attended_pairs,
        axis_block_sparse=[], pareto=pareto_mask(vmax), attention_fraction=attention_fraction,
        full_attention_steps=full_attention_steps, total_steps=total_steps, notes=tuple(notes))


def recommend_flat(config: GNAConfig, profile: HardwareProfile | None = None,
                   kernel: str | None = None, all_tiles: bool = False,
                   flat_tiles: tuple[int, int] | None = None,
                   attention_fraction: float | None = None, full_attention_steps: int = 0,
                   total_steps: int | None = None) -> list[StrideSearch]:
    """One flat stride search per flat tile: the given token counts, the flat kernel's default
    (``flex-flat``: 128/128), or with ``all_tiles`` every flat tile the kernel ships."""
    if attention_fraction is not None:
        amdahl(1.0, attention_fraction, full_attention_steps, total_steps)
    kern = flat_kernel(profile, kernel) if profile is not None else None
    if all_tiles:
        if kern is None or kern.tiling != "flat":
            raise ConfigError("all_tiles: searching every flat tile needs a flat-tiling kernel "
                              "(flex-flat)")
        tiles, notes = kern.flat_tiles(config.head_dim), []
    else:
        tile, notes = flat_tile_sizes(config, kern, flat_tiles)
        tiles = [tile]
    untiled = config.model_copy(update={"q_tile": None, "kv_tile": None})
    return [search_flat_strides(untiled, q, kv, profile.name if profile else None,
                                kern.name if kern else None, attention_fraction,
                                full_attention_steps, total_steps, tuple(notes))
            for q, kv in tiles]
