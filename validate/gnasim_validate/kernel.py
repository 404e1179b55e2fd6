"""A fused Triton GNA forward kernel that runs gnasim's static tile plan.

One program = (Q tile, batch x dilation group, head). It loads its Q tile (``prod(q_tile)``
contiguous tokens of the permuted layout), then iterates exactly the box of KV tiles the plan
lists for that Q tile, flash-attention style (online softmax in fp32, exp2). The element mask is
computed in the kernel from the per-axis window rules (leader / centre clamp, causal end) in
group-local token coordinates, and applied only on partial tiles: pairs that the plan marks fully
dense run the unmasked path. With ``mask_all`` the host empties those full ranges, so every
visited pair is masked, as NATTEN's Hopper/Blackwell kernels do whenever a problem is not
perfectly block-sparse.

Dense attention is the same kernel with window = layout (the same-code baseline).

The kernel is written for rank 3; lower ranks arrive with leading singleton axes (see
:mod:`gnasim_validate.plan`). Nothing here queries a driver at import time, and the launch config is an
explicit table, so ``TRITON_INTERPRET=1`` runs the same code on the CPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .kernel_common import (LOG2E, as_operand, axis_args, axis_meta, axis_window,  # noqa: F401
                            check_tile_sizes, dilation_group, dot, interpreted, load_rows,
                            outside_full, store_counts, store_rows, table_rows, unravel3,
                            window_keep)
from .plan import KernelPlan
from .permute import plan_layouts as layouts  # noqa: F401  (re-exported)

_TORCH_TO_TL = {torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32"}


@triton.jit
def _gna_fwd(
    Q, K, V, O, TABLE, COUNTS, LSE,
    stride_qb, stride_qn, stride_qh,
    stride_kb, stride_kn, stride_kh,
    stride_vb, stride_vn, stride_vh,
    stride_ob, stride_on, stride_oh,
    sm_scale_log2,
    n_heads, head_dim, q_tokens, kv_tokens,
    # per axis: true length (all groups), tiles per group, first table row
    L0, L1, L2,
    NQ0, NQ1, NQ2,
    NKV0, NKV1, NKV2,
    BASE0, BASE1, BASE2,
    # per axis, compile-time: window, stride, dilation, causal, Q/KV tile extents
    K0: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr,
    S0: tl.constexpr, S1: tl.constexpr, S2: tl.constexpr,
    D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr,
    C0: tl.constexpr, C1: tl.constexpr, C2: tl.constexpr,
    QT0: tl.constexpr, QT1: tl.constexpr, QT2: tl.constexpr,
    KT0: tl.constexpr, KT1: tl.constexpr, KT2: tl.constexpr,
    BLOCK_D: tl.constexpr, EVEN_D: tl.constexpr, USE_DESC: tl.constexpr,
    COUNT: tl.constexpr, IEEE: tl.constexpr, DOT_F32: tl.constexpr, STORE_LSE: tl.constexpr,
):
    BLOCK_M: tl.constexpr = QT0 * QT1 * QT2
    BLOCK_N: tl.constexpr = KT0 * KT1 * KT2

    pid_m = tl.program_id(0)
    pid_bg = tl.program_id(1)
    pid_h = tl.program_id(2)
    bg64 = pid_bg.to(tl.int64)          # batch offsets can pass 2**31 elements

    # dilation group and its true lengths; Q tile coordinates and its row of each axis table
    g0, g1, g2, Lg0, Lg1, Lg2 = dilation_group(pid_bg, L0, L1, L2, D0, D1, D2)
    (m0, m1, m2, lo0, n0, flo0, fhi0, lo1, n1, flo1, fhi1,
     lo2, n2, flo2, fhi2) = table_rows(TABLE, pid_m, g0, g1, g2, NQ0, NQ1, NQ2, BASE0, BASE1, BASE2)

    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, BLOCK_D)

    # group-local coordinates of the Q tile's rows and their windows, per axis
    qo0, qo1, qo2 = unravel3(offs_m, QT1, QT2)
    qs0, qe0 = axis_window(m0 * QT0 + qo0, Lg0, K0, S0, C0)
    qs1, qe1 = axis_window(m1 * QT1 + qo1, Lg1, K1, S1, C1)
    qs2, qe2 = axis_window(m2 * QT2 + qo2, Lg2, K2, S2, C2)
    # offsets of a KV tile's rows inside the tile, per axis
    ko0, ko1, ko2 = unravel3(offs_n, KT1, KT2)

    q_row0 = pid_m * BLOCK_M
    q = load_rows(Q, pid_bg * q_tokens + q_row0, bg64 * stride_qb + pid_h * stride_qh,
                  q_row0 + offs_m, stride_qn, offs_d, pid_h, head_dim,
                  BLOCK_M, BLOCK_D, EVEN_D, USE_DESC)
    io_dtype = q.dtype                       # inputs and output share one dtype
    if DOT_F32:
        q = q.to(tl.float32)
    k_off = bg64 * stride_kb + pid_h * stride_kh
    v_off = bg64 * stride_vb + pid_h * stride_vh

    m_i = tl.full([BLOCK_M], -1.0e30, dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    visits = 0
    masked = 0

    # the visited KV tiles: the box lo[d] .. lo[d] + n[d] - 1, flattened (axis 2 fastest)
    for it in range(0, n0 * n1 * n2):
        i0, i1, i2 = unravel3(it, n1, n2)
        j0 = lo0 + i0
        j1 = lo1 + i1
        j2 = lo2 + i2
        kv_row0 = ((j0 * NKV1 + j1) * NKV2 + j2) * BLOCK_N
        k = load_rows(K, pid_bg * kv_tokens + kv_row0, k_off, kv_row0 + offs_n, stride_kn,
                      offs_d, pid_h, head_dim, BLOCK_N, BLOCK_D, EVEN_D, USE_DESC)
        v = load_rows(V, pid_bg * kv_tokens + kv_row0, v_off, kv_row0 + offs_n, stride_vn,
                      offs_d, pid_h, head_dim, BLOCK_N, BLOCK_D, EVEN_D, USE_DESC)
        if DOT_F32:
            # the CPU interpreter multiplies bf16 operands wrongly: upcast them (exact products)
            k = k.to(tl.float32)
            v = v.to(tl.float32)
        qk = dot(q, tl.trans(k), IEEE) * sm_scale_log2
        # partial pair: outside the fully dense range on some axis (the host empties the
        # full ranges when every visited pair must be masked)
        if outside_full(j0, j1, j2, flo0, fhi0, flo1, fhi1, flo2, fhi2):
            keep = window_keep(j0 * KT0 + ko0, j1 * KT1 + ko1, j2 * KT2 + ko2,
                               qs0, qe0, qs1, qe1, qs2, qe2)
            qk = tl.where(keep, qk, float("-inf"))
            if COUNT:
                masked += 1
        m_new = tl.maximum(m_i, tl.max(qk, 1))
        p = tl.math.exp2(qk - m_new[:, None])
        alpha = tl.math.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + dot(as_operand(p, io_dtype, DOT_F32), v, IEEE)
        m_i = m_new
        if COUNT:
            visits += 1

    out = (acc / l_i[:, None]).to(io_dtype)
    if USE_DESC:
        O.store([pid_bg * q_tokens + q_row0, pid_h, 0], out.reshape(BLOCK_M, 1, BLOCK_D))
    else:
        store_rows(O, bg64 * stride_ob + pid_h * stride_oh, q_row0 + offs_m, stride_on, offs_d,
                   head_dim, out, EVEN_D)
    if STORE_LSE:
        # log-sum-exp of the scaled scores in base 2, fp32 [BG, H, tokens], for the backward
        tl.store(LSE + (bg64 * n_heads + pid_h) * q_tokens + q_row0 + offs_m,
                 m_i + tl.math.log2(l_i))
    if COUNT:
        store_counts(COUNTS, pid_m, pid_bg, pid_h, n_heads, visits, masked)


# Launch configs: (BLOCK_M, BLOCK_N, head-dim block) -> (num_warps, num_stages). A small explicit
# table from a sweep on an H100 (Triton 3.6, fp16, head dim 128, pointer loads); no autotuning, so
# the interpreter runs exactly one variant. Other shapes follow the rule in ``launch_config``.
_CONFIGS: dict[tuple[int, int, int], tuple[int, int]] = {
    (128, 64, 128): (4, 2),
    (128, 128, 128): (8, 3),
    (64, 64, 128): (4, 3),
    (128, 64, 64): (4, 3),
    (128, 128, 64): (8, 3),
}


def launch_config(block_m: int, block_n: int, block_d: int) -> tuple[int, int]:
    """num_warps, num_stages for a tile shape (a fixed rule outside the table)."""
    if (block_m, block_n, block_d) in _CONFIGS:
        return _CONFIGS[(block_m, block_n, block_d)]
    warps = 8 if block_m * block_d >= 128 * 128 else 4
    stages = 2 if block_n * block_d >= 128 * 128 else 3
    return warps, stages


def _descriptors_usable(*tensors: torch.Tensor) -> bool:
    """TMA descriptors: on sm90+ (or the interpreter), with [BG, N, H, E] contiguous tensors."""
    if not interpreted():
        if not tensors[0].is_cuda or torch.cuda.get_device_capability(tensors[0].device)[0] < 9:
            return False
    try:
        from triton.tools.tensor_descriptor import TensorDescriptor  # noqa: F401
    except ImportError:
        return False
    return all(t.is_contiguous() and (t.shape[3] * t.element_size()) % 16 == 0
               and t.data_ptr() % 16 == 0 for t in tensors)


class GNALaunch:
    """One prepared kernel launch on token-permuted tensors ``[B * groups, tokens, H, E]``.

    All host work (checks, table upload, descriptors, launch arguments) happens here once;
    calling the object only launches the kernel, so it can be timed as it is.

    ``table``: the packed plan table as int32 on the tensors' device (built from ``plan`` and
    ``mask_all`` when omitted; a given table already says which pairs are masked). ``out`` (same shape as ``qp``) receives the output when given. ``counts`` (int32
    ``[B * groups, q_tiles, H, 2]``) receives, per program, the KV tiles visited and how many of
    them applied the element mask. ``lse`` (fp32 ``[B * groups, H, tokens]``) receives each query
    row's log-sum-exp of its scaled scores in base 2 (``m + log2(l)``), which the backward kernel
    needs; the output is the same with or without it.
    ``use_desc``: load through TMA tensor descriptors instead of plain pointer tiles (opt-in: on
    an H100 with Triton 3.6 they were not faster, and 128-token KV tiles gave wrong results
    through them; see validate/data/README.md).
    """

    def __init__(self, qp: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor, plan: KernelPlan,
                 table: torch.Tensor | None = None, *, out: torch.Tensor | None = None,
                 counts: torch.Tensor | None = None, lse: torch.Tensor | None = None,
                 mask_all: bool = False, sm_scale: float | None = None, use_desc: bool | None = None,
                 num_warps: int | None = None, num_stages: int | None = None) -> None:
        if qp.dtype not in _TORCH_TO_TL or kp.dtype != qp.dtype or vp.dtype != qp.dtype:
            raise ValueError(f"q, k, v must share one dtype among fp16/bf16/fp32, "
                             f"got {qp.dtype}/{kp.dtype}/{vp.dtype}")
        BM, BN = check_tile_sizes(plan)
        if qp.dim() != 4 or kp.dim() != 4:
            raise ValueError("permuted tensors are [batch * groups, tokens, heads, head_dim]")
        BG, NQ, H, E = qp.shape
        if NQ != plan.q_tiles * BM or kp.shape[1] != plan.kv_tiles * BN or kp.shape != vp.shape:
            raise ValueError("permuted tensors do not match the plan's padded token counts")
        if kp.shape[0] != BG or kp.shape[2] != H or kp.shape[3] != E:
            raise ValueError("q, k, v must share batch, heads and head_dim (no GQA here)")
        if any(t.stride(3) != 1 for t in (qp, kp, vp)):
            raise ValueError("the head dimension must be contiguous")
        if BG % plan.groups:
            raise ValueError("the permuted batch must be a multiple of the dilation groups")
        BLOCK_D = max(16, triton.next_power_of_2(E))
        if table is None:
            table = plan_table(plan, qp.device, mask_all)
        if out is None:
            out = torch.empty_like(qp)
        if out.shape != qp.shape or out.dtype != qp.dtype or out.stride(3) != 1:
            raise ValueError("out must match q's shape and dtype")
        count = counts is not None
        if count:
            if tuple(counts.shape) != (BG, plan.q_tiles, H, 2) or counts.dtype != torch.int32:
                raise ValueError(f"counts must be int32 [{BG}, {plan.q_tiles}, {H}, 2]")
        else:
            counts = table                        # unused dummy pointer
        store_lse = lse is not None
        if store_lse:
            if tuple(lse.shape) != (BG, H, NQ) or lse.dtype != torch.float32 or not lse.is_contiguous():
                raise ValueError(f"lse must be contiguous float32 [{BG}, {H}, {NQ}]")
        else:
            lse = table                           # unused dummy pointer
        if use_desc is None:
            use_desc = False
        if use_desc and not _descriptors_usable(qp, kp, vp, out):
            raise ValueError("tensor descriptors need contiguous 16-byte aligned tensors on sm90+")
        warps, stages = launch_config(BM, BN, BLOCK_D)
        warps = warps if num_warps is None else num_warps
        stages = stages if num_stages is None else num_stages
        dot_f32 = interpreted() and qp.dtype == torch.bfloat16
        scale = (E ** -0.5 if sm_scale is None else sm_scale) * LOG2E
        tensors = [qp, kp, vp, out]
        if use_desc:
            from triton.tools.tensor_descriptor import TensorDescriptor
            tensors = [TensorDescriptor(t, [t.shape[0] * t.shape[1], H, E], [H * E, E, 1],
                                        [rows, 1, BLOCK_D])
                       for t, rows in zip(tensors, (BM, BN, BN, BM))]
        self.out = out
        self.counts = counts if count else None
        self.lse = lse if store_lse else None
        self.use_desc = bool(use_desc)
        self.grid = (plan.q_tiles, BG, H)
        self.args = (
            *tensors, table, counts, lse,
            qp.stride(0), qp.stride(1), qp.stride(2),
            kp.stride(0), kp.stride(1), kp.stride(2),
            vp.stride(0), vp.stride(1), vp.stride(2),
            out.stride(0), out.stride(1), out.stride(2),
            scale, H, E, NQ, kp.shape[1], *axis_args(plan), *plan.table_bases,
        )
        self.meta = dict(
            **axis_meta(plan),
            BLOCK_D=BLOCK_D, EVEN_D=(BLOCK_D == E), USE_DESC=bool(use_desc),
            COUNT=count, IEEE=(qp.dtype == torch.float32 or dot_f32), DOT_F32=dot_f32,
            STORE_LSE=store_lse, num_warps=warps, num_stages=stages,
        )

    def __call__(self) -> torch.Tensor:
        _gna_fwd[self.grid](*self.args, **self.meta)
        return self.out


def gna_forward_permuted(qp: torch.Tensor, kp: torch.Tensor, vp: torch.Tensor, plan: KernelPlan,
                         table: torch.Tensor | None = None, **options) -> torch.Tensor:
    """Run the kernel once on token-permuted tensors (options as :class:`GNALaunch`)."""
    return GNALaunch(qp, kp, vp, plan, table, **options)()


def plan_table(plan: KernelPlan, device, mask_all: bool = False) -> torch.Tensor:
    """The packed int32 plan table on ``device``; ``mask_all`` empties every full range."""
    packed = plan.packed_table(mask_all)
    return torch.from_numpy(packed).to(device)
