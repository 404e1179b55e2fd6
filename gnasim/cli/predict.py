"""``gnasim predict``, ``gnasim tiles`` and ``gnasim profiles``: one problem, NATTEN's flags.

``predict`` takes every flag of NATTEN's profiler with its meaning and default (see
:mod:`gnasim.cli.natten`); ``--dry-run`` lists the tile configurations the GPU's kernels can
run for the problem and ``--optimize`` ranks them by predicted time, for any GPU profile.
"""

from __future__ import annotations

from dataclasses import replace
from enum import Enum
from typing import Any, Optional

import typer

from gnasim.cli import natten
from gnasim.cli.options import (
    Batch, Causal, Dilation, Dim, DimValue, Dtype, Format, Hardware, Heads, HeadsKV, InputSize,
    KernelOpt, KVTile, KVTiling, OutputFormat, PresetOpt, QTile, Stride, WindowSize, build_config,
    guarded, multi_option, print_json, problem_flags, single_problem_axes,
)
from gnasim.errors import ConfigError


class Schedule(str, Enum):
    non = "non"
    coop = "coop"
    pp = "pp"


class Tiling(str, Enum):
    multi_dim = "multi-dim"
    flat = "flat"


def _tiles(text: Optional[str], name: str) -> Optional[tuple[int, ...]]:
    from gnasim.config import parse_ints

    return parse_ints(text, name) if text is not None else None


def _pair(q: Optional[str], kv: Optional[str], what: str, flags: str) -> None:
    """NATTEN's rule: a Q tile and a KV tile are given together or not at all."""
    if (q is None) != (kv is None):
        raise ConfigError(f"{what}: give the Q and the KV tile together ({flags})")


def _profile(hardware: str):
    from gnasim.hardware.profile import load_profile

    return None if hardware.strip().lower() == "none" else load_profile(hardware)


# -- dry run and optimize ----------------------------------------------------------------------
def config_rows(cfg: Any, profile: Any, kernel: Optional[str], kv_tiling: Optional[str],
                backward: bool, max_configs: int = 0) -> tuple[list[dict[str, Any]], list[str]]:
    """The tile configurations each kernel can run for ``cfg`` (forward, and backward with
    ``backward``), each with its padding and tile bound; at most ``max_configs`` per kernel and
    pass (0: all)."""
    from gnasim.hardware.tiles import supported_tiles
    from gnasim.prediction import simulate

    if profile is None:
        raise ConfigError("hardware: listing tile configurations needs a hardware profile")
    if max_configs < 0:
        raise ConfigError(f"max_configs: must be >= 0, got {max_configs}")
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for kern in [profile.kernel(kernel)] if kernel else profile.kernels:
        if cfg.dtype not in kern.dtypes:
            notes.append(f"{kern.name} does not run dtype {cfg.dtype} (runs "
                         f"{', '.join(kern.dtypes)})")
            continue
        mode = kv_tiling or kern.kv_tiling
        for bwd in (False, True) if backward else (False,):
            found = supported_tiles(profile, cfg.input_size, cfg.head_dim, cfg.dtype,
                                    kernel=kern.name, backward=bwd)
            label = "backward" if bwd else "forward"
            if not found:
                notes.append(f"{kern.name} has no rank-{cfg.rank} {label} tile configuration "
                             f"for head dim {cfg.head_dim}")
            if bwd:
                for i, row in enumerate(found):
                    row["default"] = i == 0
            if max_configs and len(found) > max_configs:
                notes.append(f"{kern.name} {label}: {len(found)} configurations, the first "
                             f"{max_configs} and the default listed (--max-configs 0: all)")
                found = found[:max_configs] + [r for r in found[max_configs:] if r["default"]]
            for row in found:
                q, kv = _tiles(row["q_tile"], "q_tile"), _tiles(row["kv_tile"], "kv_tile")
                tiled = cfg.with_tiles(q, kv)
                if bwd:
                    res = simulate(tiled, None, kv_tiling=mode, backward=True, bwd_q_tile=q,
                                   bwd_kv_tile=kv).backward
                else:
                    res = simulate(tiled, None, kv_tiling=mode)
                rows.append({**row, "pass": label, "kv_tiling": mode,
                             "tile_speedup": res.tile_speedup,
                             "fully_block_sparse": res.plan.fully_block_sparse})
    return rows, notes


def optimize(cfg: Any, profile: Any, kernel: Optional[str], kv_tiling: Optional[str],
             backward: bool, max_configs: int) -> tuple[list[dict], list[dict], list[str]]:
    """Every configuration :func:`config_rows` lists, ranked by predicted time (fastest first),
    forward by kernel time and backward by backward time, each with its 90% interval."""
    from gnasim.prediction import simulate

    if profile is None:
        raise ConfigError("hardware: --optimize needs a hardware profile")
    rows, notes = config_rows(cfg, profile, kernel, kv_tiling, backward, max_configs)
    fwd: list[dict[str, Any]] = []
    bwd: list[dict[str, Any]] = []
    status: dict[str, str] = {}
    for row in rows:
        q, kv = _tiles(row["q_tile"], "q_tile"), _tiles(row["kv_tile"], "kv_tile")
        base = {"kernel": row["kernel"], "q_tile": row["q_tile"], "kv_tile": row["kv_tile"],
                "default": row["default"]}
        if row["pass"] == "backward":
            res = simulate(cfg.with_tiles(q, kv), profile, kernel=row["kernel"],
                           kv_tiling=row["kv_tiling"], backward=True, bwd_q_tile=q, bwd_kv_tile=kv)
            r = res.to_dict()
            if "predicted_bwd_time_ms" not in r:
                notes.append(f"{row['kernel']} backward {row['q_tile']}/{row['kv_tile']}: no "
                             "runtime prediction, left out of the ranking")
                continue
            bwd.append({**base, **{k: r[k] for k in (
                "predicted_bwd_time_ms", "predicted_bwd_time_ms_low",
                "predicted_bwd_time_ms_high", "bwd_calibration_status", "bwd_flops_computed",
                "bwd_tile_speedup")}})
            continue
        res = simulate(cfg.with_tiles(q, kv), profile, kernel=row["kernel"],
                       kv_tiling=kv_tiling)
        if res.runtime is None:
            notes.append(f"{row['kernel']} {row['q_tile']}/{row['kv_tile']}: no runtime "
                         "prediction, left out of the ranking")
            continue
        d = res.to_dict()
        status[row["kernel"]] = d["calibration_status"]
        fwd.append({**base, **{k: d[k] for k in (
            "predicted_time_ms", "predicted_time_ms_low", "predicted_time_ms_high",
            "predicted_permute_ms", "predicted_total_ms", "predicted_speedup",
            "calibration_status")}, "tile_speedup": res.tile_speedup})
    fwd.sort(key=lambda r: r["predicted_time_ms"])
    bwd.sort(key=lambda r: r["predicted_bwd_time_ms"])
    for ranked in (fwd, bwd):
        for i, r in enumerate(ranked):
            r["rank"] = i + 1
    if not fwd:
        raise ConfigError("optimize: no tile configuration of this profile can be predicted "
                          "for this problem")
    loose = sorted(k for k, st in status.items() if st != "calibrated")
    if loose and len(status) > 1:
        notes.append(f"not calibrated on {profile.name}: "
                     + ", ".join(f"{k} ({status[k]})" for k in loose)
                     + "; compare across kernels with their intervals")
    return fwd, bwd, notes


# -- the commands ------------------------------------------------------------------------------
@guarded
def predict(
    input_size: Optional[str] = InputSize, window_size: Optional[str] = WindowSize,
    stride: Optional[str] = Stride, dilation: Optional[str] = Dilation, causal: str = Causal,
    batch_size: int = Batch, heads: Optional[int] = Heads, heads_kv: Optional[int] = HeadsKV,
    dim: Optional[int] = Dim, dim_value: Optional[int] = DimValue, preset: Optional[str] = PresetOpt,
    dtype: str = Dtype, q_tile: Optional[str] = QTile, kv_tile: Optional[str] = KVTile,
    hardware: str = Hardware,
    kernel: Optional[str] = multi_option(
        None, "--backend", "--kernel", metavar="NAME",
        help="NATTEN backend (cutlass-fna, hopper-fna, blackwell-fna, flex-fna), an SDPA backend "
             "(cudnn, fav2, xformers: self attention) or any kernel of the profile."),
    fmha_backend: Optional[str] = typer.Option(
        None, "--fmha-backend", metavar="NAME",
        help="NATTEN FMHA backend (cutlass-, hopper-, blackwell-, flex-fmha): the dense "
             "baseline."),
    kv_tiling: Optional[str] = KVTiling,
    backward: bool = typer.Option(
        False, "--backprop", "--backward",
        help="Add the backward pass (KV-stationary tile plan, bwd_ keys)."),
    bwd_q_tile: Optional[str] = multi_option(
        None, "--backward-q-tile", "--bwd-q-tile", metavar="AXES", callback=single_problem_axes,
        help="Backward Q tile per axis; default: the kernel's first backward one."),
    bwd_kv_tile: Optional[str] = multi_option(
        None, "--backward-kv-tile", "--bwd-kv-tile", metavar="AXES",
        callback=single_problem_axes,
        help="Backward KV tile per axis; default: the kernel's first backward one."),
    add_kv: int = typer.Option(0, "--add-kv", metavar="N",
                               help="Additional KV tokens every query attends (NATTEN)."),
    try_fuse_add_kv: bool = typer.Option(
        False, "--try-fuse-add-kv", help="blackwell-fna: fuse --add-kv into the FNA kernel "
                                         "(accepted; not modelled)."),
    schedule: Optional[Schedule] = typer.Option(
        None, "--schedule", help="hopper-fna kernel schedule: non, coop or pp."),
    persistent: bool = typer.Option(False, "--persistent",
                                    help="blackwell-fna persistent scheduling."),
    compile_flex: bool = typer.Option(False, "--compile", help="Accepted; nothing is compiled."),
    warmup_steps: int = typer.Option(natten.DEFAULT_WARMUP_STEPS, "--warmup-steps", metavar="N",
                                     help="Accepted; nothing is timed."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the tile configurations the GPU's kernels can run for "
                                 "this problem, with padding and tile bound."),
    max_configs: int = typer.Option(
        natten.DEFAULT_MAX_CONFIGS, "--max-configs", metavar="N",
        help="Configurations per kernel and pass for --dry-run/--optimize (0: all)."),
    optimize_: bool = typer.Option(
        False, "--optimize", help="Rank the --dry-run configurations by predicted time; "
                                  "predict the fastest."),
    optimize_warmup_steps: int = typer.Option(
        natten.DEFAULT_OPTIMIZE_WARMUP_STEPS, "--optimize-warmup-steps", metavar="N",
        help="Accepted; nothing is timed."),
    attention_fraction: Optional[float] = multi_option(
        None, "--attention-fraction", metavar="F",
        help="Share of end-to-end time spent in attention (Amdahl)."),
    full_attention_steps: int = typer.Option(
        0, "--full-attention-steps", metavar="N",
        help="Initial diffusion steps kept as full attention (with --attention-fraction)."),
    total_steps: Optional[int] = typer.Option(
        None, "--total-steps", metavar="N", help="Total diffusion steps (with --attention-fraction)."),
    histogram: bool = typer.Option(False, "--histogram", help="Show KV tiles per Q tile histogram."),
    tiling: Tiling = typer.Option(
        Tiling.multi_dim, "--tiling",
        help="multi-dim: box tiles (NATTEN); flat: runs of tokens of the row-major layout "
             "(FlexAttention with a plain mask); --q-tile/--kv-tile are then token counts."),
    fmt: OutputFormat = Format,
) -> None:
    """Predict the tile plan, FLOPs, bounds and runtime of one GNA configuration."""
    from gnasim.prediction import simulate

    p = problem_flags(preset, input_size=input_size, window_size=window_size, stride=stride,
                      dilation=dilation, heads=heads, dim=dim)
    input_size, window_size, stride, dilation, heads, dim = (
        p["input_size"], p["window_size"], p["stride"], p["dilation"], p["heads"], p["dim"])

    flat_tiles = None
    if tiling == Tiling.flat:
        if dry_run or optimize_:
            raise ConfigError("tiling: --dry-run and --optimize rank the kernels' box tiles; "
                              "drop --tiling flat")
        if q_tile is not None and kv_tile is not None:
            flat_tiles = (flat_tokens(q_tile, "q_tile"), flat_tokens(kv_tile, "kv_tile"))
            q_tile = kv_tile = None

    if dry_run and optimize_:
        raise ConfigError("dry_run: --dry-run and --optimize cannot be run together")
    _pair(q_tile, kv_tile, "q_tile/kv_tile", "--q-tile, --kv-tile")
    _pair(bwd_q_tile, bwd_kv_tile, "bwd_q_tile/bwd_kv_tile",
          "--backward-q-tile, --backward-kv-tile")
    if attention_fraction is None and (full_attention_steps or total_steps is not None):
        raise ConfigError("full_attention_steps/total_steps: give --attention-fraction too "
                          "(they weight the end-to-end Amdahl speedup)")
    cfg = build_config(input_size, window_size, stride, dilation, causal, batch_size, heads,
                       heads_kv, dim, dim_value, dtype, q_tile, kv_tile)
    profile = _profile(hardware)
    choice = natten.choose_backends(profile, kernel, fmha_backend)
    if dry_run:
        rows, notes = config_rows(cfg, profile, choice.kernel, kv_tiling, backward, max_configs)
        if fmt == OutputFormat.json:
            print_json(rows)
            return
        from gnasim.render import render_configs

        render_configs(profile, cfg, rows, notes + choice.notes)
        return
    backward = backward or bwd_q_tile is not None
    bq, bkv = _tiles(bwd_q_tile, "bwd_q_tile"), _tiles(bwd_kv_tile, "bwd_kv_tile")
    extra: dict[str, Any] = {}
    notes: list[str] = list(choice.notes)
    if optimize_:
        if q_tile is not None or bwd_q_tile is not None:
            notes.append("--optimize chooses the tiles: the tile flags given were not used")
        fwd, bwd, onotes = optimize(cfg, profile, choice.kernel, kv_tiling, backward, max_configs)
        notes += onotes
        best = fwd[0]
        choice.kernel = best["kernel"]
        cfg = cfg.with_tiles(_tiles(best["q_tile"], "q_tile"), _tiles(best["kv_tile"], "kv_tile"))
        if bwd:
            bq, bkv = _tiles(bwd[0]["q_tile"], "q"), _tiles(bwd[0]["kv_tile"], "kv")
        extra["optimize"] = fwd
        if backward:
            extra["optimize_backward"] = bwd
    result = simulate(cfg, profile, kernel=choice.kernel, kv_tiling=kv_tiling,
                      attention_fraction=attention_fraction,
                      full_attention_steps=full_attention_steps, total_steps=total_steps,
                      backward=backward, bwd_q_tile=bq, bwd_kv_tile=bkv,
                      tiling=tiling.value, flat_tiles=flat_tiles)
    result = _with_choice(result, profile, choice)
    extra.update({k: v for k, v in (("backend", kernel), ("fmha_backend", choice.fmha)) if v})
    kv_extra, kv_notes = natten.add_kv_extra(result.config, add_kv)
    if try_fuse_add_kv:
        kv_notes.append("--try-fuse-add-kv is not modelled: the extra KV tokens are counted as "
                        "a separate kernel")
    extra.update(kv_extra)
    tile_set = None
    if profile is not None and result.kernel is not None:
        ts = profile.kernel(result.kernel).tile_set_for(
            (result.plan.q_tile, result.plan.kv_tile), result.config.head_dim)
        tile_set = ts.schedule if ts is not None else None
    notes += kv_notes + natten.schedule_notes(
        profile, result.kernel, schedule.value if schedule else None, persistent, tile_set)
    notes += natten.measuring_notes(warmup_steps, optimize_warmup_steps, compile_flex)
    result = replace(result, notes=result.notes + tuple(notes))
    if fmt == OutputFormat.json:
        record = result.to_dict()
        record.update(extra)
        if histogram:
            record["kv_tiles_visited_histogram"] = {
                str(k): v for k, v in result.plan.visited_histogram().items()}
            if result.backward is not None:
                record["bwd_q_tiles_visited_histogram"] = {
                    str(k): v for k, v in result.backward.plan.visited_histogram().items()}
        print_json(record)
        return
    from gnasim.render import render_optimize, render_prediction

    render_prediction(result, histogram=histogram, extra=extra)
    if optimize_:
        render_optimize(extra["optimize"], extra.get("optimize_backward"))


def flat_tokens(text: str, name: str) -> int:
    """One token count for a flat tile (``--q-tile 128``)."""
    from gnasim.config import parse_ints

    values = parse_ints(text, name)
    if len(values) != 1:
        raise ConfigError(f"{name}: flat tiling takes one token count, got {text!r}")
    return values[0]


def _with_choice(result: Any, profile: Any, choice: natten.Choice) -> Any:
    """The prediction against the dense baseline the backend flags chose."""
    if choice.baseline is None or result.runtime is None:
        return result
    from gnasim.advice import natten_runs_fmha
    from gnasim.model.solve import predict_runtime
    from gnasim.plan.flat import FlatPlan
    from gnasim.prediction import flat_runtime, natten_dense_fallback

    c = result.config
    if isinstance(result.plan, FlatPlan):
        runtime = flat_runtime(c, result.plan, result.dense_plan, profile, result.kernel,
                               baseline=choice.baseline)
    else:
        runtime = natten_dense_fallback(
            predict_runtime(c, result.plan, result.dense_plan, profile, result.kernel,
                            baseline=choice.baseline),
            natten_runs_fmha(c.input_size, c.window_size, c.causal))
    if choice.fmha_kernel is not None:
        runtime = replace(runtime, notes=tuple(natten.fmha_note(
            choice.fmha or "", choice.fmha_kernel, list(runtime.notes))))
    return replace(result, runtime=runtime)


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


@guarded
def tiles(
    input_size: Optional[str] = InputSize, window_size: Optional[str] = WindowSize,
    stride: Optional[str] = Stride, dilation: Optional[str] = Dilation, causal: str = Causal,
    dim: Optional[int] = Dim, preset: Optional[str] = PresetOpt, hardware: str = Hardware,
    kernel: Optional[str] = KernelOpt, kv_tiling: Optional[str] = KVTiling, dtype: str = Dtype,
    backward: bool = typer.Option(False, "--backprop", "--backward",
                                  help="Backward-pass tile configurations too."),
    max_configs: int = typer.Option(0, "--max-configs", metavar="N",
                                    help="Configurations per kernel and pass (0: all)."),
    fmt: OutputFormat = Format,
) -> None:
    """The tile configurations a GPU's kernels run for a problem (`predict --dry-run`)."""
    p = problem_flags(preset, input_size=input_size, window_size=window_size, stride=stride,
                      dilation=dilation, dim=dim)
    cfg = build_config(p["input_size"], p["window_size"], p["stride"], p["dilation"], causal, 1, 1,
                       None, p["dim"], None, dtype, None, None)
    profile = _profile(hardware)
    rows, notes = config_rows(cfg, profile, kernel, kv_tiling, backward, max_configs)
    if fmt == OutputFormat.json:
        print_json(rows)
        return
    from gnasim.render import render_configs

    render_configs(profile, cfg, rows, notes)


@guarded
def presets(fmt: OutputFormat = Format) -> None:
    """List the presets (--preset NAME): published models' layouts, windows, heads and sources."""
    from gnasim.presets import load_presets

    found = load_presets()
    if fmt == OutputFormat.json:
        print_json([p.to_dict() for p in found])
        return
    from gnasim.render import render_presets

    render_presets(found)
