"""Whole-problem plans as products of per-axis plans.

The GNA mask is an AND of per-axis masks, so per-tile counts of a rank-``r`` problem are products
of per-axis counts: their sums, maxima and distributions are products of per-axis ones.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np


def prod(values) -> int:
    """Product of integers, as a Python ``int`` (no overflow)."""
    out = 1
    for v in values:
        out *= int(v)
    return out


def product_distribution(dists: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Distribution of a product of independent per-axis values, each given as (values, counts)."""
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
    ``q_tiles_per_group``, ``kv_tiles_per_group``, ``visited_sum``, ``full_sum``,
    ``visited_max`` and ``visited_counts()``.
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
        return prod(a.dilation * a.q_tiles_per_group for a in self.axes)

    @property
    def kv_tiles(self) -> int:
        """KV tiles of the padded layout, dilation groups included."""
        return prod(a.dilation * a.kv_tiles_per_group for a in self.axes)

    @property
    def q_tile_size(self) -> int:
        return prod(self.q_tile)

    @property
    def kv_tile_size(self) -> int:
        return prod(self.kv_tile)

    @cached_property
    def tile_pairs_visited(self) -> int:
        return prod(a.visited_sum for a in self.axes)

    @cached_property
    def tile_pairs_full(self) -> int:
        return prod(a.full_sum for a in self.axes)

    @property
    def tile_pairs_partial(self) -> int:
        return self.tile_pairs_visited - self.tile_pairs_full

    @cached_property
    def visited_max(self) -> int:
        """The most tiles one CTA visits (the worst tile of the plan)."""
        return prod(a.visited_max for a in self.axes)

    @property
    def fully_block_sparse(self) -> bool:
        """Every visited tile pair is fully dense (no element mask needed anywhere)."""
        return self.tile_pairs_partial == 0

    def visited_histogram(self) -> dict[int, int]:
        """{tiles visited: number of stationary tiles (CTAs) visiting that many}."""
        vals, counts = product_distribution([a.visited_counts() for a in self.axes])
        return {int(v): int(c) for v, c in zip(vals, counts)}
