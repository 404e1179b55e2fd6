"""Design-space sweeps: a grid of GNA configurations, one ``predict`` record per row.

The grid is described by a :class:`SweepSpec` (from command-line flags or a TOML/YAML file). Every
per-axis field (``input_size``, ``window_size``, ``stride``, ``dilation``, ``causal``, ``q_tile``,
``kv_tile``) takes one or more *axis grids*; an axis grid gives a set of values per axis::

    "1:16 1 8"      axis 0: 1..16, axis 1: 1, axis 2: 8     (ranges are inclusive, a:b:step too)
    "all"           every value the rules allow (stride 1..K, dilation 1..L//K, causal 0 and 1)
    "2,4,8x8x8"     axis 0: 2, 4 or 8; axes 1 and 2: 8       (axes split on spaces or 'x')
    "8"             one value, broadcast to every axis (as ``predict`` does)

How it is fast
--------------
The GNA mask is an AND of per-axis masks, so every count in a ``predict`` record is a product of
per-axis counts (:mod:`gnasim.tiling`). A *block* fixes everything that is not per-axis (hardware,
kernel, head dim, layout, tile shape); inside a block each axis has a list of options
``(window, stride, dilation, causal)`` whose per-axis statistics are computed once with
:func:`gnasim.tiling.axis_plan`. A row is one option per axis (plus an attention share), and its
columns are products of the per-axis statistics, gathered and multiplied with numpy for a chunk of
rows at a time. Invalid options (stride > window, ...) are filtered per axis, so the number of
invalid combinations is exact without enumerating them.

Every column is whatever :meth:`gnasim.simulate.SimulationResult.to_dict` returns: each block is
probed with one real :func:`gnasim.simulate.simulate` call, the vectorised values of that row are
checked against it. With a hardware profile the runtime-model columns come from the batched
runtime model (:func:`gnasim.cost.predict_runtime_many`, the same arithmetic as ``simulate``, fed
with per-row launch structure built from per-axis factors), checked against the probe too.
Columns neither path knows (keys added to ``to_dict`` later) are filled by calling ``simulate``
row by row: correct, but about 1,000 rows per second (the summary names such columns).

Output is streamed in chunks to ``FILE.partial`` (CSV: whole chunks appended; Parquet: one row
group per chunk), then renamed over ``FILE`` when the sweep ends or is interrupted, so ``FILE`` is
always a complete, readable table; ``resume=True`` keeps the rows already written (after checking
that they are this sweep's first rows) and computes the rest.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import signal
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .bounds import effective_fraction
from .config import GNAConfig
from .errors import ConfigError, GnasimError
from .hardware import format_tile, load_profile, parse_tile_pair
from .fast_path import natten_fast_path
from .tiling import KV_TILINGS, axis_plans

ALL = "all"
ValueSet = tuple  # tuple[int, ...] or (ALL,)
AxisGrid = tuple  # tuple[ValueSet, ...], one value set per axis (or one, broadcast)

# Columns the vectorised path computes (everything SimulationResult.to_dict() returned when
# this module was written). Keys to_dict() adds later are filled per row (see module docstring).
STRING_KEYS = ("hardware", "kernel", "input_size", "window_size", "stride", "dilation", "causal",
               "q_tile", "kv_tile", "kv_tiling", "dtype")
INT_KEYS = ("batch", "heads", "heads_kv", "head_dim", "head_dim_v", "tokens", "q_tiles",
            "kv_tiles", "dense_kv_tiles_per_q_tile", "kv_tiles_visited_max",
            "tile_pairs_visited", "tile_pairs_full", "tile_pairs_partial", "attended_pairs",
            "flops_dense", "flops_useful", "flops_computed", "flops_wasted")
FLOAT_KEYS = ("flop_speedup", "tile_speedup", "tile_speedup_mean", "sparsity",
              "kv_tiles_visited_mean", "attention_fraction", "e2e_flop_speedup",
              "e2e_tile_speedup")
BOOL_KEYS = ("fully_block_sparse", "natten_fast_path")
FAST_KEYS = frozenset(STRING_KEYS + INT_KEYS + FLOAT_KEYS + BOOL_KEYS + ("notes",))
# Runtime-model columns (flattened RuntimePrediction.to_dict(), plus the end-to-end speedup) the
# batched runtime model (gnasim.cost.predict_runtime_many) computes for a chunk of rows.
RUNTIME_STRING_KEYS = ("bound", "dense_bound", "baseline")
RUNTIME_INT_KEYS = ("predicted_ctas", "masked_tile_pairs")
RUNTIME_BOOL_KEYS = ("masks_every_tile",)
RUNTIME_FLOAT_KEYS = (
    "predicted_time_ms", "predicted_dense_time_ms", "predicted_permute_ms", "predicted_total_ms",
    "predicted_speedup", "predicted_speedup_with_permute", "predicted_waves",
    "predicted_clock_fraction", "tile_time_us", "masked_tile_time_us", "mask_cost_factor",
    "time_components_ms.tensor", "time_components_ms.exp", "time_components_ms.memory",
    "time_components_ms.latency", "speedup_factors.waves", "speedup_factors.masking",
    "speedup_factors.overheads", "speedup_factors.clock", "speedup_factors.baseline",
    "speedup_factors.permute", "e2e_predicted_speedup")
RUNTIME_KEYS = frozenset(RUNTIME_STRING_KEYS + RUNTIME_INT_KEYS + RUNTIME_BOOL_KEYS
                         + RUNTIME_FLOAT_KEYS)
# Columns that identify a configuration (checked on --resume).
IDENTITY_KEYS = ("hardware", "kernel", "input_size", "window_size", "stride", "dilation",
                 "causal", "q_tile", "kv_tile", "kv_tiling", "batch", "heads", "heads_kv",
                 "head_dim", "head_dim_v", "dtype", "attention_fraction")

DEFAULT_CHUNK_ROWS = 32768
PARALLEL_MIN_ROWS = 300_000      # below this, one process is faster than starting workers
_EXACT_FLOAT = 2 ** 53           # ints below this convert to float64 exactly
_INT64_MAX = 2 ** 63 - 1

# per-axis statistics, in this column order
_STATS = ("vsum", "fsum", "vmax", "att", "qt", "kvt", "dvmax", "dvsum", "datt", "fast")
_S = {name: i for i, name in enumerate(_STATS)}


# -- parsing ---------------------------------------------------------------------------------

_TOKEN_SPLIT = re.compile(r"[\sx]+")


def _parse_value_set(token: str, name: str, minimum: int, allow_all: bool) -> ValueSet:
    token = token.strip().lower()
    if token == ALL:
        if not allow_all:
            raise ConfigError(f"{name}: 'all' is not allowed here")
        return (ALL,)
    values: list[int] = []
    for part in token.split(","):
        part = part.strip()
        if part in ("true", "false") and minimum == 0:
            values.append(int(part == "true"))
            continue
        try:
            bits = [int(b) for b in part.split(":")]
        except ValueError:
            bits = []
        if len(bits) not in (1, 2, 3) or (len(bits) == 3 and bits[2] < 1):
            raise ConfigError(f"{name}: '{part}' is not an integer, a range a:b[:step]"
                              f"{' or all' if allow_all else ''}")
        if len(bits) == 1:
            values.append(bits[0])
            continue
        lo, hi = bits[0], bits[1]
        if hi < lo:
            raise ConfigError(f"{name}: range '{part}' is empty (end before start)")
        values.extend(range(lo, hi + 1, bits[2] if len(bits) == 3 else 1))
    for v in values:
        if v < minimum:
            raise ConfigError(f"{name}: values must be >= {minimum}, got {v}")
        if minimum == 0 and v > 1:
            raise ConfigError(f"{name}: values must be 0 or 1, got {v}")
    return tuple(dict.fromkeys(values))


def parse_axis_grid(text: Any, name: str, minimum: int = 1, allow_all: bool = False) -> AxisGrid:
    """``"1:16 1 8"`` -> ``((1, ..., 16), (1,), (8,))``; a list gives one entry per axis."""
    if isinstance(text, bool):
        text = int(text)
    if isinstance(text, int):
        tokens = [str(text)]
    elif isinstance(text, str):
        tokens = [t for t in _TOKEN_SPLIT.split(text.strip()) if t]
    elif isinstance(text, (list, tuple)):
        tokens = []
        for v in text:
            if isinstance(v, bool):
                v = int(v)
            if not isinstance(v, (int, str)):
                raise ConfigError(f"{name}: expected integers or strings per axis, got {v!r}")
            tokens.append(str(v))
    else:
        raise ConfigError(f"{name}: expected a string, an integer or a list, got {text!r}")
    if not tokens:
        raise ConfigError(f"{name}: no values given")
    return tuple(_parse_value_set(t, name, minimum, allow_all) for t in tokens)


def _is_multi_axis_string(v: Any) -> bool:
    return isinstance(v, str) and len([t for t in _TOKEN_SPLIT.split(v.strip()) if t]) > 1


def parse_axis_field(value: Any, name: str, minimum: int = 1,
                     allow_all: bool = False) -> tuple[AxisGrid, ...]:
    """One or more axis grids: a string/int (one grid), a list of per-axis values (one grid), a
    list of lists or of multi-axis strings (alternatives)."""
    if isinstance(value, Alternatives):
        return tuple(parse_axis_grid(v, name, minimum, allow_all) for v in value)
    if isinstance(value, (list, tuple)) and value and (
            all(isinstance(v, (list, tuple)) for v in value)
            or all(_is_multi_axis_string(v) for v in value)):
        return tuple(parse_axis_grid(v, name, minimum, allow_all) for v in value)
    return (parse_axis_grid(value, name, minimum, allow_all),)


def _as_list(value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return [value]


def _parse_int_list(value: Any, name: str) -> tuple[int, ...]:
    out = []
    for v in _as_list(value):
        if isinstance(v, bool):
            raise ConfigError(f"{name}: expected integers, got {v!r}")
        try:
            iv = int(v)
            if isinstance(v, float) and not v.is_integer():
                raise ValueError
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected integers, got {v!r}") from None
        if iv < 1:
            raise ConfigError(f"{name}: must be >= 1, got {iv}")
        out.append(iv)
    if not out:
        raise ConfigError(f"{name}: no values given")
    return tuple(dict.fromkeys(out))


def _parse_float_list(value: Any, name: str) -> tuple[float, ...]:
    out = []
    for v in _as_list(value):
        if isinstance(v, bool):
            raise ConfigError(f"{name}: expected numbers, got {v!r}")
        try:
            fv = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected numbers, got {v!r}") from None
        if not 0.0 <= fv <= 1.0:
            raise ConfigError(f"{name}: must be in [0, 1], got {fv}")
        out.append(fv)
    return tuple(dict.fromkeys(out))


def _scalar_int(value: Any, name: str, minimum: int = 1, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or value is None:
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    try:
        iv = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if iv < minimum:
        raise ConfigError(f"{name}: must be >= {minimum}, got {iv}")
    return iv


def _parse_tiles(value: Any, name: str) -> str | tuple:
    if value is None:
        return "default"
    items = _as_list(value) if not isinstance(value, str) else value.split()
    if len(items) == 1 and str(items[0]).lower() in ("all", "default"):
        return str(items[0]).lower()
    pairs = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{name}: expected 'all', 'default' or Q/KV tile pairs like "
                              f"4x8x8/2x8x8, got {item!r}")
        try:
            pairs.append(parse_tile_pair(item))
        except ValueError as err:
            raise ConfigError(f"{name}: {err}") from None
    return tuple(dict.fromkeys(pairs))


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep grid (see the module docstring for the per-axis syntax)."""

    input_size: tuple[AxisGrid, ...]
    window_size: tuple[AxisGrid, ...]
    stride: tuple[AxisGrid, ...] = (((1,),),)
    dilation: tuple[AxisGrid, ...] = (((1,),),)
    causal: tuple[AxisGrid, ...] = (((0,),),)
    tiles: Any = "default"                     # "default", "all" or ((q, kv), ...)
    q_tile: tuple[AxisGrid, ...] | None = None
    kv_tile: tuple[AxisGrid, ...] | None = None
    hardware: tuple[str | None, ...] = ("h100",)
    kernel: Any = (None,)                      # (None,) = each profile's default, or "all"
    kv_tiling: str | None = None
    head_dim: tuple[int, ...] = (128,)
    head_dim_v: int | None = None
    batch: int = 1
    heads: int = 1
    heads_kv: int | None = None
    dtype: str = "fp16"
    attention_fraction: tuple[float, ...] = ()
    full_attention_steps: int = 0
    total_steps: int | None = None
    bounds_only: bool = False                  # skip the runtime model's per-row columns


# spec keys (canonical name first) and accepted aliases
SPEC_KEYS = {
    "input_size": ("input_size", "layout", "input-size"),
    "window_size": ("window_size", "window", "window-size"),
    "stride": ("stride", "strides"),
    "dilation": ("dilation", "dilations"),
    "causal": ("causal",),
    "tiles": ("tiles",),
    "q_tile": ("q_tile", "q-tile"),
    "kv_tile": ("kv_tile", "kv-tile"),
    "hardware": ("hardware",),
    "kernel": ("kernel", "backend"),
    "kv_tiling": ("kv_tiling", "kv-tiling"),
    "head_dim": ("head_dim", "dim", "head-dim"),
    "head_dim_v": ("head_dim_v", "dim_value", "dim-value"),
    "batch": ("batch", "batch_size", "batch-size"),
    "heads": ("heads",),
    "heads_kv": ("heads_kv", "heads-kv"),
    "dtype": ("dtype",),
    "attention_fraction": ("attention_fraction", "attention-fraction"),
    "full_attention_steps": ("full_attention_steps", "full-attention-steps"),
    "total_steps": ("total_steps", "total-steps"),
    "bounds_only": ("bounds_only", "bounds-only"),
    "out": ("out",),
}
_ALIAS = {alias: key for key, aliases in SPEC_KEYS.items() for alias in aliases}


def canonical_keys(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Map aliases to canonical keys; unknown or repeated keys are errors naming the key."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        canon = _ALIAS.get(str(key))
        if canon is None:
            raise ConfigError(f"{where}: unknown key '{key}' (known keys: {', '.join(SPEC_KEYS)})")
        if canon in out:
            raise ConfigError(f"{where}: key '{key}' given twice (as '{canon}' and an alias)")
        out[canon] = value
    return out


class Alternatives(list):
    """Values of a per-axis field given several times (``-s 1 8 8 -s 2 8 8``): each one is a
    separate axis grid, never one per-axis vector."""


def spec_from_mapping(data: dict[str, Any], where: str | None = None,
                      labels: dict[str, str] | None = None) -> SweepSpec:
    """Validate a mapping of canonical keys (from a spec file, the CLI or Python).

    Every error names the offending key: ``spec sweep.toml: key 'stride': ...`` (``where`` is
    the file), or ``labels[key]`` (the command-line flag), or the key itself.
    """
    data = canonical_keys(data, where or "sweep")
    data.pop("out", None)
    labels = labels or {}
    prefix = lambda k: labels.get(k) or (f"{where}: key '{k}'" if where else k)

    def parse(key: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(data[key], key, *args)
        except ConfigError as err:
            msg = str(err)
            msg = msg[len(key) + 2:] if msg.startswith(f"{key}: ") else msg
            raise ConfigError(f"{prefix(key)}: {msg}") from None

    kw: dict[str, Any] = {}
    for key in ("input_size", "window_size"):
        if data.get(key) is None:
            raise ConfigError(f"{prefix(key)}: required")
    kw["input_size"] = parse("input_size", parse_axis_field, 1, False)
    kw["window_size"] = parse("window_size", parse_axis_field, 1, True)
    for key, minimum in (("stride", 1), ("dilation", 1), ("causal", 0)):
        if data.get(key) is not None:
            kw[key] = parse(key, parse_axis_field, minimum, True)
    for key in ("q_tile", "kv_tile"):
        if data.get(key) is not None:
            kw[key] = parse(key, parse_axis_field, 1, False)
    if data.get("tiles") is not None:
        kw["tiles"] = parse("tiles", lambda v, k: _parse_tiles(v, k))
        if kw["tiles"] != "default" and ("q_tile" in kw or "kv_tile" in kw):
            raise ConfigError(f"{prefix('tiles')}: give either tiles or q_tile/kv_tile, not both")
    if data.get("hardware") is not None:
        hw = [None if str(h).lower() == "none" else str(h) for h in _as_list(data["hardware"])]
        if not hw:
            raise ConfigError(f"{prefix('hardware')}: no values given")
        for h in hw:
            if h is not None:
                try:
                    load_profile(h)
                except GnasimError as err:
                    raise ConfigError(f"{prefix('hardware')}: {str(err).removeprefix('hardware: ')}") from None
        kw["hardware"] = tuple(dict.fromkeys(hw))
    if data.get("kernel") is not None:
        ks = [str(k) for k in _as_list(data["kernel"])]
        kw["kernel"] = "all" if ks == ["all"] else tuple(dict.fromkeys(ks))
    if data.get("kv_tiling") is not None:
        if data["kv_tiling"] not in KV_TILINGS:
            raise ConfigError(f"{prefix('kv_tiling')}: '{data['kv_tiling']}' is not one of {list(KV_TILINGS)}")
        kw["kv_tiling"] = data["kv_tiling"]
    if data.get("head_dim") is not None:
        kw["head_dim"] = parse("head_dim", _parse_int_list)
    for key in ("batch", "heads"):
        if data.get(key) is not None:
            kw[key] = parse(key, _scalar_int)
    for key in ("heads_kv", "head_dim_v", "total_steps"):
        if data.get(key) is not None:
            kw[key] = parse(key, _scalar_int)
    if data.get("full_attention_steps") is not None:
        kw["full_attention_steps"] = parse("full_attention_steps", _scalar_int, 0)
    if data.get("attention_fraction") is not None:
        kw["attention_fraction"] = parse("attention_fraction", _parse_float_list)
    if data.get("dtype") is not None:
        kw["dtype"] = str(data["dtype"])
    if data.get("bounds_only") is not None:
        if not isinstance(data["bounds_only"], bool):
            raise ConfigError(f"{prefix('bounds_only')}: expected true or false, got {data['bounds_only']!r}")
        kw["bounds_only"] = data["bounds_only"]
    spec = SweepSpec(**kw)
    # scalar fields: validated once by the real config model, so the rules cannot drift
    for hd in spec.head_dim:
        try:
            cfg = GNAConfig(input_size=(2,), window_size=(2,), batch=spec.batch, heads=spec.heads,
                            heads_kv=spec.heads_kv, head_dim=hd, head_dim_v=spec.head_dim_v,
                            dtype=spec.dtype)
        except ConfigError as err:
            key = str(err).split(":")[0]
            raise ConfigError(f"{prefix(key)}: {str(err).split(': ', 1)[-1]}") from None
    spec = SweepSpec(**{**kw, "dtype": cfg.dtype})
    if spec.attention_fraction:
        try:
            effective_fraction(spec.attention_fraction[0], spec.full_attention_steps, spec.total_steps)
        except ConfigError as err:
            key = str(err).split(":")[0]
            raise ConfigError(f"{prefix(key)}: {str(err).split(': ', 1)[-1]}") from None
    elif spec.full_attention_steps or spec.total_steps is not None:
        raise ConfigError(f"{prefix('attention_fraction')}: required when full_attention_steps "
                          "or total_steps is given")
    return spec


def load_spec_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a TOML or YAML spec file into a mapping (one ``[sweep]`` table is unwrapped)."""
    path = Path(path)
    where = f"spec {path}"
    try:
        text = path.read_text()
    except OSError as err:
        raise ConfigError(f"spec: cannot read '{path}': {err.strerror}") from None
    suffix = path.suffix.lower()
    if suffix == ".toml":
        import tomllib
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{where}: not valid TOML: {err}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{where}: reading YAML needs PyYAML (pip install pyyaml)") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            line = getattr(getattr(err, "problem_mark", None), "line", None)
            at = f" (line {line + 1})" if line is not None else ""
            raise ConfigError(f"{where}: not valid YAML{at}") from None
    else:
        raise ConfigError(f"spec: '{path}' must end in .toml, .yaml or .yml")
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys at the top level")
    if set(data) == {"sweep"} and isinstance(data["sweep"], dict):
        data = data["sweep"]
    return canonical_keys(data, where)


# -- per-axis statistics ----------------------------------------------------------------------

_STATS_CACHE: dict[tuple, tuple[int, ...]] = {}


def axis_stats_many(keys: list[tuple]) -> list[tuple[int, ...]]:
    """Per-axis factors (see ``_STATS``) of many axis options ``(L, K, S, D, causal, qt, kvt,
    mode)``: visited/full tile sums, worst Q tile, attended keys, Q/KV tiles, the same axis of the
    dense (self-attention) baseline, and NATTEN's fast-path predicate for the axis. The plans
    missing from the cache are computed together (:func:`gnasim.tiling.axis_plans`)."""
    missing = [k for k in dict.fromkeys(keys) if k not in _STATS_CACHE]
    if missing:
        dense = [(k[0], k[0], 1, 1, k[4], k[5], k[6], k[7]) for k in missing]
        plans = axis_plans(missing + dense)
        n = len(missing)
        for key, p, d in zip(missing, plans[:n], plans[n:]):
            L, K, S, D, c, qt, kvt, _ = key
            axis_cfg = SimpleNamespace(rank=1, input_size=(L,), window_size=(K,), stride=(S,),
                                       dilation=(D,), causal=(c,), q_tile=(qt,), kv_tile=(kvt,))
            _STATS_CACHE[key] = (p.visited_sum, p.full_sum, p.visited_max, p.attended,
                                 D * p.q_tiles_per_group, D * p.kv_tiles_per_group,
                                 d.visited_max, d.visited_sum, d.attended,
                                 int(natten_fast_path(axis_cfg)))
    return [_STATS_CACHE[k] for k in keys]


def axis_stats(length: int, window: int, stride: int, dilation: int, causal: bool,
               q_tile: int, kv_tile: int, mode: str = "static") -> tuple[int, ...]:
    """Per-axis factors of one axis option (see :func:`axis_stats_many`)."""
    return axis_stats_many([(length, window, stride, dilation, bool(causal), q_tile, kv_tile,
                             mode)])[0]


def axis_rule(length: int, window: int, stride: int, dilation: int) -> str | None:
    """Why an axis option is invalid (the rules of :class:`GNAConfig`), or None."""
    if window < 2:
        return "window < 2"
    if window > length:
        return "window > input_size"
    if stride > window:
        return "stride > window"
    if window * dilation > length:
        return "window x dilation > input_size"
    return None


def _axis_values(vs: ValueSet, kind: str, length: int, window: int | None) -> tuple[int, ...]:
    if vs != (ALL,):
        return vs
    if kind == "window":
        return tuple(range(2, length + 1))
    if kind == "stride":
        return tuple(range(1, window + 1))
    if kind == "dilation":
        return tuple(range(1, max(1, length // window) + 1))
    return (0, 1)   # causal


def _broadcast_grid(grid: AxisGrid, rank: int) -> AxisGrid | None:
    if len(grid) == 1:
        return grid * rank
    return grid if len(grid) == rank else None


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
    from .simulate import resolve_tiles, simulate

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
    from .cost import Rates, dense_side, resolve_kernel, runtime_model
    from .tiling import tile_plans

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
    from .cost import LaunchBatch, predict_runtime_many

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
    from .simulate import simulate

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


def sweep_table(spec: SweepSpec, fmt: str = "parquet"):
    """The whole sweep as one pyarrow Table (in memory: for small sweeps and notebooks)."""
    pa, _ = _arrow()
    plan = plan_sweep(spec)
    check_probes(plan)
    tables = [compute_chunk(plan, bi, lo, hi, fmt) for bi, lo, hi in iter_chunks(plan)]
    if not tables:
        return pa.table({c: pa.array([], column_type(c, fmt) or pa.string()) for c in plan.columns})
    return pa.concat_tables(tables)


def sweep_frame(spec: SweepSpec | dict[str, Any]):
    """The whole sweep as a pandas DataFrame (``notes`` as lists, like ``to_dict()``)."""
    if isinstance(spec, dict):
        spec = spec_from_mapping(spec)
    return sweep_table(spec).to_pandas()


# -- writing ------------------------------------------------------------------------------------

def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ConfigError(f"out: '{path.name}' must end in .csv or .parquet")


def _partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class _CsvSink:
    def __init__(self, out: Path, header: bytes):
        self.out, self.partial, self.header = out, _partial_path(out), header
        self.fd: int | None = None

    def existing(self) -> tuple[Path | None, int]:
        """The file to resume from and its complete data rows (a torn last line is dropped)."""
        for src in (self.partial, self.out):
            if src.is_file():
                with open(src, "rb") as fh:
                    first = fh.readline()
                if first and first != self.header:
                    raise ConfigError(f"resume: {src} has other columns than this sweep "
                                      "(run without --resume to overwrite it)")
                _truncate_torn_tail(src)
                return src, _count_complete_rows(src)
        return None, 0

    def open(self, resume_from: Path | None) -> None:
        if resume_from is not None:
            if resume_from != self.partial:
                os.replace(resume_from, self.partial)
            self.fd = os.open(self.partial, os.O_WRONLY | os.O_APPEND)
            if os.fstat(self.fd).st_size == 0:
                os.write(self.fd, self.header)
        else:
            self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self.fd, self.header)

    def write(self, payload: bytes) -> None:
        # one write() of whole lines: a regular-file write is not torn by Ctrl-C
        view = memoryview(payload)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def close(self, publish: bool) -> None:
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
        if publish:
            os.replace(self.partial, self.out)


class _ParquetSink:
    def __init__(self, out: Path, schema):
        self.out, self.partial, self.schema = out, _partial_path(out), schema
        self.writer = None

    def existing(self) -> tuple[Path | None, int]:
        import pyarrow.parquet as pq
        for src in (self.partial, self.out):
            if src.is_file():
                try:
                    meta = pq.ParquetFile(src)
                except Exception:   # a hard-killed .partial has no footer: not resumable
                    continue
                if meta.schema_arrow.names != self.schema.names:
                    raise ConfigError(f"resume: {src} has other columns than this sweep "
                                      "(run without --resume to overwrite it)")
                return src, meta.metadata.num_rows
        return None, 0

    def open(self, resume_from: Path | None) -> None:
        import pyarrow.parquet as pq
        tmp = None
        if resume_from is not None and resume_from == self.partial:
            tmp = self.partial.with_name(self.partial.name + ".old")
            os.replace(self.partial, tmp)
            resume_from = tmp
        self.writer = pq.ParquetWriter(self.partial, self.schema)
        if resume_from is not None:
            src = pq.ParquetFile(resume_from)
            for i in range(src.num_row_groups):           # row group by row group: flat memory
                self.writer.write_table(src.read_row_group(i).cast(self.schema))
        if tmp is not None:
            tmp.unlink()

    def write(self, table) -> None:
        self.writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)

    def close(self, publish: bool) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if publish:
            os.replace(self.partial, self.out)


def _count_complete_rows(path: Path) -> int:
    lines = 0
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(1 << 24)
            if not buf:
                break
            lines += buf.count(b"\n")
    return max(lines - 1, 0)


def _truncate_torn_tail(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as fh:
        pos = size
        while pos > 0:
            step = min(pos, 1 << 16)
            fh.seek(pos - step)
            buf = fh.read(step)
            nl = buf.rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                if keep != size:
                    fh.truncate(keep)
                return
            pos -= step
        fh.truncate(0)


def csv_header(columns: Sequence[str]) -> bytes:
    """The header line pyarrow's CSV writer puts above these columns."""
    return (",".join('"' + c.replace('"', '""') + '"' for c in columns) + "\n").encode()


def _csv_bytes(table, header: bool = False) -> bytes:
    import io

    import pyarrow.csv as pacsv
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=header))
    return buf.getvalue()


def _schema(plan: SweepPlan, fmt: str):
    pa, _ = _arrow()
    fields = []
    for key in plan.columns:
        t = column_type(key, fmt)
        if t is None:    # a column only simulate() knows: type of its first value
            t = compute_chunk(plan, 0, 0, 1, fmt, [key]).schema.field(key).type
            if t == pa.null():
                t = pa.string()
        fields.append(pa.field(key, t))
    return pa.schema(fields)


# worker processes ------------------------------------------------------------------------------
_WORKER_PLAN: SweepPlan | None = None


def _worker_init(plan: SweepPlan) -> None:
    global _WORKER_PLAN
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles Ctrl-C
    _WORKER_PLAN = plan


def _worker_chunk(bi: int, lo: int, hi: int, fmt: str):
    table = compute_chunk(_WORKER_PLAN, bi, lo, hi, fmt)
    return _csv_bytes(table) if fmt == "csv" else table


@dataclass
class SweepSummary:
    out: str
    format: str
    combinations: int
    rows: int
    invalid: dict[str, int]
    skipped_groups: list[str]
    written: int
    resumed_rows: int
    seconds: float
    jobs: int
    interrupted: bool
    slow_columns: list[str]

    @property
    def rows_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["invalid_total"] = sum(self.invalid.values())
        d["rows_per_second"] = self.rows_per_second
        return d


def _existing_batches(src: Path, fmt: str, keys: list[str], chunk_rows: int) -> Iterator:
    """Identity columns of an existing output, streamed batch by batch."""
    pa, _ = _arrow()
    if fmt == "csv":
        import pyarrow.csv as pacsv
        types = {k: column_type(k, "csv") for k in keys}
        reader = pacsv.open_csv(src, convert_options=pacsv.ConvertOptions(
            include_columns=keys, column_types=types, strings_can_be_null=False))
        for batch in reader:
            yield pa.Table.from_batches([batch])
    else:
        import pyarrow.parquet as pq
        for batch in pq.ParquetFile(src).iter_batches(batch_size=chunk_rows, columns=keys):
            yield pa.Table.from_batches([batch])


def _verify_prefix(plan: SweepPlan, src: Path, fmt: str, n_rows: int, chunk_rows: int) -> None:
    """The rows already in ``src`` must be this sweep's first rows (identity columns compared)."""
    pa, pc = _arrow(compute=True)
    keys = [k for k in IDENTITY_KEYS if k in plan.columns]
    if n_rows > plan.rows:
        raise ConfigError(f"resume: {src} has {n_rows:,} rows but this sweep has only "
                          f"{plan.rows:,} (run without --resume to overwrite it)")
    stream = _existing_batches(src, fmt, keys, chunk_rows)
    buffer = None
    pos = 0
    for bi, lo, hi in iter_chunks(plan, chunk_rows):
        if pos >= n_rows:
            break
        hi = min(hi, lo + (n_rows - pos))
        while buffer is None or buffer.num_rows < hi - lo:
            nxt = next(stream, None)
            if nxt is None:
                raise ConfigError(f"resume: {src} ended early; run without --resume")
            buffer = nxt if buffer is None else pa.concat_tables([buffer, nxt])
        have, buffer = buffer.slice(0, hi - lo), buffer.slice(hi - lo)
        want = compute_chunk(plan, bi, lo, hi, fmt, keys)
        for k in keys:
            a, b = want.column(k), have.column(k).cast(want.schema.field(k).type)
            if a.type == pa.string():
                a, b = pc.fill_null(a, ""), pc.fill_null(b, "")
            if not a.equals(b):
                first = pc.index(pc.not_equal(a, b), True).as_py()
                raise ConfigError(
                    f"resume: row {pos + first + 1:,} of {src} has {k} = {b[first].as_py()!r}, "
                    f"but this sweep's row has {a[first].as_py()!r}; run without --resume "
                    "to overwrite it")
        pos += hi - lo


class _StopFlag:
    """Ctrl-C / SIGTERM: finish the chunk being written, then stop (a second one stops at once)."""

    def __init__(self) -> None:
        self.stop = False
        self.saved: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __enter__(self) -> "_StopFlag":
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)


def run_sweep(spec: SweepSpec, out: str | os.PathLike, resume: bool = False,
              jobs: int | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
              progress: Callable[[int, int], None] | None = None,
              show_progress: bool = False) -> SweepSummary:
    """Run a sweep into ``out`` (.csv or .parquet).

    Rows go to ``out.partial`` in whole chunks; the file is renamed over ``out`` when the sweep
    ends or is interrupted (Ctrl-C, SIGTERM, or ``progress(done, total)`` raising
    KeyboardInterrupt), so ``out`` is always a complete table. ``resume=True`` keeps the rows
    already written (``out.partial`` if a hard kill left one, else ``out``) after checking that
    they are this sweep's first rows.
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    if chunk_rows < 1:
        raise ConfigError(f"chunk_size: must be >= 1, got {chunk_rows}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs: must be >= 1, got {jobs}")
    if not out.parent.is_dir():
        raise ConfigError(f"out: directory '{out.parent}' does not exist")
    plan = plan_sweep(spec)
    total = plan.rows
    if total == 0:
        why = ", ".join(f"{n:,} {r}" for r, n in plan.invalid.most_common()) or \
            "; ".join(plan.skipped) or "the grid is empty"
        raise ConfigError(f"sweep: no valid configuration in the grid ({why})")
    check_probes(plan)
    schema = _schema(plan, fmt)
    if fmt == "csv":
        sink: Any = _CsvSink(out, csv_header(plan.columns))
    else:
        sink = _ParquetSink(out, schema)
    done = 0
    src = None
    if resume:
        src, done = sink.existing()
        if src is not None and done:
            _verify_prefix(plan, src, fmt, done, chunk_rows)
    resumed = done
    if jobs is None:
        # per-row simulate() (~ms a row) pays for worker processes much sooner
        threshold = PARALLEL_MIN_ROWS if not plan.slow_columns else 256
        jobs = min(os.cpu_count() or 1, 8) if total - done >= threshold else 1
        if plan.slow_columns:
            chunk_rows = min(chunk_rows, max(64, (total - done) // (4 * jobs)))
    sink.open(src)
    interrupted = False
    bar = _progress_bar(show_progress, total, done)
    pool = None
    try:
        with _StopFlag() as flag:
            chunks = iter_chunks(plan, chunk_rows, start=done)
            if jobs > 1:
                pool = _parallel(plan, chunks, fmt, jobs)
                results: Any = pool
            else:
                results = ((hi - lo, _csv_bytes(compute_chunk(plan, bi, lo, hi, fmt))
                            if fmt == "csv" else compute_chunk(plan, bi, lo, hi, fmt))
                           for bi, lo, hi in chunks)
            for n, payload in results:
                sink.write(payload)
                done += n
                if bar is not None:
                    bar[0].update(bar[1], completed=done)
                if progress is not None:
                    progress(done, total)
                if flag.stop:
                    interrupted = True
                    break
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        # keep out.partial (complete chunks, resumable) and leave out untouched
        sink.close(publish=False)
        raise
    finally:
        if pool is not None:
            pool.close()
        if bar is not None:
            bar[0].stop()
    sink.close(publish=True)
    return SweepSummary(
        out=str(out), format=fmt, combinations=plan.combinations, rows=total,
        invalid=dict(plan.invalid.most_common()), skipped_groups=plan.skipped,
        written=done - resumed, resumed_rows=resumed, seconds=time.perf_counter() - t0,
        jobs=jobs, interrupted=interrupted, slow_columns=plan.slow_columns)


class _parallel:
    """Ordered results from a process pool, with at most 2 x jobs chunks in flight."""

    def __init__(self, plan: SweepPlan, chunks: Iterator, fmt: str, jobs: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork") if sys.platform != "win32" else None
        self.ex = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                                      initargs=(plan,))
        self.chunks, self.fmt, self.depth = chunks, fmt, 2 * jobs

    def __iter__(self):
        from collections import deque
        pending: deque = deque()
        for bi, lo, hi in self.chunks:
            pending.append((hi - lo, self.ex.submit(_worker_chunk, bi, lo, hi, self.fmt)))
            if len(pending) >= self.depth:
                n, fut = pending.popleft()
                yield n, fut.result()
        while pending:
            n, fut = pending.popleft()
            yield n, fut.result()

    def close(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)


def _progress_bar(show: bool, total: int, done: int):
    if not show:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)
    console = Console(stderr=True)
    if not console.is_terminal:
        return None
    prog = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)
    task = prog.add_task("sweep", total=total, completed=done)
    prog.start()
    return prog, task
