"""Rich tables for people: every table the CLI prints. Scripts use ``--format json`` instead.

Tables are sized for an 80-column terminal; integers (FLOPs, tile pairs) are printed exactly.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Optional

from rich import box
from rich.console import Console
from rich.table import Table

from gnasim.config import format_tile
from gnasim.hardware.profile import HardwareProfile


def _console() -> Console:
    return Console(highlight=False)


def _num(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def _fmt_int(v: int) -> str:
    return f"{v:,}"


def render_prediction(result: Any, histogram: bool = False,
                      extra: Optional[dict[str, Any]] = None) -> None:
    """The ``gnasim predict`` table (``extra``: the NATTEN-flag keys added to the record)."""
    d = result.to_dict()
    d.update(extra or {})
    con = _console()
    title = (f"GNA {d['input_size']} window {d['window_size']} stride {d['stride']} "
             f"dilation {d['dilation']} causal {d['causal']}")
    t = Table(title=title, show_header=False, title_justify="left", box=box.SIMPLE,
              pad_edge=False, collapse_padding=True)
    t.add_column("quantity", style="bold")
    t.add_column("value", justify="right")
    t.add_column("detail", style="dim")
    hw = f"{d['hardware']} / {d['kernel']}" if d["hardware"] else "none (explicit tiles)"
    t.add_row("hardware / kernel", hw, f"KV tiling {d['kv_tiling']}, head dim {d['head_dim']}")
    t.add_row("Q tile / KV tile", f"{d['q_tile']} / {d['kv_tile']}",
              f"{d['q_tiles']:,} Q tiles, {d['kv_tiles']:,} KV tiles")
    t.add_section()
    t.add_row("FLOP-wise speedup bound", f"{d['flop_speedup']:.3f}x", f"sparsity {d['sparsity']:.2%}")
    t.add_row("tile speedup bound", f"{d['tile_speedup']:.3f}x",
              f"{d['dense_kv_tiles_per_q_tile']:,} / {d['kv_tiles_visited_max']:,} KV tiles "
              "(worst Q tile)")
    t.add_row("tile speedup (mean)", f"{d['tile_speedup_mean']:.3f}x",
              "all self-attention tile pairs / all visited")
    t.add_row("perfectly block-sparse", "yes" if d["fully_block_sparse"] else "no",
              "no element mask needed" if d["fully_block_sparse"] else "partial tiles need masking")
    if "e2e_tile_speedup" in d:
        t.add_row("end-to-end (Amdahl)", f"{d['e2e_tile_speedup']:.3f}x",
                  f"FLOP-wise {d['e2e_flop_speedup']:.3f}x at attention share "
                  f"{d['attention_fraction']}")
    t.add_section()
    t.add_row("KV tiles per Q tile", f"{d['kv_tiles_visited_mean']:,.2f} mean",
              f"max {d['kv_tiles_visited_max']:,}")
    t.add_row("tile pairs visited", _fmt_int(d["tile_pairs_visited"]),
              f"{d['tile_pairs_full']:,} full, {d['tile_pairs_partial']:,} partial")
    t.add_row("attended pairs", _fmt_int(d["attended_pairs"]), f"{d['tokens']:,} tokens")
    t.add_section()
    t.add_row("FLOPs dense", _fmt_int(d["flops_dense"]), "self attention, forward")
    t.add_row("FLOPs useful", _fmt_int(d["flops_useful"]), "attended pairs")
    t.add_row("FLOPs computed", _fmt_int(d["flops_computed"]),
              f"{d['flops_wasted'] / max(d['flops_computed'], 1):.1%} wasted in partial tiles")
    if "add_kv_flops" in d:
        t.add_row("FLOPs of --add-kv", _fmt_int(d["add_kv_flops"]),
                  f"{d['add_kv']:,} extra KV tokens")
    if "predicted_time_ms" in d:
        _runtime_rows(t, d)
    if "bwd_tile_speedup" in d:
        _backward_rows(t, d)
    con.print(t)
    if histogram:
        _histogram(con, "KV tiles visited per Q tile", "KV tiles", "Q tiles",
                   result.plan.visited_histogram())
        if result.backward is not None:
            _histogram(con, "backward: Q tiles visited per KV tile", "Q tiles", "KV tiles",
                       result.backward.plan.visited_histogram())
    for note in d["notes"]:
        con.print(f"[yellow]note:[/] {note}")


def _band(d: dict[str, Any], key: str, unit: str) -> str:
    """"90%: low-high" of a predicted value (empty without evidence)."""
    lo, hi = d.get(f"{key}_low"), d.get(f"{key}_high")
    fmt = ".3g" if unit == "x" else ".4g"
    return "" if lo is None or hi is None else f"90%: {lo:{fmt}}-{hi:{fmt}}{unit}; "


def _runtime_rows(t: Table, d: dict[str, Any]) -> None:
    t.add_section()
    f = d["speedup_factors"]
    cal = d.get("calibration") or {}
    t.add_row("calibration", d.get("calibration_status") or "-",
              f"{cal.get('family')}: {cal.get('rows')} corpus rows"
              + (f" on {cal['gpus']}" if cal.get("gpus") else "")
              + (f", held-out time error {cal['oos_mape_time_pct']:.1f}%"
                 if cal.get("oos_mape_time_pct") else ""))
    t.add_row("predicted kernel time", f"{d['predicted_time_ms']:.4g} ms",
              _band(d, "predicted_time_ms", " ms") + f"bound: {d['bound']}; "
              f"{d['predicted_ctas']:,} CTAs = {d['predicted_waves']:.2f} x SMs")
    t.add_row("predicted permute time", f"{d['predicted_permute_ms']:.4g} ms",
              "token permutation / padding copies" if d["predicted_permute_ms"] else "none needed")
    t.add_row("predicted dense time", f"{d['predicted_dense_time_ms']:.4g} ms",
              _band(d, "predicted_dense_time_ms", " ms")
              + f"baseline {d['baseline']}, bound: {d['dense_bound']}")
    t.add_row("predicted speedup", f"{d['predicted_speedup']:.3f}x",
              _band(d, "predicted_speedup", "x")
              + f"{d['predicted_speedup_with_permute']:.3f}x with permutation")
    t.add_row("masked tiles", f"{d['masked_tile_pairs']:,}",
              f"a masked tile costs {d['mask_cost_factor']:.2f}x an unmasked one "
              f"({d['masked_tile_time_us']:.3g} vs {d['tile_time_us']:.3g} us)")
    t.add_row("tile bound -> prediction", " ".join(f"{f[k]:.2f}" for k in f),
              "x " + ", ".join(f))
    if "e2e_predicted_speedup" in d:
        t.add_row("end-to-end (predicted)", f"{d['e2e_predicted_speedup']:.3f}x",
                  "Amdahl with the predicted speedup (with permutation)")


def _histogram(con: Console, title: str, value: str, count: str, hist: dict[int, int]) -> None:
    h = Table(title=title, title_justify="left", min_width=40)
    h.add_column(value, justify="right")
    h.add_column(count, justify="right")
    for k, v in list(hist.items())[:40]:
        h.add_row(f"{k:,}", f"{v:,}")
    if len(hist) > 40:
        h.add_row("...", f"{len(hist) - 40} more values")
    con.print(h)


def _backward_rows(t: Table, d: dict[str, Any]) -> None:
    """The "backward" section: KV-stationary tile plan, bounds and FLOPs (``bwd_`` keys)."""
    t.add_section()
    t.add_row("backward Q tile / KV tile", f"{d['bwd_q_tile']} / {d['bwd_kv_tile']}",
              "KV-stationary (one CTA per KV tile)")
    t.add_row("backward tile speedup bound", f"{d['bwd_tile_speedup']:.3f}x",
              f"{d['bwd_dense_q_tiles_per_kv_tile']:,} / {d['bwd_q_tiles_visited_max']:,} "
              "Q tiles (worst KV tile)")
    t.add_row("backward tile speedup (mean)", f"{d['bwd_tile_speedup_mean']:.3f}x",
              f"{d['bwd_q_tiles_visited_mean']:,.2f} Q tiles per KV tile (mean)")
    t.add_row("backward block-sparse", "yes" if d["bwd_fully_block_sparse"] else "no",
              "no element mask needed" if d["bwd_fully_block_sparse"]
              else "partial tiles need masking")
    t.add_row("backward tile pairs", _fmt_int(d["bwd_tile_pairs_visited"]),
              f"{d['bwd_tile_pairs_full']:,} full, {d['bwd_tile_pairs_partial']:,} partial")
    t.add_row("backward FLOPs dense", _fmt_int(d["bwd_flops_dense"]),
              "self attention, 2 x pairs x (3 d + 2 d_v)")
    t.add_row("backward FLOPs useful", _fmt_int(d["bwd_flops_useful"]), "attended pairs")
    waste = 1 - d["bwd_flops_useful"] / max(d["bwd_flops_computed"], 1)
    t.add_row("backward FLOPs computed", _fmt_int(d["bwd_flops_computed"]),
              f"{waste:.1%} wasted in partial tiles")
    if "predicted_bwd_time_ms" in d:
        t.add_row("predicted backward time", f"{d['predicted_bwd_time_ms']:.4g} ms",
                  _band(d, "predicted_bwd_time_ms", " ms")
                  + f"{d.get('bwd_calibration_status') or '-'}")
        t.add_row("predicted dense backward", f"{d['predicted_dense_bwd_time_ms']:.4g} ms",
                  _band(d, "predicted_dense_bwd_time_ms", " ms").rstrip("; "))
        t.add_row("predicted backward speedup", f"{d['predicted_bwd_speedup']:.3f}x",
                  _band(d, "predicted_bwd_speedup", "x").rstrip("; "))


def render_profiles(profiles: list[HardwareProfile]) -> None:
    t = Table(title="Hardware profiles", title_justify="left")
    for col in ("name", "GPU", "arch", "SMs", "fp16 TFLOPS", "HBM GB/s", "kernels"):
        t.add_column(col, justify="right" if col in ("SMs", "fp16 TFLOPS", "HBM GB/s") else "left")
    for p in profiles:
        t.add_row(p.name, p.display_name, p.architecture, str(p.sm_count),
                  f"{p.tensor_tflops.get('fp16', 0):,.1f}", f"{p.memory_bandwidth_gbs:,.0f}",
                  ", ".join(f"{k.name} ({k.kv_tiling})" for k in p.kernels))
    _console().print(t)


_SCHEDULE_SHORT = {"non-persistent": "non", "cooperative": "coop", "ping-pong": "pp",
                   "persistent": "pers"}


def render_configs(profile: HardwareProfile, cfg: Any, rows: list[dict[str, Any]],
                   notes: list[str]) -> None:
    """``gnasim tiles`` / ``predict --dry-run``: the tile configurations, padding, tile bound."""
    con = _console()
    t = Table(title=f"{profile.name}, {format_tile(cfg.input_size)} window "
                    f"{format_tile(cfg.window_size)} stride {format_tile(cfg.stride)}, head dim "
                    f"{cfg.head_dim}: tile configurations", title_justify="left",
              box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col, just in (("kernel", "left"), ("pass", "left"), ("Q/KV tile", "left"),
                      ("GEMM", "left"), ("sched", "left"), ("pad Q/KV", "right"),
                      ("bound", "right"), ("", "left")):
        t.add_column(col, justify=just, no_wrap=True)
    for r in rows:
        pas = "bwd" if r["pass"] == "backward" else "fwd"
        t.add_row(r["kernel"], pas, f"{r['q_tile']}/{r['kv_tile']}", r["gemm"],
                  "" if pas == "bwd" else _SCHEDULE_SHORT.get(r["schedule"], r["schedule"]),
                  f"{r['q_padding_tokens']:,}/{r['kv_padding_tokens']:,}",
                  f"{r['tile_speedup']:.2f}x" + ("*" if r["fully_block_sparse"] else ""),
                  "default" if r["default"] else "")
    con.print(t)
    if not rows:
        con.print("no tile configuration for this rank, head dim and dtype")
    else:
        con.print("bound: tile speedup bound (backward: Q tiles per KV tile); * perfectly "
                  "block-sparse")
    for note in notes:
        con.print(f"[yellow]note:[/] {note}")


def _span(r: dict[str, Any], key: str) -> str:
    lo, hi = r.get(f"{key}_low"), r.get(f"{key}_high")
    return "-" if lo is None or hi is None else f"{lo:.3g}-{hi:.3g}"


def render_optimize(fwd: list[dict[str, Any]], bwd: Optional[list[dict[str, Any]]],
                    top: int = 5) -> None:
    """``predict --optimize``: the fastest configurations and each kernel default's place."""
    con = _console()
    t = Table(title=f"--optimize: {len(fwd)} forward configurations, fastest first",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
              collapse_padding=True)
    for col in ("rank", "kernel", "Q/KV tile", "kernel ms", "90%", "speedup", ""):
        t.add_column(col, justify="left" if col in ("kernel", "Q/KV tile", "") else "right",
                     no_wrap=True)
    for r in [r for r in fwd if r["rank"] <= top or r["default"]]:
        t.add_row(str(r["rank"]), r["kernel"], f"{r['q_tile']}/{r['kv_tile']}",
                  f"{r['predicted_time_ms']:.4g}", _span(r, "predicted_time_ms"),
                  f"{r['predicted_speedup']:.2f}x", "default" if r["default"] else "")
    con.print(t)
    if bwd:
        b = Table(title=f"backward: {len(bwd)} configurations, fastest first",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
        for col in ("rank", "kernel", "Q/KV tile", "backward ms", "90%", "bound", ""):
            b.add_column(col, justify="left" if col in ("kernel", "Q/KV tile", "") else "right",
                         no_wrap=True)
        for r in [r for r in bwd if r["rank"] <= top or r["default"]]:
            b.add_row(str(r["rank"]), r["kernel"], f"{r['q_tile']}/{r['kv_tile']}",
                      f"{r['predicted_bwd_time_ms']:.4g}", _span(r, "predicted_bwd_time_ms"),
                      f"{r['bwd_tile_speedup']:.2f}x", "default" if r["default"] else "")
        con.print(b)


# -- sweep, recommend -------------------------------------------------------------------------
def render_sweep_summary(s: Any) -> None:
    """The sweep's closing lines: rows written, the grid's invalid combinations, resume hints."""
    con = _console()
    verb = "interrupted after writing" if s.interrupted else "wrote"
    con.print(f"sweep: {verb} {s.written:,} rows to {s.partial or s.out} in {s.seconds:.2f} s "
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
        con.print(f"{s.partial} holds the {s.resumed_rows + s.written:,} rows written so far "
                  f"({s.out} is unchanged); run the same command with --resume to finish it")


def render_recommend(results: list, proposals: list, target: Optional[float],
                      explicit_window: bool) -> None:


    con = _console()
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
        render_search(con, s)


def render_search(con: Console, s: Any) -> None:


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



# -- compare, calibrate --------------------------------------------------------------------
def render_compare(report, out: Optional[Path] = None, plot: Optional[Path] = None) -> None:

    from gnasim.calibration.compare import FACTOR_STEPS, fmt_pct

    con = _console()
    kind = "leave-one-out predictions" if report.loo else "predictions"
    t = Table(title=f"{Path(report.path).name}: measured vs {kind}", title_justify="left")
    for col, just in (("row", "right"), ("gpu", "left"), ("implementation", "left"),
                      ("problem", "left"), ("tiles", "left"), ("meas ms", "right"),
                      ("pred ms", "right"), ("err", "right"), ("meas x", "right"),
                      ("pred x", "right"), ("err", "right"), ("meas x+perm", "right"),
                      ("pred x+perm", "right"), ("err", "right")):
        t.add_column(col, justify=just)
    for r in report.rows:
        has = "measured_speedup" in r
        t.add_row(str(r["row"]), r["profile"], r["implementation"], r["problem"],
                  f"{r['q_tile']}/{r['kv_tile']}", f"{r['measured_ms']:.4g}",
                  f"{r['predicted_ms']:.4g}", fmt_pct(r["error_time_pct"]),
                  _num(r.get("measured_speedup"), ".2f"), _num(r.get("predicted_speedup"), ".2f"),
                  fmt_pct(r.get("error_speedup_pct")) if has else "",
                  _num(r.get("measured_speedup_with_permute"), ".2f"),
                  _num(r.get("predicted_speedup_with_permute"), ".2f"),
                  fmt_pct(r.get("error_speedup_with_permute_pct")) if has else "")
    con.print(t)

    gna = [r for r in report.rows if "tile_bound" in r]
    if gna:
        note = " with the profile's parameters" if report.loo else ""
        e = Table(title=f"From the tile bound to the predicted speedup, one model feature at a time"
                        f" (factors{note})", title_justify="left")
        for col in ("row", "gpu", "problem", "tile bound", "CTAs/SMs", "masked tiles",
                    "mask cost", *FACTOR_STEPS, "pred x", "bound"):
            e.add_column(col, justify="left" if col in ("gpu", "problem", "bound") else "right")
        for r in gna:
            e.add_row(str(r["row"]), r["profile"], r["problem"], f"{r['tile_bound']:.2f}x",
                      f"{r['waves']:.2f}", f"{r['masked_tiles_pct']:.0f}%",
                      f"{r['mask_factor']:.2f}x" if r["masked_tiles_pct"] > 0 else "-",
                      *[_num(r.get(f"factor_{k}"), ".3f") for k in FACTOR_STEPS],
                      _num(r.get("after_baseline"), ".2f"), r["bound"])
        con.print(e)

    m = report.metrics
    s = Table(title="Error report (|predicted / measured - 1|)", title_justify="left")
    for col in ("quantity", "n", "MAPE", "max error", "Pearson r", "within 10%"):
        s.add_column(col, justify="left" if col == "quantity" else "right")
    for key, label in (("time", "kernel time (r on log)"), ("speedup", "speedup, kernel only"),
                       ("speedup_with_permute", "speedup with permute"),
                       ("permute", "permute time")):
        n = m["n"] if key == "time" else m["n_permute"] if key == "permute" else m["n_speedup"]
        s.add_row(label, str(n), _num(m[f"mape_{key}"], ".2f") + ("%" if m[f"mape_{key}"] is not None else ""),
                  _num(m[f"max_error_{key}"], ".2f") + ("%" if m[f"max_error_{key}"] is not None else ""),
                  _num(m[f"pearson_r_{key}"], ".4f"),
                  _num(None if m[f"within_10pct_{key}"] is None else 100 * m[f"within_10pct_{key}"], ".0f")
                  + ("%" if m[f"within_10pct_{key}"] is not None else ""))
    for prof, pm in m["per_profile"].items():
        s.add_row(f"{prof}: MAPE time / speedup / +permute", f"{pm['n']} / {pm['n_speedup']}",
                  " / ".join(_num(pm[k], ".2f") or "-" for k in
                             ("mape_time", "mape_speedup", "mape_speedup_with_permute")),
                  "", "", "")
    con.print(s)
    for by, groups in m.get("by", {}).items():
        g = Table(title=f"Errors by {by}", title_justify="left")
        for col in ("group", "rows", "in sample", "MAPE time", "speedups", "MAPE speedup"):
            g.add_column(col, justify="left" if col == "group" else "right")
        for name, gm in groups.items():
            g.add_row(name, str(gm["n"]), str(gm["in_sample"]), _pct(gm["mape_time"]),
                      str(gm["n_speedup"]), _pct(gm["mape_speedup"]))
        con.print(g)
    con.print(sample_statement(report))
    for w in report.warnings:
        con.print(f"[yellow]note:[/] {w}")
    if report.skipped:
        con.print(f"[yellow]{len(report.skipped)} bad rows skipped (listed on stderr)[/]")
    for label, path in (("CSV", out), ("plot", plot)):
        if path is not None:
            con.print(f"{label} written to {path}")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}%"


def sample_statement(report) -> str:
    """Whether a comparison's errors are in-sample, out-of-sample or both."""
    if report.loo:
        return "errors are out-of-sample: each row predicted by a per-GPU fit without it"
    m = report.metrics
    n_in, n_out = m.get("in_sample_rows", 0), m.get("out_of_sample_rows", 0)
    if n_out == 0:
        return (f"errors are in-sample: the shipped model was fitted on all {n_in} rows "
                "(gnasim calibrate --corpus reports held-out errors)")
    if n_in == 0:
        return f"errors are out-of-sample: the shipped model was not fitted on any of these {n_out} rows"
    return f"errors mix {n_in} in-sample rows (the shipped model was fitted on them) and {n_out} out-of-sample rows"


def render_calibration(cals, written: list[str | None]) -> None:

    con = _console()
    for c, w in zip(cals, written):
        t = Table(title=f"{c.profile.name}: fitted parameters ({len(c.problem.rows)} rows)",
                  title_justify="left")
        for col in ("parameter", "prior", "fitted", "+/- 1 sigma", "data share", "bounds", ""):
            t.add_column(col, justify="left" if col in ("parameter", "") else "right")
        for p in c.parameters():
            t.add_row(p["parameter"], f"{p['prior']:.4g}", f"{p['value']:.4g}", f"{p['sigma']:.3g}",
                      f"{p['data_share']:.2f}", f"[{p['lower']:g}, {p['upper']:g}]",
                      "at bound" if p["at_bound"] else "")
        con.print(t)
        met = c.metrics()
        r = Table(title=f"{c.profile.name}: errors (MAPE %)", title_justify="left")
        for col in ("", "time", "speedup", "speedup + permute", "max speedup error"):
            r.add_column(col, justify="left" if col == "" else "right")
        r.add_row("in sample", _num(met["mape_time"], ".2f"), _num(met["mape_speedup"], ".2f"),
                  _num(met["mape_speedup_with_permute"], ".2f"), "")
        if c.loo:
            r.add_row("leave-one-out", _num(met["loo_mape_time"], ".2f"),
                      _num(met["loo_mape_speedup"], ".2f"),
                      _num(met["loo_mape_speedup_with_permute"], ".2f"),
                      _num(met["loo_max_error_speedup"], ".2f"))
        con.print(r)
        if c.loo:
            lt = Table(title=f"{c.profile.name}: leave-one-out, each row predicted from a fit "
                             "without it", title_justify="left")
            for col in ("row", "implementation", "problem", "measured ms", "predicted ms", "error"):
                lt.add_column(col, justify="left" if col in ("implementation", "problem") else "right")
            for res in c.loo:
                lt.add_row(str(res.m.row), res.m.implementation, res.m.label,
                           f"{res.m.attention_ms:.4g}", f"{res.predicted_ms:.4g}",
                           f"{100 * res.error_time:+.1f}%")
            con.print(lt)
        con.print(f"written: {w}" if w else "dry run: nothing written")
    sys.stdout.flush()
