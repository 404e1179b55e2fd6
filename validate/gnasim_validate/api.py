"""``gna_attention``: NATTEN-style entry point running the Triton kernels on permuted tokens.

Differentiable: when any input requires a gradient, the forward also stores the per-row log-sum-exp
and the backward runs :mod:`gnasim_validate.kernel_backward` on the KV-stationary backward plan.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from gnasim.config import GNAConfig

from .kernel import gna_forward_permuted, layouts, plan_table
from .permute import permute, unpermute
from .plan import BackwardTables, KernelPlan, backward_tables, kernel_plan

IntOrTuple = int | Sequence[int]

# Default tiles per rank (Q, KV): 128-token Q tiles and 64-token KV tiles, as used on an H100.
DEFAULT_TILES: dict[int, tuple[tuple[int, ...], tuple[int, ...]]] = {
    1: ((128,), (64,)),
    2: ((16, 8), (8, 8)),
    3: ((4, 4, 8), (2, 4, 8)),
}

_DTYPES = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


def _tuple(v, rank: int, name: str) -> tuple:
    if isinstance(v, (bool, int)):
        return (v,) * rank
    v = tuple(v)
    if len(v) != rank:
        raise ValueError(f"{name}: expected {rank} values, got {len(v)}")
    return v


@lru_cache(maxsize=256)
def cached_plan(config: GNAConfig) -> KernelPlan:
    return kernel_plan(config)


@lru_cache(maxsize=256)
def cached_backward_plan(config: GNAConfig) -> tuple[KernelPlan, BackwardTables]:
    """The kernel plan of the backward tiles in ``config`` and its backward tables."""
    plan = cached_plan(config)
    return plan, backward_tables(plan)


def make_config(layout: Sequence[int], kernel_size: IntOrTuple, stride: IntOrTuple = 1,
                dilation: IntOrTuple = 1, is_causal: bool | Sequence[bool] = False,
                q_tile: Sequence[int] | None = None, kv_tile: Sequence[int] | None = None,
                **extra) -> GNAConfig:
    """A validated :class:`GNAConfig` for a layout, with the default tiles when none are given."""
    rank = len(layout)
    if rank not in DEFAULT_TILES:
        raise ValueError(f"the kernel supports 1 to 3 token axes, got {rank}")
    dq, dkv = DEFAULT_TILES[rank]
    return GNAConfig(input_size=tuple(layout), window_size=_tuple(kernel_size, rank, "kernel_size"),
                     stride=_tuple(stride, rank, "stride"), dilation=_tuple(dilation, rank, "dilation"),
                     causal=_tuple(is_causal, rank, "is_causal"),
                     q_tile=tuple(q_tile) if q_tile is not None else dq,
                     kv_tile=tuple(kv_tile) if kv_tile is not None else dkv, **extra)


def gna_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: IntOrTuple,
                  stride: IntOrTuple = 1, dilation: IntOrTuple = 1,
                  is_causal: bool | Sequence[bool] = False,
                  q_tile: Sequence[int] | None = None, kv_tile: Sequence[int] | None = None,
                  mask_all: bool = False, sm_scale: float | None = None,
                  return_counts: bool = False, bwd_q_tile: Sequence[int] | None = None,
                  bwd_kv_tile: Sequence[int] | None = None,
                  backward_counts: torch.Tensor | None = None):
    """Generalized neighborhood attention, NATTEN semantics, differentiable in q, k and v.

    ``q``, ``k``, ``v``: ``[batch, *layout, heads, head_dim]`` (1 to 3 layout axes), fp16, bf16
    or fp32, one device. ``kernel_size``, ``stride``, ``dilation`` and ``is_causal`` are per axis
    (a scalar broadcasts). ``q_tile``/``kv_tile`` are per-axis tile shapes whose products are
    powers of two >= 16 (defaults: :data:`DEFAULT_TILES`). ``mask_all`` masks every visited tile
    pair instead of only the partial ones (forward and backward). Window = layout gives dense self
    attention.

    Returns the output in the input layout; with ``return_counts`` also an int32 tensor
    ``[batch * dilation_groups, q_tiles, heads, 2]``: per program, the KV tiles it visited and how
    many of those applied the element mask (programs in the kernel's order, see
    :meth:`gnasim_validate.plan.KernelPlan.expected_visits`).

    Backward: ``bwd_q_tile``/``bwd_kv_tile`` (default: the forward tiles) are the backward
    kernel's tiles; with other tiles than the forward's the saved tensors are permuted again.
    ``backward_counts`` (int32 ``[batch * dilation_groups, bwd kv_tiles, heads, 2]``) receives,
    when the backward runs, the Q tiles each backward program visited and how many it masked
    (see :meth:`gnasim_validate.plan.BackwardTables.expected_visits`).
    """
    if q.dim() < 4 or q.shape != k.shape or k.shape != v.shape:
        raise ValueError("q, k, v must share one shape [batch, *layout, heads, head_dim]")
    if q.dtype not in _DTYPES:
        raise ValueError(f"dtype {q.dtype} is not supported (fp16, bf16, fp32)")
    layout = tuple(q.shape[1:-2])
    batch, heads, head_dim = q.shape[0], q.shape[-2], q.shape[-1]
    extra = dict(batch=batch, heads=heads, head_dim=head_dim, dtype=_DTYPES[q.dtype])
    cfg = make_config(layout, kernel_size, stride, dilation, is_causal, q_tile, kv_tile, **extra)
    plan = cached_plan(cfg)
    counts = None
    if return_counts:
        groups = plan.groups * batch
        counts = torch.zeros((groups, plan.q_tiles, heads, 2), dtype=torch.int32, device=q.device)
    if torch.is_grad_enabled() and any(t.requires_grad for t in (q, k, v)):
        bwd_cfg = cfg
        if bwd_q_tile is not None or bwd_kv_tile is not None:
            bwd_cfg = make_config(layout, kernel_size, stride, dilation, is_causal,
                                  bwd_q_tile if bwd_q_tile is not None else cfg.q_tile,
                                  bwd_kv_tile if bwd_kv_tile is not None else cfg.kv_tile, **extra)
        options = _Options(plan, bwd_cfg, mask_all, sm_scale, counts, backward_counts)
        out = _GNAFunction.apply(q, k, v, options)
    else:
        q_lay, kv_lay = layouts(plan)
        op = gna_forward_permuted(permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay), plan,
                                  plan_table(plan, q.device, mask_all), counts=counts,
                                  sm_scale=sm_scale)
        out = unpermute(op, q_lay)
    return (out, counts) if return_counts else out


class _Options:
    """What the autograd function needs besides the tensors it differentiates."""

    def __init__(self, plan: KernelPlan, bwd_config: GNAConfig, mask_all: bool,
                 sm_scale: float | None, counts: torch.Tensor | None,
                 backward_counts: torch.Tensor | None) -> None:
        self.plan, self.bwd_config, self.mask_all, self.sm_scale = plan, bwd_config, mask_all, sm_scale
        self.counts, self.backward_counts = counts, backward_counts


def relayout_rows(x: torch.Tensor, src, dst) -> torch.Tensor:
    """Per-row statistics ``[BG, H, tokens]`` from one Q token layout to another."""
    rows = unpermute(x.transpose(1, 2).unsqueeze(-1), src)
    return permute(rows, dst).squeeze(-1).transpose(1, 2).contiguous()


class _GNAFunction(torch.autograd.Function):
    """Forward kernel (storing the log-sum-exp) and the KV-stationary backward kernel."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, opt: _Options) -> torch.Tensor:
        from .kernel_backward import gna_backward_permuted  # noqa: F401  (fail early if missing)

        plan = opt.plan
        q_lay, kv_lay = layouts(plan)
        qp, kp, vp = permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay)
        lse = torch.empty((qp.shape[0], qp.shape[2], qp.shape[1]), dtype=torch.float32,
                          device=q.device)
        op = gna_forward_permuted(qp, kp, vp, plan, plan_table(plan, q.device, opt.mask_all),
                                  counts=opt.counts, lse=lse, sm_scale=opt.sm_scale)
        ctx.save_for_backward(qp, kp, vp, op, lse)
        ctx.opt = opt
        return unpermute(op, q_lay)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        from .kernel_backward import gna_backward_permuted

        opt = ctx.opt
        qp, kp, vp, op, lse = ctx.saved_tensors
        q_lay, kv_lay = layouts(opt.plan)
        bplan, tables = cached_backward_plan(opt.bwd_config)
        bq_lay, bkv_lay = layouts(bplan)
        if (bq_lay, bkv_lay) != (q_lay, kv_lay):
            qp, op = (permute(unpermute(t, q_lay), bq_lay) for t in (qp, op))
            kp, vp = (permute(unpermute(t, kv_lay), bkv_lay) for t in (kp, vp))
            lse = relayout_rows(lse, q_lay, bq_lay)
        dop = permute(grad_out.to(qp.dtype), bq_lay)
        dq, dk, dv = gna_backward_permuted(qp, kp, vp, op, dop, lse, bplan, tables=tables,
                                           mask_all=opt.mask_all, sm_scale=opt.sm_scale,
                                           counts=opt.backward_counts)
        return unpermute(dq, bq_lay), unpermute(dk, bkv_lay), unpermute(dv, bkv_lay), None
