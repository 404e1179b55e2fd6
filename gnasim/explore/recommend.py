"""The paper's pruned stride search, tile-shape search and window proposals.

For a layout, window and tile shape, every stride vector ``1 <= S_d <= K_d`` is scored by the tile
bound (self-attention KV tiles per Q tile / KV tiles visited by the worst Q tile). A stride is kept
on the *Pareto set* when no element-wise smaller-or-equal stride vector (other than itself) reaches
an equal or higher tile bound: a larger stride costs translational equivariance, so it must buy a
strictly better bound.

Everything is per axis: the worst Q tile's KV tile count is a product of per-axis maxima
(:mod:`gnasim.plan.tiling`), so the whole grid of ``prod(K_d)`` strides costs ``sum(K_d)`` axis plans
and one outer product; the Pareto test is a cumulative minimum along each axis. A stride is
perfectly block-sparse iff every axis is (the product of per-axis full/visited sums matches only
then), so the block-sparse strides form a box and the smallest one is its corner, per axis the
smallest block-sparse stride.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gnasim import record
from gnasim.bounds import amdahl, effective_fraction
from gnasim.config import GNAConfig, format_tile
from gnasim.errors import ConfigError, GnasimError
from gnasim.hardware.profile import HardwareProfile
from gnasim.plan.stats import STAT_INDEX, axis_stats_many


# the prediction record's columns in a recommendation (with an attention share: FRACTION_COLUMNS)
RECORD_COLUMNS = ("tile_speedup", "flop_speedup", "fully_block_sparse", "kv_tiles_visited_max",
                  "dense_kv_tiles_per_q_tile", "tile_speedup_mean", "sparsity", "q_tile",
                  "kv_tile", "kv_tiling", "hardware", "kernel", "input_size", "window_size",
                  "dilation", "causal")
FRACTION_COLUMNS = ("attention_fraction", "e2e_tile_speedup", "e2e_flop_speedup")


@dataclass
class StrideSearch:
    """All stride vectors of one (layout, window, tile shape): bounds, Pareto set, block-sparsity."""

    config: GNAConfig                  # tiles set; its stride is ignored
    mode: str
    hardware: str | None
    kernel: str | None
    vmax: np.ndarray                   # KV tiles visited by the worst Q tile, shape K_0 x K_1 ...
    vsum: np.ndarray                   # all visited tile pairs
    fsum: np.ndarray                   # all fully dense tile pairs
    attended: np.ndarray               # attended (query, key) pairs
    dense_vmax: int
    dense_vsum: int
    dense_attended: int
    axis_block_sparse: list[np.ndarray]   # per axis, per stride: fully dense tiles only
    pareto: np.ndarray                 # bool, same shape as vmax
    attention_fraction: float | None = None
    full_attention_steps: int = 0
    total_steps: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def shape(self) -> tuple[int, ...]:
        return self.vmax.shape

    def tile_speedup(self, stride: tuple[int, ...]) -> float:
        return self.dense_vmax / int(self.vmax[_at(stride)])

    def flop_speedup(self, stride: tuple[int, ...]) -> float:
        return self.dense_attended / int(self.attended[_at(stride)])

    def fully_block_sparse(self, stride: tuple[int, ...]) -> bool:
        return all(bool(self.axis_block_sparse[d][s - 1]) for d, s in enumerate(stride))

    @property
    def smallest_block_sparse(self) -> tuple[int, ...] | None:
        """The element-wise smallest perfectly block-sparse stride (None if there is none)."""
        out = []
        for flags in self.axis_block_sparse:
            hits = np.flatnonzero(flags)
            if not len(hits):
                return None
            out.append(int(hits[0]) + 1)
        return tuple(out)

    def pareto_strides(self) -> list[tuple[int, ...]]:
        """Pareto strides, by tile bound (ascending), then stride size."""
        pts = [tuple(int(v) + 1 for v in ix) for ix in np.argwhere(self.pareto)]
        return sorted(pts, key=lambda s: (-int(self.vmax[_at(s)]), math.prod(s), s))

    def best_stride(self) -> tuple[int, ...]:
        """The smallest stride reaching the highest tile bound (unique: the bound is per-axis)."""
        return tuple(int(np.argmin(_axis_min(self.vmax, d))) + 1 for d in range(self.vmax.ndim))

    def record(self, stride: tuple[int, ...]) -> dict[str, Any]:
        """One JSON object of ``gnasim recommend --format json``: the stride's Pareto facts and
        the prediction record's columns (:mod:`gnasim.record`) for it."""
        c, at = self.config, _at(stride)
        fraction = None
        if self.attention_fraction is not None:
            fraction = effective_fraction(self.attention_fraction, self.full_attention_steps,
                                          self.total_steps)
        row = record.Row(
            hardware=self.hardware, kernel=self.kernel, input_size=format_tile(c.input_size),
            window_size=format_tile(c.window_size), dilation=format_tile(c.dilation),
            causal="x".join(str(int(v)) for v in c.causal), q_tile=format_tile(c.q_tile),
            kv_tile=format_tile(c.kv_tile), kv_tiling=self.mode, vmax=int(self.vmax[at]),
            vsum=int(self.vsum[at]), fsum=int(self.fsum[at]), att=int(self.attended[at]),
            dvmax=self.dense_vmax, dvsum=self.dense_vsum, datt=self.dense_attended,
            attention_fraction=self.attention_fraction, fraction=fraction)
        out: dict[str, Any] = {"stride": format_tile(stride), "stride_size": math.prod(stride),
                               "pareto": bool(self.pareto[at]),
                               "smallest_block_sparse": stride == self.smallest_block_sparse}
        names = RECORD_COLUMNS + (FRACTION_COLUMNS if fraction is not None else ())
        out.update({n: record.BY_NAME[n].compute(row) for n in names})
        return out

    def records(self) -> list[dict[str, Any]]:
        """The Pareto set, plus the smallest block-sparse stride if it is not on it."""
        strides = self.pareto_strides()
        sbs = self.smallest_block_sparse
        if sbs is not None and sbs not in strides:
            strides.append(sbs)
        return [self.record(s) for s in strides]


def _at(stride: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(s - 1 for s in stride)


def _axis_min(grid: np.ndarray, axis: int) -> np.ndarray:
    other = tuple(d for d in range(grid.ndim) if d != axis)
    return grid.min(axis=other) if other else grid


def _outer(vectors: list[np.ndarray]) -> np.ndarray:
    out = np.array(1, dtype=object if _too_big(vectors) else np.int64)
    for v in vectors:
        out = np.multiply.outer(out, v.astype(out.dtype))
    return out


def _too_big(vectors: list[np.ndarray]) -> bool:
    return math.prod(int(v.max()) for v in vectors) >= 2 ** 62


def pareto_mask(vmax: np.ndarray) -> np.ndarray:
    """Strides for which no element-wise smaller-or-equal other stride has ``vmax`` <= theirs
    (``vmax``: KV tile counts, or predicted times for the time objectives).

    ``C`` = cumulative minimum along every axis (the best bound of the lower set, the stride
    included); a stride's strictly-lower set is the union of the lower sets of its predecessors
    ``S - e_d``, so it is kept iff its ``vmax`` is below ``min_d C(S - e_d)``.
    """
    c = vmax.copy()
    for d in range(vmax.ndim):
        c = np.minimum.accumulate(c, axis=d)
    top = np.iinfo(np.int64).max if vmax.dtype.kind in "iu" else math.inf   # floats: times
    below = np.full(vmax.shape, top, dtype=vmax.dtype)
    for d in range(vmax.ndim):
        shifted = np.full(vmax.shape, below.flat[0], dtype=vmax.dtype)
        src = [slice(None)] * vmax.ndim
        dst = [slice(None)] * vmax.ndim
        src[d], dst[d] = slice(0, -1), slice(1, None)
        shifted[tuple(dst)] = c[tuple(src)]
        below = np.minimum(below, shifted)
    return vmax < below


def search_strides(config: GNAConfig, mode: str = "static", hardware: str | None = None,
                   kernel: str | None = None, attention_fraction: float | None = None,
                   full_attention_steps: int = 0, total_steps: int | None = None,
                   notes: tuple[str, ...] = ()) -> StrideSearch:
    """Score every stride ``1..K_d`` of a config whose tiles are set."""
    if not config.has_tiles:
        raise ConfigError("q_tile/kv_tile: the stride search needs tile shapes (or a hardware profile)")
    if attention_fraction is not None:
        amdahl(1.0, attention_fraction, full_attention_steps, total_steps)
    rank = config.rank
    per_axis = []
    for d in range(rank):
        L, K, D = config.input_size[d], config.window_size[d], config.dilation[d]
        keys = [(L, K, S, D, bool(config.causal[d]), config.q_tile[d], config.kv_tile[d], mode)
                for S in range(1, K + 1)]
        per_axis.append(np.array(axis_stats_many(keys), dtype=object))
    col = lambda name: [a[:, STAT_INDEX[name]].astype(np.int64) for a in per_axis]
    vmax = _outer(col("vmax"))
    dense = lambda name: math.prod(int(a[0, STAT_INDEX[name]]) for a in per_axis)
    block_sparse = [a[:, STAT_INDEX["vsum"]] == a[:, STAT_INDEX["fsum"]] for a in per_axis]
    return StrideSearch(
        config=config, mode=mode, hardware=hardware, kernel=kernel, vmax=vmax,
        vsum=_outer(col("vsum")), fsum=_outer(col("fsum")), attended=_outer(col("att")), dense_vmax=dense("dvmax"),
        dense_vsum=dense("dvsum"), dense_attended=dense("datt"),
        axis_block_sparse=[np.asarray(b, dtype=bool) for b in block_sparse],
        pareto=pareto_mask(vmax), attention_fraction=attention_fraction,
        full_attention_steps=full_attention_steps, total_steps=total_steps, notes=tuple(notes))


def tile_candidates(config: GNAConfig, profile: HardwareProfile | None, kernel: str | None,
                    all_tiles: bool) -> tuple[list[tuple[tuple[int, ...], tuple[int, ...]]], list[str]]:
    """The tile shapes to search: the config's, the kernel's default, or every shipped shape."""
    from gnasim.hardware.tiles import resolve_tiles

    kern = profile.kernel(kernel) if profile is not None else None
    if all_tiles:
        if kern is None:
            raise ConfigError("all_tiles: searching every tile shape needs a hardware profile")
        shapes = kern.tile_shapes(config.rank, config.head_dim) or kern.tile_shapes(config.rank)
        if not shapes:
            raise ConfigError(f"all_tiles: kernel {kern.name} ships no rank-{config.rank} tile shape")
        return list(shapes), []
    resolved, notes = resolve_tiles(config, kern)
    return [(resolved.q_tile, resolved.kv_tile)], notes


def recommend(config: GNAConfig, profile: HardwareProfile | None = None,
              kernel: str | None = None, kv_tiling: str | None = None, all_tiles: bool = False,
              attention_fraction: float | None = None, full_attention_steps: int = 0,
              total_steps: int | None = None) -> list[StrideSearch]:
    """One stride search per tile shape (the kernel's default, the config's, or all shipped).
    Flat tiling: :func:`gnasim.explore.flat_search.recommend_flat`."""
    from gnasim.hardware.tiles import resolve_tiles

    kern = profile.kernel(kernel) if profile is not None else None
    mode = kv_tiling or (kern.kv_tiling if kern is not None else "static")
    shapes, _ = tile_candidates(config, profile, kernel, all_tiles)
    out = []
    for q, kv in shapes:
        cfg = config.with_tiles(q, kv)
        _, notes = resolve_tiles(cfg, kern)
        out.append(search_strides(cfg, mode, profile.name if profile else None,
                                  kern.name if kern else None, attention_fraction,
                                  full_attention_steps, total_steps, tuple(notes)))
    return out


# -- ranking by predicted time ----------------------------------------------------------------
OBJECTIVES = ("bound", "time", "time-with-permute")
# the record column each time objective minimises
OBJECTIVE_COLUMN = {"time": "predicted_time_ms", "time-with-permute": "predicted_total_ms"}


def default_objective(profile: HardwareProfile | str | None) -> str:
    """``time-with-permute`` (what a user pays) when there is a hardware profile, else ``bound``."""
    return "bound" if profile is None else "time-with-permute"


def check_objective(objective: str, profile: HardwareProfile | str | None) -> str:
    """The objective, validated: the time objectives need a hardware profile."""
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective: '{objective}' is not one of {list(OBJECTIVES)}")
    if objective != "bound" and profile is None:
        raise ConfigError(f"objective: '{objective}' ranks by predicted time and needs a hardware "
                          "profile (--hardware GPU), or use --objective bound")
    return objective


def is_time_column(name: str) -> bool:
    """Runtime columns a ranked row carries: every ``predicted_*`` key of the record (intervals
    included, whatever the runtime model provides) and the end-to-end prediction."""
    return name.startswith("predicted_") or name == "e2e_predicted_speedup"


@dataclass
class TimeSearch:
    """Predicted times of every stride of one (layout, window, tile shape), next to its
    :class:`StrideSearch`; ``pareto`` keeps a stride when no element-wise smaller-or-equal
    other stride is predicted as fast or faster."""

    search: StrideSearch
    objective: str
    times: np.ndarray                        # the objective's column, shape K_0 x K_1 ...
    columns: dict[tuple[int, ...], dict[str, Any]]   # stride -> the runtime columns
    pareto: np.ndarray

    def record(self, stride: tuple[int, ...]) -> dict[str, Any]:
        rec = self.search.record(stride)
        rec["pareto"] = bool(self.pareto[_at(stride)])
        rec["objective"] = self.objective
        rec.update(self.columns[stride])
        return rec

    def records(self) -> list[dict[str, Any]]:
        """The strides on the time Pareto set (fastest first), plus the smallest block-sparse
        stride if it is not on it."""
        strides = sorted((tuple(int(v) + 1 for v in ix) for ix in np.argwhere(self.pareto)),
                         key=lambda s: (float(self.times[_at(s)]), math.prod(s), s))
        sbs = self.search.smallest_block_sparse
        if sbs is not None and sbs not in strides:
            strides.append(sbs)
        return [self.record(s) for s in strides]


def _profile_ref(profile: HardwareProfile | str) -> str:
    """A name or path the sweep engine loads the same profile from."""
    if isinstance(profile, str):
        return profile
    from gnasim.hardware.profile import load_profile

    try:
        same = load_profile(profile.name) == profile
    except GnasimError:
        same = False
    if not same:
        raise ConfigError(f"hardware: ranking by predicted time loads profiles by name or path; "
                          f"pass '{profile.name}' as a name, or its .toml path")
    return profile.name


def time_searches(searches: list[StrideSearch], profile: HardwareProfile | str,
                  objective: str = "time-with-permute") -> list[TimeSearch]:
    """Predicted time of every stride of each search (the sweep engine's batched runtime model,
    the numbers ``gnasim predict`` gives), and the time Pareto set of each."""
    from gnasim.explore.grid import spec_from_mapping
    from gnasim.explore.sweep import sweep_table

    key = OBJECTIVE_COLUMN[check_objective(objective, profile)]
    ref = _profile_ref(profile)
    out = []
    for s in searches:
        c = s.config
        spec = spec_from_mapping({k: v for k, v in {
            "input_size": format_tile(c.input_size), "window_size": format_tile(c.window_size),
            "stride": "all", "dilation": format_tile(c.dilation),
            "causal": format_tile(tuple(int(v) for v in c.causal)),
            "tiles": f"{format_tile(c.q_tile)}/{format_tile(c.kv_tile)}", "hardware": ref,
            "kernel": s.kernel, "kv_tiling": s.mode, "head_dim": c.head_dim,
            "head_dim_v": c.dim_v, "batch": c.batch, "heads": c.heads, "heads_kv": c.kv_heads,
            "dtype": c.dtype,
            "attention_fraction": s.attention_fraction,
            "full_attention_steps": s.full_attention_steps, "total_steps": s.total_steps,
        }.items() if v is not None})
        table = sweep_table(spec)
        if key not in table.column_names:
            raise ConfigError(f"objective: no runtime prediction for Q {format_tile(c.q_tile)} / "
                              f"KV {format_tile(c.kv_tile)} on {ref}; use --objective bound")
        names = [n for n in table.column_names if is_time_column(n)]
        data = table.select(["stride", *names]).to_pydict()
        times = np.full(s.shape, np.inf)
        columns: dict[tuple[int, ...], dict[str, Any]] = {}
        for i, text in enumerate(data["stride"]):
            stride = tuple(int(v) for v in text.split("x"))
            columns[stride] = {n: data[n][i] for n in names}
            times[_at(stride)] = columns[stride][key]
        out.append(TimeSearch(s, objective, times, columns, pareto_mask(times)))
    return out


def ranked_records(ranked: list[TimeSearch]) -> list[dict[str, Any]]:
    """Every search's records, fastest first (by the objective), with their ``rank``."""
    key = OBJECTIVE_COLUMN[ranked[0].objective] if ranked else ""
    rows = [r for t in ranked for r in t.records()]
    rows.sort(key=lambda r: (r[key], r["stride_size"]))
    for i, r in enumerate(rows, 1):
        r["rank"] = i
    return rows


@dataclass(frozen=True)
class WindowCandidate:
    window: tuple[int, ...]
    sparsity: float
    flop_speedup: float
    best_tile_speedup: float        # the highest tile bound over every stride of this window
    block_sparse: bool              # some stride makes it perfectly block-sparse


def propose_windows(config: GNAConfig, target_sparsity: float, mode: str = "static",
                    count: int = 3) -> list[WindowCandidate]:
    """Windows whose extents are multiples of the KV tile, nearest to a target sparsity.

    Among windows equally near, the ones whose best stride reaches the highest tile bound come
    first, then windows shaped like the layout (equal ``K_d / L_d``), then smaller ones. Sparsity
    is at stride 1 (it depends on the stride only for causal axes). The best tile bound of a
    window is per axis: ``dense / prod_d min_S vmax_d(K_d, S)``.
    """
    if not 0.0 <= target_sparsity < 1.0:
        raise ConfigError(f"target_sparsity: must be in [0, 1), got {target_sparsity}")
    if count < 1:
        raise ConfigError(f"windows: must be >= 1, got {count}")
    if not config.has_tiles:
        raise ConfigError("q_tile/kv_tile: window proposals need the KV tile (or a hardware profile)")
    per_axis = []
    for d in range(config.rank):
        L, D, t = config.input_size[d], config.dilation[d], config.kv_tile[d]
        c, qt = bool(config.causal[d]), config.q_tile[d]
        ks = [k for k in range(t, L // D + 1, t) if k >= 2]
        if not ks:
            raise ConfigError(f"kv_tile (axis {d}): no multiple of {t} fits input_size {L} "
                              f"with dilation {D}")
        keys = [(L, k, s, D, c, qt, t, mode) for k in ks for s in range(1, k + 1)]
        stats = iter(axis_stats_many(keys))
        options = []
        for k in ks:
            rows = [next(stats) for _ in range(k)]
            options.append((k, rows[0][STAT_INDEX["att"]], rows[0][STAT_INDEX["datt"]], rows[0][STAT_INDEX["dvmax"]],
                            min(r[STAT_INDEX["vmax"]] for r in rows),
                            any(r[STAT_INDEX["vsum"]] == r[STAT_INDEX["fsum"]] for r in rows)))
        per_axis.append(options)
    cands = []
    for combo in itertools.product(*per_axis):
        window = tuple(o[0] for o in combo)
        att = math.prod(o[1] for o in combo)
        datt = math.prod(o[2] for o in combo)
        best = math.prod(o[3] for o in combo) / math.prod(o[4] for o in combo)
        sparsity = 1.0 - att / datt
        ratios = np.log([k / L for k, L in zip(window, config.input_size)])
        cands.append((round(abs(sparsity - target_sparsity), 12), -best, float(np.ptp(ratios)),
                      math.prod(window),
                      WindowCandidate(window, sparsity, datt / att, best,
                                      all(o[5] for o in combo))))
    cands.sort(key=lambda c: c[:4])
    return [c[4] for c in cands[:count]]
