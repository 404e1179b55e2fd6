"""GPU timing harness: our Triton GNA kernel (GNA and dense), torch SDPA and FlexAttention.

For each case it times, with ``triton.testing.do_bench`` (median; warm-up; several input sets
used in rotation so no launch reads what the previous one left in L2):

* ``triton-gna``: our kernel on token-permuted tensors (``permute_ms`` = permuting Q, K, V and
  unpermuting the output, timed separately), with the element mask on partial tiles only, and
  again masking every visited tile when the case is not perfectly block-sparse;
* ``triton-gna-dense``: the same kernel with window = layout (the same-code baseline; non-causal
  problems run as one flat sequence, so no permutation is needed);
* ``torch-sdpa``: ``scaled_dot_product_attention`` on the dense problem, fastest of its cuDNN,
  flash and memory-efficient backends (non-causal, or 1-D causal);
* ``flex-attention``: compiled FlexAttention on the permuted tokens with a block mask built from
  the same tile plan (full blocks unmasked, partial blocks through a ``mask_mod``), and dense.

With ``backprop`` each case also gets ``pass = bwd`` rows timing the backward pass of the same
implementations (:mod:`gnasim_validate.harness_backward`); forward rows have ``pass = fwd``.
Rows follow the measurement CSV schema shared with calibration (see :data:`COLUMNS`).
Run as ``gnasim validate run`` or ``python -m gnasim_validate.harness`` (the latter needs no typer).
"""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from .cases import SUITES, Case, load_spec, resolve_cases, x_join  # noqa: F401  (re-exported)

SCHEMA = ["source", "gpu", "implementation", "batch", "heads", "head_dim", "dtype", "layout",
          "window", "stride", "dilation", "causal", "q_tile", "kv_tile", "attention_ms",
          "permute_ms", "note"]
EXTRA = ["baseline", "device", "driver", "torch_version", "triton_version", "kv_tiling", "masking",
         "speedup", "tile_bound", "flop_bound", "kv_tiles_visited_max", "fully_block_sparse",
         "max_abs_diff", "diff_against", "pass"]
COLUMNS = SCHEMA + EXTRA
SOURCE = "gnasim-validate"


class NoGPU(RuntimeError):
    """No CUDA device, or torch / triton missing: the harness cannot run here."""


# ---------------------------------------------------------------------------------------------
# environment


def require_gpu():
    """Import torch and triton and check for a CUDA device; raise :class:`NoGPU` otherwise."""
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as err:
        raise NoGPU(f"validate needs torch and triton ({err.name} is not installed)") from None
    if not torch.cuda.is_available():
        raise NoGPU("validate run needs a CUDA GPU; none is available here")
    import os

    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        raise NoGPU("TRITON_INTERPRET is set: unset it to time kernels on the GPU")
    return torch


def gpu_short_name(name: str) -> str:
    """``NVIDIA H100 80GB HBM3`` -> ``H100-SXM``; ``NVIDIA H200`` -> ``H200``."""
    n = name.upper().replace("NVIDIA", "").strip()
    for chip in ("H100", "H200", "H800", "H20", "B200", "B100", "GB200", "A100", "A800", "L40S",
                 "L40", "L4", "A10G", "A10", "RTX 4090", "RTX 5090"):
        if chip in n:
            base = chip.replace(" ", "")
            if chip in ("H100", "A100", "H800", "A800"):
                if "PCIE" in n:
                    return f"{base}-PCIe"
                if "NVL" in n:
                    return f"{base}-NVL"
                return f"{base}-SXM"
            return base
    return "-".join(n.split()) or "GPU"


def device_info(torch) -> dict[str, str]:
    import triton

    name = torch.cuda.get_device_name()
    driver = ""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        driver = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout else ""
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    cuda = torch.version.cuda or ""
    return {"gpu": gpu_short_name(name), "device": name,
            "driver": f"{driver} (CUDA {cuda})" if driver else f"CUDA {cuda}",
            "torch_version": torch.__version__, "triton_version": triton.__version__}


# ---------------------------------------------------------------------------------------------
# timing


def bench(fn: Callable[[], object], warmup_ms: float = 25, rep_ms: float = 100) -> float:
    """Median milliseconds of ``fn`` with ``triton.testing.do_bench``; slow calls get more time,
    so that every measurement has at least ~7 repetitions."""
    import torch
    import triton

    fn()                                           # compile / first call outside the timing
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    est = (time.perf_counter() - start) * 1e3
    return float(triton.testing.do_bench(fn, warmup=max(warmup_ms, 2 * est), rep=max(rep_ms, 7 * est),
                                         return_mode="median"))


class Rotate:
    """Calls ``fns[i]`` in turn: each launch uses the next input set."""

    def __init__(self, fns: list[Callable[[], object]]):
        self.fns, self.i = fns, 0

    def __call__(self):
        f = self.fns[self.i]
        self.i = (self.i + 1) % len(self.fns)
        return f()


def flat_bnhe(t):
    """``[B, *layout, H, E]`` -> contiguous ``[B, H, N, E]`` (SDPA / Flex layout)."""
    return t.reshape(t.shape[0], -1, *t.shape[-2:]).transpose(1, 2).contiguous()


@dataclass
class Runner:
    """Times cases on the current GPU and collects measurement rows.

    Every output is also checked: our dense kernel against SDPA, our GNA kernel against Flex
    (same mask, independent implementation); the largest absolute difference goes in the row.
    """

    sets: int = 3
    warmup_ms: float = 25
    rep_ms: float = 100
    flex: bool = True
    sdpa: bool = True
    mask_all: bool = True
    backprop: bool = False
    device: str = "cuda"
    log: Callable[[str], None] = print
    rows: list[dict] = field(default_factory=list)

    def __post_init__(self):
        self.torch = require_gpu()
        self.info = device_info(self.torch)
        self.done: dict[tuple, object] = {}   # rows (or outputs) made once per problem
        self._flex_fn = None

    # -- helpers --------------------------------------------------------------------------
    def _inputs(self, case: Case):
        torch = self.torch
        dt = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[case.dtype]
        shape = (case.batch, *case.layout, case.heads, case.head_dim)
        gen = torch.Generator(device=self.device).manual_seed(0)
        return [tuple(torch.randn(shape, device=self.device, dtype=dt, generator=gen) for _ in range(3))
                for _ in range(self.sets)]

    def problem_key(self, case: Case, impl: str) -> tuple:
        return (impl, case.layout, case.causal, case.batch, case.heads, case.head_dim, case.dtype)

    def add_row(self, case: Case, impl: str, ms: float, *, dense: bool = False, **kw) -> dict:
        same = (1,) * len(case.layout)
        row = {
            "source": SOURCE, "gpu": self.info["gpu"], "implementation": impl,
            "batch": case.batch, "heads": case.heads, "head_dim": case.head_dim, "dtype": case.dtype,
            "layout": x_join(case.layout),
            "window": x_join(case.layout if dense else case.window),
            "stride": x_join(same if dense else case.stride),
            "dilation": x_join(same if dense else case.dilation),
            "causal": x_join(case.causal),
            "q_tile": "" if dense else x_join(case.q_tile), "kv_tile": "" if dense else x_join(case.kv_tile),
            "attention_ms": f"{ms:.6f}", "permute_ms": f"{kw.pop('permute_ms', 0.0):.6f}",
            "note": kw.pop("note", ""), "pass": "fwd",
            "device": self.info["device"], "driver": self.info["driver"],
            "torch_version": self.info["torch_version"], "triton_version": self.info["triton_version"],
        }
        diff = kw.pop("diff", None)
        if diff is not None:
            row["max_abs_diff"], row["diff_against"] = f"{diff[0]:.3e}", diff[1]
        row.update({k: ("" if v is None else v) for k, v in kw.items()})
        for col in COLUMNS:
            row.setdefault(col, "")
        self.rows.append(row)
        self.log(f"  {row['pass']} {impl:17s} {row['masking'] or '-':8s} {ms:10.4f} ms  permute "
                 f"{float(row['permute_ms']):8.4f} ms  speedup {row['speedup'] or '-':>8s}"
                 f"  bound {row['tile_bound'] or '-':>8s}  diff {row['max_abs_diff'] or '-'}")
        return row

    def _diff(self, a, b) -> float:
        return float((a.float() - b.float()).abs().max().item())

    # -- our kernel -----------------------------------------------------------------------
    def _ours(self, case: Case, inputs, mask_all: bool):
        """(kernel ms, permute ms, plan, output of input set 0 in [B, *layout, H, E])."""
        from .kernel import GNALaunch, layouts, plan_table
        from .permute import permute, unpermute
        from .plan import kernel_plan

        plan = kernel_plan(case.config())
        q_lay, kv_lay = layouts(plan)
        table = plan_table(plan, self.device, mask_all)
        permuted = [(permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay)) for q, k, v in inputs]
        launches = [GNALaunch(qp, kp, vp, plan, table) for qp, kp, vp in permuted]
        ms = bench(Rotate(launches), self.warmup_ms, self.rep_ms)

        def perm(i):
            q, k, v = inputs[i]
            out = launches[i].out
            return lambda: (permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay),
                            unpermute(out, q_lay))

        # 1-D without dilation or padding: the permutation is a view, nothing to time
        identity = (len(case.layout) == 1 and case.dilation == (1,)
                    and q_lay.padded == case.layout and kv_lay.padded == case.layout)
        perm_ms = 0.0 if identity else bench(Rotate([perm(i) for i in range(len(inputs))]),
                                             self.warmup_ms, self.rep_ms)
        out0 = unpermute(launches[0](), q_lay)
        return ms, perm_ms, plan, out0

    def _dense_ours(self, case: Case, inputs) -> dict:
        """Our dense row for a case's problem (once per problem and tile sizes)."""
        from math import prod

        key = self.problem_key(case, "triton-gna-dense") + (prod(case.q_tile), prod(case.kv_tile))
        if key in self.done:
            return self.done[key]
        if any(case.causal):
            dcase = case.dense()
            note = f"same kernel, window = layout, tiles {x_join(case.q_tile)}/{x_join(case.kv_tile)}"
        else:
            # non-causal dense attention ignores token order: one flat sequence, no permutation
            n = prod(case.layout)
            dcase = replace(case.dense(), layout=(n,), window=(n,), stride=(1,), dilation=(1,),
                            causal=(False,), q_tile=(prod(case.q_tile),), kv_tile=(prod(case.kv_tile),))
            note = (f"same kernel, window = layout, one flat sequence, "
                    f"tiles {prod(case.q_tile)}/{prod(case.kv_tile)}")
        flat = [tuple(t.reshape(t.shape[0], *dcase.layout, *t.shape[-2:]) for t in s) for s in inputs]
        ms, perm_ms, plan, out = self._ours(dcase, flat, mask_all=False)
        out = out.reshape(out.shape[0], -1, *out.shape[-2:])
        diff = None
        ref = self._sdpa(case, inputs)
        if ref is not None:
            diff = (self._diff(out, ref), "torch-sdpa")
        row = self.add_row(case, "triton-gna-dense", ms, dense=True, permute_ms=perm_ms, note=note,
                           baseline="triton-gna-dense", kv_tiling="static", masking="partial",
                           speedup="1.0000", tile_bound="1.0000", flop_bound="1.0000",
                           kv_tiles_visited_max=int(plan.expected_visits().max()),
                           fully_block_sparse=int(plan.fully_block_sparse), diff=diff)
        self.done[key] = row
        return row

    # -- baselines ------------------------------------------------------------------------
    def _sdpa(self, case: Case, inputs):
        """Time SDPA on the dense problem (once per problem); its output as [B, N, H, E]."""
        if not self.sdpa:
            return None
        from torch.nn.attention import sdpa_kernel
        from torch.nn.functional import scaled_dot_product_attention as sdpa

        causal = any(case.causal)
        if causal and len(case.layout) > 1:
            return None                              # multi-axis causal has no SDPA form
        bhne = [tuple(flat_bnhe(t) for t in s) for s in inputs]

        def measure(backend):
            def call(q, k, v):
                with sdpa_kernel(backend):
                    return sdpa(q, k, v, is_causal=causal)
            ms = bench(Rotate([lambda s=s: call(*s) for s in bhne]), self.warmup_ms, self.rep_ms)
            return ms, lambda: call(*bhne[0]).transpose(1, 2)

        return self.time_sdpa(case, "torch-sdpa", measure)

    def time_sdpa(self, case: Case, label: str, measure, note: str = "", **extra):
        """Time every SDPA backend with ``measure(backend) -> (ms, result thunk)``, passing over
        those unavailable for the problem; add the fastest one's row (``extra`` columns, ``note``
        first) and return its result, or None when no backend runs."""
        from torch.nn.attention import SDPBackend

        times, best_out = {}, None
        for name, backend in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash", SDPBackend.FLASH_ATTENTION),
                              ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
            try:
                times[name], result = measure(backend)
                if best_out is None or times[name] <= min(times.values()):
                    best_out = result()
            except Exception as err:             # backend not available for this problem
                self.log(f"  {label} {name}: unavailable ({str(err).splitlines()[0][:80]})")
        if not times:
            return None
        best = min(times, key=times.get)
        others = ", ".join(f"{k} {v:.4f}" for k, v in times.items() if k != best)
        self.add_row(case, "torch-sdpa", times[best], dense=True,
                     note=f"{note}best backend {best}" + (f"; others ms: {others}" if others else ""),
                     baseline="torch-sdpa", speedup="1.0000", flop_bound="1.0000", **extra)
        return best_out

    def flex_fn(self):
        """Compiled ``flex_attention`` (made once), or None when torch has none."""
        torch = self.torch
        try:
            from torch.nn.attention.flex_attention import flex_attention
        except ImportError:
            return None
        if self._flex_fn is None:
            import torch._dynamo

            # one compile per problem shape: keep dynamo from falling back to eager (which
            # materialises the full score matrix) after its default 8 recompiles
            for name in ("recompile_limit", "cache_size_limit"):
                if hasattr(torch._dynamo.config, name):
                    setattr(torch._dynamo.config, name, 256)
            self._flex_fn = torch.compile(flex_attention, dynamic=False)
        return self._flex_fn

    def _flex(self, case: Case, inputs, plan, ours_out) -> None:
        flex = self.flex_fn()
        if flex is None:
            return
        from math import prod

        from .flex import plan_block_mask
        from .permute import plan_layouts as layouts
        from .permute import permute, unpermute

        dense_key = self.problem_key(case, "flex-attention")
        if dense_key not in self.done and not any(case.causal):
            bhne = [tuple(flat_bnhe(t) for t in s) for s in inputs]
            try:
                ms = bench(Rotate([lambda s=s: flex(*s) for s in bhne]), self.warmup_ms, self.rep_ms)
                self.done[dense_key] = self.add_row(
                    case, "flex-attention", ms, dense=True, note="dense, no block mask",
                    baseline="flex-attention", speedup="1.0000", flop_bound="1.0000")
            except Exception as err:
                self.log(f"  flex-attention dense failed: {str(err).splitlines()[0][:120]}")
        q_lay, kv_lay = layouts(plan)
        try:
            block_mask = plan_block_mask(plan, case.batch, self.device)
            sets = [tuple(permute(t, lay).transpose(1, 2).contiguous()
                          for t, lay in ((q, q_lay), (k, kv_lay), (v, kv_lay))) for q, k, v in inputs]
            ms = bench(Rotate([lambda s=s: flex(*s, block_mask=block_mask) for s in sets]),
                       self.warmup_ms, self.rep_ms)
            out = unpermute(flex(*sets[0], block_mask=block_mask).transpose(1, 2).contiguous(), q_lay)
        except Exception as err:
            self.log(f"  flex-attention GNA failed: {str(err).splitlines()[0][:160]}")
            return
        base = self.done.get(dense_key)
        self.add_row(case, "flex-attention", ms,
                     note=f"block mask from the plan, blocks {prod(case.q_tile)}/{prod(case.kv_tile)}",
                     baseline="flex-attention" if base else "", kv_tiling="static", masking="partial",
                     speedup=f"{float(base['attention_ms']) / ms:.4f}" if base else "",
                     diff=(self._diff(out, ours_out), "triton-gna"), **self._bounds(case, plan))

    def _bounds(self, case: Case, plan) -> dict:
        from math import prod

        from .plan import kernel_plan

        dense_plan = kernel_plan(case.dense().config())
        worst = int(plan.expected_visits().max())
        dense_worst = int(dense_plan.expected_visits().max())
        flop = "" if any(case.causal) else f"{prod(case.layout) / prod(case.window):.4f}"
        return {"tile_bound": f"{dense_worst / worst:.4f}", "flop_bound": flop,
                "kv_tiles_visited_max": worst, "fully_block_sparse": int(plan.fully_block_sparse)}

    # -- one case -------------------------------------------------------------------------
    def run_case(self, case: Case) -> None:
        self.log(f"{case.label()}  {case.note}")
        inputs = self._inputs(case)
        dense_ms = float(self._dense_ours(case, inputs)["attention_ms"])
        if not case.is_dense:
            ms, perm_ms, plan, out = self._ours(case, inputs, mask_all=False)
            bounds = self._bounds(case, plan)
            self.add_row(case, "triton-gna", ms, permute_ms=perm_ms, note=case.note,
                         baseline="triton-gna-dense", kv_tiling="static", masking="partial",
                         speedup=f"{dense_ms / ms:.4f}", **bounds)
            if self.mask_all and not plan.fully_block_sparse:
                ms_all, _, _, out_all = self._ours(case, inputs, mask_all=True)
                self.add_row(case, "triton-gna", ms_all, permute_ms=perm_ms, note=case.note,
                             baseline="triton-gna-dense", kv_tiling="static", masking="all",
                             speedup=f"{dense_ms / ms_all:.4f}",
                             diff=(self._diff(out_all, out), "triton-gna"), **bounds)
            if self.flex and case.flex:
                self._flex(case, inputs, plan, out)
        if self.backprop:
            from .harness_backward import backward_case

            backward_case(self, case, inputs)
        del inputs
        self.torch.cuda.empty_cache()


def write_csv(rows: list[dict], path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)


def run(suite: str | None, spec: Path | None, out: Path, *, sets: int = 3, flex: bool = True,
        sdpa: bool = True, mask_all: bool = True, backprop: bool = False,
        log: Callable[[str], None] = print) -> list[dict]:
    """Resolve the cases, time them on the GPU, and write the CSV after every case (so a run
    stopped midway, by an error or a SIGTERM, keeps what it measured)."""
    import signal

    cases = resolve_cases(suite, spec)
    runner = Runner(sets=sets, flex=flex, sdpa=sdpa, mask_all=mask_all, backprop=backprop, log=log)
    log(f"{runner.info['device']} | driver {runner.info['driver']} | torch {runner.info['torch_version']}"
        f" | triton {runner.info['triton_version']} | {len(cases)} cases")

    def stop(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for case in cases:
            runner.run_case(case)
            write_csv(runner.rows, out)
    finally:
        signal.signal(signal.SIGTERM, previous)
        write_csv(runner.rows, out)
        log(f"wrote {len(runner.rows)} rows to {out}")
    return runner.rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m gnasim_validate.harness", description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--suite", choices=sorted(SUITES))
    g.add_argument("--spec", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--sets", type=int, default=3)
    p.add_argument("--no-flex", action="store_true")
    p.add_argument("--no-sdpa", action="store_true")
    p.add_argument("--no-mask-all", action="store_true")
    p.add_argument("--backprop", action="store_true", help="also time the backward pass (pass = bwd)")
    a = p.parse_args(argv)
    try:
        resolve_cases(a.suite, a.spec)
    except (ValueError, OSError) as err:
        print(f"gnasim validate: {err}", file=sys.stderr)
        return 2
    try:
        run(a.suite, a.spec, a.out, sets=a.sets, flex=not a.no_flex, sdpa=not a.no_sdpa,
            mask_all=not a.no_mask_all, backprop=a.backprop)
    except NoGPU as err:
        print(f"gnasim validate: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
