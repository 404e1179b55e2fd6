"""Speed of one prediction: in-process latency, whole-command time, and scaling with layout size.

Run: python benchmarks/bench_predict.py   (prints a table; numbers depend on the machine)
"""

from __future__ import annotations

import platform
import statistics
import subprocess
import sys
import time

from gnasim import GNAConfig, simulate
from gnasim.plan.tiling import clear_plan_cache


def timed(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(1, 1, 1), heads=24)

    def cold():
        clear_plan_cache()
        simulate(cfg, "h100").to_dict()

    simulate(cfg, "h100")  # load the profile once
    print(f"3-D 30x48x80 predict, in-process, cold cache: {timed(cold, 300) * 1e3:.3f} ms")
    print(f"3-D 30x48x80 predict, in-process, warm cache: "
          f"{timed(lambda: simulate(cfg, 'h100').to_dict(), 300) * 1e3:.3f} ms")
    strided = cfg.replace(stride=(16, 8, 8))
    simulate(strided, "h100")
    print(f"3-D 30x48x80 w18x24x24 s16x8x8 predict on h100 (runtime model), warm: simulate() "
          f"{timed(lambda: simulate(strided, 'h100'), 1000) * 1e3:.3f} ms, with to_dict() "
          f"{timed(lambda: simulate(strided, 'h100').to_dict(), 1000) * 1e3:.3f} ms")

    cmd = [sys.executable, "-m", "gnasim", "predict", "-i", "30", "48", "80", "-w", "18", "24", "24",
           "--format", "json"]
    wall = timed(lambda: subprocess.run(cmd, check=True, capture_output=True), 5)
    print(f"whole 'gnasim predict' command (python -m gnasim): {wall:.3f} s")

    print("\n1-D sliding window (window = L/1024, tiles 128/128), cold cache:")
    print(f"{'tokens':>14} {'Q tiles':>12} {'time ms':>10} {'tile bound':>11}")
    for exp in (12, 16, 20, 24, 27, 30):
        L = 2 ** exp
        c = GNAConfig(input_size=L, window_size=max(2, L // 1024), q_tile=128, kv_tile=128)
        t0 = time.perf_counter()
        clear_plan_cache()
        r = simulate(c)
        r.to_dict()
        dt = time.perf_counter() - t0
        print(f"{L:>14,} {r.plan.q_tiles:>12,} {dt * 1e3:>10.2f} {r.tile_speedup:>11.3f}")

    print("\n1-D 2^30 tokens, causal, window 2^20, stride 1 (cold):")
    c = GNAConfig(input_size=2 ** 30, window_size=2 ** 20, causal=True, q_tile=128, kv_tile=128)
    t0 = time.perf_counter()
    clear_plan_cache()
    r = simulate(c)
    print(f"  {time.perf_counter() - t0:.3f} s, tile bound {r.tile_speedup:.3f}, FLOP bound {r.flop_speedup:.3f}")


if __name__ == "__main__":
    main()
