"""Sweep throughput: configurations per second, computed and written.

1. The acceptance command: every stride of 30x48x80 / window 18x24x24 / Q 4x8x8 / KV 2x8x8
   (10,368 rows) to CSV, as a whole ``gnasim sweep`` process (startup included), best of 3:
   bounds only (``--hardware none``) and with the default profile (h100: runtime-model columns).
2. With a profile: 221,184 configurations (windows 8/16/24 per axis x every stride, Q 4x8x8 /
   KV 2x8x8, 2 attention shares) on h100, runtime-model columns included, computed in memory.
3. The 93,312-row runtime sweep (every stride of 30x48x80 / 18x24x24, every shipped rank-3 tile
   shape, h100 and b200, to Parquet) as whole ``python -m gnasim sweep`` commands, with the
   runtime-model columns and with ``--bounds-only``: the runtime model's cost is the ratio.
4. A sweep of 1,548,288 configurations (windows 8/16/24 per axis x every stride x the 7 rank-3
   tile shapes of B200's kernel x 2 attention shares, bounds only): rows computed in memory, then
   written to CSV (with and without worker processes) and to Parquet.

Run: python benchmarks/bench_sweep.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gnasim.explore.columns import compute_chunk

from gnasim.explore.blocks import iter_chunks, plan_sweep

from gnasim.explore.sweep import run_sweep  # noqa: E402

from gnasim.explore.grid import spec_from_mapping  # noqa: E402

RUNTIME = {"input_size": "30x48x80", "window_size": "8:24:8", "stride": "all",
           "q_tile": "4x8x8", "kv_tile": "2x8x8", "hardware": "h100",
           "attention_fraction": [0.5, 0.607]}
BIG = {"input_size": "30x48x80", "window_size": "8:24:8", "stride": "all", "tiles": "all",
       "hardware": "b200", "attention_fraction": [0.5, 0.607], "bounds_only": True}


def cli_sweep(out: Path, hardware: str = "none") -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "sweep", "-i", "30", "48", "80",
                    "-w", "18", "24", "24", "-s", "all", "--q-tile", "4", "8", "8", "--kv-tile",
                    "2", "8", "8", "--hardware", hardware, "--out", str(out)],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


TILES_SWEEP = ["sweep", "-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "all", "--tiles", "all",
               "--hardware", "h100", "b200", "--no-progress"]


def tiles_sweep(out: Path, bounds_only: bool) -> float:
    """Seconds of the 93,312-row tile-shape sweep as one whole command."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gnasim", *TILES_SWEEP, "-o", str(out)]
                   + (["--bounds-only"] if bounds_only else []),
                   check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - t0


def time_in_memory(spec):
    """Plan a sweep and compute every row in memory: (plan, plan seconds, rows, compute seconds)."""
    t0 = time.perf_counter()
    plan = plan_sweep(spec)
    t_plan = time.perf_counter() - t0
    n = 0
    t0 = time.perf_counter()
    for bi, lo, hi in iter_chunks(plan):
        n += compute_chunk(plan, bi, lo, hi, "csv").num_rows
    return plan, t_plan, n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="one repetition, no Parquet")
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for hw, label in (("none", "bounds only"), ("h100", "h100, runtime columns")):
            out = tmp / f"strides-{hw}.csv"
            times = [cli_sweep(out, hw) for _ in range(1 if args.quick else 3)]
            rows = sum(1 for _ in open(out)) - 1
            print(f"gnasim sweep, {rows:,} strides to CSV ({label}, whole command): "
                  f"best {min(times):.2f} s, median {statistics.median(times):.2f} s")

        best = {}
        for _ in range(1 if args.quick else 3):      # alternate, so load affects both alike
            for bounds_only in (False, True):
                t = tiles_sweep(tmp / f"tiles-{bounds_only}.parquet", bounds_only)
                best[bounds_only] = min(best.get(bounds_only, t), t)
        print(f"gnasim sweep --tiles all --hardware h100 b200, 93,312 rows to Parquet (whole "
              f"command, best): runtime columns {best[False]:.2f} s, --bounds-only "
              f"{best[True]:.2f} s, ratio {best[False] / best[True]:.2f}")

        spec = spec_from_mapping(RUNTIME)
        plan, t_plan, n, t_compute = time_in_memory(spec)
        print(f"{plan.rows:,} configurations with h100 runtime columns ({len(plan.columns)} "
              f"columns): plan {t_plan:.2f} s, rows computed in {t_compute:.2f} s = "
              f"{n / t_compute:,.0f} configurations/s")
        s = run_sweep(spec, tmp / "rt.csv", jobs=1)
        print(f"  to CSV, 1 process: {s.written:,} rows in {s.seconds:.2f} s = "
              f"{s.rows_per_second:,.0f} configurations/s")

        spec = spec_from_mapping(BIG)
        plan, t_plan, n, t_compute = time_in_memory(spec)
        print(f"{plan.rows:,} configurations: plan {t_plan:.2f} s (per-axis statistics), "
              f"rows computed in {t_compute:.2f} s = {n / t_compute:,.0f} configurations/s")
        runs = [("CSV, 1 process", tmp / "big.csv", 1), ("CSV, auto processes", tmp / "big.csv", None)]
        if not args.quick:
            runs.append(("Parquet, auto processes", tmp / "big.parquet", None))
        for label, out, jobs in runs:
            s = run_sweep(spec, out, jobs=jobs)
            size = out.stat().st_size / 1e6
            print(f"{label} ({s.jobs} job{'s' if s.jobs > 1 else ''}): {s.written:,} rows in "
                  f"{s.seconds:.2f} s = {s.rows_per_second:,.0f} configurations/s ({size:,.0f} MB)")


if __name__ == "__main__":
    main()
