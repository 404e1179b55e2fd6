"""The ``gnasim`` command line: a thin layer that parses, calls the library and renders.

Multi-value flags take their values space-separated, as NATTEN's profiler does
(``-i 30 48 80``); ``30x48x80`` and ``30,48,80`` work too.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from gnasim.cli.options import (  # noqa: F401  (re-exported for tests and scripts)
    MULTI_VALUE_FLAGS, Batch, Causal, Dilation, Dim, DimValue, Dtype, Format, Hardware, Heads,
    HeadsKV, InputSize, KernelOpt, KVTile, KVTiling, OutputFormat, QTile, Stride, WindowSize,
    build_config, fail, guarded, join_multi_values, print_json,
)

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention.")


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
    backward: bool = typer.Option(
        False, "--backward", help="Add the backward pass (KV-stationary tile plan, bwd_ keys)."),
    bwd_q_tile: Optional[str] = typer.Option(
        None, "--bwd-q-tile", help="Backward Q tile per axis; default: the kernel's backward one."),
    bwd_kv_tile: Optional[str] = typer.Option(
        None, "--bwd-kv-tile", help="Backward KV tile per axis; default: the kernel's backward one."),
    fmt: OutputFormat = Format,
) -> None:
    """Predict the tile plan, FLOPs and speedup bounds of one GNA configuration."""
    from gnasim.config import parse_ints
    from gnasim.simulate import simulate

    cfg = build_config(input_size, window_size, stride, dilation, causal, batch_size, heads,
                       heads_kv, dim, dim_value, dtype, q_tile, kv_tile)
    profile = None if hardware.strip().lower() == "none" else hardware
    result = simulate(cfg, profile, kernel=kernel, kv_tiling=kv_tiling,
                      attention_fraction=attention_fraction,
                      full_attention_steps=full_attention_steps, total_steps=total_steps,
                      backward=backward or bwd_q_tile is not None or bwd_kv_tile is not None,
                      bwd_q_tile=parse_ints(bwd_q_tile, "bwd_q_tile") if bwd_q_tile else None,
                      bwd_kv_tile=parse_ints(bwd_kv_tile, "bwd_kv_tile") if bwd_kv_tile else None)
    if fmt == OutputFormat.json:
        record = result.to_dict()
        if histogram:
            record["kv_tiles_visited_histogram"] = {
                str(k): v for k, v in result.plan.visited_histogram().items()}
            if result.backward is not None:
                record["bwd_q_tiles_visited_histogram"] = {
                    str(k): v for k, v in result.backward.plan.visited_histogram().items()}
        print_json(record)
        return
    from gnasim.render import render_prediction

    render_prediction(result, histogram=histogram)


@app.command()
@guarded
def profiles(fmt: OutputFormat = Format) -> None:
    """List the hardware profiles and their attention kernels."""
    from gnasim.hardware.profile import load_profiles

    profs = load_profiles()
    if fmt == OutputFormat.json:
        print_json([p.model_dump() for p in profs])
        return
    from gnasim.render import render_profiles

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
    from gnasim.config import parse_ints
    from gnasim.hardware.profile import load_profile
    from gnasim.hardware.tiles import supported_tiles

    rank = len(parse_ints(input_size, "input_size"))
    size = parse_ints(input_size, "input_size")
    prof = load_profile(hardware)
    rows = supported_tiles(prof, size, dim, dtype, kernel=kernel, backward=backward)
    if fmt == OutputFormat.json:
        print_json(rows)
        return
    from gnasim.render import render_tiles

    render_tiles(prof, rank, rows, backward)


# -- commands that live in other modules (each module keeps heavy imports inside its functions) --
from gnasim.cli.explore import plot, recommend, sweep  # noqa: E402

app.command()(sweep)
app.command()(recommend)
app.command()(plot)

from gnasim.cli.model import calibrate, compare  # noqa: E402

app.command()(calibrate)
app.command()(compare)

from gnasim.cli.validate import validate_app  # noqa: E402

app.add_typer(validate_app, name="validate")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gnasim`` console script."""
    # the CLI uses no pydantic plugins; skipping their discovery saves start-up time
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = join_multi_values(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="gnasim")


if __name__ == "__main__":  # pragma: no cover
    main()
