"""Whole-problem plans as products of per-axis plans.

The GNA mask is an AND of per-axis masks, so per-tile counts of a rank-``r`` problem are products
of per-axis counts: their sums, maxima and distributions are products of per-axis ones. The
totals that follow from those (partial pairs, means) and the names of the two stationary sides
are shared with the flat plan (:mod:`gnasim.plan.flat`).
"""

from __future__ import annotations

from functools import cached_property
from operator import attrgetter

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


def alias(name: str, doc: str | None = None) -> property:
    """A read-only property that returns attribute ``name`` (one value, two names)."""
    return property(attrgetter(name), doc=doc or f"The same as ``{name}``.")


def axis_product(attr: str, doc: str) -> cached_property:
    """A cached total of a :class:`ProductPlan`: the product over its axes of attribute ``attr``."""
    get = attrgetter(attr)

    def total(self) -> int:
        return prod(get(a) for a in self.axes)

    total.__doc__ = doc
    return cached_property(total)


class PlanTotals:
    """The totals every whole-problem plan derives alike from its pair counts.

    Subclasses give ``q_tiles``, ``kv_tiles``, ``tile_pairs_visited``, ``tile_pairs_full``,
    ``visited_max`` and ``stationary_tiles`` (the CTAs: one per stationary tile).
    """

    @property
    def tile_pairs_partial(self) -> int:
        return self.tile_pairs_visited - self.tile_pairs_full

    @property
    def fully_block_sparse(self) -> bool:
        """Every visited tile pair is fully dense (no element mask needed anywhere)."""
        return self.tile_pairs_partial == 0

    @property
    def visited_mean(self) -> float:
        """Tiles one CTA visits, on average."""
        return self.tile_pairs_visited / self.stationary_tiles


class QStationary(PlanTotals):
    """A Q-stationary (forward) plan: a CTA per Q tile, visiting KV tiles."""

    stationary_tiles = alias("q_tiles")
    kv_tiles_visited_max = alias("visited_max")
    kv_tiles_visited_mean = alias("visited_mean")


class KVStationary(PlanTotals):
    """A KV-stationary (backward) plan: a CTA per KV tile, visiting Q tiles."""

    stationary_tiles = alias("kv_tiles")
    q_tiles_visited_max = alias("visited_max")
    q_tiles_visited_mean = alias("visited_mean")


class ProductPlan(PlanTotals):
    """Totals of a plan whose per-tile counts are products of per-axis counts.

    Subclasses hold ``axes`` (:class:`~gnasim.plan.axis.AxisTiles`) and name their stationary
    side (:class:`QStationary` or :class:`KVStationary`).
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

    dilation_groups = axis_product("dilation", "Dilation groups (folded into the batch).")
    tile_pairs_visited = axis_product("visited_sum", "Visited (stationary, other) tile pairs.")
    tile_pairs_full = axis_product("full_sum", "Fully dense tile pairs among the visited ones.")
    visited_max = axis_product("visited_max",
                               "The most tiles one CTA visits (the worst tile of the plan).")

    def visited_histogram(self) -> dict[int, int]:
        """{tiles visited: number of stationary tiles (CTAs) visiting that many}."""
        vals, counts = product_distribution([a.visited_counts() for a in self.axes])
        return {int(v): int(c) for v, c in zip(vals, counts)}

    def full_partial_histogram(self) -> dict[tuple[int, int], int]:
        """{(full, partial) tiles a CTA visits: number of CTAs}, for per-tile cost models."""
        per_axis = [a.pair_counts() for a in self.axes]
        out: dict[tuple[int, int], int] = {(1, 1): 1}
        for uniq, counts in per_axis:
            nxt: dict[tuple[int, int], int] = {}
            for (v0, f0), c0 in out.items():
                for (v, f), c in zip(uniq.tolist(), counts.tolist()):
                    key = (v0 * v, f0 * f)
                    nxt[key] = nxt.get(key, 0) + c0 * c
            out = nxt
        return {(f, v - f): c for (v, f), c in sorted(out.items())}
