"""``gna_attention``: NATTEN-style entry point running the Triton kernel on permuted tokens."""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

from gnasim.config import GNAConfig

from .kernel import gna_forward_permuted, layouts, plan_table
from .permute import permute, unpermute
from .plan import KernelPlan, kernel_plan

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
                  return_counts: bool = False):
    """Generalized neighborhood attention forward, NATTEN semantics.

    ``q``, ``k``, ``v``: ``[batch, *layout, heads, head_dim]`` (1 to 3 layout axes), fp16, bf16
    or fp32, one device. ``kernel_size``, ``stride``, ``dilation`` and ``is_causal`` are per axis
    (a scalar broadcasts). ``q_tile``/``kv_tile`` are per-axis tile shapes whose products are
    powers of two >= 16 (defaults: :data:`DEFAULT_TILES`). ``mask_all`` masks every visited tile
    pair instead of only the partial ones. Window = layout gives dense self attention.

    Returns the output in the input layout; with ``return_counts`` also an int32 tensor
    ``[batch * dilation_groups, q_tiles, heads, 2]``: per program, the KV tiles it visited and how
    many of those applied the element mask (programs in the kernel's order, see
    :meth:`gnasim_validate.plan.KernelPlan.expected_visits`).
    """
    if q.dim() < 4 or q.shape != k.shape or k.shape != v.shape:
        raise ValueError("q, k, v must share one shape [batch, *layout, heads, head_dim]")
    if q.dtype not in _DTYPES:
        raise ValueError(f"dtype {q.dtype} is not supported (fp16, bf16, fp32)")
    layout = tuple(q.shape[1:-2])
    batch, heads, head_dim = q.shape[0], q.shape[-2], q.shape[-1]
    cfg = make_config(layout, kernel_size, stride, dilation, is_causal, q_tile, kv_tile,
                      batch=batch, heads=heads, head_dim=head_dim, dtype=_DTYPES[q.dtype])
    plan = cached_plan(cfg)
    q_lay, kv_lay = layouts(plan)
    qp = permute(q, q_lay)
    kp = permute(k, kv_lay)
    vp = permute(v, kv_lay)
    counts = None
    if return_counts:
        counts = torch.zeros((qp.shape[0], plan.q_tiles, heads, 2), dtype=torch.int32, device=q.device)
    op = gna_forward_permuted(qp, kp, vp, plan, plan_table(plan, q.device, mask_all),
                              counts=counts, sm_scale=sm_scale)
    out = unpermute(op, q_lay)
    return (out, counts) if return_counts else out
