"""Physical ranges for the numbers in a hardware profile, and the field type that checks them.

Every number a profile holds must be finite and inside a range that a real GPU or kernel could
have. The ranges are wide (today's GPUs sit well inside them) but they turn inf, NaN, 2^63 SMs
or a 1e-308 GHz clock into a one-line error that names the key and the range. Each bound's
physical reason is written next to it, at the field that uses it.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import AfterValidator

# The most tokens one Q or KV tile may hold. A 4,096-token tile at head dim 32 in 16-bit is already
# 256 KB, more than the shared memory of any SM (228 KB on Hopper and Blackwell); shipped kernels
# use at most 256. This also keeps generated tile-shape enumerations small.
MAX_TILE_TOKENS = 4096
# The most tile shapes one generated tile set may expand to for one rank (see TileSet.shapes).
MAX_GENERATED_SHAPES = 10_000


def _fmt(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def describe(lo: float, hi: float, unit: str = "", open_low: bool = False) -> str:
    """``"[0.1, 5] GHz"`` or ``"(0, 1]"``: a range as error messages show it."""
    text = f"{'(' if open_low else '['}{_fmt(lo)}, {_fmt(hi)}]"
    return f"{text} {unit}" if unit else text


def _checker(lo: float, hi: float, unit: str, open_low: bool):
    span = describe(lo, hi, unit, open_low)

    def check(value: Any) -> Any:
        ok = math.isfinite(value) and (lo < value if open_low else lo <= value) and value <= hi
        if not ok:
            shown = repr(value) if not isinstance(value, int) or abs(value) < 10**12 \
                else f"{value:.3g}"
            raise ValueError(f"{shown} is outside the physical range {span}")
        return value
    return check


def real(lo: float, hi: float, unit: str = "", *, open_low: bool = False) -> Any:
    """A float field that must be finite and within ``[lo, hi]`` (``(lo, hi]`` if ``open_low``)."""
    return Annotated[float, AfterValidator(_checker(lo, hi, unit, open_low))]


def integer(lo: int, hi: int, unit: str = "") -> Any:
    """An int field that must be within ``[lo, hi]``."""
    return Annotated[int, AfterValidator(_checker(lo, hi, unit, False))]


def bounded_text(max_len: int) -> Any:
    """A string field of at most ``max_len`` characters with no control characters."""
    def check(value: str) -> str:
        if len(value) > max_len:
            raise ValueError(f"{len(value):,} characters, more than {max_len}")
        if any(ord(c) < 32 and c != "\t" for c in value):
            raise ValueError("contains a control character")
        return value
    return Annotated[str, AfterValidator(check)]


def clip_text(text: str, limit: int = 80) -> str:
    """``text`` shortened for an error message (a name the user typed can be very long)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"
