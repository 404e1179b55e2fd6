"""Forward vs forward+backward plan time on one long 1-D axis (window n // 1024, tiles 128/128).

Run from a checkout: ``PYTHONPATH=. python benchmarks/bench_long_axis.py [log2 sizes ...]``.
Each size is timed cold (plan caches cleared first), best of ``REPEATS``: a measurement, not a
test.
"""

from __future__ import annotations

import sys
import time

from gnasim import GNAConfig, simulate


def _clear() -> None:
    from gnasim.plan import backward, tiling

    clear = getattr(tiling, "clear_plan_cache", None)
    if clear is not None:
        clear()                               # this round's code: every plan cache
    old_backward_cache = getattr(backward, "_PLANS", None)
    if isinstance(old_backward_cache, dict):  # before it: the backward cache separately
        old_backward_cache.clear()


REPEATS = 3


def _cold(run) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        _clear()
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
    return best


def main(exponents: list[int]) -> None:
    for e in exponents:
        n = 2 ** e
        cfg = GNAConfig(input_size=(n,), window_size=(n // 1024,), q_tile=(128,), kv_tile=(128,))
        fwd = _cold(lambda cfg=cfg: simulate(cfg, None))
        both = _cold(lambda cfg=cfg: simulate(cfg, None, backward=True, bwd_q_tile=(128,),
                                              bwd_kv_tile=(128,)))
        print(f"n = 2^{e}: forward {fwd * 1e3:.2f} ms, forward+backward {both * 1e3:.2f} ms",
              flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [20, 26, 30])
