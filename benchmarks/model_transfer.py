"""Out-of-sample accuracy of the shipped runtime model, as markdown tables (docs/model.md).

Fits the shared family model on the calibration corpus, refits it without each GPU and each
source, and prints: held-out MAPE of times and speedups per GPU and family, the dense-backward
line, interval coverage per class, and ``gnasim compare`` on the validation files with the
shipped model. CPU only; about two minutes on a 2-core machine.

    python benchmarks/model_transfer.py
"""

from __future__ import annotations

import time
from collections import defaultdict

from gnasim.calibration.compare import compare
from gnasim.calibration.corpus_calibration import calibrate_corpus
from gnasim.calibration.measurements import load_measurements
from gnasim.calibration.shared_fit import mape
from gnasim.calibration.transfer import STATUSES, coverage


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def main() -> None:
    t0 = time.perf_counter()
    cal = calibrate_corpus()
    res = cal.residuals
    s = cal.summary()
    print(f"{s['rows']} corpus rows, {s['parameters']} parameters; in-sample time MAPE "
          f"{_pct(s['in_sample_mape_time_pct'])} ({time.perf_counter() - t0:.0f} s)\n")

    print("| held out | GPU | family | class | rows | time MAPE | speedups | speedup MAPE |")
    print("|---|---|---|---|---|---|---|---|")
    by: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: {"time": [], "speedup": []})
    for r in res:
        by[(r.split.split(":")[0], r.gpu, r.family, r.status)][r.kind].append(r.value)
    for (split, gpu, fam, status), v in sorted(by.items()):
        print(f"| {split} | {gpu} | {fam} | {status} | {len(v['time'])} | {_pct(mape(v['time']))} "
              f"| {len(v['speedup']) or '-'} | {_pct(mape(v['speedup']))} |")

    print("\nDense backward, leave-one-GPU-out (every backward row of the held-out GPU):\n")
    print("| GPU | rows | time MAPE | without cuDNN fp8 sliding-window rows |")
    print("|---|---|---|---|")
    rows = cal.problem.rows
    for gpu in sorted({r.gpu for r in res if r.family.endswith("/bwd")}):
        mine = [r for r in res if r.kind == "time" and r.split == f"gpu:{gpu}"
                and r.family.endswith("/bwd")]
        keep = [r for r in mine if not (rows[r.row].m.config.dtype == "fp8"
                                        and rows[r.row].m.config.window_size
                                        != rows[r.row].m.config.input_size)]
        print(f"| {gpu} | {len(mine)} | {_pct(mape(r.value for r in mine))} | "
              f"{_pct(mape(r.value for r in keep))} ({len(keep)} rows) |")

    print("\n90% intervals, each held-out prediction tested against an interval built from the "
          "other refits' residuals:\n")
    print("| predicted | class | n | inside | median half-width |")
    print("|---|---|---|---|---|")
    for kind in ("time", "speedup"):
        for status in STATUSES:
            c = coverage(res, kind, status)
            if c["n"]:
                print(f"| {kind} | {status} | {c['n']} | {100 * c['coverage']:.0f}% | "
                      f"{c['median_half_width_pct']:.1f}% |")
        c = coverage(res, kind)
        print(f"| {kind} | all | {c['n']} | {100 * c['coverage']:.0f}% | "
              f"{c['median_half_width_pct']:.1f}% |")

    print("\n`gnasim compare` with the shipped model:\n")
    print("| file | rows | in sample | time MAPE | speedup MAPE |")
    print("|---|---|---|---|---|")
    for name in ("h100_suite", "h100_holdout", "h200_suite"):
        rep = compare(load_measurements(f"validate/data/{name}.csv"))
        m = rep.metrics
        print(f"| validate/data/{name}.csv | {m['n']} | {m['in_sample_rows']} | "
              f"{_pct(m['mape_time'])} | {_pct(m['mape_speedup'])} |")
    print(f"\n({time.perf_counter() - t0:.0f} s in all)")


if __name__ == "__main__":
    main()
