"""A fused Triton GNA backward kernel that runs gnasim's KV-stationary backward tile plan.

FlashAttention-2 style (Dao, arXiv 2307.08691, Algorithm 2), one program per (KV tile, batch x
dilation group, head), as NATTEN's Hopper and Blackwell backward kernels are KV-stationary. The
program loads its K and V tile once and iterates exactly the box of Q tiles that
:func:`gnasim_validate.plan.backward_tables` lists for it (gnasim's backward plan). Per Q tile it
recomputes ``P = exp2(Q K^T * scale * log2(e) - LSE)`` from the forward's base-2 log-sum-exp, then

* ``dV += P^T dO``, ``dP = dO V^T``, ``dS = P * (dP - Delta)`` with ``Delta = rowsum(dO * O)``,
* ``dK += dS^T Q`` (times ``scale`` once at the end),
* ``dQ += dS K * scale``, added with fp32 atomics into a zeroed fp32 buffer shared by every program
  that visits the Q tile (the choice made here: one kernel, one pass over the plan, as NATTEN's
  Hopper/Blackwell kernels accumulate dQ; the sum order, and so the last bits of dQ, may vary from
  run to run on a GPU). The host casts the buffer to the input dtype.

The element mask is the forward's per-axis window predicate on the query rows, applied only on
partial pairs: pairs whose Q tile lies in the fully dense range on every axis skip it (with
``mask_all`` the host empties those ranges). Padding query slots carry ``dO = 0`` and so add
nothing; padding key slots hold zero K and V, so a full pair's padding keys add nothing to dQ (their
dK/dV rows are padding, dropped by the unpermutation).

Written for rank 3 like the forward (lower ranks arrive with leading singleton axes); runs under
``TRITON_INTERPRET=1`` on the CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .kernel_common import (LOG2E, as_operand, axis_args, axis_meta, axis_window,
                            check_tile_sizes, dilation_group, dot, interpreted, load_rows,
                            outside_full, store_counts, store_rows, table_rows, unravel3,
                            window_keep)
from .plan import BackwardTables, KernelPlan, backward_tables


_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


@triton.jit
def _gna_bwd(
    Q, K, V, DO, DQ, DK, DV, LSE, DELTA, TABLE, COUNTS,
    stride_qb, stride_qn, stride_qh,          # Q, dO and the fp32 dQ buffer share these
    stride_kb, stride_kn, stride_kh,          # K, V, dK, dV share these
    sm_scale, sm_scale_log2,
    n_heads, head_dim, q_tokens,
    L0, L1, L2,
    NQ0, NQ1, NQ2,
    NKV0, NKV1, NKV2,
    BASE0, BASE1, BASE2,
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
    C0: tl.constexpr, C1: tl.constexpr, C2: tl.constexpr,
    QT0: tl.constexpr, QT1: tl.constexpr, QT2: tl.constexpr,
    KT0: tl.constexpr, KT1: tl.constexpr, KT2: tl.constexpr,
    BLOCK_D: tl.constexpr, EVEN_D: tl.constexpr,
    COUNT: tl.constexpr, IEEE: tl.constexpr, DOT_F32: tl.constexpr,
):
    BLOCK_M: tl.constexpr = QT0 * QT1 * QT2
    BLOCK_N: tl.constexpr = KT0 * KT1 * KT2

    pid_n = tl.program_id(0)
    pid_bg = tl.program_id(1)
    pid_h = tl.program_id(2)
    bg64 = pid_bg.to(tl.int64)

    # dilation group and its true lengths; KV tile coordinates and its row of each backward table
    g0, g1, g2, Lg0, Lg1, Lg2 = dilation_group(pid_bg, L0, L1, L2, D0, D1, D2)
    (n0, n1, n2, lo0, c0, flo0, fhi0, lo1, c1, flo1, fhi1,
     lo2, c2, flo2, fhi2) = table_rows(TABLE, pid_n, g0, g1, g2, NKV0, NKV1, NKV2, BASE0, BASE1, BASE2)

    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)

    # group-local key coordinates of this KV tile, per axis
    ko0, ko1, ko2 = unravel3(offs_n, KT1, KT2)
    k0 = n0 * KT0 + ko0
    k1 = n1 * KT1 + ko1
    k2 = n2 * KT2 + ko2
    # offsets of a Q tile's rows inside the tile, per axis
    qo0, qo1, qo2 = unravel3(offs_m, QT1, QT2)

    kv_rows = pid_n * BLOCK_N + offs_n
    kv_off = bg64 * stride_kb + pid_h * stride_kh
    q_off = bg64 * stride_qb + pid_h * stride_qh
    k = load_rows(K, 0, kv_off, kv_rows, stride_kn, offs_d, pid_h, head_dim,
                  BLOCK_N, BLOCK_D, EVEN_D, False)
    v = load_rows(V, 0, kv_off, kv_rows, stride_kn, offs_d, pid_h, head_dim,
                  BLOCK_N, BLOCK_D, EVEN_D, False)
    io_dtype = k.dtype
    if DOT_F32:
        k = k.to(tl.float32)
        v = v.to(tl.float32)
    row_stats = (bg64 * n_heads + pid_h) * q_tokens       # LSE and Delta: fp32 [BG, H, tokens]

    dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    dv = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    visits = 0
    masked = 0

    # the visited Q tiles: the box lo[d] .. lo[d] + c[d] - 1, flattened (axis 2 fastest)
    for it in range(c0 * c1 * c2):
        t0, t1, t2 = unravel3(it, c1, c2)
        i0 = lo0 + t0
        i1 = lo1 + t1
        i2 = lo2 + t2
        q_rows = ((i0 * NQ1 + i1) * NQ2 + i2) * BLOCK_M + offs_m
        q = load_rows(Q, 0, q_off, q_rows, stride_qn, offs_d, pid_h, head_dim,
                      BLOCK_M, BLOCK_D, EVEN_D, False)
        do = load_rows(DO, 0, q_off, q_rows, stride_qn, offs_d, pid_h, head_dim,
                       BLOCK_M, BLOCK_D, EVEN_D, False)
        if DOT_F32:
            # the CPU interpreter multiplies bf16 operands wrongly: upcast them (exact products)
            q = q.to(tl.float32)
            do = do.to(tl.float32)
        lse = tl.load(LSE + row_stats + q_rows)
        delta = tl.load(DELTA + row_stats + q_rows)
        qk = dot(q, tl.trans(k), IEEE) * sm_scale_log2
        if outside_full(i0, i1, i2, flo0, fhi0, flo1, fhi1, flo2, fhi2):
            qs0, qe0 = axis_window(i0 * QT0 + qo0, Lg0, K0, S0, C0)
            qs1, qe1 = axis_window(i1 * QT1 + qo1, Lg1, K1, S1, C1)
            qs2, qe2 = axis_window(i2 * QT2 + qo2, Lg2, K2, S2, C2)
            keep = window_keep(k0, k1, k2, qs0, qe0, qs1, qe1, qs2, qe2)
            qk = tl.where(keep, qk, float("-inf"))
            if COUNT:
                masked += 1
        p = tl.math.exp2(qk - lse[:, None])                   # [BLOCK_M, BLOCK_N]
        # P and dS are rounded to the input dtype, as the tensor cores consume them
        dv += dot(tl.trans(as_operand(p, io_dtype, DOT_F32)), do, IEEE)
        dp = dot(do, tl.trans(v), IEEE)
        ds_in = as_operand(p * (dp - delta[:, None]), io_dtype, DOT_F32)
        dk += dot(tl.trans(ds_in), q, IEEE)
        dq = dot(ds_in, k, IEEE)
        dq_ptrs = DQ + q_off + q_rows[:, None] * stride_qn + offs_d[None, :]
        if EVEN_D:
            tl.atomic_add(dq_ptrs, dq * sm_scale)
        else:
            tl.atomic_add(dq_ptrs, dq * sm_scale, mask=offs_d[None, :] < head_dim)
        if COUNT:
            visits += 1

    store_rows(DK, kv_off, kv_rows, stride_kn, offs_d, head_dim, (dk * sm_scale).to(io_dtype),
               EVEN_D)
    store_rows(DV, kv_off, kv_rows, stride_kn, offs_d, head_dim, dv.to(io_dtype), EVEN_D)
    if COUNT:
        store_counts(COUNTS, pid_n, pid_bg, pid_h, n_heads, visits, masked)


def launch_config_backward(block_m: int, block_n: int, block_d: int) -> tuple[int, int]:
    """num_warps, num_stages for a backward tile shape (a fixed rule: no autotuning, so the
    interpreter runs exactly one variant; not tuned on a GPU yet)."""
    warps = 8 if max(block_m, block_n) * block_d >= 128 * 64 else 4
    return warps, 2


def backward_table(tables: BackwardTables, device, mask_all: bool = False) -> torch.Tensor:
    """The packed int32 backward table on ``device``; ``mask_all`` empties every full range."""
    return torch.from_numpy(tables.packed_table(mask_all)).to(device)


class GNABackwardLaunch:
    """One prepared backward launch on token-permuted tensors ``[B * groups, tokens, H, E]``.

    ``qp, kp, vp`` are the forward inputs, ``op`` its output and ``lse`` its base-2 log-sum-exp
    (fp32 ``[B * groups, H, q_tokens]``, see :class:`gnasim_validate.kernel.GNALaunch`); ``dop`` is
    the output gradient in the Q layout. Calling the object computes ``Delta``, zeroes the fp32 dQ
    buffer, launches the kernel and casts dQ: it returns ``(dq, dk, dv)`` in the permuted layout.
    ``counts`` (int32 ``[B * groups, kv_tiles, H, 2]``) receives, per program, the Q tiles visited
    and how many of them applied the element mask.
    """

    def __init__(self, qp: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor, op: torch.Tensor,
                 dop: torch.Tensor, lse: torch.Tensor, plan: KernelPlan,
                 tables: BackwardTables | None = None, table: torch.Tensor | None = None, *,
                 counts: torch.Tensor | None = None, mask_all: bool = False,
                 sm_scale: float | None = None, num_warps: int | None = None,
                 num_stages: int | None = None) -> None:
        if qp.dtype not in _DTYPES or any(t.dtype != qp.dtype for t in (kp, vp, op, dop)):
            raise ValueError("q, k, v, out and grad_out must share one dtype among fp16/bf16/fp32")
        BM, BN = check_tile_sizes(plan)
        if qp.dim() != 4 or qp.shape != op.shape or qp.shape != dop.shape:
            raise ValueError("q, out and grad_out must be [batch * groups, q_tokens, heads, head_dim]")
        BG, NQ, H, E = qp.shape
        if NQ != plan.q_tiles * BM or kp.shape != vp.shape or kp.shape[1] != plan.kv_tiles * BN:
            raise ValueError("permuted tensors do not match the plan's padded token counts")
        if kp.shape[0] != BG or kp.shape[2] != H or kp.shape[3] != E:
            raise ValueError("q, k, v must share batch, heads and head_dim (no GQA here)")
        if BG % plan.groups:
            raise ValueError("the permuted batch must be a multiple of the dilation groups")
        if tuple(lse.shape) != (BG, H, NQ) or lse.dtype != torch.float32:
            raise ValueError(f"lse must be float32 [{BG}, {H}, {NQ}]")
        self.qp, self.kp, self.vp = qp.contiguous(), kp.contiguous(), vp.contiguous()
        self.op, self.dop, self.lse = op.contiguous(), dop.contiguous(), lse.contiguous()
        if tables is None:
            tables = backward_tables(plan)
        if table is None:
            table = backward_table(tables, qp.device, mask_all)
        self.dq = torch.empty(qp.shape, dtype=torch.float32, device=qp.device)
        self.dk = torch.empty_like(self.kp)
        self.dv = torch.empty_like(self.vp)
        self.delta = torch.empty((BG, H, NQ), dtype=torch.float32, device=qp.device)
        count = counts is not None
        if count and (tuple(counts.shape) != (BG, plan.kv_tiles, H, 2) or counts.dtype != torch.int32):
            raise ValueError(f"counts must be int32 [{BG}, {plan.kv_tiles}, {H}, 2]")
        self.counts = counts if count else None
        BLOCK_D = max(16, triton.next_power_of_2(E))
        warps, stages = launch_config_backward(BM, BN, BLOCK_D)
        dot_f32 = interpreted() and qp.dtype == torch.bfloat16
        scale = E ** -0.5 if sm_scale is None else sm_scale
        self.grid = (plan.kv_tiles, BG, H)
        self.args = (
            self.qp, self.kp, self.vp, self.dop, self.dq, self.dk, self.dv, self.lse, self.delta,
            table, counts if count else table,
            self.qp.stride(0), self.qp.stride(1), self.qp.stride(2),
            self.kp.stride(0), self.kp.stride(1), self.kp.stride(2),
            scale, scale * LOG2E, H, E, NQ, *axis_args(plan), *tables.table_bases,
        )
        self.meta = dict(
            **axis_meta(plan),
            BLOCK_D=BLOCK_D, EVEN_D=(BLOCK_D == E), COUNT=count,
            IEEE=(qp.dtype == torch.float32 or dot_f32), DOT_F32=dot_f32,
            num_warps=warps if num_warps is None else num_warps,
            num_stages=stages if num_stages is None else num_stages,
        )

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Delta = rowsum(dO * O) per query row, fp32 [BG, H, tokens]
        self.delta.copy_(torch.sum(self.dop.float() * self.op.float(), dim=-1).transpose(1, 2))
        self.dq.zero_()
        _gna_bwd[self.grid](*self.args, **self.meta)
        return self.dq.to(self.qp.dtype), self.dk, self.dv


def gna_backward_permuted(qp: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor, op: torch.Tensor,
                          dop: torch.Tensor, lse: torch.Tensor, plan: KernelPlan,
                          **options) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the backward kernel once on token-permuted tensors (options as
    :class:`GNABackwardLaunch`); returns ``(dq, dk, dv)`` in the permuted layouts."""
    return GNABackwardLaunch(qp, kp, vp, op, dop, lse, plan, **options)()
