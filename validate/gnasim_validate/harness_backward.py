"""Backward timing for the GPU harness (``--backprop``): rows with ``pass = bwd``.

For each case, next to the forward rows (``pass = fwd``), it times the backward pass alone:

* ``triton-gna`` / ``triton-gna-dense``: :class:`gnasim_validate.kernel_backward.GNABackwardLaunch`
  on token-permuted tensors prepared by one forward run (the launch includes ``Delta =
  rowsum(dO * O)``, zeroing the fp32 dQ buffer and casting it); ``permute_ms`` is permuting dO and
  unpermuting dQ, dK and dV. Rows carry the case's backward tiles (``q_tile``/``kv_tile``) and the
  backward plan's bounds: ``tile_bound`` is the dense Q tiles per KV tile over the Q tiles the
  worst KV tile visits, ``kv_tiles_visited_max`` holds that worst count of *Q* tiles;
* ``torch-sdpa`` (best backend) and ``flex-attention`` (dense, and with the plan's block mask):
  ``torch.autograd.grad`` on a retained graph of one forward call, so only backward work is timed.

Gradients are cross-checked: our GNA gradients against Flex's, our dense ones against SDPA's
(``max_abs_diff`` over dQ, dK and dV).
"""

from __future__ import annotations

from dataclasses import replace
from math import prod
from typing import TYPE_CHECKING

if TYPE_CHECKING:                                   # pragma: no cover
    from .cases import Case
    from .harness import Runner

BWD = {"pass": "bwd"}


def _bwd_tiled(case: Case) -> Case:
    """The case with its backward tiles as ``q_tile``/``kv_tile``."""
    return replace(case, q_tile=case.bwd_q_tile or case.q_tile,
                   kv_tile=case.bwd_kv_tile or case.kv_tile)


class _Grad:
    """Backward of a retained graph: ``autograd.grad(out, inputs, dout)``."""

    def __init__(self, out, inputs, dout):
        self.out, self.inputs, self.dout = out, inputs, dout

    def __call__(self):
        import torch

        return torch.autograd.grad(self.out, self.inputs, self.dout, retain_graph=True)


def _max_diff(a, b) -> float:
    return max(float((x.float() - y.float()).abs().max().item()) for x, y in zip(a, b))


def _bench(runner: Runner, fns: list) -> float:
    from .harness import Rotate, bench

    return bench(Rotate(fns), runner.warmup_ms, runner.rep_ms)


def _ours(runner: Runner, case: Case, inputs, douts, mask_all: bool):
    """(backward ms, permute ms, backward tables, gradients of set 0 in the input layout).

    ``case`` carries the forward tiles; the backward tiles are ``bwd_q_tile``/``bwd_kv_tile``."""
    from .api import relayout_rows
    from .kernel import GNALaunch, layouts, plan_table
    from .kernel_backward import GNABackwardLaunch, backward_table
    from .permute import permute, unpermute
    from .plan import backward_tables, kernel_plan

    torch = runner.torch
    plan, bplan = kernel_plan(case.config()), kernel_plan(_bwd_tiled(case).config())
    tables = backward_tables(bplan)
    q_lay, kv_lay = layouts(plan)
    bq_lay, bkv_lay = layouts(bplan)
    table = plan_table(plan, runner.device, mask_all)
    btable = backward_table(tables, runner.device, mask_all)
    launches = []
    for (q, k, v), do in zip(inputs, douts):
        qp, kp, vp = permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay)
        lse = torch.empty((qp.shape[0], qp.shape[2], qp.shape[1]), dtype=torch.float32,
                          device=runner.device)
        op = GNALaunch(qp, kp, vp, plan, table, lse=lse)()
        if (bq_lay, bkv_lay) != (q_lay, kv_lay):
            qp, op = permute(q, bq_lay), permute(unpermute(op, q_lay), bq_lay)
            kp, vp = permute(k, bkv_lay), permute(v, bkv_lay)
            lse = relayout_rows(lse, q_lay, bq_lay)
        launches.append(GNABackwardLaunch(qp, kp, vp, op, permute(do, bq_lay), lse, bplan, tables,
                                          btable))
    ms = _bench(runner, launches)

    def perm(i):
        lb, do = launches[i], douts[i]
        return lambda: (permute(do, bq_lay), unpermute(lb.dq, bq_lay), unpermute(lb.dk, bkv_lay),
                        unpermute(lb.dv, bkv_lay))

    perm_ms = _bench(runner, [perm(i) for i in range(len(inputs))])
    dq, dk, dv = launches[0]()
    grads = (unpermute(dq, bq_lay), unpermute(dk, bkv_lay), unpermute(dv, bkv_lay))
    return ms, perm_ms, tables, grads


def _bounds(case: Case, tables) -> dict:
    from .plan import backward_tables, kernel_plan

    dense = backward_tables(kernel_plan(_bwd_tiled(case).dense().config()))
    worst = int(tables.expected_visits().max())
    flop = "" if any(case.causal) else f"{prod(case.layout) / prod(case.window):.4f}"
    return {"tile_bound": f"{int(dense.expected_visits().max()) / worst:.4f}", "flop_bound": flop,
            "kv_tiles_visited_max": worst,
            "fully_block_sparse": int(not tables.expected_partial().any())}


def _sdpa(runner: Runner, case: Case, inputs, douts):
    """Time SDPA's backward on the dense problem (once per problem); its grads, input layout."""
    key = runner.problem_key(case, "torch-sdpa") + ("bwd",)
    if not runner.sdpa or key in runner.done:
        return runner.done.get(key)
    causal = any(case.causal)
    if causal and len(case.layout) > 1:
        return None
    from torch.nn.attention import sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    from .harness import flat_bnhe

    def measure(backend):
        fns = []
        for s, do in zip(inputs, douts):
            qkv = tuple(flat_bnhe(t).requires_grad_() for t in s)
            with sdpa_kernel(backend):
                out = sdpa(*qkv, is_causal=causal)
            fns.append(_Grad(out, qkv, flat_bnhe(do)))
        shape = inputs[0][0].shape
        return _bench(runner, fns), lambda: tuple(g.transpose(1, 2).reshape(shape) for g in fns[0]())

    best = runner.time_sdpa(case, "torch-sdpa bwd", measure, "backward, ", **BWD)
    if best is not None:
        runner.done[key] = best
    return best


def _dense_ours(runner: Runner, case: Case, inputs, douts) -> dict:
    """Our dense backward row for a case's problem and backward tile sizes (once)."""
    b = _bwd_tiled(case)
    key = runner.problem_key(case, "triton-gna-dense") + (prod(b.q_tile), prod(b.kv_tile), "bwd")
    if key in runner.done:
        return runner.done[key]
    if any(case.causal):
        dcase, flat = replace(b.dense(), bwd_q_tile=None, bwd_kv_tile=None), inputs
        note = ("backward, same kernel, window = layout, tiles "
                f"{'x'.join(map(str, b.q_tile))}/{'x'.join(map(str, b.kv_tile))}")
    else:
        n = prod(case.layout)
        one = dict(layout=(n,), window=(n,), stride=(1,), dilation=(1,), causal=(False,))
        dcase = replace(b.dense(), q_tile=(prod(b.q_tile),), kv_tile=(prod(b.kv_tile),),
                        bwd_q_tile=None, bwd_kv_tile=None, **one)
        flat = [tuple(t.reshape(t.shape[0], n, *t.shape[-2:]) for t in s) for s in inputs]
        douts = [d.reshape(d.shape[0], n, *d.shape[-2:]) for d in douts]
        note = (f"backward, same kernel, window = layout, one flat sequence, "
                f"tiles {dcase.q_tile[0]}/{dcase.kv_tile[0]}")
    ms, perm_ms, tables, grads = _ours(runner, dcase, flat, douts, mask_all=False)
    ref = _sdpa(runner, case, inputs, douts)
    diff = None
    if ref is not None:
        diff = (_max_diff([g.reshape(r.shape) for g, r in zip(grads, ref)], ref), "torch-sdpa")
    row = runner.add_row(b, "triton-gna-dense", ms, dense=True, permute_ms=perm_ms, note=note,
                      baseline="triton-gna-dense", kv_tiling="static", masking="partial",
                      speedup="1.0000", tile_bound="1.0000", flop_bound="1.0000",
                      kv_tiles_visited_max=int(tables.expected_visits().max()),
                      fully_block_sparse=int(not tables.expected_partial().any()), diff=diff, **BWD)
    runner.done[key] = row
    return row


def _flex(runner: Runner, case: Case, inputs, douts, ours_grads) -> None:
    """Flex's backward: dense (non-causal, once per problem) and with the plan's block mask."""
    from .flex import plan_block_mask
    from .harness import flat_bnhe
    from .permute import permute, plan_layouts, unpermute
    from .plan import kernel_plan

    flex = runner.flex_fn()
    if flex is None:
        return
    dense_key = runner.problem_key(case, "flex-attention") + ("bwd",)
    if dense_key not in runner.done and not any(case.causal):
        try:
            fns = []
            for s, do in zip(inputs, douts):
                qkv = tuple(flat_bnhe(t).requires_grad_() for t in s)
                fns.append(_Grad(flex(*qkv), qkv, flat_bnhe(do)))
            runner.done[dense_key] = runner.add_row(
                case, "flex-attention", _bench(runner, fns), dense=True,
                note="backward, dense, no block mask", baseline="flex-attention",
                speedup="1.0000", flop_bound="1.0000", **BWD)
        except Exception as err:
            runner.log(f"  flex-attention dense backward failed: {str(err).splitlines()[0][:120]}")
    plan = kernel_plan(case.config())
    q_lay, kv_lay = plan_layouts(plan)
    lays = (q_lay, kv_lay, kv_lay)
    try:
        block_mask = plan_block_mask(plan, case.batch, runner.device)
        fns = []
        for s, do in zip(inputs, douts):
            qkv = tuple(permute(t, lay).transpose(1, 2).contiguous().requires_grad_()
                        for t, lay in zip(s, lays))
            out = flex(*qkv, block_mask=block_mask)
            fns.append(_Grad(out, qkv, permute(do, q_lay).transpose(1, 2).contiguous()))
        ms = _bench(runner, fns)
        grads = tuple(unpermute(g.transpose(1, 2).contiguous(), lay) for g, lay in zip(fns[0](), lays))
    except Exception as err:
        runner.log(f"  flex-attention GNA backward failed: {str(err).splitlines()[0][:160]}")
        return
    base = runner.done.get(dense_key)
    from .plan import backward_tables

    runner.add_row(case, "flex-attention", ms,
                note=("backward, block mask from the plan, "
                      f"blocks {prod(case.q_tile)}/{prod(case.kv_tile)}"),
                baseline="flex-attention" if base else "", kv_tiling="static", masking="partial",
                speedup=f"{float(base['attention_ms']) / ms:.4f}" if base else "",
                diff=(_max_diff(grads, ours_grads), "triton-gna"),
                **_bounds(case, backward_tables(kernel_plan(_bwd_tiled(case).config()))), **BWD)


def backward_case(runner: Runner, case: Case, inputs) -> None:
    """All ``pass = bwd`` rows of one case (called by :meth:`Runner.run_case` with ``backprop``)."""
    torch = runner.torch
    gen = torch.Generator(device=runner.device).manual_seed(1)
    douts = [torch.randn(s[0].shape, device=runner.device, dtype=s[0].dtype, generator=gen)
             for s in inputs]
    dense_ms = float(_dense_ours(runner, case, inputs, douts)["attention_ms"])
    if case.is_dense:
        return
    b = _bwd_tiled(case)
    ms, perm_ms, tables, grads = _ours(runner, case, inputs, douts, mask_all=False)
    bounds = _bounds(case, tables)
    runner.add_row(b, "triton-gna", ms, permute_ms=perm_ms, note=case.note, baseline="triton-gna-dense",
                kv_tiling="static", masking="partial", speedup=f"{dense_ms / ms:.4f}", **bounds, **BWD)
    if runner.mask_all and bounds["fully_block_sparse"] == 0:
        ms_all, _, _, grads_all = _ours(runner, case, inputs, douts, mask_all=True)
        runner.add_row(b, "triton-gna", ms_all, permute_ms=perm_ms, note=case.note,
                    baseline="triton-gna-dense", kv_tiling="static", masking="all",
                    speedup=f"{dense_ms / ms_all:.4f}", diff=(_max_diff(grads_all, grads), "triton-gna"),
                    **bounds, **BWD)
    if runner.flex and case.flex:
        _flex(runner, case, inputs, douts, grads)
