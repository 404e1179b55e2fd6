"""What the calibration corpus holds, and the throughput each row reached.

Run: python benchmarks/corpus_stats.py [--detail] [--dataset NAME ...]

Prints Markdown: per dataset / GPU / implementation / pass / dtype, the rows, the problem ranges
and the achieved TFLOP/s against the GPU's dense tensor peak from its hardware profile (where one
exists). With ``--detail``, one line per series (same problem family, varying sequence length).

FLOPs of a row: attended (query, key) pairs x 2 (d_qk + d_v) x heads x batch, times 2.5 for a
backward pass and 3.5 for forward + backward. Pairs per axis: L^2 for self attention, L^2 / 2 for
plain causal self attention (the convention of the FlashAttention papers); otherwise counted
exactly, per dilation group, with GNA's window, stride and causal rules (a cuDNN causal sliding
window of w is GNA's 1-D causal window w). A layout's pairs are the product over its axes. For a
sparse row this is useful work, not the work of the visited tiles.
"""

from __future__ import annotations

import argparse
import re
import statistics
from collections import defaultdict

from gnasim.calibration.corpus import DATASETS, gpu_profiles, load_corpus
from gnasim.calibration.measurements import Measurement
from gnasim.hardware.profile import load_profiles
from gnasim.plan.windows import attended_keys_total, group_lengths

PASS_FACTOR = {"fwd": 1.0, "bwd": 2.5, "fwd+bwd": 3.5}


def axis_pairs(length: int, window: int, stride: int, dilation: int, causal: bool) -> float:
    """Attended (query, key) pairs along one axis."""
    if window == length and stride == 1 and dilation == 1:
        return length * length / (2.0 if causal else 1.0)
    return float(sum(attended_keys_total(int(n), window, stride, causal)
                     for n in group_lengths(length, dilation)))


def flops(m: Measurement) -> float:
    c = m.config
    pairs = 1.0
    for n, w, s, d, k in zip(c.input_size, c.window_size, c.stride, c.dilation, c.causal):
        pairs *= axis_pairs(n, w, s, d, bool(k))
    return pairs * 2 * (c.head_dim + c.dim_v) * c.heads * c.batch * PASS_FACTOR[m.pass_]


def tflops(m: Measurement) -> float:
    return flops(m) / (m.attention_ms * 1e-3) / 1e12


def mask(m: Measurement) -> str:
    c = m.config
    if m.is_dense:
        return "causal" if any(c.causal) else "dense"
    if c.rank == 1 and c.causal[0] and c.stride == (1,):
        return f"window {c.window_size[0]}"
    return "GNA"


def tokens(m: Measurement) -> int:
    n = 1
    for v in m.config.input_size:
        n *= v
    return n


def family(m: Measurement) -> str:
    """The model a cuDNN row benchmarks, or the implementation and where its number comes from."""
    found = re.search(r"model (\w[\w.]*)", m.note)
    if found:
        return found.group(1)
    return m.implementation + (" (tritonbench)" if m.source.startswith("pytorch/") else "")


def kilo(n: int) -> str:
    return f"{n / 1024:g}K" if n % 1024 == 0 else (f"{n / 1000:.1f}k" if n >= 1000 else str(n))


def summary(rows: list[Measurement], peaks: dict) -> None:
    groups: dict[tuple, list[Measurement]] = defaultdict(list)
    for m in rows:
        groups[(m.dataset, m.gpu, m.implementation, m.pass_, m.dtype)].append(m)
    print("| dataset | GPU | implementation | pass | dtype | rows | tokens | d | masks "
          "| TFLOP/s min / median / max | peak | best % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for key in sorted(groups, key=lambda k: ([d.name for d in DATASETS].index(k[0]), k[1:])):
        ms = groups[key]
        tf = sorted(tflops(m) for m in ms)
        peak = peaks.get((key[1], ms[0].config.dtype))
        span = sorted({tokens(m) for m in ms})
        dims = sorted({m.config.head_dim for m in ms})
        masks = ", ".join(sorted({mask(m) for m in ms}))
        best = f"{100 * tf[-1] / peak:.0f}%" if peak else "no profile"
        print(f"| {' | '.join(key)} | {len(ms)} | {kilo(span[0])}-{kilo(span[-1])} "
              f"| {'/'.join(map(str, dims))} | {masks} | {tf[0]:.0f} / {statistics.median(tf):.0f}"
              f" / {tf[-1]:.0f} | {peak or '-'} | {best} |")


def detail(rows: list[Measurement]) -> None:
    series: dict[tuple, list[Measurement]] = defaultdict(list)
    for m in rows:
        if m.config.rank != 1 or m.dataset.startswith("gnasim_") or m.dataset == "natten_published":
            continue
        c = m.config
        d = f"d{c.head_dim}" + (f"/{c.dim_v}" if c.dim_v != c.head_dim else "")
        det = " det" if m.deterministic else ""
        series[(m.dataset, m.gpu, family(m), d, mask(m), m.dtype,
                m.pass_ + det, f"H{c.heads}/{c.kv_heads}")].append(m)
    print("| GPU | model / implementation | d | mask | dtype | pass | heads | TFLOP/s by tokens |")
    print("|---|---|---|---|---|---|---|---|")
    for key in sorted(series):
        ms = sorted(series[key], key=tokens)
        points = " ".join(f"{kilo(tokens(m))}:{tflops(m):.0f}" for m in ms)
        print(f"| {' | '.join(key[1:])} | {points} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", action="append", help="dataset name (default: all)")
    ap.add_argument("--detail", action="store_true", help="also print one line per series")
    args = ap.parse_args()
    rows = load_corpus(args.dataset)
    profiles = load_profiles()
    match = gpu_profiles({m.gpu for m in rows}, profiles)
    by_name = {p.name: p for p in profiles}
    peaks = {}
    for m in rows:
        prof = by_name.get(match[m.gpu] or "")
        if prof is not None and m.config.dtype in prof.tensor_tflops:
            peaks[(m.gpu, m.config.dtype)] = prof.tensor_tflops[m.config.dtype]
    print(f"{len(rows)} rows; profiles: "
          + ", ".join(f"{g} -> {p or 'none'}" for g, p in sorted(match.items())) + "\n")
    summary(rows, peaks)
    if args.detail:
        print()
        detail(rows)


if __name__ == "__main__":
    main()
