"""Rich tables for people: the CLI's table output. Scripts use ``--format json`` instead."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from gnasim.hardware.profile import HardwareProfile


def _console() -> Console:
    return Console(highlight=False)


def _fmt_int(v: int) -> str:
    return f"{v:,}"


def _fmt_flops(v: int) -> str:
    for unit, scale in (("PFLOP", 1e15), ("TFLOP", 1e12), ("GFLOP", 1e9), ("MFLOP", 1e6)):
        if v >= scale:
            return f"{v / scale:,.3f} {unit}"
    return f"{v:,} FLOP"


def render_prediction(result, histogram: bool = False) -> None:
    """The ``gnasim predict`` table."""
    d = result.to_dict()
    con = _console()
    title = (f"GNA {d['input_size']} window {d['window_size']} stride {d['stride']} "
             f"dilation {d['dilation']} causal {d['causal']}")
    t = Table(title=title, show_header=False, title_justify="left")
    t.add_column("quantity", style="bold")
    t.add_column("value", justify="right")
    t.add_column("detail", style="dim")
    hw = f"{d['hardware']} / {d['kernel']}" if d["hardware"] else "none (explicit tiles)"
    t.add_row("hardware / kernel", hw, f"KV tiling {d['kv_tiling']}")
    t.add_row("Q tile / KV tile", f"{d['q_tile']} / {d['kv_tile']}",
              f"{d['q_tiles']:,} Q tiles, {d['kv_tiles']:,} KV tiles")
    t.add_section()
    t.add_row("FLOP-wise speedup bound", f"{d['flop_speedup']:.3f}x", f"sparsity {d['sparsity']:.2%}")
    t.add_row("tile speedup bound", f"{d['tile_speedup']:.3f}x",
              f"{d['dense_kv_tiles_per_q_tile']:,} / {d['kv_tiles_visited_max']:,} KV tiles (worst Q tile)")
    t.add_row("tile speedup (mean)", f"{d['tile_speedup_mean']:.3f}x",
              "all self-attention tile pairs / all visited")
    t.add_row("perfectly block-sparse", "yes" if d["fully_block_sparse"] else "no",
              "no element mask needed" if d["fully_block_sparse"] else "partial tiles need masking")
    if "e2e_tile_speedup" in d:
        t.add_row("end-to-end (Amdahl)", f"{d['e2e_tile_speedup']:.3f}x",
                  f"FLOP-wise {d['e2e_flop_speedup']:.3f}x at attention share {d['attention_fraction']}")
    t.add_section()
    t.add_row("KV tiles per Q tile", f"{d['kv_tiles_visited_mean']:,.2f} mean",
              f"max {d['kv_tiles_visited_max']:,}")
    t.add_row("tile pairs visited", _fmt_int(d["tile_pairs_visited"]),
              f"{d['tile_pairs_full']:,} full, {d['tile_pairs_partial']:,} partial")
    t.add_row("attended pairs", _fmt_int(d["attended_pairs"]), f"{d['tokens']:,} tokens")
    t.add_section()
    t.add_row("FLOPs dense", _fmt_flops(d["flops_dense"]), "self attention, forward")
    t.add_row("FLOPs useful", _fmt_flops(d["flops_useful"]), "attended pairs")
    t.add_row("FLOPs computed", _fmt_flops(d["flops_computed"]),
              f"{d['flops_wasted'] / max(d['flops_computed'], 1):.1%} wasted in partial tiles")
    if "predicted_time_ms" in d:
        t.add_section()
        f = d["speedup_factors"]
        t.add_row("predicted kernel time", f"{d['predicted_time_ms']:.4g} ms",
                  f"bound: {d['bound']}; {d['predicted_ctas']:,} CTAs = {d['predicted_waves']:.2f} x SMs")
        t.add_row("predicted permute time", f"{d['predicted_permute_ms']:.4g} ms",
                  "token permutation / padding copies" if d["predicted_permute_ms"] else "none needed")
        t.add_row("predicted dense time", f"{d['predicted_dense_time_ms']:.4g} ms",
                  f"baseline {d['baseline']}, bound: {d['dense_bound']}")
        t.add_row("predicted speedup", f"{d['predicted_speedup']:.3f}x",
                  f"{d['predicted_speedup_with_permute']:.3f}x with permutation")
        t.add_row("masked tiles", f"{d['masked_tile_pairs']:,}",
                  f"a masked tile costs {d['mask_cost_factor']:.2f}x an unmasked one "
                  f"({d['masked_tile_time_us']:.3g} vs {d['tile_time_us']:.3g} us)")
        t.add_row("tile bound -> prediction", " ".join(f"{f[k]:.2f}" for k in f),
                  "x " + ", ".join(f) + " (factors)")
        if "e2e_predicted_speedup" in d:
            t.add_row("end-to-end (predicted)", f"{d['e2e_predicted_speedup']:.3f}x",
                      "Amdahl with the predicted speedup (with permutation)")
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
    t.add_row("backward FLOPs dense", _fmt_flops(d["bwd_flops_dense"]),
              "self attention, 2 x pairs x (3 d + 2 d_v)")
    t.add_row("backward FLOPs useful", _fmt_flops(d["bwd_flops_useful"]), "attended pairs")
    waste = 1 - d["bwd_flops_useful"] / max(d["bwd_flops_computed"], 1)
    t.add_row("backward FLOPs computed", _fmt_flops(d["bwd_flops_computed"]),
              f"{waste:.1%} wasted in partial tiles")


def render_profiles(profiles: list[HardwareProfile]) -> None:
    t = Table(title="Hardware profiles", title_justify="left")
    for col in ("name", "GPU", "arch", "SMs", "fp16 TFLOPS", "HBM GB/s", "kernels"):
        t.add_column(col, justify="right" if col in ("SMs", "fp16 TFLOPS", "HBM GB/s") else "left")
    for p in profiles:
        t.add_row(p.name, p.display_name, p.architecture, str(p.sm_count),
                  f"{p.tensor_tflops.get('fp16', 0):,.1f}", f"{p.memory_bandwidth_gbs:,.0f}",
                  ", ".join(f"{k.name} ({k.kv_tiling})" for k in p.kernels))
    _console().print(t)


def render_tiles(profile: HardwareProfile, rank: int, rows: list[dict[str, Any]],
                 backward: bool) -> None:
    t = Table(title=f"{profile.name}: rank-{rank} {'backward' if backward else 'forward'} tile shapes",
              title_justify="left")
    for col in ("kernel", "Q tile", "KV tile", "GEMM", "schedule", "Q pad", "KV pad", ""):
        t.add_column(col)
    for r in rows:
        t.add_row(r["kernel"], r["q_tile"], r["kv_tile"], r["gemm"], r["schedule"],
                  f"{r['q_padding_tokens']:,}", f"{r['kv_padding_tokens']:,}",
                  "default" if r["default"] else "")
    _console().print(t)
    if not rows:
        _console().print("no tile shapes for this rank and head dim")
