"""Computing sweep rows: the record's columns for a chunk of a block, as Arrow arrays."""

from __future__ import annotations


import itertools
import math
from typing import Any, Sequence

import numpy as np

from gnasim.bounds import effective_fraction
from gnasim.errors import GnasimError
from gnasim.hardware.profile import load_profile
from gnasim.plan.tiling import axis_plans
from gnasim.explore.keys import _INT64_MAX, BOOL_KEYS, FAST_KEYS, FLOAT_KEYS, INT_KEYS, RUNTIME_BOOL_KEYS, RUNTIME_FLOAT_KEYS, RUNTIME_INT_KEYS, RUNTIME_KEYS, RUNTIME_STRING_KEYS, STRING_KEYS
from gnasim.explore.blocks import Block, SweepPlan, _per_pair, _row_config, flatten_record
from gnasim.explore.grid import SweepSpec
from gnasim.plan.stats import STAT_INDEX as _S






def _arrow(compute: bool = False):
    try:
        import pyarrow as pa
        pc = None
        if compute:
            import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pyarrow is installed with gnasim[test]
        raise GnasimError("sweep: needs pyarrow (pip install pyarrow)") from None
    return pa, pc


def column_type(key: str, fmt: str):
    pa, _ = _arrow()
    if key in STRING_KEYS:
        return pa.string()
    if key in INT_KEYS:
        return pa.int64()
    if key in FLOAT_KEYS:
        return pa.float64()
    if key in BOOL_KEYS or key in RUNTIME_BOOL_KEYS:
        return pa.bool_()
    if key in RUNTIME_STRING_KEYS:
        return pa.string()
    if key in RUNTIME_INT_KEYS:
        return pa.int64()
    if key in RUNTIME_FLOAT_KEYS:
        return pa.float64()
    if key == "notes":
        return pa.string() if fmt == "csv" else pa.list_(pa.string())
    return None


# Arrow arrays are built from numpy buffers: pa.array() would import pandas (0.4 s) on every run.

def _buf_array(values: np.ndarray):
    pa, _ = _arrow()
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
    pa, _ = _arrow()
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


def _const(key: str, value: Any, n: int, fmt: str):
    pa, _ = _arrow()
    if key == "notes":
        if fmt == "csv":
            return _take(_dictionary(["; ".join(value)]), np.zeros(n, dtype=np.int64))
        k = len(value)
        offsets = np.arange(n + 1, dtype=np.int32) * k
        values = _take(_dictionary(list(value) or [""]), np.tile(np.arange(k), n))
        return pa.ListArray.from_buffers(pa.list_(pa.string()), n, [None, pa.py_buffer(offsets)],
                                         children=[values])
    if key in STRING_KEYS or isinstance(value, str) or value is None:
        return _take(_dictionary([value]), np.zeros(n, dtype=np.int64))
    if isinstance(value, bool):
        return _buf_array(np.full(n, value, dtype=bool))
    if isinstance(value, float):
        return _buf_array(np.full(n, value, dtype=np.float64))
    return _buf_array(np.full(n, value, dtype=np.int64))


_DICT_LIMIT = 1 << 20


def _axis_string_column(blk: Block, j: int, idx: tuple[np.ndarray, ...]):
    """The 'AxBxC' strings of per-axis field ``j`` (window, stride, dilation, causal) for rows
    with per-axis option indices ``idx``: a dictionary of every combination of the distinct
    per-axis values (built once per block), gathered by index."""
    cache = blk.cache.get(j)
    if cache is None:
        uniq, inv = zip(*(np.unique(o[:, j], return_inverse=True) for o in blk.opts))
        dims = tuple(len(u) for u in uniq)
        words = None
        if math.prod(dims) <= _DICT_LIMIT:
            words = _dictionary(["x".join(p) for p in
                                 itertools.product(*([str(v) for v in u] for u in uniq))])
        cache = blk.cache[j] = (uniq, [i.ravel() for i in inv], dims, words)
    uniq, inv, dims, words = cache
    parts = [inv[d][idx[d]] for d in range(len(idx))]
    if words is not None:
        flat = np.ravel_multi_index(parts, dims) if len(parts) > 1 else parts[0]
        return _take(words, flat)
    return _string_array(["x".join(str(uniq[d][p[d]]) for d in range(len(p)))
                          for p in zip(*parts)])


def compute_chunk(plan: SweepPlan, bi: int, lo: int, hi: int, fmt: str = "parquet",
                  keys: Sequence[str] | None = None):
    """Rows ``lo..hi`` of block ``bi`` as a pyarrow Table with ``keys`` (default: all columns).

    ``fmt='csv'`` joins ``notes`` with '; ' (Parquet keeps the list, as ``to_dict()`` does).
    """
    pa, _ = _arrow()
    spec, blk = plan.spec, plan.blocks[bi]
    keys = list(plan.columns if keys is None else keys)
    n = hi - lo
    rank = len(blk.layout)
    nf = blk.n_fracs
    r = np.arange(lo, hi, dtype=np.int64)
    combo = r // nf if nf > 1 else r
    idx = np.unravel_index(combo, blk.shape) if rank > 1 else (combo,)
    need = set(keys)
    cols: dict[str, Any] = {}
    probe = blk.probe
    for key in ("hardware", "kernel", "input_size", "q_tile", "kv_tile", "kv_tiling", "batch",
                "heads", "heads_kv", "head_dim", "head_dim_v", "dtype", "tokens"):
        if key in need and key in probe:
            cols[key] = _const(key, probe[key], n, fmt)
    if "notes" in need and blk.notes is not None:
        cols["notes"] = _const("notes", blk.notes, n, fmt)
    for key, j in (("window_size", 0), ("stride", 1), ("dilation", 2), ("causal", 3)):
        if key in need:
            cols[key] = _axis_string_column(blk, j, idx)
    fr = None
    if blk.fractions:
        fr = np.asarray(blk.fractions, dtype=np.float64)[r % nf]
        if "attention_fraction" in need:
            cols["attention_fraction"] = _buf_array(fr)
    numeric = need & (set(INT_KEYS + FLOAT_KEYS + BOOL_KEYS) - set(cols))
    if numeric:
        g = [blk.stats[d][idx[d]] for d in range(rank)]

        def prod(name: str) -> np.ndarray:
            j = _S[name]
            out = g[0][:, j].copy()
            for a in g[1:]:
                out = out * a[:, j]
            return out

        vsum, fsum, vmax, att = prod("vsum"), prod("fsum"), prod("vmax"), prod("att")
        qtiles, kvtiles = prod("qt"), prod("kvt")
        dvmax, dvsum, datt = prod("dvmax"), prod("dvsum"), prod("datt")
        per_pair = _per_pair(spec, blk.head_dim)
        tile_elems = math.prod(blk.q_tile) * math.prod(blk.kv_tile)
        # int64 -> float64 is exact below 2**53 (checked per block), so a / b is Python's int / int
        div = (lambda a, b: np.asarray(a / b, dtype=np.float64)) if blk.exact_int64 else \
            (lambda a, b: np.array([x / y for x, y in zip(a, b)], dtype=np.float64))
        flop = div(datt, att)
        tile = div(dvmax, vmax)
        values = {
            "q_tiles": qtiles, "kv_tiles": kvtiles, "dense_kv_tiles_per_q_tile": dvmax,
            "kv_tiles_visited_max": vmax, "tile_pairs_visited": vsum, "tile_pairs_full": fsum,
            "tile_pairs_partial": vsum - fsum, "attended_pairs": att,
            "flops_dense": datt * per_pair, "flops_useful": att * per_pair,
            "flops_computed": vsum * tile_elems * per_pair,
            "flop_speedup": flop, "tile_speedup": tile,
            "tile_speedup_mean": div(dvsum, vsum),
            "sparsity": 1.0 - div(att, datt),
            "kv_tiles_visited_mean": div(vsum, qtiles),
            "fully_block_sparse": np.asarray(vsum - fsum == 0, dtype=bool),
            # natten_fast_path(): no causal axis and the per-axis predicate on every axis
            "natten_fast_path": np.asarray(prod("fast") != 0, dtype=bool),
        }
        values["flops_wasted"] = values["flops_computed"] - values["flops_useful"]
        if fr is not None:
            fe = np.array([effective_fraction(f, spec.full_attention_steps, spec.total_steps)
                           for f in blk.fractions], dtype=np.float64)[r % nf]
            values["e2e_flop_speedup"] = 1.0 / ((1.0 - fe) + fe / flop)
            values["e2e_tile_speedup"] = 1.0 / ((1.0 - fe) + fe / tile)
        for key in [k for k in keys if k in values]:
            v = values[key]
            if v.dtype == object:
                if any(int(x) > _INT64_MAX for x in v):
                    raise GnasimError(f"sweep: column {key} exceeds 64-bit integers; "
                                      "use a smaller batch or head count")
                v = v.astype(np.int64)
            cols[key] = _buf_array(v)
    rt = [k for k in keys if k not in cols and (k in RUNTIME_KEYS or k == "notes" and blk.rt_notes)]
    if rt and blk.runtime_ok:
        cols.update(_runtime_columns(plan, blk, r, idx, rt, fmt))
    slow = [k for k in keys if k not in cols]
    if slow:
        for key, vals in _slow_columns(plan, blk, lo, hi, slow, fmt).items():
            t = column_type(key, fmt)
            cols[key] = pa.array(vals, type=t) if t is not None else pa.array(vals)
    return pa.Table.from_arrays([cols[k] for k in keys], names=keys)


# -- runtime-model columns, batched -----------------------------------------------------------

def _axis_front(ap) -> tuple[int, list[tuple[int, int]]]:
    """Q tiles of an axis that visit a KV tile, and the (full, visited) classes of the axis that
    no other class dominates in (full, partial) tiles. A product class that uses a dominated
    class of one axis is dominated by the one using the dominating class (its partial tiles are
    ``V v - F f`` with ``V >= F``), so the products of these cover the launch's Pareto front."""
    pairs, counts = ap.pair_counts()
    vis, full = pairs[:, 0].tolist(), pairs[:, 1].tolist()
    nz = int(sum(c for v, c in zip(vis, counts.tolist()) if v > 0))
    pts = sorted({(f, v - f) for v, f in zip(vis, full) if v > 0}, reverse=True)
    front: list[tuple[int, int]] = []
    for f, m in pts:
        if not front or m > front[-1][1]:
            front.append((f, m))
    return nz, [(f, f + m) for f, m in front] or [(0, 0)]


def _runtime_context(spec: SweepSpec, blk: Block, profile: Any = None) -> dict | None:
    """What the batched runtime model needs for a block (cached per process), or None when the
    block's rows must come from simulate() (counts past 2**53, or the model refuses it)."""
    if "rt" in blk.cache:
        return blk.cache["rt"]
    ctx = None
    try:
        ctx = _build_runtime_context(spec, blk, profile)
    except GnasimError:
        ctx = None
    blk.cache["rt"] = ctx
    return ctx


def _build_runtime_context(spec: SweepSpec, blk: Block, profile: Any) -> dict | None:
    from gnasim.model.cost import Rates, dense_side, resolve_kernel, runtime_model
    from gnasim.plan.tiling import tile_plans

    if not blk.exact_int64 or blk.hardware is None:
        return None
    profile = profile if profile is not None else load_profile(blk.hardware)
    rk = resolve_kernel(profile, blk.kernel)
    if rk.dense_only:
        return None
    rank = len(blk.layout)
    nz, ffull, fvis = [], [], []
    for d in range(rank):
        keys = [(blk.layout[d], int(K), int(S), int(D), bool(c), blk.q_tile[d], blk.kv_tile[d],
                 blk.mode) for K, S, D, c in blk.opts[d]]
        fronts = [_axis_front(ap) for ap in axis_plans(keys)]
        k = max(len(f) for _, f in fronts)
        pad = [f + [f[0]] * (k - len(f)) for _, f in fronts]
        nz.append(np.array([z for z, _ in fronts], dtype=np.int64))
        ffull.append(np.array([[p[0] for p in f] for f in pad], dtype=np.int64))
        fvis.append(np.array([[p[1] for p in f] for f in pad], dtype=np.int64))
    cfg0 = _row_config(spec, blk, 0)
    hb = cfg0.batch * cfg0.heads
    b, e = cfg0.batch, cfg0.dtype_bytes
    dh, dv, h, hk = cfg0.head_dim, cfg0.dim_v, cfg0.heads, cfg0.kv_heads
    q_rows, kv_rows = math.prod(blk.q_tile), math.prod(blk.kv_tile)
    # every integer below must convert to float64 exactly (maxima over the block's rows)
    top = lambda arrs: math.prod(int(a.max()) for a in arrs)
    col = lambda j: [s[:, j] for s in blk.stats]
    n = cfg0.tokens
    qpad = top([s[:, _S["qt"]] * q for s, q in zip(blk.stats, blk.q_tile)])
    kvpad = top([s[:, _S["kvt"]] * k for s, k in zip(blk.stats, blk.kv_tile)])
    biggest = max(top(col(_S["vsum"])) * hb, top(fvis), top(nz) * hb,
                  b * e * (top(col(_S["qt"])) * q_rows * h * (dh + dv)
                           + top(col(_S["kvt"])) * kv_rows * hk * (dh + dv)),
                  b * e * ((n + qpad) * h * dh + (n + kvpad) * hk * (dh + dv) + (qpad + n) * h * dv))
    if biggest >= 2 ** 53:
        return None
    # the dense side of each causal pattern in the block (the rest of the config does not vary)
    sides = {}
    codes = _causal_codes(blk, tuple(np.arange(len(o)) for o in blk.opts), full=True)
    for code in np.unique(codes).tolist():
        causal = tuple(bool((code >> d) & 1) for d in range(rank))
        cfg = cfg0.model_copy(update={"causal": causal})
        (dense_plan,) = tile_plans([cfg.dense()], blk.mode)
        sides[code] = dense_side(cfg, dense_plan, profile, rk)
    tiles_span = all(q == L and k == L for q, k, L in
                     zip(blk.q_tile[1:], blk.kv_tile[1:], blk.layout[1:]))
    return {"rk": rk, "km": rk.model, "rm": runtime_model(profile),
            "rates": Rates.of(profile, cfg0.dtype), "nz": nz, "ffull": ffull, "fvis": fvis,
            "sides": sides, "hb": hb, "b": b, "e": e, "dh": dh, "dv": dv, "h": h, "hk": hk,
            "q_rows": q_rows, "kv_rows": kv_rows, "tokens": n, "tiles_span": tiles_span}


def _causal_codes(blk: Block, idx: tuple[np.ndarray, ...], full: bool = False) -> np.ndarray:
    """Per row, the causal flags of its axes as bits (``full``: every combination of options)."""
    if full:
        parts = [blk.opts[d][:, 3].astype(np.int64) << d for d in range(len(blk.opts))]
        out = parts[0]
        for p in parts[1:]:
            out = np.add.outer(out, p)
        return np.asarray(out).ravel()
    out = np.zeros(len(idx[0]), dtype=np.int64)
    for d in range(len(idx)):
        out |= blk.opts[d][idx[d], 3].astype(np.int64) << d
    return out


def _runtime_columns(plan: SweepPlan, blk: Block, r: np.ndarray, idx: tuple[np.ndarray, ...],
                     keys: list[str], fmt: str) -> dict[str, Any]:
    """Runtime-model columns of rows ``r`` (per-axis option indices ``idx``): the launch
    structure of each row from per-axis factors, then gnasim.cost.predict_runtime_many (the
    arithmetic of simulate(), so the same numbers)."""
    from gnasim.model.cost import LaunchBatch, predict_runtime_many

    pa, _ = _arrow()
    spec = plan.spec
    c = _runtime_context(spec, blk)
    rank = len(idx)
    n = len(idx[0])
    g = [blk.stats[d][idx[d]] for d in range(rank)]

    def prod(j: int) -> np.ndarray:
        out = g[0][:, j].copy()
        for a in g[1:]:
            out = out * a[:, j]
        return out

    vsum, fsum, vmax = prod(_S["vsum"]), prod(_S["fsum"]), prod(_S["vmax"])
    qt, kvt, dvmax = prod(_S["qt"]), prod(_S["kvt"]), prod(_S["dvmax"])
    hb = c["hb"]
    ctas = c["nz"][0][idx[0]] * hb
    for d in range(1, rank):
        ctas = ctas * c["nz"][d][idx[d]]
    masking = c["rk"].masking
    if masking == "all":
        mask_all = np.ones(n, dtype=bool)
    elif masking == "all-or-none":
        mask_all = prod(_S["fast"]) == 0
    else:
        mask_all = np.zeros(n, dtype=bool)
    full_f = c["ffull"][0][idx[0]].astype(np.float64)
    vis_f = c["fvis"][0][idx[0]].astype(np.float64)
    for d in range(1, rank):
        full_f = (full_f[:, :, None] * c["ffull"][d][idx[d]][:, None, :]).reshape(n, -1)
        vis_f = (vis_f[:, :, None] * c["fvis"][d][idx[d]][:, None, :]).reshape(n, -1)
    front_u = np.where(mask_all[:, None], 0.0, full_f)
    front_m = np.where(mask_all[:, None], vis_f, vis_f - full_f)
    dd = c["dh"] + c["dv"]
    hbm = (c["b"] * c["e"] * (qt * c["q_rows"] * c["h"] * dd
                              + kvt * c["kv_rows"] * c["hk"] * dd)).astype(np.float64)
    if c["rk"].token_permute:
        tok = c["tokens"]
        qpad, kvpad = qt * blk.q_tile[0], kvt * blk.kv_tile[0]
        for d in range(1, rank):
            qpad, kvpad = qpad * blk.q_tile[d], kvpad * blk.kv_tile[d]
        undilated = np.ones(n, dtype=bool)
        for d in range(rank):
            undilated &= blk.opts[d][idx[d], 2] == 1
        identity = undilated & (qpad == tok) & (kvpad == tok) & c["tiles_span"]
        moved = ((tok + qpad) * c["h"] * c["dh"] + (tok + kvpad) * c["hk"] * dd
                 + (qpad + tok) * c["h"] * c["dv"])
        perm_bytes = np.where(identity, 0.0, (c["b"] * c["e"] * moved).astype(np.float64))
    else:
        perm_bytes = np.zeros(n)
    batch = LaunchBatch(
        c["q_rows"], c["kv_rows"], c["dh"], c["dv"], c["e"], ctas=ctas,
        mean_u=np.where(mask_all, 0.0, (fsum * hb) / ctas),
        mean_m=np.where(mask_all, (vsum * hb) / ctas, ((vsum - fsum) * hb) / ctas),
        front_u=front_u, front_m=front_m, max_tiles=vmax.astype(np.float64),
        kv_reuse=np.maximum(1.0, vsum / np.maximum(kvt, 1)), hbm_bytes=hbm,
        permute_bytes=perm_bytes, masked_pairs=hb * np.where(mask_all, vsum, vsum - fsum),
        tile_pairs=hb * vsum, mask_all=mask_all)
    tile_bound = dvmax / vmax
    codes = _causal_codes(blk, idx)
    groups = np.unique(codes).tolist()
    out: dict[str, Any] = {}
    notes: list[tuple[str, ...]] = []
    for gi, code in enumerate(groups):
        side = c["sides"][code]
        rows = None if len(groups) == 1 else np.flatnonzero(codes == code)
        part = predict_runtime_many(batch if rows is None else batch.take(rows), side, c["km"],
                                    c["rm"], c["rates"],
                                    tile_bound if rows is None else tile_bound[rows])
        if blk.fractions:
            fe = np.array([effective_fraction(f, spec.full_attention_steps, spec.total_steps)
                           for f in blk.fractions], dtype=np.float64)[
                (r if rows is None else r[rows]) % blk.n_fracs]
            part["e2e_predicted_speedup"] = 1.0 / ((1.0 - fe) + fe / part["predicted_speedup_with_permute"])
        notes.append(blk.tile_notes + side.notes)
        if rows is None:
            out = part
            break
        for k, v in part.items():
            if k not in out:
                dt = object if isinstance(v, str) or (isinstance(v, np.ndarray) and v.dtype == object) \
                    else (v.dtype if isinstance(v, np.ndarray) else np.asarray(v).dtype)
                out[k] = np.empty(n, dtype=dt)
            out[k][rows] = v
    cols: dict[str, Any] = {}
    for k in keys:
        if k == "notes":
            if len(notes) == 1:
                cols[k] = _const("notes", notes[0], n, fmt)
            else:
                per = {code: nt for code, nt in zip(groups, notes)}
                vals = [per[x] for x in codes.tolist()]
                cols[k] = pa.array(["; ".join(v) for v in vals] if fmt == "csv"
                                   else [list(v) for v in vals], type=column_type(k, fmt))
            continue
        v = out.get(k)
        if v is None:
            continue
        if isinstance(v, str):
            cols[k] = _const(k, v, n, fmt)
        elif k in RUNTIME_STRING_KEYS:
            uniq, inv = np.unique(np.asarray(v, dtype=str), return_inverse=True)
            cols[k] = _take(_dictionary(uniq.tolist()), inv.ravel().astype(np.int64))
        elif np.ndim(v) == 0:
            cols[k] = _buf_array(np.full(n, v))
        else:
            cols[k] = _buf_array(np.asarray(v))
    return cols


def _slow_columns(plan: SweepPlan, blk: Block, lo: int, hi: int, keys: list[str], fmt: str):
    """Columns the vectorised path does not know: one simulate() call per row."""
    from gnasim.simulate import simulate

    spec = plan.spec
    out: dict[str, list] = {k: [] for k in keys}
    profile = load_profile(blk.hardware) if blk.hardware is not None else None
    for row in range(lo, hi):
        cfg = _row_config(spec, blk, row)
        f = blk.fractions[row % blk.n_fracs] if blk.fractions else None
        d = simulate(cfg, profile, kernel=blk.kernel, kv_tiling=blk.mode, attention_fraction=f,
                     full_attention_steps=spec.full_attention_steps,
                     total_steps=spec.total_steps).to_dict()
        d = flatten_record(d)
        for k in keys:
            v = d.get(k)
            if isinstance(v, (list, tuple)) and fmt == "csv":
                v = "; ".join(str(x) for x in v)
            out[k].append(v)
    return out



def check_probes(plan: SweepPlan) -> None:
    """The vectorised first row of every block must equal its simulate() probe."""
    for bi, blk in enumerate(plan.blocks):
        keys = [k for k in plan.columns if k in blk.probe and (
            k in FAST_KEYS and (k != "notes" or blk.notes is not None
                                and blk.notes == tuple(blk.probe[k]))
            or blk.runtime_ok and k in RUNTIME_KEYS or k == "notes" and blk.rt_notes)]
        row = compute_chunk(plan, bi, 0, 1, "parquet", keys).to_pylist()[0]
        for k in keys:
            if row[k] != blk.probe[k]:
                raise RuntimeError(
                    f"internal error: vectorised sweep column '{k}' = {row[k]!r} but simulate() "
                    f"gives {blk.probe[k]!r} for block {bi}; please report this")

