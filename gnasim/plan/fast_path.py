"""NATTEN's ``is_fully_block_sparse`` predicate: when the Hopper/Blackwell/Ampere kernels skip the
element mask. It is conservative (it can say no for a tiling that is in fact block-sparse), so the
cost model can differ from the exact ``TilePlan.fully_block_sparse`` in border cases. It can also
say yes for a tiling that needs the mask: with a Q tile extent of 1 (L=6, K=4, S=1, Q 1, KV 2) or a
tile extent that is not a power of two (L=9, K=3, S=2, Q 2, KV 3: Q tile {2, 3} attends keys 2..4
across two KV tiles). No shipped kernel tile has either; gnasim reports the predicate as written.
"""

from __future__ import annotations

from gnasim.plan.windows import group_lengths, leader_offset, window_extents, window_start


def axis_fast_path(length: int, window: int, stride: int, q_tile: int, kv_tile: int) -> bool:
    """The per-axis predicate on one (dilation-group) length, as the kernels write it."""
    L, K, S = length, window, stride
    if L == K:
        return True
    left, _ = window_extents(K)
    c = leader_offset(S, False)
    n_groups = -(-L // S)
    last_centre = min((L // S) * S + c, L - 1)
    last_start = int(window_start(last_centre, L, K, S, False))
    return (S % q_tile == 0 and K % kv_tile == 0
            and (L % S == 0 or last_start % kv_tile == 0)
            and ((left - c) % kv_tile == 0
                 or (L % kv_tile == 0 and n_groups == 2 and S + c >= L - K)))


def natten_fast_path(config) -> bool:
    """Whether NATTEN's kernels would take the no-mask fast path for this config (tiles set).

    True iff no axis is causal and the predicate holds on every axis, for every dilation group
    length of that axis.
    """
    if any(config.causal):
        return False
    for d in range(config.rank):
        for Lg in set(group_lengths(config.input_size[d], config.dilation[d]).tolist()):
            if not axis_fast_path(int(Lg), config.window_size[d], config.stride[d],
                                  config.q_tile[d], config.kv_tile[d]):
                return False
    return True
