"""``gnasim sweep``, ``gnasim recommend`` and ``gnasim plot``: exploring the design space.

Plain functions, registered on the app at the end of :mod:`gnasim.cli`. Heavy imports (pyarrow,
plotly) stay inside the functions so ``gnasim predict`` starts as fast as before.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, List, Optional

import typer

from gnasim.cli.options import (
    Causal, Dilation, Dtype, Format, Hardware, KernelOpt, KVTile, KVTiling, OutputFormat, QTile,
    guarded, print_json,
)
from gnasim.errors import ConfigError

# -- shared options (the predict flags, here repeatable or optional) -----------------------------
_many = "Repeat the flag for alternatives."
SweepInput = typer.Option(None, "-i", "--input-size",
                          help=f"Layout per axis, e.g. -i 30 48 80; ranges a:b[:step], lists 2,4. {_many}")
SweepWindow = typer.Option(None, "-w", "--window-size",
                           help=f"Window per axis; 'all' = 2..L. {_many}")
SweepStride = typer.Option(None, "-s", "--stride",
                           help=f"Stride per axis: 'all' = 1..K on every axis, '1:16 1 8' mixes a range "
                                f"and fixed values. {_many}")
SweepDilation = typer.Option(None, "--dilation", help=f"Dilation per axis; 'all' = 1..L//K. {_many}")
SweepCausal = typer.Option(None, "-c", "--causal", help=f"Causal flag per axis; 'all' = 0 and 1. {_many}")
SweepQTile = typer.Option(None, "--q-tile", help=f"Q tile per axis (grid syntax). {_many}")
SweepKVTile = typer.Option(None, "--kv-tile", help=f"KV tile per axis (grid syntax). {_many}")


def _cli_mapping(**values: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Canonical spec keys from the flags that were given, with the flag names for errors."""
    flags = {"input_size": "--input-size", "window_size": "--window-size", "stride": "--stride",
             "dilation": "--dilation", "causal": "--causal", "q_tile": "--q-tile",
             "kv_tile": "--kv-tile", "tiles": "--tiles", "hardware": "--hardware",
             "kernel": "--kernel", "kv_tiling": "--kv-tiling", "head_dim": "--dim",
             "head_dim_v": "--dim-value", "batch": "--batch-size", "heads": "--heads",
             "heads_kv": "--heads-kv", "dtype": "--dtype",
             "attention_fraction": "--attention-fraction",
             "full_attention_steps": "--full-attention-steps", "total_steps": "--total-steps",
             "bounds_only": "--bounds-only"}
    from gnasim.explore.grid import Alternatives

    data: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        data[key] = Alternatives(value) if isinstance(value, list) else value
    return data, {k: flags[k] for k in data}


@guarded
def sweep(
    input_size: Optional[List[str]] = SweepInput, window_size: Optional[List[str]] = SweepWindow,
    stride: Optional[List[str]] = SweepStride, dilation: Optional[List[str]] = SweepDilation,
    causal: Optional[List[str]] = SweepCausal,
    tiles: Optional[str] = typer.Option(
        None, "--tiles", help="'all' (every tile shape the kernel ships), 'default', or Q/KV pairs "
                              "like 4x8x8/2x8x8 (space-separated)."),
    q_tile: Optional[List[str]] = SweepQTile, kv_tile: Optional[List[str]] = SweepKVTile,
    hardware: Optional[str] = typer.Option(
        None, "--hardware", help="Profiles, e.g. --hardware h100 b200; 'none' with explicit tiles. "
                                 "Default h100."),
    kernel: Optional[str] = typer.Option(None, "--kernel", "--backend",
                                         help="Kernels of each profile, or 'all' (default: its default)."),
    kv_tiling: Optional[str] = KVTiling,
    dim: Optional[str] = typer.Option(None, "-d", "--dim", help="Head dims, e.g. -d 64 128 (default 128)."),
    dim_value: Optional[int] = typer.Option(None, "--dim-value", help="Head dim of V (default: --dim)."),
    batch_size: Optional[int] = typer.Option(None, "-b", "--batch-size", help="Batch size (default 1)."),
    heads: Optional[int] = typer.Option(None, "-n", "--heads", help="Query heads (default 1)."),
    heads_kv: Optional[int] = typer.Option(None, "--heads-kv", help="KV heads (default: --heads)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp16, bf16, fp32 or fp8 (default fp16)."),
    attention_fraction: Optional[str] = typer.Option(
        None, "--attention-fraction", help="Attention shares of end-to-end time, e.g. 0.5 0.607."),
    full_attention_steps: Optional[int] = typer.Option(None, "--full-attention-steps"),
    total_steps: Optional[int] = typer.Option(None, "--total-steps"),
    spec: Optional[str] = typer.Option(None, "--spec", help="TOML or YAML spec file; flags override its keys."),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output file: .csv or .parquet."),
    resume: bool = typer.Option(False, "--resume", help="Keep the rows already in --out and compute the rest."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Processes (default: several for large sweeps)."),
    chunk_size: int = typer.Option(32768, "--chunk-size", help="Rows computed and written per chunk."),
    bounds_only: bool = typer.Option(
        False, "--bounds-only", help="Only the tile-plan and bound columns: skip the runtime model's "
                                     "columns."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on a terminal."),
    fmt: OutputFormat = Format,
) -> None:
    """Sweep a grid of configurations into CSV or Parquet, one `predict` record per row."""
    from gnasim.explore.grid import load_spec_file, spec_from_mapping
    from gnasim.explore.sweep import run_sweep

    data, labels = _cli_mapping(
        input_size=input_size, window_size=window_size, stride=stride, dilation=dilation,
        causal=causal, tiles=tiles, q_tile=q_tile, kv_tile=kv_tile, hardware=hardware,
        kernel=kernel, kv_tiling=kv_tiling, head_dim=dim, head_dim_v=dim_value, batch=batch_size,
        heads=heads, heads_kv=heads_kv, dtype=dtype, attention_fraction=attention_fraction,
        full_attention_steps=full_attention_steps, total_steps=total_steps,
        bounds_only=bounds_only or None)
    merged: dict[str, Any] = {}
    where = None
    if spec is not None:
        merged = load_spec_file(spec)
        where = f"spec {spec}"
        labels = {**{k: f"{where}: key '{k}'" for k in merged}, **labels}
    merged.update(data)
    out = out or merged.pop("out", None)
    merged.pop("out", None)
    if out is None:
        raise ConfigError("out: give an output file with --out FILE.csv or FILE.parquet")
    for key, flag in (("input_size", "-i/--input-size"), ("window_size", "-w/--window-size")):
        if key not in merged:
            where_key = f"{where}: key '{key}'" if where else key
            raise ConfigError(f"{where_key}: required (or give {flag})")
    sweep_spec = spec_from_mapping(merged, where, labels)
    summary = run_sweep(sweep_spec, out, resume=resume, jobs=jobs, chunk_rows=chunk_size,
                        show_progress=progress)
    if fmt == OutputFormat.json:
        print_json(summary.to_dict())
    else:
        _render_summary(summary)
    if summary.interrupted:
        raise typer.Exit(130)


def _render_summary(s: Any) -> None:
    from rich.console import Console

    con = Console(highlight=False)
    verb = "interrupted after writing" if s.interrupted else "wrote"
    con.print(f"sweep: {verb} {s.written:,} rows to {s.out} in {s.seconds:.2f} s "
              f"({s.rows_per_second:,.0f} rows/s, {s.jobs} process{'es' if s.jobs > 1 else ''})")
    if s.resumed_rows:
        con.print(f"resume: kept the {s.resumed_rows:,} rows already in the file")
    bad = sum(s.invalid.values())
    con.print(f"grid: {s.combinations:,} combinations, {s.rows:,} valid, {bad:,} invalid (skipped)")
    for reason, n in s.invalid.items():
        con.print(f"  {n:,} with {reason}")
    for line in s.skipped_groups:
        con.print(f"  skipped: {line}")
    if s.interrupted:
        con.print(f"{s.out} holds the {s.resumed_rows + s.written:,} rows written so far; run the "
                  "same command with --resume to finish it")


# -- recommend ---------------------------------------------------------------------------------

def _base_config(input_size: str, window_size: Optional[str], stride: str, dilation: str,
                 causal: str, q_tile: Optional[str], kv_tile: Optional[str], dim: int, dtype: str):
    """The problem from the flags. Without a window (window proposals, the sparsity plot) the
    layout stands in for it and the dilation is only parsed: the windows generated later obey
    ``K * D <= L`` by construction."""
    from gnasim.config import GNAConfig, parse_ints

    if window_size is not None:
        return GNAConfig(input_size=input_size, window_size=window_size, stride=stride,
                         dilation=dilation, causal=causal, q_tile=q_tile, kv_tile=kv_tile,
                         head_dim=dim, dtype=dtype)
    cfg = GNAConfig(input_size=input_size, window_size=input_size, causal=causal, q_tile=q_tile,
                    kv_tile=kv_tile, head_dim=dim, dtype=dtype)
    dil = parse_ints(dilation, "dilation")
    if len(dil) == 1:
        dil = dil * cfg.rank
    if len(dil) != cfg.rank:
        raise ConfigError(f"dilation: {len(dil)} values given but input_size has {cfg.rank} axes")
    for ax, (d, L) in enumerate(zip(dil, cfg.input_size)):
        if not 1 <= d <= L // 2:
            raise ConfigError(f"dilation (axis {ax}): must be in 1..{L // 2} (a window of at "
                              f"least 2 must fit input_size {L}), got {d}")
    return cfg.model_copy(update={"dilation": dil})



def _profile(hardware: str):
    from gnasim.hardware.profile import load_profile

    return None if hardware.strip().lower() == "none" else load_profile(hardware)


@guarded
def recommend(
    input_size: str = typer.Option(..., "-i", "--input-size", help="Token layout, e.g. -i 30 48 80."),
    window_size: Optional[str] = typer.Option(
        None, "-w", "--window-size", help="Window per axis (optional with --target-sparsity)."),
    dilation: str = Dilation,
    causal: str = Causal,
    q_tile: Optional[str] = QTile,
    kv_tile: Optional[str] = KVTile,
    hardware: str = Hardware,
    kernel: Optional[str] = KernelOpt,
    kv_tiling: Optional[str] = KVTiling,
    dim: int = typer.Option(128, "-d", "--dim", help="Head dim (selects the kernel's tile shapes)."),
    dtype: str = Dtype,
    all_tiles: bool = typer.Option(False, "--all-tiles", help="Search every tile shape the kernel ships."),
    target_sparsity: Optional[float] = typer.Option(
        None, "--target-sparsity", help="Propose windows (multiples of the KV tile) near this sparsity."),
    windows: int = typer.Option(3, "--windows", help="How many windows --target-sparsity proposes."),
    attention_fraction: Optional[float] = typer.Option(
        None, "--attention-fraction", help="Share of end-to-end time in attention: adds end-to-end bounds."),
    full_attention_steps: int = typer.Option(0, "--full-attention-steps"),
    total_steps: Optional[int] = typer.Option(None, "--total-steps"),
    fmt: OutputFormat = Format,
) -> None:
    """The paper's pruned stride search: Pareto-optimal strides by tile bound, best tile shapes."""
    from gnasim.explore.recommend import propose_windows, recommend as run_recommend, tile_candidates

    profile = _profile(hardware)
    proposals = []
    if window_size is None and target_sparsity is None:
        raise ConfigError("window_size: give -w/--window-size, or --target-sparsity to propose windows")
    base = _base_config(input_size, window_size, "1", dilation, causal, q_tile, kv_tile, dim, dtype)
    kern = profile.kernel(kernel) if profile is not None else None
    mode = kv_tiling or (kern.kv_tiling if kern is not None else "static")
    candidates: list[Any] = []
    if target_sparsity is not None:
        shapes, _ = tile_candidates(base, profile, kernel, False)
        tiled = base.with_tiles(*shapes[0])
        proposals = propose_windows(tiled, target_sparsity, mode, windows)
        candidates = [base.replace(window_size=w.window) for w in proposals]
        if window_size is not None:
            candidates.insert(0, base)
    else:
        candidates = [base]
    results = []
    for cfg in candidates:
        results.append(run_recommend(cfg, profile, kernel, kv_tiling, all_tiles, attention_fraction,
                                     full_attention_steps, total_steps))
    if fmt == OutputFormat.json:
        records = []
        for searches in results:
            for s in searches:
                for rec in s.records():
                    if target_sparsity is not None:
                        rec["target_sparsity"] = target_sparsity
                    records.append(rec)
        print_json(records)
        return
    _render_recommend(results, proposals, target_sparsity, window_size is not None)


def _render_recommend(results: list, proposals: list, target: Optional[float],
                      explicit_window: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from gnasim.hardware.profile import format_tile

    con = Console(highlight=False)
    if proposals:
        t = Table(title=f"Windows near sparsity {target:.2%} (multiples of the KV tile)",
                  title_justify="left")
        for col in ("window", "sparsity", "FLOP bound", "NA bound", "best bound", "smallest block-sparse stride"):
            t.add_column(col, justify="left" if col in ("window", "smallest block-sparse stride") else "right")
        offset = 1 if explicit_window else 0
        for w, searches in zip(proposals, results[offset:]):
            s = max(searches, key=lambda x: x.tile_speedup(x.best_stride()))
            na = tuple([1] * len(w.window))
            sbs = s.smallest_block_sparse
            t.add_row(format_tile(w.window), f"{w.sparsity:.2%}", f"{w.flop_speedup:.3f}x",
                      f"{s.tile_speedup(na):.3f}x", f"{s.tile_speedup(s.best_stride()):.3f}x",
                      f"{format_tile(sbs)} ({s.tile_speedup(sbs):.3f}x)" if sbs else "none")
        con.print(t)
        if not explicit_window:
            con.print(f"Pareto strides for the nearest window, {format_tile(proposals[0].window)}:")
    searches = results[0]
    if len(searches) > 1:
        t = Table(title="Tile shapes", title_justify="left")
        for col in ("Q tile", "KV tile", "NA bound", "best bound", "Pareto strides",
                    "smallest block-sparse stride"):
            t.add_column(col, justify="right" if "bound" in col or col == "Pareto strides" else "left")
        for s in sorted(searches, key=lambda x: -x.tile_speedup(x.best_stride())):
            sbs = s.smallest_block_sparse
            na = tuple([1] * len(s.shape))
            t.add_row(format_tile(s.config.q_tile), format_tile(s.config.kv_tile),
                      f"{s.tile_speedup(na):.3f}x", f"{s.tile_speedup(s.best_stride()):.3f}x",
                      str(int(s.pareto.sum())),
                      f"{format_tile(sbs)} ({s.tile_speedup(sbs):.3f}x)" if sbs else "none")
        con.print(t)
    for s in searches:
        _render_search(con, s)


def _render_search(con: Any, s: Any) -> None:
    from rich.table import Table

    from gnasim.hardware.profile import format_tile

    c = s.config
    hw = f"{s.hardware} / {s.kernel}" if s.hardware else "no hardware profile"
    t = Table(title=(f"Pareto strides: {format_tile(c.input_size)}, window {format_tile(c.window_size)}, "
                     f"Q {format_tile(c.q_tile)} / KV {format_tile(c.kv_tile)} ({s.mode}, {hw})"),
              title_justify="left")
    cols = ["stride", "tile bound", "FLOP bound", "block-sparse", "KV tiles (worst Q tile)"]
    if s.attention_fraction is not None:
        cols.append(f"end-to-end (f={s.attention_fraction})")
    for col in cols:
        t.add_column(col, justify="left" if col in ("stride", "block-sparse") else "right")
    sbs = s.smallest_block_sparse
    for rec in s.records():
        mark = " <- smallest perfectly block-sparse" if rec["smallest_block_sparse"] else ""
        if not rec["pareto"]:
            mark += " (not on the Pareto set)"
        row = [rec["stride"], f"{rec['tile_speedup']:.3f}x", f"{rec['flop_speedup']:.3f}x",
               ("yes" if rec["fully_block_sparse"] else "no") + mark,
               f"{rec['kv_tiles_visited_max']:,} / {rec['dense_kv_tiles_per_q_tile']:,}"]
        if s.attention_fraction is not None:
            row.append(f"{rec['e2e_tile_speedup']:.3f}x")
        t.add_row(*row)
    con.print(t)
    if sbs is not None:
        flop = s.flop_speedup(sbs)
        eq = "= the FLOP bound" if math.isclose(s.tile_speedup(sbs), flop) else f"(FLOP bound {flop:.3f}x)"
        con.print(f"smallest perfectly block-sparse stride: {format_tile(sbs)}, tile bound "
                  f"{s.tile_speedup(sbs):.3f}x {eq}")
    else:
        con.print("no stride makes this window perfectly block-sparse with these tiles")
    for note in s.notes:
        con.print(f"[yellow]note:[/] {note}")


# -- plot --------------------------------------------------------------------------------------

class PlotKind(str, Enum):
    tile_map = "tile-map"
    stride_heatmap = "stride-heatmap"
    pareto = "pareto"
    sparsity = "sparsity"


@guarded
def plot(
    kind: PlotKind = typer.Argument(..., help="tile-map, stride-heatmap, pareto or sparsity."),
    input_size: str = typer.Option(..., "-i", "--input-size", help="Token layout, e.g. -i 30 48 80."),
    window_size: Optional[str] = typer.Option(None, "-w", "--window-size",
                                              help="Window per axis (not needed for sparsity)."),
    stride: str = typer.Option("1", "-s", "--stride", help="Stride per axis (tile-map; other axes of stride-heatmap)."),
    dilation: str = Dilation,
    causal: str = Causal,
    q_tile: Optional[str] = QTile,
    kv_tile: Optional[str] = KVTile,
    hardware: str = Hardware,
    kernel: Optional[str] = KernelOpt,
    kv_tiling: Optional[str] = KVTiling,
    dim: int = typer.Option(128, "-d", "--dim", help="Head dim (selects the kernel's tile shapes)."),
    q_index: Optional[str] = typer.Option(None, "--q-index", help="tile-map: the Q tile, per axis (default 0)."),
    axes: Optional[str] = typer.Option(None, "--axes", help="tile-map / stride-heatmap: the two axes drawn."),
    slice_key: Optional[str] = typer.Option(None, "--slice-key",
                                            help="tile-map: key index on each axis not drawn (per axis)."),
    group: Optional[str] = typer.Option(None, "--group", help="tile-map: dilation group per axis (default 0)."),
    points: int = typer.Option(24, "--points", help="sparsity: number of windows."),
    out: str = typer.Option(..., "--out", "-o", help="HTML file to write (self-contained)."),
    png: Optional[str] = typer.Option(None, "--png", help="Also write a PNG (needs kaleido)."),
) -> None:
    """Interactive plotly HTML: tile map, stride heatmap, Pareto front or speedup vs sparsity."""
    from gnasim.config import parse_ints
    from gnasim.hardware.profile import format_tile
    from gnasim.hardware.tiles import resolve_tiles

    profile = _profile(hardware)
    kern = profile.kernel(kernel) if profile is not None else None
    mode = kv_tiling or (kern.kv_tiling if kern is not None else "static")
    if mode not in ("static", "dynamic"):
        raise ConfigError(f"kv_tiling: '{mode}' is not one of ['static', 'dynamic']")
    if window_size is None and kind != PlotKind.sparsity:
        raise ConfigError(f"window_size: required for the {kind.value} plot (-w/--window-size)")
    cfg = _base_config(input_size, window_size, stride, dilation, causal, q_tile, kv_tile, dim,
                       "fp16")
    cfg, notes = resolve_tiles(cfg, kern)
    opt = lambda text, name: parse_ints(text, name) if text is not None else None
    from gnasim import plots

    if png is not None and not plots.kaleido_available():
        raise ConfigError("png: writing PNG needs the kaleido package (pip install kaleido); nothing was written")
    if kind == PlotKind.tile_map:
        fig = plots.tile_map_figure(cfg, mode, opt(q_index, "q_index"), opt(axes, "axes"),
                                    opt(slice_key, "slice_key"), opt(group, "group"))
    elif kind == PlotKind.stride_heatmap:
        fig = plots.stride_heatmap_figure(cfg, mode, opt(axes, "axes"))
    elif kind == PlotKind.pareto:
        from gnasim.explore.recommend import search_strides
        fig = plots.pareto_figure(search_strides(cfg, mode, profile.name if profile else None,
                                                 kern.name if kern else None))
    else:
        fig = plots.sparsity_figure(cfg, mode, points)
    written = plots.write_figure(fig, out, png)
    typer.echo(f"plot: wrote {', '.join(str(p) for p in written)} ({kind.value}, "
               f"Q {format_tile(cfg.q_tile)} / KV {format_tile(cfg.kv_tile)}, {mode} KV tiling)")
    for note in notes:
        typer.echo(f"note: {note}")
