"""The GNA problem configuration: validated once at the edge, then passed inward as clean tuples."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from gnasim.errors import ConfigError

DTYPE_BYTES: dict[str, int] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1}
_DTYPE_ALIASES = {
    "float32": "fp32", "float": "fp32", "fp32": "fp32",
    "float16": "fp16", "half": "fp16", "fp16": "fp16",
    "bfloat16": "bf16", "bf16": "bf16",
    "fp8": "fp8", "e4m3": "fp8", "e5m2": "fp8", "fp8_e4m3": "fp8", "fp8_e5m2": "fp8",
}
KVTiling = Literal["static", "dynamic"]
_AXIS_FIELDS = ("window_size", "stride", "dilation", "causal", "q_tile", "kv_tile")


def parse_ints(value: Any, name: str) -> tuple[int, ...]:
    """Turn ``8``, ``"30x48x80"``, ``"30,48,80"``, ``"30 48 80"`` or a sequence into a tuple of ints."""
    if isinstance(value, str):
        parts = value.replace("x", " ").replace(",", " ").split()
        if not parts:
            raise ConfigError(f"{name}: no values given")
        try:
            return tuple(int(p) for p in parts)
        except ValueError:
            raise ConfigError(f"{name}: '{value}' is not a list of integers") from None
    if isinstance(value, bool):
        return (int(value),)
    if isinstance(value, int):
        return (value,)
    try:
        out = tuple(value)
    except TypeError:
        raise ConfigError(f"{name}: expected an integer or a list of integers, got {value!r}") from None
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                continue
            raise ConfigError(f"{name}: expected integers, got {v!r}")
    return tuple(int(v) for v in out)


TilePair = tuple[tuple[int, ...], tuple[int, ...]]


@lru_cache(maxsize=4096)
def parse_tile_pair(text: str) -> TilePair:
    """``"4x4x8/2x8x8"`` -> ((4, 4, 8), (2, 8, 8)); raises :class:`ConfigError` on anything else."""
    try:
        q, kv = text.split("/")
        qs = tuple(int(v) for v in q.split("x"))
        kvs = tuple(int(v) for v in kv.split("x"))
    except ValueError:
        raise ConfigError(f"tile shape '{text[:80]}' is not of the form QxQ/KVxKV") from None
    if len(qs) != len(kvs) or min(qs + kvs) < 1:
        raise ConfigError(f"tile shape '{text[:80]}': Q and KV ranks differ or an extent is < 1")
    return qs, kvs


def format_tile(tile: tuple[int, ...] | None) -> str:
    """``(4, 8, 8)`` -> ``"4x8x8"``; ``None`` -> ``""``."""
    return "" if tile is None else "x".join(str(v) for v in tile)


def _broadcast(values: tuple, rank: int, name: str) -> tuple:
    if len(values) == 1:
        return values * rank
    if len(values) != rank:
        raise ConfigError(f"{name}: {len(values)} values given but input_size has {rank} axes")
    return values


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    if first["type"] == "value_error" and "error" in first.get("ctx", {}):
        return str(first["ctx"]["error"])
    loc = ".".join(str(p) for p in first["loc"]) or "config"
    return f"{loc}: {first['msg']}"


class GNAConfig(BaseModel):
    """One GNA problem: token layout, per-axis window/stride/dilation/causal, tiles and shapes.

    Scalars broadcast to every axis, as NATTEN does. ``q_tile``/``kv_tile`` may be left ``None``
    for a hardware profile to fill in. Invalid input raises :class:`ConfigError`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: tuple[int, ...]
    window_size: tuple[int, ...]
    stride: tuple[int, ...] = (1,)
    dilation: tuple[int, ...] = (1,)
    causal: tuple[bool, ...] = (False,)
    q_tile: tuple[int, ...] | None = None
    kv_tile: tuple[int, ...] | None = None
    batch: int = 1
    heads: int = 1
    heads_kv: int | None = None
    head_dim: int = 128
    head_dim_v: int | None = None
    dtype: str = "fp16"

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise ConfigError(_one_line(err)) from None

    @model_validator(mode="before")
    @classmethod
    def _normalise(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ConfigError("config: expected a mapping of parameters")
        data = dict(data)
        for key in ("input_size", "window_size"):
            if data.get(key) is None:
                raise ConfigError(f"{key}: required")
        size = parse_ints(data["input_size"], "input_size")
        rank = len(size)
        data["input_size"] = size
        for key, default in (("stride", 1), ("dilation", 1), ("causal", False)):
            if data.get(key) is None:
                data[key] = default
        for key in _AXIS_FIELDS:
            if data.get(key) is None:
                continue
            if key == "causal":
                raw = data[key]
                if isinstance(raw, str):
                    vals = raw.lower().replace("x", " ").replace(",", " ").split() or [raw]
                elif isinstance(raw, (bool, int)):
                    vals = [raw]
                else:
                    vals = list(raw)
                data[key] = _broadcast(tuple(_as_bool(v) for v in vals), rank, key)
            else:
                data[key] = _broadcast(parse_ints(data[key], key), rank, key)
        if "dtype" in data and isinstance(data["dtype"], str):
            name = data["dtype"].lower()
            if name not in _DTYPE_ALIASES:
                raise ConfigError(f"dtype: '{data['dtype']}' is not one of {sorted(DTYPE_BYTES)}")
            data["dtype"] = _DTYPE_ALIASES[name]
        return data

    @field_validator("batch", "heads", "head_dim")
    @classmethod
    def _positive(cls, v: int, info: Any) -> int:
        if v < 1:
            raise ConfigError(f"{info.field_name}: must be >= 1, got {v}")
        return v

    @model_validator(mode="after")
    def _check_rules(self) -> "GNAConfig":
        rank = self.rank
        if rank < 1:
            raise ConfigError("input_size: at least one axis is required")
        for ax in range(rank):
            L, K = self.input_size[ax], self.window_size[ax]
            S, D = self.stride[ax], self.dilation[ax]
            where = f"(axis {ax})"
            if L < 1:
                raise ConfigError(f"input_size {where}: must be >= 1, got {L}")
            if K < 2:
                raise ConfigError(f"window_size {where}: must be >= 2, got {K}")
            if K > L:
                raise ConfigError(f"window_size {where}: {K} is larger than input_size {L}")
            if S < 1:
                raise ConfigError(f"stride {where}: must be >= 1, got {S}")
            if S > K:
                raise ConfigError(f"stride {where}: {S} is larger than window_size {K}")
            if D < 1:
                raise ConfigError(f"dilation {where}: must be >= 1, got {D}")
            if K * D > L:
                raise ConfigError(
                    f"dilation {where}: window_size x dilation = {K}x{D} = {K * D} is larger "
                    f"than input_size {L}")
        for key in ("q_tile", "kv_tile"):
            tile = getattr(self, key)
            if tile is None:
                continue
            for ax, t in enumerate(tile):
                if t < 1:
                    raise ConfigError(f"{key} (axis {ax}): must be >= 1, got {t}")
        if self.heads_kv is not None:
            if self.heads_kv < 1:
                raise ConfigError(f"heads_kv: must be >= 1, got {self.heads_kv}")
            if self.heads % self.heads_kv:
                raise ConfigError(
                    f"heads_kv: heads ({self.heads}) must be a multiple of heads_kv ({self.heads_kv})")
        if self.head_dim_v is not None and self.head_dim_v < 1:
            raise ConfigError(f"head_dim_v: must be >= 1, got {self.head_dim_v}")
        return self

    @property
    def rank(self) -> int:
        return len(self.input_size)

    @property
    def tokens(self) -> int:
        return int(_prod(self.input_size))

    @property
    def dim_v(self) -> int:
        return self.head_dim_v if self.head_dim_v is not None else self.head_dim

    @property
    def kv_heads(self) -> int:
        return self.heads_kv if self.heads_kv is not None else self.heads

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def has_tiles(self) -> bool:
        return self.q_tile is not None and self.kv_tile is not None

    def with_tiles(self, q_tile: tuple[int, ...], kv_tile: tuple[int, ...]) -> "GNAConfig":
        """A copy with tile shapes set (checked here, without re-validating the rest)."""
        for key, tile in (("q_tile", q_tile), ("kv_tile", kv_tile)):
            tile = tuple(int(t) for t in tile)
            if len(tile) != self.rank:
                raise ConfigError(f"{key}: {len(tile)} values given but input_size has {self.rank} axes")
            if min(tile) < 1:
                raise ConfigError(f"{key}: every extent must be >= 1, got {tile}")
        return self.model_copy(update={"q_tile": tuple(q_tile), "kv_tile": tuple(kv_tile)})

    def replace(self, **changes: Any) -> "GNAConfig":
        """A validated copy with some fields changed."""
        data = self.model_dump()
        data.update(changes)
        return GNAConfig(**data)

    def dense(self) -> "GNAConfig":
        """The self-attention baseline: window = layout, stride 1, no dilation, same causal flags."""
        ones = (1,) * self.rank
        return self.model_copy(update={"window_size": self.input_size, "stride": ones,
                                       "dilation": ones})


def _as_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v in (0, 1):
        return bool(v)
    if isinstance(v, str) and v.strip().lower() in ("0", "1", "true", "false"):
        return v.strip().lower() in ("1", "true")
    raise ConfigError(f"causal: expected 0/1 or true/false per axis, got {v!r}")


def _prod(values: tuple[int, ...]) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out
