"""Pieces the forward and backward Triton kernels share: ``@triton.jit`` helpers (Triton inlines
them, so each kernel compiles to the same code as when they were written out) and host-side
launch checks and arguments.

The device helpers cover the per-program prologue (row-major coordinates, dilation-group lengths,
plan-table rows), the per-axis window predicate, row loads and stores of one head, dots and the
operand rounding. The host helpers check the tile sizes and spell a :class:`KernelPlan`'s axes as
launch arguments and compile-time constants.
"""

from __future__ import annotations

import os

import triton
import triton.language as tl

from .plan import KernelPlan

LOG2E = 1.4426950408889634


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# ---------------------------------------------------------------------------------------------
# device helpers


@triton.jit
def unravel3(i, N1, N2):
    """Row-major coordinates of flat index ``i`` in a box whose last two extents are N1, N2."""
    return i // (N1 * N2), (i // N2) % N1, i % N2


@triton.jit
def group_length(L, g, D):
    """True length ``ceil((L - g) / D)`` of dilation group ``g`` on one axis."""
    return (L - g + D - 1) // D


@triton.jit
def dilation_group(pid_bg, L0, L1, L2, D0: tl.constexpr, D1: tl.constexpr, D2: tl.constexpr):
    """Dilation group of batch x group program ``pid_bg`` (row-major over axes) and its true
    per-axis lengths: ``g0, g1, g2, Lg0, Lg1, Lg2``."""
    g0, g1, g2 = unravel3(pid_bg % (D0 * D1 * D2), D1, D2)
    return g0, g1, g2, group_length(L0, g0, D0), group_length(L1, g1, D1), group_length(L2, g2, D2)


@triton.jit
def table_row(TABLE, base, g, tiles, tile):
    """One axis table row of a tile in group ``g``: (lo, n, full_lo, full_hi)."""
    r = TABLE + (base + g * tiles + tile) * 4
    return tl.load(r), tl.load(r + 1), tl.load(r + 2), tl.load(r + 3)


@triton.jit
def table_rows(TABLE, pid_tile, g0, g1, g2, N0, N1, N2, BASE0, BASE1, BASE2):
    """Coordinates of tile ``pid_tile`` (row-major over axes, N tiles per group per axis) and its
    row of each axis table: ``t0, t1, t2``, then (lo, n, full_lo, full_hi) per axis."""
    t0, t1, t2 = unravel3(pid_tile, N1, N2)
    lo0, n0, flo0, fhi0 = table_row(TABLE, BASE0, g0, N0, t0)
    lo1, n1, flo1, fhi1 = table_row(TABLE, BASE1, g1, N1, t1)
    lo2, n2, flo2, fhi2 = table_row(TABLE, BASE2, g2, N2, t2)
    return t0, t1, t2, lo0, n0, flo0, fhi0, lo1, n1, flo1, fhi1, lo2, n2, flo2, fhi2


@triton.jit
def axis_window(q, Lg, K: tl.constexpr, S: tl.constexpr, CAUSAL: tl.constexpr):
    """First and one-past-last key of each group-local query ``q`` on one axis."""
    if CAUSAL:
        lead = tl.minimum((q // S) * S + (S - 1), Lg - 1)
        start = tl.maximum(lead - (K - 1), 0)
        end = tl.minimum(q + 1, Lg)
    else:
        LEFT: tl.constexpr = K // 2
        RIGHT: tl.constexpr = K // 2 + K % 2 - 1
        lead = tl.minimum((q // S) * S + S // 2, Lg - 1)
        centre = tl.minimum(tl.maximum(lead, LEFT), Lg - 1 - RIGHT)
        start = centre - LEFT
        end = start + K
    return start, end


@triton.jit
def outside_full(j0, j1, j2, flo0, fhi0, flo1, fhi1, flo2, fhi2):
    """A partial pair: tile ``j`` lies outside the fully dense range on some axis."""
    return (j0 < flo0) | (j0 >= fhi0) | (j1 < flo1) | (j1 >= fhi1) | (j2 < flo2) | (j2 >= fhi2)


@triton.jit
def window_keep(k0, k1, k2, qs0, qe0, qs1, qe1, qs2, qe2):
    """``[queries, keys]`` mask: key ``k`` inside every axis window ``[qs, qe)`` of query rows."""
    return ((k0[None, :] >= qs0[:, None]) & (k0[None, :] < qe0[:, None])
            & (k1[None, :] >= qs1[:, None]) & (k1[None, :] < qe1[:, None])
            & (k2[None, :] >= qs2[:, None]) & (k2[None, :] < qe2[:, None]))


@triton.jit
def load_rows(X, desc_row, base_off, rows, stride_n, offs_d, pid_h, head_dim,
              ROWS: tl.constexpr, BLOCK_D: tl.constexpr, EVEN_D: tl.constexpr,
              USE_DESC: tl.constexpr):
    """``ROWS`` token rows of one head: ``[ROWS, BLOCK_D]`` (zero-filled past head_dim)."""
    if USE_DESC:
        # TMA: a [ROWS, 1, BLOCK_D] box of the [tokens, heads, head_dim] view
        x = X.load([desc_row, pid_h, 0]).reshape(ROWS, BLOCK_D)
    else:
        ptrs = X + base_off + rows[:, None] * stride_n + offs_d[None, :]
        if EVEN_D:
            x = tl.load(ptrs)
        else:
            x = tl.load(ptrs, mask=offs_d[None, :] < head_dim, other=0.0)
    return x


@triton.jit
def store_rows(X, base_off, rows, stride_n, offs_d, head_dim, x, EVEN_D: tl.constexpr):
    """Store ``x`` into token rows of one head (columns past head_dim left alone)."""
    ptrs = X + base_off + rows[:, None] * stride_n + offs_d[None, :]
    if EVEN_D:
        tl.store(ptrs, x)
    else:
        tl.store(ptrs, x, mask=offs_d[None, :] < head_dim)


@triton.jit
def dot(a, b, IEEE: tl.constexpr):
    """``a @ b`` in fp32, with exact fp32 products when ``IEEE``."""
    if IEEE:
        c = tl.dot(a, b, input_precision="ieee")
    else:
        c = tl.dot(a, b)
    return c


@triton.jit
def as_operand(x, IO_DTYPE: tl.constexpr, DOT_F32: tl.constexpr):
    """``x`` rounded to the input dtype, as the tensor cores consume it; widened to fp32 again
    when ``DOT_F32`` (the CPU interpreter multiplies bf16 operands wrongly: exact products)."""
    x = x.to(IO_DTYPE)
    if DOT_F32:
        x = x.to(tl.float32)
    return x


@triton.jit
def store_counts(COUNTS, pid_tile, pid_bg, pid_h, n_heads, visits, masked):
    """Per-program counters: tiles visited and how many applied the element mask."""
    c = COUNTS + ((pid_bg * tl.num_programs(0) + pid_tile) * n_heads + pid_h) * 2
    tl.store(c, visits)
    tl.store(c + 1, masked)


# ---------------------------------------------------------------------------------------------
# host helpers


def _pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def check_tile_sizes(plan: KernelPlan) -> tuple[int, int]:
    """Q and KV tile sizes in tokens; both must be powers of two >= 16."""
    BM, BN = plan.q_tile_size, plan.kv_tile_size
    if not (_pow2(BM) and _pow2(BN)) or BM < 16 or BN < 16:
        raise ValueError(f"tile sizes must be powers of two >= 16 tokens, got Q {BM} / KV {BN}")
    return BM, BN


def axis_args(plan: KernelPlan) -> tuple[int, ...]:
    """Per-axis runtime arguments: true lengths, Q tiles and KV tiles per group."""
    a = plan.axes
    return (a[0].length, a[1].length, a[2].length,
            a[0].q_tiles, a[1].q_tiles, a[2].q_tiles,
            a[0].kv_tiles, a[1].kv_tiles, a[2].kv_tiles)


def axis_meta(plan: KernelPlan) -> dict:
    """Per-axis compile-time constants: window, stride, dilation, causal, Q/KV tile extents."""
    meta = {}
    for prefix, field in (("K", "window"), ("S", "stride"), ("D", "dilation"), ("C", "causal"),
                          ("QT", "q_tile"), ("KT", "kv_tile")):
        for d, a in enumerate(plan.axes):
            meta[f"{prefix}{d}"] = getattr(a, field)
    return meta
