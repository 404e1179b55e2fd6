"""The sweep plan: blocks of rows that share everything but per-axis options."""

from __future__ import annotations


import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from gnasim.config import GNAConfig, format_tile
from gnasim.errors import ConfigError, GnasimError
from gnasim.hardware.profile import load_profile
from gnasim.explore.grid import AxisGrid, SweepSpec, _axis_values, _broadcast_grid, axis_rule
from gnasim.explore.keys import DEFAULT_CHUNK_ROWS, FAST_KEYS, RUNTIME_KEYS, _EXACT_FLOAT, _INT64_MAX
from gnasim.plan.stats import STATS as _STATS, STAT_INDEX as _S, axis_stats_many



# -- the plan: blocks of rows ------------------------------------------------------------------

@dataclass
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
    stats: list[np.ndarray]             # per axis: (n_d, 9) int64 or object
    fractions: tuple[float, ...]
    probe: dict[str, Any] = field(default_factory=dict)   # flattened to_dict() of row 0
    notes: tuple[str, ...] | None = None  # the notes of every row, or None: they vary (per row)
    exact_int64: bool = True
    runtime_ok: bool = False            # runtime columns from the batched runtime model
    rt_notes: bool = False              # notes too (tile notes + the runtime's, per row)
    tile_notes: tuple[str, ...] = ()
    cache: dict = field(default_factory=dict, repr=False)   # per-process string dictionaries

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["cache"] = {}
        return state

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
    slow_columns: list[str]

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.blocks)

    @property
    def offsets(self) -> list[int]:
        return list(itertools.accumulate([0] + [b.rows for b in self.blocks]))


def _kernels(spec: SweepSpec, profile: Any) -> list[Any]:
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
            b = _broadcast_grid(g, rank)
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
    from gnasim.hardware.tiles import resolve_tiles
    from gnasim.simulate import simulate

    blocks: list[Block] = []
    invalid: Counter = Counter()
    skipped: list[str] = []
    combinations = 0
    nf = max(1, len(spec.attention_fraction))
    layouts = []
    for g in spec.input_size:
        layouts.extend(itertools.product(*g))
    layouts = list(dict.fromkeys(layouts))
    columns: dict[str, None] = {}
    for hw in spec.hardware:
        profile = load_profile(hw) if hw is not None else None
        for kern in _kernels(spec, profile):
            mode = spec.kv_tiling or (kern.kv_tiling if kern is not None else "static")
            for hd in spec.head_dim:
                for layout in layouts:
                    rank = len(layout)
                    where = f"{hw}/{kern.name}" if kern is not None else "no hardware"
                    tiles = _tile_candidates(spec, kern, rank, hd, skipped, where)
                    grids = {}
                    for key in ("window_size", "stride", "dilation", "causal"):
                        gs = []
                        for g in getattr(spec, key):
                            b = _broadcast_grid(g, rank)
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
                                                      _per_pair(spec, hd))
                        combinations += total * nf
                        for reason, n in bad.items():
                            invalid[reason] += n * nf
                        if blk is None:
                            continue
                        cfg = _row_config(spec, blk, 0)
                        res = simulate(cfg, profile, kernel=kern.name if kern else None,
                                       kv_tiling=mode,
                                       attention_fraction=spec.attention_fraction[0]
                                       if spec.attention_fraction else None,
                                       full_attention_steps=spec.full_attention_steps,
                                       total_steps=spec.total_steps)
                        blk.probe = flatten_record(res.to_dict())
                        runtime = any(k not in FAST_KEYS for k in blk.probe)
                        if not runtime:
                            blk.notes = tuple(blk.probe["notes"])
                        elif spec.bounds_only:   # only the tile-shape notes, as resolve_tiles gives
                            blk.notes = tuple(resolve_tiles(cfg, kern)[1])
                        elif any(k in RUNTIME_KEYS for k in blk.probe):
                            blk.tile_notes = tuple(resolve_tiles(cfg, kern)[1])
                            from gnasim.explore.columns import _runtime_context
                            blk.runtime_ok = _runtime_context(spec, blk, profile) is not None
                            blk.rt_notes = blk.runtime_ok and all(
                                k in FAST_KEYS or k in RUNTIME_KEYS for k in blk.probe)
                        for k in blk.probe:
                            if not spec.bounds_only or k in FAST_KEYS:
                                columns.setdefault(k, None)
                        blocks.append(blk)
    cols = list(columns)
    if "notes" in cols:                      # to_dict() puts notes last; keep it last
        cols.remove("notes")
        cols.append("notes")
    slow = [c for c in cols if c not in FAST_KEYS and (
        c not in RUNTIME_KEYS or any(c in b.probe and not b.runtime_ok for b in blocks))]
    if "notes" in cols and any(b.notes is None and not b.rt_notes for b in blocks):
        slow.append("notes")
    return SweepPlan(spec, blocks, cols, combinations, invalid, list(dict.fromkeys(skipped)), slow)


def flatten_record(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: nested mappings of ``to_dict()`` become columns."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out.update(flatten_record(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _make_block(hw, kern, mode, hd, layout, q, kv, grids, fractions, per_pair):
    """The per-axis options of one block, their statistics, and invalid counts."""
    wg, sg, dg, cg = grids
    rank = len(layout)
    opts, stats, totals, bad_axes = [], [], [], []
    for d in range(rank):
        L = layout[d]
        valid, bad = [], Counter()
        total = 0
        for K in _axis_values(wg[d], "window", L, None):
            for S in _axis_values(sg[d], "stride", L, K):
                for D in _axis_values(dg[d], "dilation", L, K):
                    for c in _axis_values(cg[d], "causal", L, K):
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
    keys = [(layout[d], int(K), int(S), int(D), bool(c), q[d], kv[d], mode)
            for d in range(rank) for K, S, D, c in opts[d]]
    flat = axis_stats_many(keys)
    i = 0
    for d in range(rank):
        stats.append(flat[i:i + len(opts[d])])
        i += len(opts[d])
    # exact in int64 and in float64 division? (else Python ints, slower but exact)
    top = [math.prod(max(r[j] for r in stats[d]) for d in range(rank)) for j in range(len(_STATS))]
    tile_elems = math.prod(q) * math.prod(kv)
    # rows are the full product of per-axis options, so these maxima are reached: exact checks
    flops = {"flops_dense": top[_S["datt"]] * per_pair, "flops_useful": top[_S["att"]] * per_pair,
             "flops_computed": top[_S["vsum"]] * tile_elems * per_pair}
    for key, value in flops.items():
        if value > _INT64_MAX:
            raise GnasimError(f"sweep: column {key} exceeds 64-bit integers ({value:.3e}) for "
                              f"layout {format_tile(layout)}; use a smaller batch or head count")
    exact = max(top) < _EXACT_FLOAT
    arrays = [np.array(rows, dtype=np.int64 if exact else object) for rows in stats]
    blk = Block(hw, kern.name if kern is not None else None, mode, hd, tuple(layout), tuple(q),
                tuple(kv), opts, arrays, tuple(fractions), exact_int64=exact)
    return blk, math.prod(totals), bad_total


def _per_pair(spec: SweepSpec, head_dim: int) -> int:
    """FLOPs per attended pair (QK^T and PV, all batches and heads), as attention_flops()."""
    hdv = spec.head_dim_v if spec.head_dim_v is not None else head_dim
    return 2 * (head_dim + hdv) * spec.batch * spec.heads


def _row_config(spec: SweepSpec, blk: Block, row: int) -> GNAConfig:
    combo = row // blk.n_fracs
    idx = np.unravel_index(combo, blk.shape)
    o = [blk.opts[d][idx[d]] for d in range(len(blk.layout))]
    return GNAConfig(input_size=blk.layout, window_size=tuple(int(v[0]) for v in o),
                     stride=tuple(int(v[1]) for v in o), dilation=tuple(int(v[2]) for v in o),
                     causal=tuple(bool(v[3]) for v in o), q_tile=blk.q_tile, kv_tile=blk.kv_tile,
                     batch=spec.batch, heads=spec.heads, heads_kv=spec.heads_kv,
                     head_dim=blk.head_dim, head_dim_v=spec.head_dim_v, dtype=spec.dtype)


# -- computing rows ---------------------------------------------------------------------------

def iter_chunks(plan: SweepPlan, chunk_rows: int = DEFAULT_CHUNK_ROWS,
                start: int = 0) -> Iterator[tuple[int, int, int]]:
    """(block, lo, hi) pieces covering global rows ``start..`` in order, each <= chunk_rows."""
    base = 0
    for bi, blk in enumerate(plan.blocks):
        end = base + blk.rows
        if end > start:
            lo = max(start - base, 0)
            while lo < blk.rows:
                hi = min(lo + chunk_rows, blk.rows)
                yield bi, lo, hi
                lo = hi
        base = end

