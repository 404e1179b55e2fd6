"""A FlexAttention block mask built from the same tile plan the Triton kernel runs.

Flex runs on the token-permuted layout ([batch * groups, heads, tokens, head_dim] views of
:func:`gnasim_validate.permute.permute`), with ``BLOCK_SIZE = (prod(q_tile), prod(kv_tile))``: for every
Q tile, the fully dense KV tiles of the plan go in the *full* block lists (no ``mask_mod``), the
other visited tiles in the *partial* lists, and the ``mask_mod`` applies the per-axis window rules
to group-local token coordinates read from small lookup tensors.
"""

from __future__ import annotations

import numpy as np

from gnasim.plan.windows import group_lengths, window_bounds

from .plan import KernelPlan


def _box(plan: KernelPlan, lo_col: int, hi_col: int | None) -> np.ndarray:
    """Boolean ``[groups, q_tiles, kv_tiles]``: per axis ``lo <= j < hi``, ANDed over axes."""
    out = np.ones((1, 1, 1), dtype=bool)
    for a in plan.axes:
        t = a.table.astype(np.int64)
        j = np.arange(a.kv_tiles)
        lo = t[..., lo_col:lo_col + 1]
        hi = lo + t[..., 1:2] if hi_col is None else t[..., hi_col:hi_col + 1]
        m = (j >= lo) & (j < hi)                                     # (D, nq, nkv)
        out = (out[:, None, :, None, :, None] & m[None, :, None, :, None, :]).reshape(
            out.shape[0] * m.shape[0], out.shape[1] * m.shape[1], out.shape[2] * m.shape[2])
    return out


def plan_blocks(plan: KernelPlan) -> tuple[np.ndarray, np.ndarray]:
    """(visited, full) booleans ``[groups, q_tiles, kv_tiles]`` of the static plan."""
    visited = _box(plan, 0, None)
    full = _box(plan, 2, 3) & visited
    return visited, full


def slot_coordinates(plan: KernelPlan, kv: bool) -> np.ndarray:
    """Group-local coordinate per axis of every permuted token slot: ``[tokens, 3]``."""
    tiles = [a.kv_tiles if kv else a.q_tiles for a in plan.axes]
    ext = [a.kv_tile if kv else a.q_tile for a in plan.axes]
    n_tiles, size = int(np.prod(tiles)), int(np.prod(ext))
    tile_coord = np.stack(np.unravel_index(np.arange(n_tiles), tiles), axis=-1)   # (n_tiles, 3)
    offset = np.stack(np.unravel_index(np.arange(size), ext), axis=-1)           # (size, 3)
    coords = tile_coord[:, None, :] * np.array(ext) + offset[None, :, :]
    return coords.reshape(-1, 3)


def query_windows(plan: KernelPlan) -> tuple[np.ndarray, np.ndarray]:
    """Per group and Q slot, the first and one-past-last key per axis: ``[groups, tokens, 3]``."""
    q = slot_coordinates(plan, kv=False)
    group_coords = np.stack(np.unravel_index(np.arange(plan.groups),
                                             [a.dilation for a in plan.axes]), axis=-1)
    starts = np.zeros((plan.groups, q.shape[0], 3), dtype=np.int64)
    ends = np.zeros_like(starts)
    lengths = [group_lengths(a.length, a.dilation) for a in plan.axes]
    for g, gc in enumerate(group_coords):
        for d, a in enumerate(plan.axes):
            Lg = int(lengths[d][gc[d]])
            starts[g, :, d], ends[g, :, d] = window_bounds(q[:, d], Lg, a.window, a.stride,
                                                           a.causal)
    return starts, ends


def plan_block_mask(plan: KernelPlan, batch: int, device, mask_all: bool = False):
    """A ``BlockMask`` for ``flex_attention`` on the permuted tokens of ``batch`` samples."""
    import torch
    from torch.nn.attention.flex_attention import BlockMask

    visited, full = plan_blocks(plan)
    if mask_all:
        full = np.zeros_like(full)
    partial = visited & ~full

    def lists(m: np.ndarray):
        num = m.sum(-1).astype(np.int32)
        idx = np.argsort(~m, axis=-1, kind="stable").astype(np.int32)
        num = np.tile(num, (batch, 1))[:, None]
        idx = np.tile(idx, (batch, 1, 1))[:, None]
        return torch.from_numpy(num).to(device), torch.from_numpy(idx).to(device)

    kv_num, kv_idx = lists(partial)
    full_num, full_idx = lists(full)
    starts, ends = query_windows(plan)
    kc = torch.from_numpy(slot_coordinates(plan, kv=True)).to(device)
    qs = torch.from_numpy(starts).to(device)
    qe = torch.from_numpy(ends).to(device)
    G = plan.groups

    def mask_mod(b, h, q_idx, kv_idx):
        g = b % G
        keep = None
        for d in range(3):
            k = kc[kv_idx, d]
            m = (k >= qs[g, q_idx, d]) & (k < qe[g, q_idx, d])
            keep = m if keep is None else keep & m
        return keep

    block = (plan.q_tile_size, plan.kv_tile_size)
    lengths = (plan.q_tiles * plan.q_tile_size, plan.kv_tiles * plan.kv_tile_size)
    try:
        return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block,
                                        mask_mod=mask_mod, seq_lengths=lengths)
    except TypeError:                                   # older torch: no seq_lengths
        return BlockMask.from_kv_blocks(kv_num, kv_idx, full_num, full_idx, BLOCK_SIZE=block,
                                        mask_mod=mask_mod)
