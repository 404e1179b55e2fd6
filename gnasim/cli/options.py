"""Shared pieces of the command line: option definitions, error handling, JSON output.

Command modules import from here (never from ``gnasim.cli``), so ``python -m gnasim.cli`` has no
import cycle.
"""

from __future__ import annotations

import functools
import json
import sys
from enum import Enum
from typing import Any, Callable, Optional

import typer

from gnasim.errors import GnasimError

# Flags whose values may be given space-separated; main() joins them into one token.
MULTI_VALUE_FLAGS = {
    "-i", "--input-size", "-w", "--window-size", "-s", "--stride", "--dilation", "-c", "--causal",
    "--q-tile", "--kv-tile", "--hardware", "-d", "--dim", "--dim-value", "--dtype",
    "--attention-fraction", "-b", "--batch-size", "-n", "--heads", "--heads-kv",
    "--tiles", "--kernel", "--q-index", "--axes", "--slice-key", "--group",
    "--bwd-q-tile", "--bwd-kv-tile",
}


class OutputFormat(str, Enum):
    table = "table"
    json = "json"


def join_multi_values(argv: list[str], flags: set[str] = MULTI_VALUE_FLAGS) -> list[str]:
    """``['-i', '30', '48', '80']`` -> ``['-i', '30 48 80']`` for the multi-value flags."""
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


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


# -- shared problem options ------------------------------------------------------------------
InputSize = typer.Option(..., "-i", "--input-size", help="Token layout, e.g. -i 30 48 80.")
WindowSize = typer.Option(..., "-w", "--window-size", help="Window (kernel size) per axis.")
Stride = typer.Option("1", "-s", "--stride", help="Stride per axis (1: sliding window; = window: blocked).")
Dilation = typer.Option("1", "--dilation", help="Dilation per axis.")
Causal = typer.Option("0", "-c", "--causal", help="Causal flag per axis, e.g. -c 1 0 0.")
Batch = typer.Option(1, "-b", "--batch-size", help="Batch size.")
Heads = typer.Option(1, "-n", "--heads", help="Query heads.")
HeadsKV = typer.Option(None, "--heads-kv", help="KV heads (GQA/MQA); default: --heads.")
Dim = typer.Option(128, "-d", "--dim", help="Head dim of Q and K.")
DimValue = typer.Option(None, "--dim-value", help="Head dim of V; default: --dim.")
Dtype = typer.Option("fp16", "--dtype", help="fp16, bf16, fp32 or fp8.")
QTile = typer.Option(None, "--q-tile", help="Q tile shape per axis; default: the kernel's.")
KVTile = typer.Option(None, "--kv-tile", help="KV tile shape per axis; default: the kernel's.")
Hardware = typer.Option(
    "h100", "--hardware", help="Hardware profile name, path to a .toml file, or none (explicit tiles).")
KernelOpt = typer.Option(None, "--kernel", "--backend", help="Kernel of the profile (default: its first).")
KVTiling = typer.Option(None, "--kv-tiling", help="static or dynamic (default: the kernel's).")
Format = typer.Option(OutputFormat.table, "--format", help="table for people, json for scripts.")


def build_config(input_size: str, window_size: str, stride: str, dilation: str, causal: str,
                 batch: int, heads: int, heads_kv: Optional[int], dim: int,
                 dim_value: Optional[int], dtype: str, q_tile: Optional[str],
                 kv_tile: Optional[str]):
    """A validated :class:`GNAConfig` from the CLI's string options."""
    from gnasim.config import GNAConfig

    return GNAConfig(input_size=input_size, window_size=window_size, stride=stride,
                     dilation=dilation, causal=causal, q_tile=q_tile, kv_tile=kv_tile,
                     batch=batch, heads=heads, heads_kv=heads_kv, head_dim=dim,
                     head_dim_v=dim_value, dtype=dtype)


