"""Computing sweep rows: the record's columns (:mod:`gnasim.record`) for a chunk of a block.

A chunk is a range of a block's rows; :class:`ChunkRow` gives the attributes the record's
formulas read, as numpy arrays with one value per row (products of per-axis statistics, and the
runtime model run on launches built from per-axis facts), so every column is the same formula
``simulate().to_dict()`` evaluates on one configuration. Values become Arrow arrays built from
numpy buffers (``pa.array()`` would import pandas, 0.4 s, on every run).
"""

from __future__ import annotations

import itertools
import math
import weakref
from functools import cached_property
from typing import Any, Callable, Sequence

import numpy as np

from gnasim import record
from gnasim.bounds import effective_fraction, flops_per_pair
from gnasim.advice import fmha_rows, row_notes
from gnasim.errors import GnasimError, require_extra
from gnasim.explore.blocks import Block, SweepPlan, causal_codes, row_config
from gnasim.explore.keys import INT64_MAX
from gnasim.config import format_tile
from gnasim.model.launch import AxisFacts, build_launch
from gnasim.model.solve import DenseSide, RuntimePrediction, predict_launch
from gnasim.prediction import natten_dense_fallback
from gnasim.plan.stats import STAT_INDEX
from gnasim.prediction import simulate


def arrow_modules(compute: bool = False):
    """pyarrow (and pyarrow.compute), or one line naming the extra that installs it."""
    require_extra("pyarrow", "sweep", "sweep")
    import pyarrow as pa
    pc = None
    if compute:
        import pyarrow.compute as pc
    return pa, pc


def column_type(key: str, fmt: str):
    """The Arrow type of a record column (``notes``: a list of strings, joined in CSV)."""
    pa, _ = arrow_modules()
    col = record.BY_NAME.get(key)
    if col is None:
        return None
    if col.dtype == "notes":
        return pa.string() if fmt == "csv" else pa.list_(pa.string())
    return {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
            "bool": pa.bool_()}[col.dtype]


def _buf_array(values: np.ndarray):
    pa, _ = arrow_modules()
    if values.dtype == bool:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    if values.dtype.kind == "f":
        values = np.ascontiguousarray(values, dtype=np.float64)
        return pa.Array.from_buffers(pa.float64(), len(values), [None, pa.py_buffer(values)])
    values = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(values)])


def _dictionary(values: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strings as numpy buffers: (offsets, utf-8 bytes, valid)."""
    enc = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in enc], out=offsets[1:])
    data = np.frombuffer(b"".join(enc), dtype=np.uint8)
    return offsets, data, np.array([v is not None for v in values], dtype=bool)


def _take(dic: tuple[np.ndarray, np.ndarray, np.ndarray], index: np.ndarray):
    """A pyarrow string array of ``dic[index]``, gathered with numpy."""
    pa, _ = arrow_modules()
    offsets, data, valid = dic
    lengths = (offsets[1:] - offsets[:-1])[index]
    out_off = np.zeros(len(index) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out_off[1:])
    total = int(out_off[-1])
    src = np.repeat(offsets[:-1][index] - out_off[:-1], lengths) + np.arange(total, dtype=np.int64)
    out_data = data[src]
    large = total >= 2 ** 31
    off = out_off if large else out_off.astype(np.int32)
    validity = None
    if not valid.all():
        validity = pa.py_buffer(np.packbits(valid[index], bitorder="little"))
    return pa.Array.from_buffers(pa.large_string() if large else pa.string(), len(index),
                                 [validity, pa.py_buffer(off), pa.py_buffer(out_data)])


def _string_array(values: Sequence[str | None]):
    return _take(_dictionary(values), np.arange(len(values), dtype=np.int64))


def _notes(value: Any, n: int, fmt: str):
    """A notes column: one tuple for every row, or an object array of tuples (one per row)."""
    pa, _ = arrow_modules()
    if isinstance(value, np.ndarray):
        uniq = list(dict.fromkeys(value.tolist()))
        if len(uniq) > 1:
            vals = value.tolist()
            return pa.array(["; ".join(v) for v in vals] if fmt == "csv"
                            else [list(v) for v in vals], type=column_type("notes", fmt))
        value = uniq[0]
    if fmt == "csv":
        return _take(_dictionary(["; ".join(value)]), np.zeros(n, dtype=np.int64))
    k = len(value)
    offsets = np.arange(n + 1, dtype=np.int32) * k
    values = _take(_dictionary(list(value) or [""]), np.tile(np.arange(k), n))
    return pa.ListArray.from_buffers(pa.list_(pa.string()), n, [None, pa.py_buffer(offsets)],
                                     children=[values])


_NUMPY = {"int": np.int64, "float": np.float64, "bool": bool}


def encode(col: record.Column, value: Any, n: int, fmt: str):
    """A column's value for ``n`` rows (a scalar, a numpy array or already Arrow) as Arrow."""
    pa, _ = arrow_modules()
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value
    if col.dtype == "notes":
        return _notes(value, n, fmt)
    if col.dtype == "str":
        if isinstance(value, np.ndarray):
            uniq, inv = np.unique(value.astype(str), return_inverse=True)
            return _take(_dictionary(uniq.tolist()), inv.ravel().astype(np.int64))
        return _take(_dictionary([value]), np.zeros(n, dtype=np.int64))
    if np.ndim(value) == 0:
        return _buf_array(np.full(n, value, dtype=_NUMPY[col.dtype]))
    value = np.asarray(value)
    if value.dtype == object and col.dtype == "int":
        if any(int(x) > INT64_MAX for x in value):
            raise GnasimError(f"sweep: column {col.name} exceeds 64-bit integers; "
                              "use a smaller batch or head count")
    return _buf_array(value.astype(_NUMPY[col.dtype]))


_DICT_LIMIT = 1 << 20


_STRINGS: "weakref.WeakKeyDictionary[Block, dict]" = weakref.WeakKeyDictionary()


def _axis_string_column(blk: Block, j: int, idx: tuple[np.ndarray, ...]):
    """The 'AxBxC' strings of per-axis field ``j`` (window, stride, dilation, causal) for rows
    with per-axis option indices ``idx``: a dictionary of every combination of the distinct
    per-axis values (built once per block and process), gathered by index."""
    cache = _STRINGS.setdefault(blk, {})
    if j not in cache:
        uniq, inv = zip(*(np.unique(o[:, j], return_inverse=True) for o in blk.opts))
        dims = tuple(len(u) for u in uniq)
        words = None
        if math.prod(dims) <= _DICT_LIMIT:
            words = _dictionary(["x".join(p) for p in
                                 itertools.product(*([str(v) for v in u] for u in uniq))])
        cache[j] = (uniq, [i.ravel() for i in inv], dims, words)
    uniq, inv, dims, words = cache[j]
    parts = [inv[d][idx[d]] for d in range(len(idx))]
    if words is not None:
        flat = np.ravel_multi_index(parts, dims) if len(parts) > 1 else parts[0]
        return _take(words, flat)
    return _string_array(["x".join(str(uniq[d][p[d]]) for d in range(len(p)))
                          for p in zip(*parts)])


class ChunkRow:
    """The attributes of :class:`gnasim.record.Row` for rows ``r`` of a block (per-axis option
    indices ``idx``), as arrays computed on first use."""

    def __init__(self, plan: SweepPlan, blk: Block, r: np.ndarray, idx: tuple[np.ndarray, ...]):
        self.spec, self.blk, self.r, self.idx = plan.spec, blk, r, idx
        c = blk.config
        self.hardware, self.kernel, self.kv_tiling = blk.hardware, blk.kernel, blk.mode
        self.input_size = format_tile(blk.layout)
        self.q_tile, self.kv_tile = format_tile(blk.q_tile), format_tile(blk.kv_tile)
        self.batch, self.heads, self.heads_kv = c.batch, c.heads, c.kv_heads
        self.head_dim, self.head_dim_v, self.dtype, self.tokens = (c.head_dim, c.dim_v, c.dtype,
                                                                    c.tokens)
        self.per_pair = flops_per_pair(c.batch, c.heads, c.head_dim, c.dim_v)
        self.tile_elems = math.prod(blk.q_tile) * math.prod(blk.kv_tile)
        self.bwd = None

    def _stat(self, name: str) -> np.ndarray:
        j = STAT_INDEX[name]
        out = self.blk.stats[0][self.idx[0], j]
        for d in range(1, len(self.idx)):
            out = out * self.blk.stats[d][self.idx[d], j]
        return out

    def _axis_strings(j: int):
        return cached_property(lambda self: _axis_string_column(self.blk, j, self.idx))

    window_size, stride = _axis_strings(0), _axis_strings(1)
    dilation, causal = _axis_strings(2), _axis_strings(3)

    def _stats(name: str):
        return cached_property(lambda self: self._stat(name))

    vsum, fsum, vmax, att = _stats("vsum"), _stats("fsum"), _stats("vmax"), _stats("att")
    q_tiles, kv_tiles = _stats("qt"), _stats("kvt")
    dvmax, dvsum, datt = _stats("dvmax"), _stats("dvsum"), _stats("datt")
    del _axis_strings, _stats

    @cached_property
    def fast(self) -> np.ndarray:
        """NATTEN's fast path: the per-axis predicate (no causal axis) on every axis."""
        return np.asarray(self._stat("fast") != 0, dtype=bool)

    @cached_property
    def attention_fraction(self) -> np.ndarray | None:
        fr = self.blk.fractions
        return np.asarray(fr, dtype=np.float64)[self.r % self.blk.n_fracs] if fr else None

    @cached_property
    def fraction(self) -> np.ndarray | None:
        fr, s = self.blk.fractions, self.spec
        if not fr:
            return None
        eff = [effective_fraction(f, s.full_attention_steps, s.total_steps) for f in fr]
        return np.asarray(eff, dtype=np.float64)[self.r % self.blk.n_fracs]

    @cached_property
    def codes(self) -> np.ndarray:
        return causal_codes(self.blk, self.idx)

    @cached_property
    def side(self) -> DenseSide:
        sides = self.blk.runtime.sides
        if len(sides) == 1:
            return next(iter(sides.values()))
        order = sorted(sides)
        return DenseSide.take([sides[c] for c in order], np.searchsorted(order, self.codes))

    @cached_property
    def rt(self) -> RuntimePrediction | None:
        rt = self.blk.runtime
        if rt is None:
            return None
        blk, idx = self.blk, self.idx
        axes = [AxisFacts(blk.layout[d], blk.q_tile[d], blk.kv_tile[d],
                          blk.opts[d][idx[d], 2], blk.stats[d][idx[d], STAT_INDEX["vsum"]],
                          blk.stats[d][idx[d], STAT_INDEX["fsum"]], blk.stats[d][idx[d], STAT_INDEX["vmax"]],
                          blk.stats[d][idx[d], STAT_INDEX["qt"]], blk.stats[d][idx[d], STAT_INDEX["kvt"]],
                          a.nz[idx[d]], a.front_full[idx[d]], a.front_vis[idx[d]])
                for d, a in enumerate(rt.axes)]
        prep = rt.prepared
        rk = prep.kernel
        shape = build_launch(axes, blk.config, rk.masking, rk.token_permute, self.fast)
        tile_bound = np.asarray(self.dvmax / self.vmax, dtype=np.float64)
        return natten_dense_fallback(
            predict_launch(rk.name, shape, self.side, prep.params, prep.rates, tile_bound,
                           prep.certainty),
            fmha_rows(blk.layout, self._opt(0), self._opt(3)))

    def _opt(self, j: int) -> list[np.ndarray]:
        """Per axis, option field ``j`` (window, stride, dilation, causal) of every row."""
        return [np.asarray(self.blk.opts[d][self.idx[d], j]) for d in range(len(self.idx))]

    @cached_property
    def notes(self) -> Any:
        """The block's notes, the row's own warnings (gnasim.advice), its dense side's notes."""
        side: dict[int, tuple[str, ...]] = {}
        if self.blk.runtime is not None:
            side = {c: s.notes for c, s in self.blk.runtime.sides.items()}
        own = row_notes(self.blk.layout, self._opt(0), self._opt(3),
                        np.asarray(self.dvmax / self.vmax, dtype=np.float64),
                        np.asarray(self.datt / self.att, dtype=np.float64),
                        np.asarray(self.dvsum / self.vsum, dtype=np.float64))
        if len(side) <= 1 and not own:
            return self.blk.notes + next(iter(side.values()), ())
        codes = self.codes.tolist() if len(side) > 1 else [None] * len(self.r)
        one = next(iter(side.values()), ())
        out = np.empty(len(self.r), dtype=object)
        out[:] = [self.blk.notes + own.get(i, ()) + (side[c] if c is not None else one)
                  for i, c in enumerate(codes)]
        return out


def compute_chunk(plan: SweepPlan, bi: int, lo: int, hi: int, fmt: str = "parquet",
                  keys: Sequence[str] | None = None):
    """Rows ``lo..hi`` of block ``bi`` as a pyarrow Table with ``keys`` (default: all columns).

    ``fmt='csv'`` joins ``notes`` with '; ' (Parquet keeps the list, as ``to_dict()`` does).
    Columns of a record part the block's rows do not have (runtime columns of a block without
    hardware, say) are null.
    """
    pa, _ = arrow_modules()
    blk = plan.blocks[bi]
    keys = list(plan.columns if keys is None else keys)
    if blk.flat:        # flat tiling: no per-axis products, each row through simulate()
        return compute_flat_chunk(blk, range(lo, hi), lambda r: row_config(plan.spec, blk, r),
                                  plan.spec, keys, fmt)
    n = hi - lo
    r = np.arange(lo, hi, dtype=np.int64)
    combo = r // blk.n_fracs
    idx = np.unravel_index(combo, blk.shape) if len(blk.layout) > 1 else (combo,)
    row = ChunkRow(plan, blk, r, idx)
    arrays = []
    for key in keys:
        col = record.BY_NAME[key]
        if col.part in blk.parts:
            arrays.append(encode(col, col.compute(row), n, fmt))
        else:
            arrays.append(pa.nulls(n, column_type(key, fmt)))
    return pa.Table.from_arrays(arrays, names=keys)


def compute_flat_chunk(blk: Any, rows: Sequence[int], row_config: Callable[[int], Any],
                       spec: Any, keys: Sequence[str], fmt: str):
    """Rows of a flat block as a pyarrow Table: each row's ``simulate`` record, its columns in
    ``keys`` (a record part the block does not have, or a row's missing runtime, is null)."""
    pa, _ = arrow_modules()
    values: dict[str, list[Any]] = {k: [] for k in keys}
    fractions = blk.fractions
    identity = _flat_identity(blk)
    identity_only = set(keys) <= set(identity)     # resume checks: no plan needed
    for r in rows:
        cfg = row_config(r)
        fraction = fractions[r % blk.n_fracs] if fractions else None
        if identity_only:
            for k in keys:
                values[k].append(identity[k](cfg, fraction))
            continue
        profiled = blk.hardware is not None and not spec.bounds_only
        res = simulate(cfg, blk.hardware if profiled else None,
                       kernel=blk.kernel if profiled else None, tiling="flat",
                       flat_tiles=(blk.q_tile[0], blk.kv_tile[0]), attention_fraction=fraction,
                       full_attention_steps=spec.full_attention_steps,
                       total_steps=spec.total_steps)
        rec = record.flatten_record(res.to_dict())
        rec["hardware"], rec["kernel"] = blk.hardware, blk.kernel
        rec["notes"] = list(dict.fromkeys(list(blk.notes) + rec.get("notes", [])))
        for k in keys:
            values[k].append(rec.get(k))
    arrays = []
    for k in keys:
        col = record.BY_NAME[k]
        vals = values[k]
        if col.part not in blk.parts:
            arrays.append(pa.nulls(len(vals), column_type(k, fmt)))
        elif col.dtype == "notes" and fmt == "csv":
            arrays.append(pa.array(["; ".join(v) for v in vals], pa.string()))
        else:
            arrays.append(pa.array(vals, column_type(k, fmt)))
    return pa.Table.from_arrays(arrays, names=list(keys))


def _flat_identity(blk: Block) -> dict[str, Callable[[Any, Any], Any]]:
    """The identity columns of a flat block's row, from its config and attention share (as
    ``simulate().to_dict()`` writes them)."""
    axes = lambda name: (lambda c, f: format_tile(getattr(c, name)))
    return {
        "hardware": lambda c, f: blk.hardware, "kernel": lambda c, f: blk.kernel,
        "input_size": axes("input_size"), "window_size": axes("window_size"),
        "stride": axes("stride"), "dilation": axes("dilation"),
        "causal": lambda c, f: "x".join(str(int(v)) for v in c.causal),
        "q_tile": lambda c, f: format_tile(blk.q_tile),
        "kv_tile": lambda c, f: format_tile(blk.kv_tile), "kv_tiling": lambda c, f: blk.mode,
        "batch": lambda c, f: c.batch, "heads": lambda c, f: c.heads,
        "heads_kv": lambda c, f: c.kv_heads, "head_dim": lambda c, f: c.head_dim,
        "head_dim_v": lambda c, f: c.dim_v, "dtype": lambda c, f: c.dtype,
        "attention_fraction": lambda c, f: f,
    }
