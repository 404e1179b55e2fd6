"""Writing a profile as TOML: a small serialiser, and an atomic writer that never overwrites
unless asked (``gnasim calibrate`` writes its calibrated profiles with it)."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from gnasim.errors import HardwareProfileError
from gnasim.files import atomic_write
from gnasim.hardware.profile import PROFILE_NAME, HardwareProfile, RuntimeModel, read_profile_file

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else '"' + _toml_escape(k) + '"'


def _toml_escape(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    return "".join(c if c >= " " or c == "\t" else f"\\u{ord(c):04x}" for c in out)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise HardwareProfileError(f"profile: cannot write non-finite value {v}")
        return repr(v)
    if isinstance(v, str):
        return '"' + _toml_escape(v) + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise HardwareProfileError(f"profile: cannot write a value of type {type(v).__name__}")


def to_toml(data: dict[str, Any], header: str = "") -> str:
    """A small TOML writer for profile data (tables, arrays of tables, scalars, scalar arrays)."""
    lines: list[str] = [f"# {h}" for h in header.splitlines()] if header else []

    def is_table(v):
        return isinstance(v, dict)

    def is_table_array(v):
        return isinstance(v, list) and v and all(isinstance(x, dict) for x in v)

    def emit(d: dict[str, Any], path: list[str]) -> None:
        for k, v in d.items():
            if v is None or is_table(v) or is_table_array(v):
                continue
            lines.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in d.items():
            if is_table(v):
                only_tables = v and all(is_table(x) or is_table_array(x) for x in v.values())
                if not only_tables:
                    lines.append("")
                    lines.append("[" + ".".join(_toml_key(p) for p in path + [k]) + "]")
                emit(v, path + [k])
            elif is_table_array(v):
                for item in v:
                    lines.append("")
                    lines.append("[[" + ".".join(_toml_key(p) for p in path + [k]) + "]]")
                    emit(item, path + [k])

    emit(data, [])
    return "\n".join(lines).lstrip("\n") + "\n"


def write_profile(profile: HardwareProfile, model: RuntimeModel, path: str | Path, *,
                  force: bool = False, header: str = "") -> Path:
    """Write ``profile`` with ``model`` as its ``[model]`` section to a NEW file, atomically.

    The profile's name becomes the file's stem. An existing file is replaced only with ``force``.
    The written file is read back and validated before this returns.
    """
    p = Path(path)
    if p.suffix != ".toml":
        raise HardwareProfileError(f"out: '{p}' must end in .toml")
    name = p.stem.lower()
    if not PROFILE_NAME.match(name):
        raise HardwareProfileError(f"out: '{p.name}' is not a usable profile name "
                                   "(up to 64 lowercase letters, digits, '.', '_', '-')")
    display = profile.display_name if profile.name == name else f"{profile.display_name} ({name})"
    new = profile.model_copy(update={"name": name, "display_name": display, "model": model})
    text = to_toml(new.model_dump(mode="python", exclude_none=True), header)
    atomic_write(p, text, replace=force, validate=read_profile_file)
    return p


def default_output(profile: HardwareProfile, out: str | Path | None, many: bool) -> Path:
    """``NAME-calibrated.toml`` in ``out`` (a directory, default: current) or ``out`` itself."""
    if out is None:
        return Path.cwd() / f"{profile.name}-calibrated.toml"
    p = Path(out)
    if p.suffix == ".toml":
        if many:
            raise HardwareProfileError(
                f"out: '{p}' is one file but several profiles were calibrated; give a directory")
        return p
    return p / f"{profile.name}-calibrated.toml"
