"""The launch of a flat-tiled kernel (FlexAttention's default path) from an exact flat plan.

A flat plan (:mod:`gnasim.plan.flat`) gives, per Q tile of the row-major flattening, the KV
tiles it visits and the full ones among them. The kernel runs one CTA per Q tile that visits
something, per batch and head; each CTA runs its visited tiles, masking the partial ones (or
every one, by the kernel's masking policy). So the launch is read off the plan directly, with no
per-axis products: the mean CTA's unmasked and masked tiles from the full and partial counts,
the CTA classes that can be longest from the per-Q-tile (full, visited) pairs, and no token
permutation. The fields are those of :class:`~gnasim.model.launch.LaunchShape`, which the
solver (:mod:`gnasim.model.solve`) reads the same way as a box-tiled launch's.
"""

from __future__ import annotations

import numpy as np

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.model.kernel import ResolvedKernel
from gnasim.model.launch import LaunchShape, hbm_bytes, masks_every_tile
from gnasim.plan.flat import FlatPlan


def cta_classes(plan: FlatPlan, mask_all: bool) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(unmasked, masked) tiles of the CTA classes no other class dominates (a class: the Q
    tiles with one (full, visited) count), most unmasked tiles first. Only these can be the
    longest CTA, whatever a masked tile costs against an unmasked one."""
    full = plan.full.astype(np.int64)
    visited = plan.visited.astype(np.int64)
    live = visited > 0
    unmasked = np.zeros_like(full) if mask_all else full
    masked = visited if mask_all else visited - full
    pairs = np.unique(np.stack([unmasked[live], masked[live]], axis=1), axis=0)
    keep: list[tuple[int, int]] = []
    for u, m in sorted(map(tuple, pairs.tolist()), key=lambda c: (-c[0], -c[1])):
        if not keep or m > keep[-1][1]:
            keep.append((int(u), int(m)))
    return tuple(u for u, _ in keep), tuple(m for _, m in keep)


def flat_launch_shape(config: GNAConfig, plan: FlatPlan, rk: ResolvedKernel) -> LaunchShape:
    """The launch of kernel ``rk`` over ``plan`` for ``config``'s batch, heads, dims and dtype.

    CTAs: Q tiles that visit a KV tile x heads x batch. NATTEN's fast path does not apply (no
    box tiles), so ``all-or-none`` masking masks every visited tile. HBM bytes: Q, K, V read
    and O written once over the padded sequence. No permutation bytes; the mask is computed
    over the layout's rank from flat token indices (``fused_masking``).
    """
    if plan.tokens != config.tokens:
        raise ConfigError(f"plan: a flat plan of {plan.tokens} tokens does not fit a problem of "
                          f"{config.tokens} tokens")
    if plan.tile_pairs_visited == 0:
        raise ConfigError("plan: no Q tile visits a KV tile; there is no launch to model")
    mask_all = bool(masks_every_tile(rk.masking, False))
    hb = config.batch * config.heads
    vsum, fsum = plan.tile_pairs_visited, plan.tile_pairs_full
    masked = vsum if mask_all else vsum - fsum
    ctas = int(np.count_nonzero(plan.visited)) * hb
    front_u, front_m = cta_classes(plan, mask_all)
    d, dv = config.head_dim, config.dim_v
    q_rows, kv_rows = plan.q_tile_tokens, plan.kv_tile_tokens
    return LaunchShape(
        q_rows=q_rows, kv_rows=kv_rows, head_dim=d, head_dim_v=dv,
        dtype_bytes=config.dtype_bytes, ctas=ctas,
        mean_u=0.0 if mask_all else float(fsum * hb) / ctas,
        mean_m=float(masked * hb) / ctas,
        front_u=front_u, front_m=front_m, max_tiles=float(plan.visited_max),
        kv_reuse=max(1.0, vsum / max(plan.kv_tiles, 1)),
        hbm_bytes=float(hbm_bytes(config.batch, config.dtype_bytes, config.heads,
                                  config.kv_heads, d + dv, plan.q_tiles * q_rows,
                                  plan.kv_tiles * kv_rows)),
        permute_bytes=0.0, masked_pairs=int(masked * hb), tile_pairs=int(vsum * hb),
        mask_all=mask_all, rank=config.rank, fused_masking=not rk.token_permute)
