"""Shared pieces of the command line: option definitions, error handling, JSON output.

One grammar for multi-value flags in every command: the values of one flag are the axes of one
problem, separated by spaces (``-i 30 48 80``) or ``x`` (``-i 30x48x80``). A comma lists
alternatives for one axis, which only ``gnasim sweep`` takes (``-s 1,8 8 8``: two strides); the
single-problem commands refuse it in one line.

Command modules import from here (never from ``gnasim.cli``), so ``python -m gnasim.cli`` has no
import cycle.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from typing import Any, Callable, Optional, Sequence

import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 carries its own copy of click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as _click_errors  # type: ignore[no-redef]

from gnasim.errors import ConfigError, GnasimError

# Flags whose values may be given space-separated; main() joins them into one token. Filled by
# multi_option() as the command modules declare their options (import time), never by hand.
MULTI_VALUE_FLAGS: set[str] = set()

AXES_HELP = "space- or x-separated, one value per axis"


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def multi_option(default: Any, *decls: str, **kwargs: Any) -> Any:
    """A ``typer.Option`` whose value may be several space-separated tokens (recorded in
    :data:`MULTI_VALUE_FLAGS` so :func:`join_multi_values` joins them)."""
    MULTI_VALUE_FLAGS.update(d for d in decls if d.startswith("-"))
    return typer.Option(default, *decls, **kwargs)


def single_problem_axes(value: Optional[str]) -> Optional[str]:
    """Option callback of the single-problem commands: commas list sweep alternatives, so a
    comma here is refused (one grammar for every command)."""
    if value is not None and "," in str(value):
        raise typer.BadParameter(
            f"'{value}': separate axes with spaces or x; a comma lists alternatives, which only "
            "`gnasim sweep` takes")
    return value


def join_multi_values(argv: list[str], flags: Optional[set[str]] = None) -> list[str]:
    """``['-i', '30', '48', '80']`` -> ``['-i', '30 48 80']`` for the multi-value flags."""
    flags = MULTI_VALUE_FLAGS if flags is None else flags
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        out.append(tok)
        i += 1
        if tok in flags:
            vals = []
            while i < len(argv) and (not argv[i].startswith("-") or _is_number(argv[i])):
                vals.append(argv[i])
                i += 1
            if vals:
                out.append(" ".join(vals))
    return out


def _is_number(tok: str) -> bool:
    try:
        float(tok)
        return True
    except ValueError:
        return False


def fail(message: str) -> None:
    """Print one error line on stderr and exit with code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run a command body, turning gnasim's typed errors into one line and exit code 2."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GnasimError as err:
            fail(str(err))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130)
    return wrapper


class OneLineErrors(TyperGroup):
    """The app's group: a usage error (missing or unknown option, bad choice) is one line on
    stderr and exit code 2, not click's boxed panel; no arguments prints the help."""

    def main(self, args: Optional[Sequence[str]] = None, prog_name: Optional[str] = None,
             complete_var: Optional[str] = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                                standalone_mode=False, **extra)
        except _click_errors.NoArgsIsHelpError as err:
            typer.echo(err.ctx.get_help() if err.ctx is not None else err.format_message())
            code = 0
        except _click_errors.UsageError as err:
            where = f"{err.ctx.command_path}: " if err.ctx is not None else ""
            message = " ".join(err.format_message().replace("Value error, ", "").split())
            typer.echo(f"error: {where}{message}", err=True)
            code = 2
        except typer.Abort:
            typer.echo("aborted", err=True)
            code = 1
        except _click_errors.ClickException as err:
            typer.echo(f"error: {' '.join(err.format_message().split())}", err=True)
            code = err.exit_code
        code = code if isinstance(code, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


def new_app(help_text: str, completion: bool = False) -> typer.Typer:
    """A typer app with gnasim's conventions: ``-h``, plain help, one-line usage errors."""
    return typer.Typer(
        cls=OneLineErrors, no_args_is_help=True, pretty_exceptions_enable=False,
        rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
        add_completion=completion, help=help_text)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- shared problem options (NATTEN profiler names and defaults) ------------------------------
_axes = dict(metavar="AXES", callback=single_problem_axes)
# The problem flags a preset fills default to None, so a command can tell a flag the user typed
# (it wins) from one left out (the preset's value, else the default in PROBLEM_DEFAULTS).
InputSize = multi_option(None, "-i", "--input-size", **_axes,
                         help=f"Token layout ({AXES_HELP}), e.g. -i 30 48 80 (or --preset).")
WindowSize = multi_option(None, "-w", "--window-size", **_axes,
                          help="Window (kernel size) per axis; default: the layout (self attention).")
Stride = multi_option(None, "-s", "--stride", **_axes,
                      help="Stride per axis (1: sliding window; = window: blocked). Default 1.")
Dilation = multi_option(None, "--dilation", **_axes, help="Dilation per axis. Default 1.")
Causal = multi_option("0", "-c", "--causal", **_axes,
                      help="Causal flag per axis (0/1 or false/true), e.g. -c 1 0 0.")
Batch = multi_option(1, "-b", "--batch-size", metavar="N", help="Batch size.")
Heads = multi_option(None, "-n", "--heads", metavar="N", help="Query heads. Default 1.")
HeadsKV = multi_option(None, "--heads-kv", metavar="N", help="KV heads (GQA/MQA); default: --heads.")
DEFAULT_DIM = 64   # NATTEN's profiler default
Dim = multi_option(None, "-d", "--dim", metavar="N",
                   help=f"Head dim of Q and K. Default {DEFAULT_DIM} (NATTEN's).")
TileHeadDim = multi_option(None, "-d", "--dim", metavar="N",
                           help=f"Head dim (selects the kernel's tile shapes). Default {DEFAULT_DIM}.")
DimValue = multi_option(None, "--dim-value", metavar="N", help="Head dim of V; default: --dim.")
PresetOpt = typer.Option(
    None, "--preset", metavar="NAME",
    help="A published model's problem (see `gnasim presets`): fills -i, -w, -s, --dilation, -n "
         "and -d; flags given override it.")
Dtype = multi_option("fp16", "--dtype", metavar="DTYPE",
                     help="fp32, fp16, bf16, e4m3, e5m2 (fp8).")
QTile = multi_option(None, "--q-tile", **_axes,
                     help="Q tile shape per axis (with --kv-tile); default: the kernel's.")
KVTile = multi_option(None, "--kv-tile", **_axes,
                      help="KV tile shape per axis (with --q-tile); default: the kernel's.")
Hardware = multi_option(
    "h100", "--hardware", metavar="GPU",
    help="Hardware profile name, path to a .toml file, or none (explicit tiles).")
KernelOpt = multi_option(None, "--kernel", "--backend", metavar="NAME",
                         help="Kernel of the profile (default: its default kernel).")
KVTiling = typer.Option(None, "--kv-tiling", metavar="MODE",
                        help="static or dynamic (default: the kernel's).")
Format = typer.Option(OutputFormat.table, "--format", help="table for people, json for scripts.")


def check_rank(size: tuple[int, ...], flag: str = "--input-size") -> None:
    """NATTEN runs 1-, 2- and 3-D neighborhoods."""
    if not 1 <= len(size) <= 3:
        raise ConfigError(f"{flag}: NATTEN runs 1, 2 or 3 axes, got {len(size)}")


def build_config(input_size: str, window_size: Optional[str], stride: str, dilation: str,
                 causal: str, batch: int, heads: int, heads_kv: Optional[int], dim: int,
                 dim_value: Optional[int], dtype: str, q_tile: Optional[str],
                 kv_tile: Optional[str]):
    """A validated :class:`GNAConfig` from the CLI's string options (no window: self
    attention, NATTEN's default)."""
    from gnasim.config import GNAConfig, parse_ints

    check_rank(parse_ints(input_size, "input_size"))
    return GNAConfig(input_size=input_size, window_size=window_size or input_size, stride=stride,
                     dilation=dilation, causal=causal, q_tile=q_tile, kv_tile=kv_tile,
                     batch=batch, heads=heads, heads_kv=heads_kv, head_dim=dim,
                     head_dim_v=dim_value, dtype=dtype)


# -- presets -------------------------------------------------------------------------------------
PROBLEM_DEFAULTS: dict[str, Any] = {"stride": "1", "dilation": "1", "heads": 1, "dim": DEFAULT_DIM}


def problem_flags(preset: Optional[str], *, input_size: Optional[str] = None,
                  window_size: Optional[str] = None, stride: Optional[str] = None,
                  dilation: Optional[str] = None, heads: Optional[int] = None,
                  dim: Optional[int] = None, need_input: bool = True) -> dict[str, Any]:
    """The problem flags of a command, by parameter name: the ones given, the rest from
    ``--preset`` (if any), then :data:`PROBLEM_DEFAULTS`. Axis values come back as strings
    (``30x48x80``), as the flags give them; ``window_size`` stays None when neither sets it."""
    from gnasim.config import format_tile
    from gnasim.presets import apply_preset

    filled = apply_preset(preset, input_size=input_size, window_size=window_size, stride=stride,
                          dilation=dilation, heads=heads, head_dim=dim)
    out = {k: format_tile(v) if isinstance(v, tuple) else v for k, v in filled.items()}
    out["dim"] = out.pop("head_dim")
    for key, default in PROBLEM_DEFAULTS.items():
        if out[key] is None:
            out[key] = default
    if need_input and out["input_size"] is None:
        raise ConfigError("Missing option '-i' / '--input-size': give the token layout, or "
                          "--preset NAME (`gnasim presets` lists them)")
    return out
