"""Extreme inputs as whole commands: wall time, peak memory (max RSS) and exit code of each.

Every case must finish (or refuse in one line) in under a minute and 2 GB. Run:
    python benchmarks/bench_extremes.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CASES = [
    ("predict 4096^3 window 512 causal, runtime model",
     ["predict", "-i", "4096", "4096", "4096", "-w", "512", "-c", "1", "1", "1", "--hardware", "h100"]),
    ("predict 1-D 2^30 tokens, runtime model", ["predict", "-i", str(2 ** 30), "-w", str(2 ** 20)]),
    ("predict 1-D 2^30 tokens causal, runtime model",
     ["predict", "-i", str(2 ** 30), "-w", str(2 ** 20), "-c", "1"]),
    ("predict 1-D 2^30 tokens, runtime model + backward",
     ["predict", "-i", str(2 ** 30), "-w", str(2 ** 20), "--backprop"]),
    ("predict 1-D 2^33 tokens causal, runtime model",
     ["predict", "-i", str(2 ** 33), "-w", str(2 ** 20), "-c", "1"]),
    ("predict 1-D 2^40 tokens, runtime model", ["predict", "-i", str(2 ** 40), "-w", str(2 ** 30)]),
    ("predict 1-D 2^40 tokens causal, runtime model",
     ["predict", "-i", str(2 ** 40), "-w", str(2 ** 30), "-c", "1"]),
    ("predict 1-D 2^62 tokens, bounds", ["predict", "-i", str(2 ** 62), "-w", "2", "--q-tile", "100",
                                         "--kv-tile", "128", "--hardware", "none"]),
    ("predict 1-D 2^63-1 tokens (refused)", ["predict", "-i", str(2 ** 63 - 1), "-w", "2",
                                             "--q-tile", "100", "--kv-tile", "128", "--hardware", "none"]),
    ("sweep input_size 1:1000000000 (refused)", ["sweep", "-i", "1:1000000000", "-w", "2",
                                                 "-o", "x.csv", "--no-progress"]),
    ("sweep -i 9000 -w all -d 64 128, bounds", ["sweep", "-i", "9000", "-w", "all", "-d", "64", "128",
                                                "--hardware", "h100", "--bounds-only", "-o", "x.csv",
                                                "--no-progress"]),
    ("plot sparsity 2^62 tokens (refused)", ["plot", "sparsity", "-i", str(2 ** 62), "-o", "p.html"]),
]


def run(argv: list[str], cwd: str) -> tuple[float, float, int, str]:
    """Wall seconds, the child's own peak RSS in MB, exit code, last stderr line."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-m", "gnasim", *argv], cwd=cwd,
                                stdout=subprocess.DEVNULL, stderr=err,
                                env=dict(os.environ, PYTHONPATH=str(ROOT)))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        err.seek(0)
        lines = [ln for ln in err.read().splitlines() if ln.strip()]
    return wall, usage.ru_maxrss / 1024, proc.returncode, (lines[-1] if lines else "")[:110]


def main() -> None:
    print(f"{'case':<52} {'wall s':>7} {'peak MB':>8} {'exit':>4}  stderr")
    with tempfile.TemporaryDirectory() as tmp:
        for label, argv in CASES:
            wall, peak, code, err = run(argv, tmp)
            print(f"{label:<52} {wall:7.2f} {peak:8.0f} {code:4d}  {err}")


if __name__ == "__main__":
    main()
