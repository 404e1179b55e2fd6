"""The sweep grammar: axis grids, spec keys, TOML/YAML spec files, the axis rules."""

from __future__ import annotations


import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from gnasim.bounds import effective_fraction
from gnasim.config import GNAConfig, parse_tile_pair
from gnasim.errors import ConfigError, GnasimError
from gnasim.hardware.profile import load_profile
from gnasim.plan.tiling import KV_TILINGS
from gnasim.prediction import TILINGS



ALL = "all"
ValueSet = tuple  # tuple[int, ...] or (ALL,)
AxisGrid = tuple  # tuple[ValueSet, ...], one value set per axis (or one, broadcast)


# -- parsing ---------------------------------------------------------------------------------

_TOKEN_SPLIT = re.compile(r"[\sx]+")


# At most this many values per axis grid: a sweep's grid is listed value by value, so a range
# like 1:1000000000 is refused before anything is allocated.
MAX_GRID_VALUES = 1_000_000


def _range_size(lo: int, hi: int, step: int) -> int:
    return (hi - lo) // step + 1


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
        size = _range_size(lo, hi, bits[2] if len(bits) == 3 else 1)
        if len(values) + size > MAX_GRID_VALUES:
            raise ConfigError(f"{name}: range '{part}' lists {size:,} values; a sweep grid takes at "
                              f"most {MAX_GRID_VALUES:,} per axis")
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
    if isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    try:
        iv = int(value)
    except (TypeError, ValueError, OverflowError):
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


def _parse_tiling(value: Any, name: str) -> str:
    text = str(value).strip().lower()
    if text not in TILINGS:
        raise ConfigError(f"{name}: '{value}' is not one of {list(TILINGS)}")
    return text


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
    head_dim: tuple[int, ...] = (64,)               # NATTEN profiler's default
    head_dim_v: int | None = None
    batch: int = 1
    heads: int = 1
    heads_kv: int | None = None
    dtype: str = "fp16"
    attention_fraction: tuple[float, ...] = ()
    full_attention_steps: int = 0
    total_steps: int | None = None
    bounds_only: bool = False                  # skip the runtime model's per-row columns
    tiling: str = "multi-dim"                  # or "flat": q_tile/kv_tile are token counts


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
    "tiling": ("tiling",),
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
    if data.get("tiling") is not None:
        kw["tiling"] = parse("tiling", _parse_tiling)
        if kw["tiling"] == "flat":
            for key in ("q_tile", "kv_tile"):
                for g in kw.get(key, ()):
                    if len(g) != 1:
                        raise ConfigError(f"{prefix(key)}: flat tiling takes token counts (one "
                                          f"value set per tile, e.g. 64,128), got {len(g)} axes")
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
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{where}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at "
                          f"offset {err.start})") from None
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


def axis_values(vs: ValueSet, kind: str, length: int, window: int | None) -> tuple[int, ...]:
    if vs != (ALL,):
        return vs
    if kind == "causal":
        return (0, 1)
    lo, hi = {"window": (2, length), "stride": (1, window or 1),
              "dilation": (1, max(1, length // (window or 1)))}[kind]
    if hi - lo + 1 > MAX_GRID_VALUES:
        name = {"window": "window_size", "stride": "stride", "dilation": "dilation"}[kind]
        raise ConfigError(f"{name}: 'all' lists {hi - lo + 1:,} values here (input_size {length}); "
                          f"a sweep grid takes at most {MAX_GRID_VALUES:,} per axis")
    return tuple(range(lo, hi + 1))


def broadcast_grid(grid: AxisGrid, rank: int) -> AxisGrid | None:
    if len(grid) == 1:
        return grid * rank
    return grid if len(grid) == rank else None


