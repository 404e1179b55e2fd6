"""Token permutation: lay a multi-dimensional token layout out tile by tile, and back.

Tensors use NATTEN's layout ``[batch, *layout, heads, head_dim]``. For each axis with length
``x``, tile ``t`` and dilation ``d``:

1. the axis is right-padded with zeros to ``ceil(x / (t * d)) * t * d`` tokens;
2. its index is read as ``x = (r * t + o) * d + g``: tile ``r``, offset ``o`` inside the tile,
   dilation group ``g`` (so ``r * t + o`` is the group-local coordinate);
3. the modes are reordered to ``[batch, g*, r*, o*, heads, head_dim]`` and flattened to
   ``[batch * prod(d), prod(r) * prod(t), heads, head_dim]``.

Order: axis 0 is the slowest everywhere (NATTEN's ``flip_tiled_dims=False``, as its Flex backend
uses): dilation groups are row-major over axes and folded into the batch as
``batch_index * prod(d) + group``; tiles are row-major over axes; tokens inside a tile are
row-major over axes. Every tile is ``prod(t)`` contiguous tokens. Q and KV are permuted
separately, each with its own tile shape (so their padded lengths may differ).

:func:`unpermute` is the exact inverse of :func:`permute` on the real tokens (padding dropped).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

import torch
import torch.nn.functional as F

from gnasim.plan.axis import cdiv


@dataclass(frozen=True)
class TokenLayout:
    """Geometry of one permutation: original layout, tile and dilation per axis."""

    layout: tuple[int, ...]
    tile: tuple[int, ...]
    dilation: tuple[int, ...]

    def __post_init__(self) -> None:
        if not (len(self.layout) == len(self.tile) == len(self.dilation)):
            raise ValueError("layout, tile and dilation must have one entry per axis")
        if min(self.tile) < 1 or min(self.dilation) < 1:
            raise ValueError("tile and dilation entries must be >= 1")

    @property
    def rank(self) -> int:
        return len(self.layout)

    @property
    def tiles_per_group(self) -> tuple[int, ...]:
        return tuple(cdiv(x, t * d) for x, t, d in zip(self.layout, self.tile, self.dilation))

    @property
    def padded(self) -> tuple[int, ...]:
        """Padded layout (all groups)."""
        return tuple(r * t * d for r, t, d in zip(self.tiles_per_group, self.tile, self.dilation))

    @property
    def groups(self) -> int:
        return prod(self.dilation)

    @property
    def tokens_per_group(self) -> int:
        """Padded tokens of one dilation group: ``prod(tiles) * prod(tile)``."""
        return prod(self.tiles_per_group) * prod(self.tile)

    def split_shape(self) -> list[int]:
        """Padded layout viewed as ``(r, t, d)`` per axis."""
        out: list[int] = []
        for r, t, d in zip(self.tiles_per_group, self.tile, self.dilation):
            out += [r, t, d]
        return out

    def order(self) -> list[int]:
        """Permutation of ``[batch, (r, t, d) per axis, heads, dim]`` to ``[batch, d*, r*, t*, ...]``."""
        n = self.rank
        d_modes = [1 + 3 * a + 2 for a in range(n)]
        r_modes = [1 + 3 * a for a in range(n)]
        t_modes = [1 + 3 * a + 1 for a in range(n)]
        return [0] + d_modes + r_modes + t_modes + [1 + 3 * n, 2 + 3 * n]


def plan_layouts(plan) -> tuple[TokenLayout, TokenLayout]:
    """The Q and KV token layouts of a :class:`gnasim_validate.plan.KernelPlan` (its own rank)."""
    cfg = plan.config
    return (TokenLayout(cfg.input_size, cfg.q_tile, cfg.dilation),
            TokenLayout(cfg.input_size, cfg.kv_tile, cfg.dilation))


def _check(x: torch.Tensor, lay: TokenLayout) -> None:
    if x.dim() != lay.rank + 3:
        raise ValueError(f"expected [batch, *layout ({lay.rank} axes), heads, head_dim], got {tuple(x.shape)}")
    if tuple(x.shape[1:1 + lay.rank]) != lay.layout:
        raise ValueError(f"layout {tuple(x.shape[1:1 + lay.rank])} does not match {lay.layout}")


def permute(x: torch.Tensor, lay: TokenLayout) -> torch.Tensor:
    """``[B, *layout, H, E]`` -> ``[B * groups, tokens_per_group, H, E]`` (contiguous, zero-padded)."""
    _check(x, lay)
    B, H, E = x.shape[0], x.shape[-2], x.shape[-1]
    pad: list[int] = [0, 0, 0, 0]                     # heads and head_dim are not padded
    for x_len, p in reversed(list(zip(lay.layout, lay.padded))):
        pad += [0, p - x_len]
    if any(pad):
        x = F.pad(x, pad)
    x = x.reshape(B, *lay.split_shape(), H, E).permute(*lay.order())
    return x.reshape(B * lay.groups, lay.tokens_per_group, H, E).contiguous()


def unpermute(xp: torch.Tensor, lay: TokenLayout) -> torch.Tensor:
    """Inverse of :func:`permute`: ``[B * groups, tokens, H, E]`` -> ``[B, *layout, H, E]``."""
    G = lay.groups
    if xp.dim() != 4 or xp.shape[1] != lay.tokens_per_group or xp.shape[0] % G:
        raise ValueError(f"expected [batch*{G}, {lay.tokens_per_group}, heads, head_dim], got {tuple(xp.shape)}")
    B, H, E = xp.shape[0] // G, xp.shape[2], xp.shape[3]
    n = lay.rank
    permuted_shape = ([B] + list(lay.dilation) + list(lay.tiles_per_group) + list(lay.tile) + [H, E])
    order = lay.order()
    inverse = [0] * len(order)
    for i, o in enumerate(order):
        inverse[o] = i
    x = xp.reshape(permuted_shape).permute(*inverse).reshape(B, *lay.padded, H, E)
    if lay.padded != lay.layout:
        x = x[(slice(None),) + tuple(slice(0, L) for L in lay.layout)]
    assert x.dim() == n + 3
    return x.contiguous()


def token_coordinates(lay: TokenLayout) -> tuple[torch.Tensor, torch.Tensor]:
    """Per permuted token slot: its group-local coordinate per axis, and its original coordinate.

    Returns ``(local, original)``, each int64 ``[groups, tokens_per_group, rank]``; ``original``
    is ``-1`` on padding slots. Used by tests and by the FlexAttention mask.
    """
    idx = torch.arange(prod(lay.layout), dtype=torch.int64).reshape(1, *lay.layout, 1, 1)
    # permute with a +1 shift so that padding (zeros) reads as -1 afterwards
    orig_flat = permute(idx + 1, lay)[:, :, 0, 0] - 1            # [groups, tokens]
    local = []
    for a in range(lay.rank):
        shape = [1] * lay.rank
        shape[a] = lay.padded[a]
        pos = torch.arange(lay.padded[a], dtype=torch.int64).reshape(1, *shape, 1, 1)
        pos = pos.expand(1, *lay.padded, 1, 1)
        # group-local coordinate x // d, defined on padding slots too
        local.append(_permute_padded(pos // lay.dilation[a], lay))
    local_t = torch.stack(local, dim=-1)
    original = torch.stack([torch.where(orig_flat >= 0, _unravel(orig_flat, lay.layout, a), -1)
                            for a in range(lay.rank)], dim=-1)
    return local_t, original


def _permute_padded(pos: torch.Tensor, lay: TokenLayout) -> torch.Tensor:
    """Permute a ``[1, *padded, 1, 1]`` tensor already at the padded size."""
    x = pos.reshape(1, *lay.split_shape(), 1, 1).permute(*lay.order())
    return x.reshape(lay.groups, lay.tokens_per_group)


def _unravel(flat: torch.Tensor, layout: tuple[int, ...], axis: int) -> torch.Tensor:
    inner = prod(layout[axis + 1:])
    return (flat.clamp(min=0) // inner) % layout[axis]
