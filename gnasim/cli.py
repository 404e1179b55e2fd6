"""The ``gnasim`` command line: a thin layer that parses, calls the library and renders.

Multi-value flags take their values space-separated, as NATTEN's profiler does
(``-i 30 48 80``); ``30x48x80`` and ``30,48,80`` work too.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import Any, Callable, Optional

import typer

from .errors import GnasimError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention.")

# Flags whose values may be given space-separated; main() joins them into one token.
MULTI_VALUE_FLAGS = {
    "-i", "--input-size", "-w", "--window-size", "-s", "--stride", "--dilation", "-c", "--causal",
    "--q-tile", "--kv-tile", "--hardware", "-d", "--dim", "--dim-value", "--dtype",
    "--attention-fraction", "-b", "--batch-size", "-n", "--heads", "--heads-kv",
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
    import functools

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
Hardware = typer.Option("h100", "--hardware", help="Hardware profile name or path to a .toml file.")
KernelOpt = typer.Option(None, "--kernel", "--backend", help="Kernel of the profile (default: its first).")
KVTiling = typer.Option(None, "--kv-tiling", help="static or dynamic (default: the kernel's).")
Format = typer.Option(OutputFormat.table, "--format", help="table for people, json for scripts.")


def build_config(input_size: str, window_size: str, stride: str, dilation: str, causal: str,
                 batch: int, heads: int, heads_kv: Optional[int], dim: int,
                 dim_value: Optional[int], dtype: str, q_tile: Optional[str],
                 kv_tile: Optional[str]):
    """A validated :class:`GNAConfig` from the CLI's string options."""
    from .config import GNAConfig

    return GNAConfig(input_size=input_size, window_size=window_size, stride=stride,
                     dilation=dilation, causal=causal, q_tile=q_tile, kv_tile=kv_tile,
                     batch=batch, heads=heads, heads_kv=heads_kv, head_dim=dim,
                     head_dim_v=dim_value, dtype=dtype)


@app.command()
@guarded
def predict(
    input_size: str = InputSize, window_size: str = WindowSize, stride: str = Stride,
    dilation: str = Dilation, causal: str = Causal, batch_size: int = Batch, heads: int = Heads,
    heads_kv: Optional[int] = HeadsKV, dim: int = Dim, dim_value: Optional[int] = DimValue,
    dtype: str = Dtype, q_tile: Optional[str] = QTile, kv_tile: Optional[str] = KVTile,
    hardware: str = Hardware, kernel: Optional[str] = KernelOpt,
    kv_tiling: Optional[str] = KVTiling,
    attention_fraction: Optional[float] = typer.Option(
        None, "--attention-fraction", help="Share of end-to-end time spent in attention (Amdahl)."),
    full_attention_steps: int = typer.Option(
        0, "--full-attention-steps", help="Initial diffusion steps kept as full attention."),
    total_steps: Optional[int] = typer.Option(None, "--total-steps", help="Total diffusion steps."),
    histogram: bool = typer.Option(False, "--histogram", help="Show KV tiles per Q tile histogram."),
    fmt: OutputFormat = Format,
) -> None:
    """Predict the tile plan, FLOPs and speedup bounds of one GNA configuration."""
    from .simulate import simulate

    cfg = build_config(input_size, window_size, stride, dilation, causal, batch_size, heads,
                       heads_kv, dim, dim_value, dtype, q_tile, kv_tile)
    result = simulate(cfg, hardware, kernel=kernel, kv_tiling=kv_tiling,
                      attention_fraction=attention_fraction,
                      full_attention_steps=full_attention_steps, total_steps=total_steps)
    if fmt == OutputFormat.json:
        record = result.to_dict()
        if histogram:
            record["kv_tiles_visited_histogram"] = {
                str(k): v for k, v in result.plan.visited_histogram().items()}
        print_json(record)
        return
    from .render import render_prediction

    render_prediction(result, histogram=histogram)


@app.command()
@guarded
def profiles(fmt: OutputFormat = Format) -> None:
    """List the hardware profiles and their attention kernels."""
    from .hardware import load_profiles

    profs = load_profiles()
    if fmt == OutputFormat.json:
        print_json([p.model_dump() for p in profs])
        return
    from .render import render_profiles

    render_profiles(profs)


@app.command()
@guarded
def tiles(
    input_size: str = InputSize, dim: int = Dim, hardware: str = Hardware,
    kernel: Optional[str] = KernelOpt, dtype: str = Dtype,
    backward: bool = typer.Option(False, "--backward", help="Backward-pass tile shapes."),
    fmt: OutputFormat = Format,
) -> None:
    """List the tile shapes a GPU's kernel supports for a problem (NATTEN's --dry-run, any GPU)."""
    from .config import parse_ints
    from .hardware import load_profile
    from .tile_shapes import supported_tiles

    rank = len(parse_ints(input_size, "input_size"))
    size = parse_ints(input_size, "input_size")
    prof = load_profile(hardware)
    rows = supported_tiles(prof, size, dim, dtype, kernel=kernel, backward=backward)
    if fmt == OutputFormat.json:
        print_json(rows)
        return
    from .render import render_tiles

    render_tiles(prof, rank, rows, backward)


# -- commands that live in other modules (each module keeps heavy imports inside its functions) --


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gnasim`` console script."""
    # the CLI uses no pydantic plugins; skipping their discovery saves start-up time
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = join_multi_values(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="gnasim")


if __name__ == "__main__":  # pragma: no cover
    main()
