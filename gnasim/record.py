"""The prediction record, declared once: every output column, its type and how it is computed.

A column is a name, a type and a formula over a *row*: an object with the attributes listed in
:class:`Row`. ``SimulationResult.to_dict()`` evaluates the table on one configuration's numbers,
the sweep on a chunk's numpy arrays (one value per row), ``recommend`` on a stride's counts; the
formulas are the same for all three. Columns come in parts that are present or absent together:
``plan`` (always), ``fraction`` (an attention share was given), ``runtime`` (a runtime-model
prediction), ``runtime_fraction`` (both), ``backward`` (``simulate(..., backward=True)``) and
``notes`` (always, last). Adding a column is one entry in :data:`COLUMNS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from gnasim.bounds import e2e_speedup
from gnasim.config import format_tile

PARTS = ("plan", "fraction", "runtime", "runtime_fraction", "backward", "backward_runtime",
         "notes")
DTYPES = ("str", "int", "float", "bool", "notes")


@dataclass(frozen=True)
class Column:
    """One output column: ``compute(row)`` gives its value (a scalar, or an array per row)."""

    name: str
    dtype: str
    compute: Callable[[Any], Any]
    part: str = "plan"
    identity: bool = False     # identifies a configuration (checked when a sweep resumes)


@dataclass
class Row:
    """What the columns read, for one configuration (the sweep's chunk rows have the same
    attributes, as arrays). Counts: ``vsum``/``fsum`` visited/full tile pairs, ``vmax`` KV tiles
    of the worst Q tile, ``att`` attended pairs, the ``d`` ones of self attention; ``fast``
    NATTEN's fast-path predicate; ``per_pair`` FLOPs per attended pair; ``tile_elems`` Q rows x
    KV rows of a tile; ``fraction`` the effective attention share (None: none given); ``rt`` a
    :class:`~gnasim.model.solve.RuntimePrediction`; ``bwd`` a backward result."""

    hardware: Any = None
    kernel: Any = None
    input_size: Any = None
    window_size: Any = None
    stride: Any = None
    dilation: Any = None
    causal: Any = None
    q_tile: Any = None
    kv_tile: Any = None
    kv_tiling: Any = None
    batch: Any = None
    heads: Any = None
    heads_kv: Any = None
    head_dim: Any = None
    head_dim_v: Any = None
    dtype: Any = None
    tokens: Any = None
    q_tiles: Any = None
    kv_tiles: Any = None
    vsum: Any = None
    fsum: Any = None
    vmax: Any = None
    att: Any = None
    dvmax: Any = None
    dvsum: Any = None
    datt: Any = None
    fast: Any = None
    per_pair: Any = None
    tile_elems: Any = None
    attention_fraction: Any = None
    fraction: Any = None
    rt: Any = None
    bwd: Any = None
    bwd_rt: Any = None
    notes: Any = ()


def _ident(name: str, dtype: str = "str") -> Column:
    return Column(name, dtype, lambda r: getattr(r, name), identity=True)


def _runtime(name: str, dtype: str, compute: Callable[[Any], Any]) -> Column:
    return Column(name, dtype, lambda r: compute(r.rt), "runtime")


def _bwd(name: str, dtype: str, compute: Callable[[Any], Any]) -> Column:
    return Column("bwd_" + name, dtype, lambda r: compute(r.bwd), "backward")


def _certain(rt: Any, get: Callable[[Any], Any]) -> Any:
    return None if rt.certainty is None else get(rt.certainty)


def _band(name: str, interval: str, value: Callable[[Any], Any],
          pred: Callable[[Any], Any] = lambda r: r.rt, part: str = "runtime") -> list[Column]:
    """``NAME_low`` and ``NAME_high``: the 90% interval of a predicted value (None without
    out-of-sample evidence; :mod:`gnasim.model.uncertainty`). ``pred`` picks the prediction
    (forward ``rt`` or backward ``bwd_rt``) whose ``certainty`` holds the ``interval``."""
    def end(r: Any, k: int) -> Any:
        p = pred(r)
        iv = None if p.certainty is None else getattr(p.certainty, interval)
        return None if iv is None else iv.around(value(p))[k]
    return [Column(f"{name}_low", "float", lambda r: end(r, 0), part),
            Column(f"{name}_high", "float", lambda r: end(r, 1), part)]


def _bwd_band(name: str, interval: str, value: Callable[[Any], Any]) -> list[Column]:
    """A backward-pass prediction (``NAME``) and its interval."""
    bwd = lambda r: r.bwd_rt
    return [Column(name, "float", lambda r: value(r.bwd_rt), "backward_runtime"),
            *_band(name, interval, value, bwd, "backward_runtime")]


COMPONENTS = ("tensor", "exp", "memory", "latency")
# the explanation steps (gnasim.model.solve.speedup_steps), in order
FACTORS = ("waves", "masking", "mma_shape", "iteration", "overheads", "clock", "baseline",
           "permute")

COLUMNS: tuple[Column, ...] = (
    *(_ident(n) for n in ("hardware", "kernel", "input_size", "window_size", "stride",
                          "dilation", "causal", "q_tile", "kv_tile", "kv_tiling")),
    *(_ident(n, "int") for n in ("batch", "heads", "heads_kv", "head_dim", "head_dim_v")),
    _ident("dtype"),
    Column("tokens", "int", lambda r: r.tokens),
    Column("flop_speedup", "float", lambda r: r.datt / r.att),
    Column("tile_speedup", "float", lambda r: r.dvmax / r.vmax),
    Column("tile_speedup_mean", "float", lambda r: r.dvsum / r.vsum),
    Column("fully_block_sparse", "bool", lambda r: r.vsum == r.fsum),
    Column("natten_fast_path", "bool", lambda r: r.fast),
    Column("sparsity", "float", lambda r: 1.0 - r.att / r.datt),
    Column("q_tiles", "int", lambda r: r.q_tiles),
    Column("kv_tiles", "int", lambda r: r.kv_tiles),
    Column("dense_kv_tiles_per_q_tile", "int", lambda r: r.dvmax),
    Column("kv_tiles_visited_max", "int", lambda r: r.vmax),
    Column("kv_tiles_visited_mean", "float", lambda r: r.vsum / r.q_tiles),
    Column("tile_pairs_visited", "int", lambda r: r.vsum),
    Column("tile_pairs_full", "int", lambda r: r.fsum),
    Column("tile_pairs_partial", "int", lambda r: r.vsum - r.fsum),
    Column("attended_pairs", "int", lambda r: r.att),
    Column("flops_dense", "int", lambda r: r.datt * r.per_pair),
    Column("flops_useful", "int", lambda r: r.att * r.per_pair),
    Column("flops_computed", "int", lambda r: r.vsum * r.tile_elems * r.per_pair),
    Column("flops_wasted", "int", lambda r: (r.vsum * r.tile_elems - r.att) * r.per_pair),
    Column("attention_fraction", "float", lambda r: r.attention_fraction, "fraction", True),
    Column("e2e_flop_speedup", "float", lambda r: e2e_speedup(r.datt / r.att, r.fraction),
           "fraction"),
    Column("e2e_tile_speedup", "float", lambda r: e2e_speedup(r.dvmax / r.vmax, r.fraction),
           "fraction"),
    _runtime("predicted_time_ms", "float", lambda rt: rt.gna.time_ms),
    _runtime("predicted_dense_time_ms", "float", lambda rt: rt.dense.time_ms),
    _runtime("predicted_permute_ms", "float", lambda rt: rt.permute_ms),
    _runtime("predicted_total_ms", "float", lambda rt: rt.total_ms),
    _runtime("predicted_speedup", "float", lambda rt: rt.speedup),
    _runtime("predicted_speedup_with_permute", "float", lambda rt: rt.speedup_with_permute),
    *_band("predicted_time_ms", "time", lambda rt: rt.gna.time_ms),
    *_band("predicted_dense_time_ms", "dense_time", lambda rt: rt.dense.time_ms),
    *_band("predicted_speedup", "speedup", lambda rt: rt.speedup),
    *_band("predicted_speedup_with_permute", "speedup", lambda rt: rt.speedup_with_permute),
    _runtime("calibration_status", "str", lambda rt: _certain(rt, lambda c: c.status)),
    _runtime("calibration.family", "str", lambda rt: _certain(rt, lambda c: c.kernel.family)),
    _runtime("calibration.rows", "int",
             lambda rt: _certain(rt, lambda c: c.kernel.to_dict()["rows"])),
    _runtime("calibration.gpus", "str",
             lambda rt: _certain(rt, lambda c: ",".join(c.kernel.to_dict()["gpus"]))),
    _runtime("calibration.sources", "str",
             lambda rt: _certain(rt, lambda c: ";".join(c.kernel.to_dict()["sources"]))),
    _runtime("calibration.oos_mape_time_pct", "float",
             lambda rt: _certain(rt, lambda c: c.kernel.to_dict()["oos_mape_time_pct"])),
    _runtime("calibration.baseline_status", "str",
             lambda rt: _certain(rt, lambda c: c.baseline.status)),
    _runtime("calibration.interval_basis", "str",
             lambda rt: _certain(rt, lambda c: c.time.basis if c.time else None)),
    _runtime("bound", "str", lambda rt: rt.gna.bound),
    _runtime("dense_bound", "str", lambda rt: rt.dense.bound),
    _runtime("baseline", "str", lambda rt: rt.baseline),
    _runtime("predicted_waves", "float", lambda rt: rt.gna.waves),
    _runtime("predicted_ctas", "int", lambda rt: rt.gna.ctas),
    _runtime("predicted_clock_fraction", "float", lambda rt: rt.gna.clock_fraction),
    _runtime("tile_time_us", "float", lambda rt: rt.gna.tile_us),
    _runtime("masked_tile_time_us", "float", lambda rt: rt.gna.masked_tile_us),
    _runtime("mask_cost_factor", "float", lambda rt: rt.gna.mask_factor),
    _runtime("masked_tile_pairs", "int", lambda rt: rt.masked_tiles),
    _runtime("masks_every_tile", "bool", lambda rt: rt.mask_all),
    *(_runtime(f"time_components_ms.{k}", "float", lambda rt, k=k: rt.gna.components_ms[k])
      for k in COMPONENTS),
    *(_runtime(f"speedup_factors.{k}", "float", lambda rt, k=k: rt.factors[k]) for k in FACTORS),
    Column("e2e_predicted_speedup", "float",
           lambda r: e2e_speedup(r.rt.speedup_with_permute, r.fraction), "runtime_fraction"),
    _bwd("q_tile", "str", lambda b: format_tile(b.plan.q_tile)),
    _bwd("kv_tile", "str", lambda b: format_tile(b.plan.kv_tile)),
    _bwd("tile_speedup", "float", lambda b: b.tile_speedup),
    _bwd("tile_speedup_mean", "float", lambda b: b.tile_speedup_mean),
    _bwd("fully_block_sparse", "bool", lambda b: b.plan.fully_block_sparse),
    _bwd("dense_q_tiles_per_kv_tile", "int", lambda b: b.dense_plan.q_tiles_visited_max),
    _bwd("q_tiles_visited_max", "int", lambda b: b.plan.q_tiles_visited_max),
    _bwd("q_tiles_visited_mean", "float", lambda b: b.plan.q_tiles_visited_mean),
    _bwd("tile_pairs_visited", "int", lambda b: b.plan.tile_pairs_visited),
    _bwd("tile_pairs_full", "int", lambda b: b.plan.tile_pairs_full),
    _bwd("tile_pairs_partial", "int", lambda b: b.plan.tile_pairs_partial),
    _bwd("flops_dense", "int", lambda b: b.flops_dense),
    _bwd("flops_useful", "int", lambda b: b.flops_useful),
    _bwd("flops_computed", "int", lambda b: b.flops_computed),
    *_bwd_band("predicted_bwd_time_ms", "time", lambda b: b.time_ms),
    *_bwd_band("predicted_dense_bwd_time_ms", "dense_time", lambda b: b.dense_time_ms),
    *_bwd_band("predicted_bwd_speedup", "speedup", lambda b: b.speedup),
    Column("bwd_calibration_status", "str",
           lambda r: _certain(r.bwd_rt, lambda c: c.status), "backward_runtime"),
    Column("notes", "notes", lambda r: r.notes, "notes"),
)
BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
IDENTITY_KEYS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.identity)


def columns(parts: set[str] | frozenset[str]) -> list[Column]:
    """The columns of the given parts, in record order."""
    return [c for c in COLUMNS if c.part in parts]


def parts_of(row: Any) -> set[str]:
    """The parts a row has: fraction, runtime and backward only when it carries them."""
    out = {"plan", "notes"}
    if row.attention_fraction is not None:
        out.add("fraction")
    if row.rt is not None:
        out.add("runtime")
        if row.attention_fraction is not None:
            out.add("runtime_fraction")
    if row.bwd is not None:
        out.add("backward")
    if row.bwd_rt is not None:
        out.add("backward_runtime")
    return out


def to_dict(row: Row) -> dict[str, Any]:
    """The JSON record of one configuration: dotted names become nested mappings."""
    out: dict[str, Any] = {}
    for col in columns(parts_of(row)):
        value = col.compute(row)
        if "." in col.name:
            head, tail = col.name.split(".", 1)
            out.setdefault(head, {})[tail] = value
        else:
            out[col.name] = value
    return out


def flatten_record(rec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: a nested record as flat column names."""
    out: dict[str, Any] = {}
    for key, value in rec.items():
        if isinstance(value, dict):
            out.update(flatten_record(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
