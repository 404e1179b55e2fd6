"""The sweep plan: blocks of rows that share everything but per-axis options.

A block fixes hardware, kernel, head dim, layout and tile shape; each axis has a list of options
(window, stride, dilation, causal) with their per-axis statistics. With a runtime model, a block
also holds what its rows' launches share (:class:`BlockRuntime`): per-axis launch facts, the
kernel's parameters and the dense side of each causal pattern. Which record parts a block's rows
have (:mod:`gnasim.record`) is decided here, once.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from gnasim.bounds import flops_per_pair
from gnasim.config import GNAConfig, format_tile
from gnasim.advice import block_notes
from gnasim.errors import ConfigError, GnasimError
from gnasim.hardware.profile import load_profile
from gnasim.hardware.tiles import resolve_tiles
from gnasim.explore.grid import AxisGrid, SweepSpec, axis_values, broadcast_grid, axis_rule
from gnasim.explore.flat_rows import flat_kernels, flat_tile_candidates
from gnasim.explore.keys import DEFAULT_CHUNK_ROWS, EXACT_FLOAT, FLAT_CHUNK_ROWS, INT64_MAX
from gnasim.model.solve import DenseSide, Prepared, prepare
from gnasim.prediction import flat_tile_sizes
from gnasim.plan.stats import STATS, STAT_INDEX, axis_stats_many
from gnasim.plan.tiling import axis_plans, tile_plans
from gnasim import record



# -- the plan: blocks of rows ------------------------------------------------------------------

@dataclass(frozen=True)
class AxisLaunch:
    """Per option of one axis: Q tiles that visit a KV tile, and the (full, visited) tiles of its
    undominated CTA classes (``(n_d, K)``, rows padded by repeating a class)."""

    nz: np.ndarray
    front_full: np.ndarray
    front_vis: np.ndarray


@dataclass(frozen=True)
class BlockRuntime:
    """What the runtime model needs for every row of a block: the prepared kernel and dense side
    of each causal pattern (``sides[code]``, code = causal flags as bits) and per-axis facts."""

    prepared: Prepared
    sides: dict[int, DenseSide]
    axes: tuple[AxisLaunch, ...]


@dataclass(eq=False)
class Block:
    """Rows sharing hardware, kernel, head dim, layout and tile shape; per-axis options inside."""

    hardware: str | None
    kernel: str | None
    mode: str
    head_dim: int
    layout: tuple[int, ...]
    q_tile: tuple[int, ...]
    kv_tile: tuple[int, ...]
    opts: list[np.ndarray]              # per axis: (n_d, 4) window, stride, dilation, causal
    stats: list[np.ndarray]             # per axis: (n_d, 10) int64 or object
    fractions: tuple[float, ...]
    exact_int64: bool = True
    config: GNAConfig | None = None     # row 0 (batch, heads, dims and dtype of every row)
    notes: tuple[str, ...] = ()         # every row's notes (plus its dense side's)
    runtime: BlockRuntime | None = None
    parts: frozenset[str] = frozenset({"plan", "notes"})   # record parts of its rows
    flat: bool = False                  # flat tiling: tiles are token counts, rows via simulate

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(o) for o in self.opts)

    @property
    def n_fracs(self) -> int:
        return max(1, len(self.fractions))

    @property
    def rows(self) -> int:
        return int(math.prod(self.shape)) * self.n_fracs


@dataclass
class SweepPlan:
    spec: SweepSpec
    blocks: list[Block]
    columns: list[str]
    combinations: int
    invalid: Counter
    skipped: list[str]

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.blocks)

    @property
    def offsets(self) -> list[int]:
        return list(itertools.accumulate([0] + [b.rows for b in self.blocks]))


def _kernels(spec: SweepSpec, profile: Any) -> list[Any]:
    if spec.tiling == "flat":
        return flat_kernels(spec, profile)
    if profile is None:
        return [None]
    if spec.kernel == "all":
        return list(profile.kernels)
    return [profile.kernel(k) for k in spec.kernel]


def _tile_candidates(spec: SweepSpec, kern: Any, rank: int, head_dim: int,
                     skipped: list[str], where: str) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    def expand(grids: tuple[AxisGrid, ...] | None) -> list[tuple[int, ...] | None]:
        if grids is None:
            return [None]
        out = []
        for g in grids:
            b = broadcast_grid(g, rank)
            if b is None:
                skipped.append(f"tile {format_tile(tuple(v[0] for v in g))}: {len(g)} axes, "
                               f"layout has {rank}")
                continue
            out.extend(itertools.product(*b))
        return out

    if spec.tiles == "all":
        if kern is None:
            raise ConfigError("tiles: 'all' needs a hardware profile (its kernel's tile shapes)")
        shapes = kern.tile_shapes(rank, head_dim) or kern.tile_shapes(rank)
        if not shapes:
            skipped.append(f"{where}: kernel {kern.name} ships no rank-{rank} tile shape")
        return shapes
    if isinstance(spec.tiles, tuple):
        out = []
        for q, kv in spec.tiles:
            if len(q) != rank:
                skipped.append(f"tile {format_tile(q)}/{format_tile(kv)}: rank {len(q)}, "
                               f"layout has {rank}")
            else:
                out.append((q, kv))
        return out
    qs, kvs = expand(spec.q_tile), expand(spec.kv_tile)
    out = []
    default = kern.default_tile(rank, head_dim) if kern is not None else None
    for q, kv in itertools.product(qs, kvs):
        if q is None or kv is None:
            if default is None:
                if kern is None:
                    raise ConfigError("q_tile/kv_tile: give both tile shapes, or a hardware profile")
                skipped.append(f"{where}: kernel {kern.name} ships no rank-{rank} tile shape")
                continue
            q = q if q is not None else default[0]
            kv = kv if kv is not None else default[1]
        out.append((tuple(q), tuple(kv)))
    return list(dict.fromkeys(out))


def plan_sweep(spec: SweepSpec) -> SweepPlan:
    """Expand a spec into blocks (per-axis statistics computed here, once per axis option)."""
    blocks: list[Block] = []
    invalid: Counter = Counter()
    skipped: list[str] = []
    combinations = 0
    nf = max(1, len(spec.attention_fraction))
    layouts = []
    for g in spec.input_size:
        layouts.extend(itertools.product(*g))
    layouts = list(dict.fromkeys(layouts))
    parts: set[str] = set()
    for hw in spec.hardware:
        profile = load_profile(hw) if hw is not None else None
        for kern in _kernels(spec, profile):
            mode = spec.kv_tiling or (kern.kv_tiling if kern is not None else "static")
            for hd in spec.head_dim:
                for layout in layouts:
                    rank = len(layout)
                    where = f"{hw}/{kern.name}" if kern is not None else "no hardware"
                    tiles = (flat_tile_candidates(spec, kern, rank, hd, skipped, where)
                             if spec.tiling == "flat"
                             else _tile_candidates(spec, kern, rank, hd, skipped, where))
                    grids = {}
                    for key in ("window_size", "stride", "dilation", "causal"):
                        gs = []
                        for g in getattr(spec, key):
                            b = broadcast_grid(g, rank)
                            if b is None:
                                skipped.append(f"{key} with {len(g)} axes does not fit "
                                               f"{rank}-D layout {format_tile(layout)}")
                            else:
                                gs.append(b)
                        grids[key] = gs
                    for (q, kv), wg, sg, dg, cg in itertools.product(
                            tiles, grids["window_size"], grids["stride"], grids["dilation"],
                            grids["causal"]):
                        blk, total, bad = _make_block(hw, kern, mode, hd, layout, q, kv,
                                                      (wg, sg, dg, cg), spec.attention_fraction,
                                                      _per_pair(spec, hd), spec.tiling == "flat")
                        combinations += total * nf
                        for reason, n in bad.items():
                            invalid[reason] += n * nf
                        if blk is None:
                            continue
                        _finish_block(spec, blk, profile, kern)
                        parts |= blk.parts
                        blocks.append(blk)
    cols = [c.name for c in record.columns(parts or {"plan", "notes"})]
    return SweepPlan(spec, blocks, cols, combinations, invalid, list(dict.fromkeys(skipped)))


def _finish_block(spec: SweepSpec, blk: Block, profile: Any, kern: Any) -> None:
    """Row 0's config, the block's notes, its runtime model and its record parts."""
    parts = {"plan", "notes"} | ({"fraction"} if spec.attention_fraction else set())
    if blk.flat:                        # rows come from simulate(): notes and parts only
        blk.config = row_config(spec, blk, 0)
        _, notes = flat_tile_sizes(blk.config, kern, (blk.q_tile[0], blk.kv_tile[0]))
        if profile is not None and not spec.bounds_only and kern.tiling == "flat":
            parts |= {"runtime"} | ({"runtime_fraction"} if spec.attention_fraction else set())
        blk.notes, blk.parts = tuple(notes), frozenset(parts)
        return
    blk.config, notes = resolve_tiles(row_config(spec, blk, 0), kern)
    notes += block_notes(blk.config, kern, blk.mode)     # the rows' own: ChunkRow.notes
    if profile is not None and not spec.bounds_only:
        try:
            blk.runtime = _block_runtime(blk, profile)
            parts |= {"runtime"} | ({"runtime_fraction"} if spec.attention_fraction else set())
        except GnasimError as err:
            notes.append(f"no runtime prediction: {err}")
    blk.notes = tuple(notes)
    blk.parts = frozenset(parts)


def _block_runtime(blk: Block, profile: Any) -> BlockRuntime:
    """The runtime model's shared part of a block: per causal pattern, the prepared kernel and
    dense side (as ``simulate`` prepares them), and per axis option, its launch facts."""
    cfg0, rank = blk.config, len(blk.layout)
    sides: dict[int, DenseSide] = {}
    prepared = None
    for code in np.unique(causal_codes(blk)).tolist():
        cfg = cfg0.model_copy(update={"causal": tuple(bool((code >> d) & 1) for d in range(rank))})
        (dense_plan,) = tile_plans([cfg.dense()], blk.mode)
        prepared = prepare(cfg, dense_plan, profile, blk.kernel)
        sides[code] = prepared.side
    axes = []
    for d in range(rank):
        keys = [(blk.layout[d], int(K), int(S), int(D), bool(c), blk.q_tile[d], blk.kv_tile[d],
                 blk.mode) for K, S, D, c in blk.opts[d]]
        fronts = [ap.front() for ap in axis_plans(keys)]
        k = max(len(f) for _, f, _ in fronts)
        pad = lambda t: list(t) + [t[0]] * (k - len(t))
        axes.append(AxisLaunch(np.array([z for z, _, _ in fronts], dtype=np.int64),
                               np.array([pad(f) for _, f, _ in fronts], dtype=np.int64),
                               np.array([pad(v) for _, _, v in fronts], dtype=np.int64)))
    return BlockRuntime(prepared, sides, tuple(axes))


def causal_codes(blk: Block, idx: tuple[np.ndarray, ...] | None = None) -> np.ndarray:
    """Per row (per-axis option indices ``idx``; None: every combination of options), the
    causal flags of its axes as bits."""
    if idx is None:
        parts = [blk.opts[d][:, 3].astype(np.int64) << d for d in range(len(blk.opts))]
        out = parts[0]
        for p in parts[1:]:
            out = np.add.outer(out, p)
        return np.asarray(out).ravel()
    out = np.zeros(len(idx[0]), dtype=np.int64)
    for d in range(len(idx)):
        out |= blk.opts[d][idx[d], 3].astype(np.int64) << d
    return out


def _make_block(hw, kern, mode, hd, layout, q, kv, grids, fractions, per_pair, flat=False):
    """The per-axis options of one block, their statistics (none for flat tiling), and
    invalid counts."""
    wg, sg, dg, cg = grids
    rank = len(layout)
    opts, stats, totals, bad_axes = [], [], [], []
    for d in range(rank):
        L = layout[d]
        valid, bad = [], Counter()
        total = 0
        for K in axis_values(wg[d], "window", L, None):
            for S in axis_values(sg[d], "stride", L, K):
                for D in axis_values(dg[d], "dilation", L, K):
                    for c in axis_values(cg[d], "causal", L, K):
                        total += 1
                        why = axis_rule(L, K, S, D)
                        if why:
                            bad[why] += 1
                        else:
                            valid.append((K, S, D, c))
        opts.append(np.array(valid, dtype=np.int64).reshape(-1, 4))
        totals.append(total)
        bad_axes.append(bad)
    # invalid combinations, attributed to the first invalid axis
    bad_total: Counter = Counter()
    for d in range(rank):
        before = math.prod(len(o) for o in opts[:d])
        after = math.prod(totals[d + 1:])
        for reason, n in bad_axes[d].items():
            bad_total[reason] += before * n * after
    if any(len(o) == 0 for o in opts):
        return None, math.prod(totals), bad_total
    if flat:
        blk = Block(hw, kern.name if kern is not None else None, "flat", hd, tuple(layout),
                    tuple(q), tuple(kv), opts, [], tuple(fractions), flat=True)
        return blk, math.prod(totals), bad_total
    keys = [(layout[d], int(K), int(S), int(D), bool(c), q[d], kv[d], mode)
            for d in range(rank) for K, S, D, c in opts[d]]
    flat = axis_stats_many(keys)
    i = 0
    for d in range(rank):
        stats.append(flat[i:i + len(opts[d])])
        i += len(opts[d])
    # exact in int64 and in float64 division? (else Python ints, slower but exact)
    top = [math.prod(max(r[j] for r in stats[d]) for d in range(rank)) for j in range(len(STATS))]
    tile_elems = math.prod(q) * math.prod(kv)
    # rows are the full product of per-axis options, so these maxima are reached: exact checks
    flops = {"flops_dense": top[STAT_INDEX["datt"]] * per_pair, "flops_useful": top[STAT_INDEX["att"]] * per_pair,
             "flops_computed": top[STAT_INDEX["vsum"]] * tile_elems * per_pair}
    for key, value in flops.items():
        if value > INT64_MAX:
            raise GnasimError(f"sweep: column {key} exceeds 64-bit integers ({value:.3e}) for "
                              f"layout {format_tile(layout)}; use a smaller batch or head count")
    exact = max(top) < EXACT_FLOAT
    arrays = [np.array(rows, dtype=np.int64 if exact else object) for rows in stats]
    blk = Block(hw, kern.name if kern is not None else None, mode, hd, tuple(layout), tuple(q),
                tuple(kv), opts, arrays, tuple(fractions), exact_int64=exact)
    return blk, math.prod(totals), bad_total


def _per_pair(spec: SweepSpec, head_dim: int) -> int:
    hdv = spec.head_dim_v if spec.head_dim_v is not None else head_dim
    return flops_per_pair(spec.batch, spec.heads, head_dim, hdv)


def row_config(spec: SweepSpec, blk: Block, row: int) -> GNAConfig:
    combo = row // blk.n_fracs
    idx = np.unravel_index(combo, blk.shape)
    o = [blk.opts[d][idx[d]] for d in range(len(blk.layout))]
    return GNAConfig(input_size=blk.layout, window_size=tuple(int(v[0]) for v in o),
                     stride=tuple(int(v[1]) for v in o), dilation=tuple(int(v[2]) for v in o),
                     causal=tuple(bool(v[3]) for v in o),
                     q_tile=None if blk.flat else blk.q_tile,
                     kv_tile=None if blk.flat else blk.kv_tile,
                     batch=spec.batch, heads=spec.heads, heads_kv=spec.heads_kv,
                     head_dim=blk.head_dim, head_dim_v=spec.head_dim_v, dtype=spec.dtype)


# -- computing rows ---------------------------------------------------------------------------

def iter_chunks(plan: SweepPlan, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                start: int = 0) -> Iterator[tuple[int, int, int]]:
    """(block, lo, hi) pieces covering global rows ``start..`` in order, each <= chunk_rows
    (<= FLAT_CHUNK_ROWS in flat blocks, whose rows cost a plan each)."""
    base = 0
    for bi, blk in enumerate(plan.blocks):
        end = base + blk.rows
        step = min(chunk_rows, FLAT_CHUNK_ROWS) if blk.flat else chunk_rows
        if end > start:
            lo = max(start - base, 0)
            while lo < blk.rows:
                hi = min(lo + step, blk.rows)
                yield bi, lo, hi
                lo = hi
        base = end

