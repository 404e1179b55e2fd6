"""Measured kernel runs as data: the CSV schema, a strict loader, and the built-in published set.

One row is one timed implementation on one problem on one GPU. Columns (``COLUMNS``):

* required: ``gpu`` (matched to a hardware profile by name or alias), ``implementation``
  (``natten-hopper-fna``, ``cudnn-sdpa``, ``triton-gna`` ...), ``batch``, ``heads``,
  ``head_dim``, ``dtype``, ``layout`` and ``window`` (per axis, ``30x48x80``), ``attention_ms``;
* optional: ``source``, ``stride``, ``dilation``, ``causal`` (default 1, 1, 0 per axis),
  ``q_tile``, ``kv_tile`` (empty: the kernel's default, or the dense kernel's own tile),
  ``permute_ms`` (token permutation / padding time measured apart; default 0), ``note``,
  ``baseline`` (implementation of the dense row this row's speedup is measured against),
  ``heads_kv``, ``head_dim_v``, ``kv_tiling`` (static/dynamic), ``masking`` (partial, all,
  all-or-none), ``device``, ``driver``, ``torch_version``, ``triton_version``;
* optional, for the calibration corpus: ``pass`` (``fwd``, the default; ``bwd``; ``fwd+bwd``),
  ``deterministic`` (0/1, backward passes only), ``uncertainty`` (relative standard uncertainty
  of ``attention_ms`` as recorded, in (0, 1]; default: half a unit of its last printed digit,
  at least ``UNCERTAINTY_FLOOR``), ``library_version`` (``name=version`` items, e.g.
  ``cudnn=9.22.0 cudnn-frontend=1.21.1``); ``dtype`` may also be ``mxfp8`` (MX block-scaled fp8:
  fp8 elements, :attr:`Measurement.block_scaled`);
* informational (written by the validation harness, read but not used): ``speedup``,
  ``tile_bound``, ``flop_bound``, ``kv_tiles_visited_max``, ``fully_block_sparse``,
  ``max_abs_diff``, ``diff_against``.

Every bad value raises :class:`MeasurementError`, one line naming the file, the row (1-based data
row, and its line in the file) and the column; ``skip_bad_rows=True`` keeps the good rows and
reports the bad ones instead. Files that are not UTF-8 text, empty, binary or not valid CSV give
one line naming the file.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from gnasim.config import GNAConfig, parse_ints
from gnasim.errors import ConfigError, MeasurementError

REQUIRED = ("gpu", "implementation", "batch", "heads", "head_dim", "dtype", "layout", "window",
            "attention_ms")
BASE_COLUMNS = ("source", "gpu", "implementation", "batch", "heads", "head_dim", "dtype", "layout",
                "window", "stride", "dilation", "causal", "q_tile", "kv_tile", "attention_ms",
                "permute_ms", "note")
OPTIONAL = ("baseline", "heads_kv", "head_dim_v", "kv_tiling", "masking", "device", "driver",
            "torch_version", "triton_version", "pass", "deterministic", "uncertainty",
            "library_version")
INFORMATIONAL = ("speedup", "tile_bound", "flop_bound", "kv_tiles_visited_max",
                 "fully_block_sparse", "max_abs_diff", "diff_against")
COLUMNS = BASE_COLUMNS + OPTIONAL
KNOWN = set(COLUMNS) | set(INFORMATIONAL)
MASKING_VALUES = ("partial", "partial-only", "all", "all-or-none")
PASSES = ("fwd", "bwd", "fwd+bwd")
BLOCK_SCALED = {"mxfp8": "fp8"}     # block-scaled dtype in a file -> its element dtype
UNCERTAINTY_FLOOR = 0.001           # smallest relative uncertainty a row is given
FIELD_LIMIT = 131_072               # longest field accepted (Python csv's default limit)

# which CSV column a GNAConfig parameter comes from (for error messages)
_PARAM_COLUMN = {
    "input_size": "layout", "window_size": "window", "stride": "stride", "dilation": "dilation",
    "causal": "causal", "q_tile": "q_tile", "kv_tile": "kv_tile", "batch": "batch",
    "heads": "heads", "heads_kv": "heads_kv", "head_dim": "head_dim", "head_dim_v": "head_dim_v",
    "dtype": "dtype", "config": "layout",
}

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
PUBLISHED = DATA_DIR / "published_measurements.csv"


@dataclass(frozen=True)
class Measurement:
    """One measured run, validated."""

    row: int
    line: int
    source: str
    gpu: str
    implementation: str
    config: GNAConfig
    attention_ms: float
    permute_ms: float
    note: str = ""
    baseline: str | None = None
    kv_tiling: str | None = None
    masking: str | None = None
    device: str = ""
    driver: str = ""
    torch_version: str = ""
    triton_version: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    pass_: str = "fwd"
    deterministic: bool | None = None
    block_scaled: bool = False
    uncertainty: float = UNCERTAINTY_FLOOR
    library_version: str = ""
    dataset: str = ""

    @property
    def dtype(self) -> str:
        """The dtype as the file gives it: the config's, or ``mxfp8`` when block-scaled."""
        return "mxfp8" if self.block_scaled else self.config.dtype

    @property
    def versions(self) -> dict[str, str]:
        """Library versions: ``library_version`` items plus ``torch`` / ``triton`` columns."""
        out = parse_versions(self.library_version)
        if self.torch_version:
            out.setdefault("torch", self.torch_version)
        if self.triton_version:
            out.setdefault("triton", self.triton_version)
        return out

    @property
    def is_dense(self) -> bool:
        """Self attention: window = layout, no stride, no dilation."""
        c = self.config
        return (c.window_size == c.input_size and all(s == 1 for s in c.stride)
                and all(d == 1 for d in c.dilation))

    @property
    def problem(self) -> tuple:
        """What a GNA row and its dense baseline row share (GPU and problem, not the pattern)."""
        c = self.config
        return (self.gpu.strip().lower(), c.input_size, c.causal, c.batch, c.heads, c.kv_heads,
                c.head_dim, c.dim_v, c.dtype, self.pass_, self.block_scaled,
                self.deterministic is True)

    @property
    def label(self) -> str:
        c = self.config
        x = lambda t: "x".join(str(int(v)) for v in t)
        parts = [x(c.input_size), f"w{x(c.window_size)}"]
        if any(s > 1 for s in c.stride):
            parts.append(f"s{x(c.stride)}")
        if any(d > 1 for d in c.dilation):
            parts.append(f"d{x(c.dilation)}")
        if any(c.causal):
            parts.append(f"c{x(c.causal)}")
        return " ".join(parts)

    def where(self) -> str:
        return f"row {self.row} (line {self.line})"


@dataclass
class MeasurementSet:
    """The good rows of a file, and what was wrong with the others (``skip_bad_rows``)."""

    path: str
    rows: list[Measurement]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rows)


def published_path() -> Path:
    """The built-in dataset: published H100 / B200 kernel times (see ``data/README.md``)."""
    return PUBLISHED


def _text(raw: dict[str, Any], col: str) -> str:
    v = raw.get(col)
    return "" if v is None else str(v).strip()


def _number(raw: dict[str, Any], col: str, *, positive: bool, default: float | None = None) -> float:
    text = _text(raw, col)
    if not text:
        if default is not None:
            return default
        raise MeasurementError(f"column {col}: empty (a time in milliseconds is required)")
    try:
        value = float(text)
    except ValueError:
        raise MeasurementError(f"column {col}: '{printable(text)}' is not a number") from None
    if not math.isfinite(value):
        raise MeasurementError(f"column {col}: '{printable(text)}' is not finite")
    if positive and value <= 0:
        raise MeasurementError(f"column {col}: must be > 0, got {text}")
    if value < 0:
        raise MeasurementError(f"column {col}: must be >= 0, got {text}")
    return value


def _integer(raw: dict[str, Any], col: str, default: int | None = None) -> int | None:
    text = _text(raw, col)
    if not text:
        if default is None and col in REQUIRED:
            raise MeasurementError(f"column {col}: empty")
        return default
    try:
        value = float(text)
    except ValueError:
        raise MeasurementError(f"column {col}: '{printable(text)}' is not an integer") from None
    if not value.is_integer():
        raise MeasurementError(f"column {col}: '{printable(text)}' is not an integer")
    if value < 1:
        raise MeasurementError(f"column {col}: must be >= 1, got {text}")
    return int(value)


def _causal(text: str) -> str | None:
    """``0x1x0`` (the file's per-axis notation) as ``0 1 0``; GNAConfig checks the values."""
    if not text:
        return None
    return " ".join(text.replace("x", " ").replace(",", " ").split())


def _escape(text: str) -> str:
    """Non-printable characters (line and paragraph separators, controls) as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def printable(text: str, limit: int = 80) -> str:
    """A value fit for a one-line message: non-printable characters escaped, long text cut."""
    if len(text) <= limit:
        return _escape(text)
    return f"{_escape(text[:limit])}... ({len(text)} characters)"


def parse_versions(text: str) -> dict[str, str]:
    """``cudnn=9.22.0 cudnn-frontend=1.21.1`` (spaces, commas or semicolons) as a dict."""
    out: dict[str, str] = {}
    for item in text.replace(",", " ").replace(";", " ").split():
        name, sep, version = item.partition("=")
        if not sep or not name or not version:
            raise MeasurementError(f"column library_version: '{printable(item)}' is not "
                                   "name=version (e.g. cudnn=9.22.0 cudnn-frontend=1.21.1)")
        if name in out:
            raise MeasurementError(f"column library_version: '{name}' given twice")
        out[name] = version
    return out


def _pass(raw: dict[str, Any]) -> str:
    text = _text(raw, "pass").lower() or "fwd"
    if text not in PASSES:
        raise MeasurementError(f"column pass: '{printable(text)}' is not one of {list(PASSES)}")
    return text


def _deterministic(raw: dict[str, Any], pass_: str) -> bool | None:
    text = _text(raw, "deterministic")
    if not text:
        return None
    if text not in ("0", "1"):
        raise MeasurementError(f"column deterministic: '{printable(text)}' is not 0 or 1")
    if text == "1" and pass_ == "fwd":
        raise MeasurementError("column deterministic: 1 applies to backward passes only "
                               "(pass is fwd)")
    return text == "1"


def _uncertainty(raw: dict[str, Any], attention: float) -> float:
    """The ``uncertainty`` column, or half a unit of the last digit ``attention_ms`` is given to."""
    text = _text(raw, "uncertainty")
    if text:
        value = _number(raw, "uncertainty", positive=True)
        if value > 1:
            raise MeasurementError(f"column uncertainty: must be <= 1 (relative), "
                                   f"got {printable(text)}")
        return value
    digits = _text(raw, "attention_ms").lower()
    if "e" in digits:
        return UNCERTAINTY_FLOOR
    decimals = len(digits.partition(".")[2])
    return max(UNCERTAINTY_FLOOR, 0.5 * 10.0 ** -decimals / attention)


def _dtype(raw: dict[str, Any]) -> tuple[str, bool]:
    """The config dtype and whether the file's dtype is block-scaled (``mxfp8``)."""
    text = _text(raw, "dtype")
    element = BLOCK_SCALED.get(text.lower())
    return (element, True) if element else (text, False)


def _config_column(message: str) -> str:
    head = message.split(":", 1)[0].split(" (", 1)[0].strip()
    first = head.split("/")[0].split()[0] if head else "layout"
    return _PARAM_COLUMN.get(first, "layout")


def parse_row(raw: dict[str, Any], row: int, line: int) -> Measurement:
    """One CSV row (a dict of column -> text) to a :class:`Measurement`; errors name the column."""
    for col in REQUIRED:
        if not _text(raw, col):
            raise MeasurementError(f"column {col}: empty (required)")
    if None in raw:
        raise MeasurementError("column (none): the row has more fields than the header")
    batch = _integer(raw, "batch")
    heads = _integer(raw, "heads")
    head_dim = _integer(raw, "head_dim")
    heads_kv = _integer(raw, "heads_kv")
    head_dim_v = _integer(raw, "head_dim_v")
    for col in ("layout", "window", "stride", "dilation", "q_tile", "kv_tile"):
        text = _text(raw, col)
        if text:
            try:
                parse_ints(text, col)
            except ConfigError:
                raise MeasurementError(f"column {col}: '{printable(text)}' is not a list of "
                                       "integers (e.g. 30x48x80)") from None
    dtype, block_scaled = _dtype(raw)
    q_tile, kv_tile = _text(raw, "q_tile"), _text(raw, "kv_tile")
    if bool(q_tile) != bool(kv_tile):
        missing = "kv_tile" if q_tile else "q_tile"
        raise MeasurementError(f"column {missing}: give both q_tile and kv_tile, or neither")
    try:
        config = GNAConfig(
            input_size=_text(raw, "layout"), window_size=_text(raw, "window"),
            stride=_text(raw, "stride") or None, dilation=_text(raw, "dilation") or None,
            causal=_causal(_text(raw, "causal")), q_tile=q_tile or None, kv_tile=kv_tile or None,
            batch=batch, heads=heads, heads_kv=heads_kv, head_dim=head_dim,
            head_dim_v=head_dim_v, dtype=dtype)
    except ConfigError as err:
        raise MeasurementError(f"column {_config_column(str(err))}: {err}") from None
    if config.q_tile is not None and (len(config.q_tile) != config.rank
                                      or len(config.kv_tile) != config.rank):
        col = "q_tile" if len(config.q_tile) != config.rank else "kv_tile"
        raise MeasurementError(f"column {col}: tile rank does not match layout rank {config.rank}")
    attention = _number(raw, "attention_ms", positive=True)
    permute = _number(raw, "permute_ms", positive=False, default=0.0)
    kv_tiling = _text(raw, "kv_tiling").lower() or None
    if kv_tiling is not None and kv_tiling not in ("static", "dynamic"):
        raise MeasurementError(f"column kv_tiling: '{printable(kv_tiling)}' is not static or "
                               "dynamic")
    masking = _text(raw, "masking").lower() or None
    if masking is not None and masking not in MASKING_VALUES:
        raise MeasurementError(f"column masking: '{printable(masking)}' is not one of "
                               f"{list(MASKING_VALUES)}")
    pass_ = _pass(raw)
    deterministic = _deterministic(raw, pass_)
    uncertainty = _uncertainty(raw, attention)
    library_version = _text(raw, "library_version")
    parse_versions(library_version)
    extra = {k: _text(raw, k) for k in raw if k is not None and k not in COLUMNS and _text(raw, k)}
    return Measurement(
        row=row, line=line, source=_text(raw, "source"), gpu=_text(raw, "gpu"),
        implementation=_text(raw, "implementation"), config=config, attention_ms=attention,
        permute_ms=permute, note=_text(raw, "note"), baseline=_text(raw, "baseline") or None,
        kv_tiling=kv_tiling, masking=masking, device=_text(raw, "device"),
        driver=_text(raw, "driver"), torch_version=_text(raw, "torch_version"),
        triton_version=_text(raw, "triton_version"), extra=extra, pass_=pass_,
        deterministic=deterministic, block_scaled=block_scaled, uncertainty=uncertainty,
        library_version=library_version)


def _read_text(p: Path) -> str:
    """The file as text; every reason it cannot be read is one line naming the file."""
    name = p.name
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise MeasurementError(f"measurements: file '{p}' does not exist") from None
    except IsADirectoryError:
        raise MeasurementError(f"measurements: '{p}' is a directory, not a CSV file") from None
    except OSError as err:
        raise MeasurementError(f"measurements: cannot read '{p}': {err.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise MeasurementError(f"{name}: not UTF-8 text (byte 0x{data[err.start]:02x} on line "
                               f"{line}); save it as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MeasurementError(f"{name}: not a text CSV file (NUL byte on line {line})")
    if not text.strip():
        raise MeasurementError(f"{name}: empty file (expected a header with columns "
                               f"{list(REQUIRED)})")
    return text


def _one_line(message: str, limit: int = 400) -> str:
    """Escape line separators and other non-printable characters; cut very long messages."""
    out = _escape(message)
    return out if len(out) <= limit else out[:limit] + "..."


def _header(fields: list[str] | None, name: str) -> list[str]:
    if not fields:
        raise MeasurementError(f"{name}: empty file (expected a header with columns "
                               f"{list(REQUIRED)})")
    header = [h.strip() for h in fields]
    seen: set[str] = set()
    for i, col in enumerate(header, 1):
        if not col:
            raise MeasurementError(f"{name} header, column {i}: empty name")
        if len(col) > 100:
            raise MeasurementError(f"{name} header, column {i}: name of {len(col)} characters "
                                   "(at most 100)")
        if col in seen:
            raise MeasurementError(f"{name} header, column {printable(col)}: given twice")
        seen.add(col)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise MeasurementError(f"{name} header, column {missing[0]}: missing "
                               f"(required columns: {', '.join(REQUIRED)})")
    return header


def load_measurements(path: str | Path | None = None, *, skip_bad_rows: bool = False,
                      dataset: str = "") -> MeasurementSet:
    """Load a measurement CSV (default: the built-in published set).

    Strict by default: the first bad row raises :class:`MeasurementError` ("FILE row R (line L),
    column C: why"). With ``skip_bad_rows`` the bad rows are left out and listed in ``errors``.
    ``dataset`` is recorded on every row (:attr:`Measurement.dataset`).
    Lines end only at CR / LF (as CSV defines them): a U+2028 or other Unicode line separator
    inside a field stays in that field.
    """
    p = Path(path) if path is not None else PUBLISHED
    name = p.name
    text = _read_text(p)
    # csv's own field limit would raise an uncaught csv.Error; lift it for this read (the text is
    # in memory, no field can be longer) and check the length per column below.
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, len(text) + 1))
    try:
        return _parse(csv.DictReader(io.StringIO(text, newline="")), p, skip_bad_rows, dataset)
    except csv.Error as err:
        raise MeasurementError(_one_line(f"{name}: not valid CSV ({err})")) from None
    finally:
        csv.field_size_limit(previous)


def _parse(reader: csv.DictReader, p: Path, skip_bad_rows: bool, dataset: str) -> MeasurementSet:
    name = p.name
    header = _header(reader.fieldnames, name)
    reader.fieldnames = header
    unknown = [c for c in header if c not in KNOWN]
    out = MeasurementSet(str(p), [])
    if unknown:
        out.warnings.append(_one_line(f"{name}: ignored unknown columns {unknown}"))
    row = 0
    for raw in reader:
        line = reader.line_num
        if not any(_text(raw, c) for c in header) and None not in raw:
            continue                                   # blank line
        row += 1
        try:
            long = next((c for c in header if len(raw.get(c) or "") > FIELD_LIMIT), None)
            if long is not None:
                raise MeasurementError(f"column {long}: {len(raw[long])} characters "
                                       f"(at most {FIELD_LIMIT})")
            m = parse_row(raw, row, line)
            out.rows.append(replace(m, dataset=dataset) if dataset else m)
        except MeasurementError as err:
            msg = _one_line(f"{name} row {row} (line {line}), {err}")
            if not skip_bad_rows:
                raise MeasurementError(msg) from None
            out.errors.append(msg)
    if row == 0:
        raise MeasurementError(f"{name}: no data rows")
    return out
