"""Presets: the token layouts and GNA settings of published models (``gnasim/data/presets.toml``).

A preset fills the problem flags a user would otherwise type (layout, window, stride, dilation,
heads, head dim); :func:`apply_preset` fills only the values the caller left unset, so explicit
flags override the preset. Every preset carries its public source; a window nobody published is
marked ``window_suggested``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from gnasim.config import GNAConfig, format_tile, parse_ints
from gnasim.errors import ConfigError

# the problem fields a preset fills (the GNAConfig names)
FIELDS = ("input_size", "window_size", "stride", "dilation", "heads", "head_dim")
_AXES = ("input_size", "window_size", "stride", "dilation")
_KEYS = {"model", "source", "window_suggested", *FIELDS}


@dataclass(frozen=True)
class Preset:
    """One model's problem: its layout, GNA window/stride/dilation, heads, head dim and source."""

    name: str
    model: str
    input_size: tuple[int, ...]
    window_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    heads: int
    head_dim: int
    source: str
    window_suggested: bool = False

    def values(self) -> dict[str, Any]:
        """The fields a preset fills, by :data:`FIELDS` name."""
        return {f: getattr(self, f) for f in FIELDS}

    def config(self, **overrides: Any) -> GNAConfig:
        """The preset as a validated :class:`GNAConfig` (``overrides``: any GNAConfig field)."""
        return GNAConfig(**{**self.values(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        """One JSON object of ``gnasim presets --format json``."""
        out: dict[str, Any] = {"name": self.name, "model": self.model}
        out.update({f: format_tile(v) if f in _AXES else v for f, v in self.values().items()})
        out.update(window_suggested=self.window_suggested, source=self.source)
        return out


def _preset(name: str, raw: Any) -> Preset:
    where = f"preset {name}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table of keys")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}")
    missing = [k for k in ("model", "source", *FIELDS) if k not in raw]
    if missing:
        raise ConfigError(f"{where}: missing keys {missing}")
    if not str(raw["source"]).strip():
        raise ConfigError(f"{where}: source must name a public source")
    axes = {k: parse_ints(raw[k], f"{where}: {k}") for k in _AXES}
    preset = Preset(name=name, model=str(raw["model"]), **axes,
                    heads=int(raw["heads"]), head_dim=int(raw["head_dim"]),
                    source=str(raw["source"]),
                    window_suggested=bool(raw.get("window_suggested", False)))
    try:
        preset.config()
    except ConfigError as err:
        raise ConfigError(f"{where}: {err}") from None
    return preset


def parse_presets(text: str) -> dict[str, Preset]:
    """Presets from TOML text (one table per preset), each checked against NATTEN's rules."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"presets: not valid TOML ({err})") from None
    return {name: _preset(name, raw) for name, raw in data.items()}


@lru_cache(maxsize=1)
def _builtin() -> dict[str, Preset]:
    text = resources.files("gnasim").joinpath("data", "presets.toml").read_text(encoding="utf-8")
    return parse_presets(text)


def load_presets() -> list[Preset]:
    """The built-in presets, in file order."""
    return list(_builtin().values())


def preset_names() -> list[str]:
    return list(_builtin())


def get_preset(name: str) -> Preset:
    """A preset by name (case-insensitive); an unknown name is one line listing the names."""
    presets = _builtin()
    found = presets.get(name.strip().lower())
    if found is None:
        raise ConfigError(f"preset: unknown preset '{name}'; one of {', '.join(presets)}")
    return found


def apply_preset(name: str | None, **given: Any) -> dict[str, Any]:
    """``given`` (values by :data:`FIELDS` name, None = not set) with the unset ones taken from
    preset ``name``; explicit values win. Without a preset, ``given`` comes back unchanged."""
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise ConfigError(f"preset: cannot fill {unknown}; a preset fills {list(FIELDS)}")
    if name is None:
        return dict(given)
    values = get_preset(name).values()
    return {k: values[k] if v is None else v for k, v in given.items()}
