"""Slow, literal brute-force reference: the full N x N mask and tile counts read off it.

For tests only (small layouts). It shares no code with the fast path: windows are computed
query by query from NATTEN's window rules (leader query, clamp into ``[0, L)``; SHI-Labs/NATTEN
@ 8c8729f, ``csrc/include/natten/cuda/reference/mask.hpp``), the mask is built over all token pairs,
and tile statistics are read from the permuted mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np


def axis_keys(i: int, L: int, K: int, S: int, D: int, causal: bool) -> list[int]:
    """Keys (original coordinates) that query ``i`` attends on one axis, literally per the rules."""
    g, local = i % D, i // D
    Lg = -(-(L - g) // D)
    if causal:
        lead = min((local // S) * S + S - 1, Lg - 1)
        start, end = max(lead - K + 1, 0), min(local + 1, Lg)
    else:
        left, right = K // 2, K // 2 + K % 2 - 1
        lead = min((local // S) * S + S // 2, Lg - 1)
        centre = min(max(lead, left), Lg - 1 - right)
        start, end = centre - left, centre + right + 1
    return [k * D + g for k in range(start, end)]


def axis_mask(L: int, K: int, S: int, D: int, causal: bool) -> np.ndarray:
    m = np.zeros((L, L), dtype=bool)
    for i in range(L):
        m[i, axis_keys(i, L, K, S, D, causal)] = True
    return m


def full_mask(config) -> np.ndarray:
    """The N x N mask (row-major token order) of a config: AND of the per-axis masks."""
    mask = np.ones((1, 1), dtype=bool)
    for d in range(config.rank):
        m = axis_mask(config.input_size[d], config.window_size[d], config.stride[d],
                      config.dilation[d], config.causal[d])
        mask = np.einsum("ij,kl->ikjl", mask, m).reshape(mask.shape[0] * m.shape[0], -1)
    return mask


@dataclass
class ReferenceCounts:
    q_tiles: int
    visited: list[int]     # per Q tile
    full: list[int]        # per Q tile
    attended_pairs: int


def _tile_slots(L: int, t: int, D: int):
    """Per axis: list of Q/KV tiles as (group, [original coordinate or None for padding])."""
    n = -(-L // (t * D))
    tiles = []
    for g in range(D):
        for r in range(n):
            slots = []
            for o in range(t):
                x = (r * t + o) * D + g
                slots.append(x if x < L else None)
            tiles.append((g, r, slots))
    return tiles


def _flat(coords, sizes):
    idx = 0
    for c, s in zip(coords, sizes):
        idx = idx * s + c
    return idx


def reference_counts(config, mode: str = "static") -> ReferenceCounts:
    """Per-Q-tile KV tiles visited and fully dense, read off the full mask."""
    mask = full_mask(config)
    sizes = config.input_size
    rank = config.rank
    q_axes = [_tile_slots(sizes[d], config.q_tile[d], config.dilation[d]) for d in range(rank)]
    visited, full = [], []
    for qt in product(*q_axes):
        groups = tuple(t[0] for t in qt)
        real_axes = [[x for x in t[2] if x is not None] for t in qt]
        queries = [_flat(c, sizes) for c in product(*real_axes)]
        if mode == "static":
            v, f = _static_tile(config, mask, qt, groups, queries)
        else:
            v, f = _dynamic_tile(config, mask, real_axes, queries)
        visited.append(v)
        full.append(f)
    return ReferenceCounts(len(visited), visited, full, int(mask.sum()))


def _static_tile(config, mask, qt, groups, queries):
    sizes, rank = config.input_size, config.rank
    kv_axes = [[t for t in _tile_slots(sizes[d], config.kv_tile[d], config.dilation[d])
                if t[0] == groups[d]] for d in range(rank)]
    if not queries:
        # no real query: the kernel still runs the tile with its (clamped) leader windows
        return _padded_tile_visits(config, qt, kv_axes), 0
    needed = []
    fulls = 0
    for kt in product(*kv_axes):
        slots = [_flat(c, sizes) if all(x is not None for x in c) else None
                 for c in product(*[t[2] for t in kt])]
        real = [s for s in slots if s is not None]
        sub = mask[np.ix_(queries, real)] if real else np.zeros((len(queries), 0), bool)
        if sub.any():
            needed.append(tuple(t[1] for t in kt))
        if len(real) == len(slots) and sub.all():
            fulls += 1
    if not needed:
        return 0, 0
    arr = np.array(needed)
    visited = int(np.prod(arr.max(axis=0) - arr.min(axis=0) + 1))
    return visited, fulls


def _padded_tile_visits(config, qt, kv_axes):
    """Visits of a Q tile made only of padding: the kernel rule on its first and last slot."""
    count = 1
    for d in range(config.rank):
        L, K, S, D, c = (config.input_size[d], config.window_size[d], config.stride[d],
                         config.dilation[d], config.causal[d])
        g, r = qt[d][0], qt[d][1]
        t, kvt = config.q_tile[d], config.kv_tile[d]
        # the window rules clamp a padding query's leader to the group's last real query
        start = axis_keys(r * t * D + g, L, K, S, D, c)[0] // D
        end = axis_keys((r * t + t - 1) * D + g, L, K, S, D, c)[-1] // D + 1
        count *= -(-end // kvt) - start // kvt
    return count


def _dynamic_tile(config, mask, real_axes, queries):
    if not queries:
        return 0, 0
    sizes, rank = config.input_size, config.rank
    sub = mask[queries]
    keys = np.nonzero(sub.any(axis=0))[0]
    coords = np.array(np.unravel_index(keys, sizes)).T
    ranges = []
    for d in range(rank):
        D = config.dilation[d]
        local = coords[:, d] // D
        g = coords[0, d] % D
        s, e = int(local.min()), int(local.max()) + 1
        kvt = config.kv_tile[d]
        ranges.append([[(x * D + g) for x in range(a, min(a + kvt, e))] for a in range(s, e, kvt)])
    visited = int(np.prod([len(r) for r in ranges]))
    fulls = 0
    for kt in product(*ranges):
        ks = [_flat(c, sizes) for c in product(*kt)]
        if mask[np.ix_(queries, ks)].all():
            fulls += 1
    return visited, fulls


def flat_reference_counts(config, q_tile: int, kv_tile: int) -> ReferenceCounts:
    """Flat (1-D) tiling read off the full mask: the row-major sequence cut into runs of
    ``q_tile`` queries and ``kv_tile`` keys, padded to whole tiles with slots that attend nothing
    and are attended by nothing (as FlexAttention pads its block mask).

    A KV tile is visited when any (query, key) slot pair of the two tiles is attended, and full
    when every slot pair is.
    """
    mask = full_mask(config)
    n = mask.shape[0]
    n_q, n_kv = -(-n // q_tile), -(-n // kv_tile)
    padded = np.zeros((n_q * q_tile, n_kv * kv_tile), dtype=bool)
    padded[:n, :n] = mask
    visited, full = [], []
    for i in range(n_q):
        blocks = padded[i * q_tile:(i + 1) * q_tile].reshape(q_tile, n_kv, kv_tile)
        visited.append(int(blocks.any(axis=(0, 2)).sum()))
        full.append(int(blocks.all(axis=(0, 2)).sum()))
    return ReferenceCounts(n_q, visited, full, int(mask.sum()))


def flat_tile_reference(config, q_tile: int, kv_tile: int, index: int) -> tuple[int, int]:
    """(visited, full) KV tiles of flat Q tile ``index``, from each query's keys (no N x N mask):
    for spot checks on layouts too large for :func:`flat_reference_counts`."""
    sizes = config.input_size
    n = int(np.prod(sizes))
    strides = [int(np.prod(sizes[d + 1:])) for d in range(config.rank)]
    queries = range(index * q_tile, min((index + 1) * q_tile, n))
    keys = []
    for x in queries:
        coords = np.unravel_index(x, sizes)
        flat = np.zeros(1, dtype=np.int64)
        for d in range(config.rank):
            axis = axis_keys(int(coords[d]), sizes[d], config.window_size[d], config.stride[d],
                             config.dilation[d], config.causal[d])
            flat = (flat[:, None] + np.array(axis, dtype=np.int64) * strides[d]).ravel()
        keys.append(flat)
    uniq, hits = np.unique(np.concatenate(keys), return_counts=True)
    visited = np.unique(uniq // kv_tile)
    # keys every query attends; a padding query attends nothing
    everywhere = uniq[hits == q_tile] if len(queries) == q_tile else uniq[:0]
    per_tile = np.bincount(everywhere // kv_tile, minlength=len(visited) and int(visited[-1]) + 1)
    full = [j for j in visited if (j + 1) * kv_tile <= n and per_tile[j] == kv_tile]
    return len(visited), len(full)
