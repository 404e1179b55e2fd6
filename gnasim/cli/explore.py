"""``gnasim sweep``, ``gnasim recommend`` and ``gnasim plot``: exploring the design space.

Plain functions, registered on the app at the end of :mod:`gnasim.cli`. Heavy imports (pyarrow,
plotly) stay inside the functions so ``gnasim predict`` starts as fast as before.
"""

from __future__ import annotations

import inspect
from enum import Enum
from typing import Any, List, Optional

import typer

from gnasim.cli.options import (TileHeadDim,
    DEFAULT_DIM, Batch, Causal, Dilation, Dtype, Format, Hardware, Heads, KernelOpt, KVTile,
    KVTiling, OutputFormat, PresetOpt, QTile, guarded, multi_option, print_json, problem_flags,
    single_problem_axes,
)
from gnasim.cli.predict import Tiling, flat_tokens
from gnasim.errors import ConfigError

# -- shared options (the predict flags, here repeatable or optional) -----------------------------
_many = "Repeat the flag for alternatives."
SweepInput = multi_option(None, "-i", "--input-size", metavar="GRID",
                          help=f"Layout per axis, e.g. -i 30 48 80; ranges a:b[:step], lists 2,4. {_many}")
SweepWindow = multi_option(None, "-w", "--window-size", metavar="GRID",
                           help=f"Window per axis; 'all' = 2..L. {_many}")
SweepStride = multi_option(None, "-s", "--stride", metavar="GRID",
                           help=f"Stride per axis: 'all' = 1..K on every axis, '1:16 1 8' mixes a range "
                                f"and fixed values. {_many}")
SweepDilation = multi_option(None, "--dilation", metavar="GRID", help=f"Dilation per axis; 'all' = 1..L//K. {_many}")
SweepCausal = multi_option(None, "-c", "--causal", metavar="GRID", help=f"Causal flag per axis; 'all' = 0 and 1. {_many}")
SweepQTile = multi_option(None, "--q-tile", metavar="GRID", help=f"Q tile per axis (grid syntax). {_many}")
SweepKVTile = multi_option(None, "--kv-tile", metavar="GRID", help=f"KV tile per axis (grid syntax). {_many}")


# sweep parameters whose spec key has another name; parameters that are not spec keys
_SPEC_KEY = {"dim": "head_dim", "dim_value": "head_dim_v", "batch_size": "batch"}
_NOT_SPEC = {"spec", "out", "resume", "jobs", "chunk_size", "progress", "fmt"}


def flag_labels(command: Any) -> dict[str, str]:
    """Spec key -> the flag that sets it (its first long name), read from the command's option
    declarations, so error messages name the flag the user typed."""
    labels: dict[str, str] = {}
    for name, param in inspect.signature(command).parameters.items():
        decls = getattr(param.default, "param_decls", None)
        if name in _NOT_SPEC or not decls:
            continue
        longs = [d for d in decls if d.startswith("--")]
        labels[_SPEC_KEY.get(name, name)] = longs[0] if longs else decls[0]
    return labels


def _cli_mapping(**values: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Canonical spec keys from the flags that were given, with the flag names for errors."""
    from gnasim.explore.grid import Alternatives

    flags = flag_labels(sweep)
    data: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        data[key] = Alternatives(value) if isinstance(value, list) else value
    return data, {k: flags[k] for k in data}


def _preset_keys(preset: Optional[str], given: dict[str, Any]) -> dict[str, Any]:
    """The spec keys ``--preset`` fills that no flag set (a preset beats the --spec file, flags
    beat the preset)."""
    if preset is None:
        return {}
    from gnasim.config import format_tile
    from gnasim.presets import get_preset

    values = get_preset(preset).values()
    return {k: format_tile(v) if isinstance(v, tuple) else v for k, v in values.items()
            if k not in given}


@guarded
def sweep(
    input_size: Optional[List[str]] = SweepInput, window_size: Optional[List[str]] = SweepWindow,
    stride: Optional[List[str]] = SweepStride, dilation: Optional[List[str]] = SweepDilation,
    causal: Optional[List[str]] = SweepCausal,
    tiles: Optional[str] = multi_option(
        None, "--tiles", metavar="PAIRS", help="'all' (every tile shape the kernel ships), 'default', or Q/KV pairs "
                              "like 4x8x8/2x8x8 (space-separated)."),
    q_tile: Optional[List[str]] = SweepQTile, kv_tile: Optional[List[str]] = SweepKVTile,
    hardware: Optional[str] = multi_option(
        None, "--hardware", metavar="GPUS", help="Profiles, e.g. --hardware h100 b200; 'none' with explicit tiles. "
                                 "Default h100."),
    kernel: Optional[str] = multi_option(None, "--kernel", "--backend", metavar="NAMES",
                                         help="Kernels of each profile, or 'all' (default: its default)."),
    kv_tiling: Optional[str] = KVTiling,
    tiling: Optional[str] = typer.Option(
        None, "--tiling", metavar="MODE",
        help="multi-dim (box tiles, the default) or flat: runs of tokens of the row-major layout "
             "(FlexAttention's default path); --q-tile/--kv-tile are then token counts, and "
             "each row is one simulate() call."),
    dim: Optional[str] = multi_option(None, "-d", "--dim", metavar="DIMS",
                                      help=f"Head dims, e.g. -d 64 128 (default {DEFAULT_DIM}, NATTEN's)."),
    dim_value: Optional[int] = multi_option(None, "--dim-value", metavar="N",
                                            help="Head dim of V (default: --dim)."),
    batch_size: Optional[int] = multi_option(None, "-b", "--batch-size", metavar="N",
                                             help="Batch size (default 1)."),
    heads: Optional[int] = multi_option(None, "-n", "--heads", metavar="N",
                                        help="Query heads (default 1)."),
    heads_kv: Optional[int] = multi_option(None, "--heads-kv", metavar="N",
                                           help="KV heads (default: --heads)."),
    dtype: Optional[str] = multi_option(None, "--dtype", metavar="DTYPE",
                                        help="fp32, fp16, bf16, e4m3, e5m2 (default fp16)."),
    attention_fraction: Optional[str] = multi_option(
        None, "--attention-fraction", metavar="FS",
        help="Attention shares of end-to-end time, e.g. 0.5 0.607."),
    full_attention_steps: Optional[int] = typer.Option(
        None, "--full-attention-steps", metavar="N",
        help="Initial diffusion steps kept as full attention."),
    total_steps: Optional[int] = typer.Option(None, "--total-steps", metavar="N",
                                              help="Total diffusion steps."),
    spec: Optional[str] = typer.Option(None, "--spec", metavar="FILE",
                                       help="TOML or YAML spec file; flags override its keys."),
    out: Optional[str] = typer.Option(None, "--out", "-o", metavar="FILE",
                                      help="Output file: .csv or .parquet."),
    resume: bool = typer.Option(False, "--resume",
                                help="Keep the rows of an interrupted run (or of --out) and compute the rest."),
    force: bool = typer.Option(False, "--force",
                               help="Replace an existing --out that is not this sweep's table."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", metavar="N",
                                       help="Processes (default: several for large sweeps)."),
    chunk_size: int = typer.Option(32768, "--chunk-size", metavar="N",
                                   help="Rows computed and written per chunk."),
    bounds_only: bool = typer.Option(
        False, "--bounds-only", help="Only the tile-plan and bound columns: skip the runtime "
                                     "model's columns (computed in batches per tile shape)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar on a terminal."),
    preset: Optional[str] = PresetOpt,
    fmt: OutputFormat = Format,
) -> None:
    """Sweep a grid of configurations into CSV or Parquet, one `predict` record per row."""
    from gnasim.explore.grid import load_spec_file, spec_from_mapping
    from gnasim.explore.sweep import run_sweep

    data, labels = _cli_mapping(
        input_size=input_size, window_size=window_size, stride=stride, dilation=dilation,
        causal=causal, tiles=tiles, q_tile=q_tile, kv_tile=kv_tile, hardware=hardware,
        kernel=kernel, kv_tiling=kv_tiling, tiling=tiling, head_dim=dim, head_dim_v=dim_value, batch=batch_size,
        heads=heads, heads_kv=heads_kv, dtype=dtype, attention_fraction=attention_fraction,
        full_attention_steps=full_attention_steps, total_steps=total_steps,
        bounds_only=bounds_only or None)
    data.update(_preset_keys(preset, data))
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
                        show_progress=progress, force=force)
    if fmt == OutputFormat.json:
        print_json(summary.to_dict())
    else:
        from gnasim.render import render_sweep_summary

        render_sweep_summary(summary)
    if summary.interrupted:
        raise typer.Exit(130)


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


class Objective(str, Enum):
    bound = "bound"
    time = "time"
    time_with_permute = "time-with-permute"


TilingOpt = typer.Option(
    Tiling.multi_dim, "--tiling",
    help="multi-dim: box tiles (NATTEN); flat: runs of tokens of the row-major layout "
         "(FlexAttention's default path); --q-tile/--kv-tile are then token counts.")


def _flat_tiles(tiling: Tiling, q_tile: Optional[str], kv_tile: Optional[str]):
    """Under flat tiling, ``--q-tile/--kv-tile`` as token counts (and no box tiles)."""
    if tiling != Tiling.flat:
        return None, q_tile, kv_tile
    if (q_tile is None) != (kv_tile is None):
        raise ConfigError("q_tile/kv_tile: give the Q and the KV tile together "
                          "(--q-tile, --kv-tile)")
    if q_tile is None:
        return None, None, None
    return (flat_tokens(q_tile, "q_tile"), flat_tokens(kv_tile, "kv_tile")), None, None


@guarded
def recommend(
    input_size: Optional[str] = multi_option(None, "-i", "--input-size", metavar="AXES",
                                             callback=single_problem_axes,
                                             help="Token layout, e.g. -i 30 48 80 (or --preset)."),
    window_size: Optional[str] = multi_option(
        None, "-w", "--window-size", metavar="AXES", callback=single_problem_axes,
        help="Window per axis (optional with --target-sparsity)."),
    dilation: Optional[str] = Dilation,
    causal: str = Causal,
    q_tile: Optional[str] = QTile,
    kv_tile: Optional[str] = KVTile,
    hardware: str = Hardware,
    kernel: Optional[str] = KernelOpt,
    kv_tiling: Optional[str] = KVTiling,
    dim: Optional[int] = TileHeadDim,
    heads: Optional[int] = Heads,
    batch_size: int = Batch,
    dtype: str = Dtype,
    preset: Optional[str] = PresetOpt,
    objective: Optional[Objective] = typer.Option(
        None, "--objective",
        help="bound: the Pareto set by tile bound; time / time-with-permute: rank by predicted "
             "kernel time (+ token permute). Default: time-with-permute with a hardware profile, "
             "bound without."),
    all_tiles: bool = typer.Option(False, "--all-tiles", help="Search every tile shape the kernel ships."),
    target_sparsity: Optional[float] = typer.Option(
        None, "--target-sparsity", metavar="F", help="Propose windows (multiples of the KV tile) near this sparsity."),
    windows: int = typer.Option(3, "--windows", metavar="N", help="How many windows --target-sparsity proposes."),
    top: int = typer.Option(10, "--top", metavar="N",
                            help="Rows shown in the table of a time objective (JSON: all)."),
    attention_fraction: Optional[float] = multi_option(
        None, "--attention-fraction", metavar="F",
        help="Share of end-to-end time in attention: adds end-to-end bounds."),
    full_attention_steps: int = typer.Option(
        0, "--full-attention-steps", metavar="N",
        help="Initial diffusion steps kept as full attention (with --attention-fraction)."),
    total_steps: Optional[int] = typer.Option(None, "--total-steps", metavar="N",
                                              help="Total diffusion steps."),
    tiling: Tiling = TilingOpt,
    fmt: OutputFormat = Format,
) -> None:
    """Strides (and with --all-tiles tile shapes) ranked by predicted time, or the paper's
    Pareto set by tile bound (--objective bound)."""
    from gnasim.explore.flat_search import recommend_flat
    from gnasim.explore.recommend import (check_objective, default_objective, propose_windows,
                                          ranked_records, recommend as run_recommend,
                                          tile_candidates, time_searches)

    p = problem_flags(preset, input_size=input_size, window_size=window_size,
                      dilation=dilation, heads=heads, dim=dim)
    if attention_fraction is None and (full_attention_steps or total_steps is not None):
        raise ConfigError("full_attention_steps/total_steps: give --attention-fraction too "
                          "(they weight the end-to-end Amdahl speedup)")
    flat_tiles, q_tile, kv_tile = _flat_tiles(tiling, q_tile, kv_tile)
    if flat_tiles is not None or tiling == Tiling.flat:
        if target_sparsity is not None:
            raise ConfigError("target_sparsity: window proposals rank box tiles; drop "
                              "--tiling flat")
    profile = _profile(hardware)
    if tiling == Tiling.flat:
        if objective is not None and objective != Objective.bound:
            raise ConfigError("objective: --tiling flat ranks strides by tile bound; use "
                              "--objective bound (time objectives rank box tiles)")
        goal = "bound"
    else:
        goal = check_objective(objective.value if objective else default_objective(profile),
                               profile)
    window_size = p["window_size"]
    proposals = []
    if window_size is None and target_sparsity is None:
        raise ConfigError("window_size: give -w/--window-size, or --target-sparsity to propose windows")
    base = _base_config(p["input_size"], window_size, "1", p["dilation"], causal, q_tile, kv_tile,
                        p["dim"], dtype).replace(heads=p["heads"], batch=batch_size)
    kern = profile.kernel(kernel) if profile is not None and tiling != Tiling.flat else None
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
        if tiling == Tiling.flat:
            results.append(recommend_flat(cfg, profile, kernel, all_tiles, flat_tiles,
                                          attention_fraction, full_attention_steps, total_steps))
            continue
        results.append(run_recommend(cfg, profile, kernel, kv_tiling, all_tiles, attention_fraction,
                                     full_attention_steps, total_steps))
    if goal != "bound":
        ranked = ranked_records([t for searches in results
                                 for t in time_searches(searches, hardware, goal)])
        for rec in ranked:
            if target_sparsity is not None:
                rec["target_sparsity"] = target_sparsity
        if fmt == OutputFormat.json:
            print_json(ranked)
            return
        from gnasim.render import render_ranked

        render_ranked(ranked, goal, top, [n for s in results[0] for n in s.notes])
        return
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
    from gnasim.render import render_recommend

    render_recommend(results, proposals, target_sparsity, window_size is not None)


# -- plot --------------------------------------------------------------------------------------

class PlotKind(str, Enum):
    tile_map = "tile-map"
    stride_heatmap = "stride-heatmap"
    pareto = "pareto"
    sparsity = "sparsity"
    curse = "curse"


class PlotlyJs(str, Enum):
    """How an HTML page gets plotly.js: from plotly's CDN (a small file that needs the network
    when opened, the default) or inlined (4.9 MB per file, opens offline)."""

    cdn = "cdn"
    inline = "inline"


PlotlyJsOpt = typer.Option(
    PlotlyJs.cdn, "--plotly-js",
    help="cdn: small HTML that loads plotly.js from its CDN (needs the network to open); "
         "inline: embeds plotly.js (4.9 MB, opens offline).")


@guarded
def plot(
    kind: PlotKind = typer.Argument(
        ..., help="tile-map, stride-heatmap, pareto, sparsity or curse (flat vs box tiling "
                  "over a range of windows)."),
    input_size: Optional[str] = multi_option(None, "-i", "--input-size", metavar="AXES",
                                             callback=single_problem_axes,
                                             help="Token layout, e.g. -i 30 48 80 (or --preset)."),
    window_size: Optional[str] = multi_option(
        None, "-w", "--window-size", metavar="AXES", callback=single_problem_axes,
        help="Window per axis (not needed for sparsity)."),
    stride: Optional[str] = multi_option(
        None, "-s", "--stride", metavar="AXES", callback=single_problem_axes,
        help="Stride per axis (tile-map; other axes of stride-heatmap). Default 1."),
    dilation: Optional[str] = Dilation,
    causal: str = Causal,
    q_tile: Optional[str] = QTile,
    kv_tile: Optional[str] = KVTile,
    hardware: str = Hardware,
    kernel: Optional[str] = KernelOpt,
    kv_tiling: Optional[str] = KVTiling,
    dim: Optional[int] = TileHeadDim,
    preset: Optional[str] = PresetOpt,
    q_index: Optional[str] = multi_option(None, "--q-index", metavar="AXES",
                                          callback=single_problem_axes,
                                          help="tile-map: the Q tile, per axis (default 0)."),
    axes: Optional[str] = multi_option(None, "--axes", metavar="AXES",
                                       callback=single_problem_axes,
                                       help="tile-map / stride-heatmap: the two axes drawn."),
    slice_key: Optional[str] = multi_option(None, "--slice-key", metavar="AXES",
                                            callback=single_problem_axes,
                                            help="tile-map: key index on each axis not drawn (per axis)."),
    group: Optional[str] = multi_option(None, "--group", metavar="AXES",
                                        callback=single_problem_axes, help="tile-map: dilation group per axis (default 0)."),
    points: int = typer.Option(24, "--points", metavar="N",
                               help="sparsity, curse: number of windows."),
    curse_windows: Optional[str] = multi_option(
        None, "--curse-windows", metavar="WINDOWS",
        help="curse: windows drawn, e.g. 6x8x8 12x16x16, or cube sizes 8 16 32 (capped at each "
             "axis); default --points cube sizes up to the longest axis. -s window: blocked."),
    tiling: Tiling = TilingOpt,
    out: str = typer.Option(..., "--out", "-o", metavar="FILE", help="HTML file to write."),
    png: Optional[str] = typer.Option(None, "--png", metavar="FILE", help="Also write a PNG (needs kaleido)."),
    plotly_js: PlotlyJs = PlotlyJsOpt,
) -> None:
    """Interactive plotly HTML: tile map, stride heatmap, Pareto front, speedup vs sparsity, or
    the curse of multi-dimensionality (flat against box tiling)."""
    from gnasim.config import parse_ints
    from gnasim.config import format_tile
    from gnasim.errors import require_extra
    from gnasim.hardware.tiles import resolve_tiles

    require_extra("plotly", "plot", "plot")
    p = problem_flags(preset, input_size=input_size, window_size=window_size, stride=stride,
                      dilation=dilation, dim=dim)
    input_size, window_size, stride, dilation, dim = (
        p["input_size"], p["window_size"], p["stride"], p["dilation"], p["dim"])
    if kind == PlotKind.curse or tiling == Tiling.flat:
        _plot_flat(kind, input_size, window_size, stride, dilation, causal, q_tile, kv_tile,
                   hardware, kernel, kv_tiling, dim, points, curse_windows, out, png,
                   plotly_js.value)
        return
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
    written = plots.write_figure(fig, out, png, plotly_js.value)
    js = "plotly.js inline" if plotly_js == PlotlyJs.inline else "plotly.js from its CDN"
    typer.echo(f"plot: wrote {', '.join(str(p) for p in written)} ({kind.value}, "
               f"Q {format_tile(cfg.q_tile)} / KV {format_tile(cfg.kv_tile)}, {mode} KV tiling, "
               f"{js})")
    for note in notes:
        typer.echo(f"note: {note}")


def _curse_windows(text: Optional[str], input_size: tuple[int, ...],
                   points: int) -> list[tuple[int, ...]]:
    """Windows of the curse plot: ``AxBxC`` windows or cube sizes, else ``points`` cube sizes
    spread geometrically from 2 to the longest axis."""
    from gnasim.config import parse_ints
    from gnasim.plots_flat import cube_windows

    if text is None:
        if points < 1:
            raise ConfigError(f"points: must be >= 1, got {points}")
        top = max(input_size)
        sizes = sorted({max(2, round(2 * (top / 2) ** (i / max(points - 1, 1))))
                        for i in range(points)})
        return list(dict.fromkeys(cube_windows(input_size, sizes)))
    out = []
    for token in text.split():
        values = parse_ints(token, "curse_windows")
        if len(values) not in (1, len(input_size)):
            raise ConfigError(f"curse_windows: window '{token}' has {len(values)} axes, "
                              f"input_size has {len(input_size)}")
        if len(values) > 1 and not all(2 <= k <= L for k, L in zip(values, input_size)):
            raise ConfigError(f"curse_windows: window '{token}' must be 2..input_size per axis")
        if len(values) == 1 and values[0] < 2:
            raise ConfigError(f"curse_windows: cube size {values[0]} must be >= 2")
        out += cube_windows(input_size, values) if len(values) == 1 else [values]
    return list(dict.fromkeys(out))


def _plot_flat(kind: PlotKind, input_size: str, window_size: Optional[str], stride: str,
               dilation: str, causal: str, q_tile: Optional[str], kv_tile: Optional[str],
               hardware: str, kernel: Optional[str], kv_tiling: Optional[str], dim: int,
               points: int, curse_windows: Optional[str], out: str, png: Optional[str],
               plotly_js: str = "cdn") -> None:
    """The plots of flat tiling: the curse (flat against box tiles over windows) and the
    Pareto front of the flat stride search."""
    from gnasim import plots
    from gnasim.config import format_tile, parse_ints
    from gnasim.prediction import flat_kernel

    if kind not in (PlotKind.curse, PlotKind.pareto):
        raise ConfigError(f"tiling: the {kind.value} plot draws box tile plans; flat tiling "
                          "draws curse and pareto")
    if png is not None and not plots.kaleido_available():
        raise ConfigError("png: writing PNG needs the kaleido package (pip install kaleido); "
                          "nothing was written")
    profile = _profile(hardware)
    flat_tiles, _, _ = _flat_tiles(Tiling.flat, q_tile, kv_tile)
    if kind == PlotKind.pareto:
        from gnasim.explore.flat_search import recommend_flat

        if window_size is None:
            raise ConfigError("window_size: required for the pareto plot (-w/--window-size)")
        cfg = _base_config(input_size, window_size, "1", dilation, causal, None, None, dim, "fp16")
        (search,) = recommend_flat(cfg, profile, kernel, flat_tiles=flat_tiles)
        written = plots.write_figure(plots.pareto_figure(search), out, png, plotly_js)
        typer.echo(f"plot: wrote {', '.join(str(p) for p in written)} (pareto, flat tiles Q "
                   f"{format_tile(search.config.q_tile)} / KV {format_tile(search.config.kv_tile)} "
                   "tokens)")
        for note in search.notes:
            typer.echo(f"note: {note}")
        return
    from gnasim.plots_flat import curse_figure

    layout = parse_ints(input_size, "input_size")
    windows = _curse_windows(curse_windows, layout, points)
    blocked = stride.strip().lower() == "window"
    flat_kern = flat_kernel(profile, None) if profile is not None else None
    if flat_tiles is None:
        flat_tiles = flat_kern.flat_tiles(dim)[0] if flat_kern is not None and \
            flat_kern.tiling == "flat" else (128, 128)
    box_tiles, mode = [], kv_tiling or "static"
    if profile is not None:
        box = profile.kernel(kernel) if kernel is not None else profile.kernel()
        if box.tiling == "flat":
            raise ConfigError(f"kernel: '{box.name}' tiles flat; the curse plot's box tiles come "
                              "from a box kernel (--kernel hopper-fna, ...)")
        tile = box.default_tile(len(layout), dim)
        if tile is not None:
            box_tiles, mode = [tile], kv_tiling or box.kv_tiling
    fig = curse_figure(layout, windows, stride="window" if blocked else stride,
                       dilation=dilation, causal=causal, flat_tiles=[flat_tiles],
                       box_tiles=box_tiles, kv_tiling=mode)
    written = plots.write_figure(fig, out, png, plotly_js)
    shown = [f"flat {flat_tiles[0]}/{flat_tiles[1]} tokens"] + \
        [f"box {format_tile(q)}/{format_tile(kv)}" for q, kv in box_tiles]
    typer.echo(f"plot: wrote {', '.join(str(p) for p in written)} (curse, {len(windows)} "
               f"windows, {', '.join(shown)})")
