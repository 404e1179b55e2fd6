"""Which tile shapes a GPU's kernels support for a problem, and what padding each one costs."""

from __future__ import annotations

from typing import Any

from .hardware import HardwareProfile, format_tile


def padding_tokens(size: tuple[int, ...], tile: tuple[int, ...]) -> int:
    """Tokens added when each axis is padded up to a multiple of its tile extent."""
    padded = 1
    total = 1
    for s, t in zip(size, tile):
        padded *= -(-s // t) * t
        total *= s
    return padded - total


def supported_tiles(profile: HardwareProfile, size: tuple[int, ...], head_dim: int, dtype: str,
                    kernel: str | None = None, backward: bool = False) -> list[dict[str, Any]]:
    """One row per (kernel, Q tile, KV tile) the profile ships for this rank and head dim."""
    kernels = [profile.kernel(kernel)] if kernel else profile.kernels
    rows: list[dict[str, Any]] = []
    rank = len(size)
    for kern in kernels:
        default = kern.default_tile(rank, head_dim)
        for tset in kern.tile_sets(head_dim, backward):
            for q, kv in tset.shapes(rank):
                rows.append({
                    "kernel": kern.name,
                    "q_tile": format_tile(q),
                    "kv_tile": format_tile(kv),
                    "gemm": f"{tset.gemm[0]}x{tset.gemm[1]}",
                    "schedule": tset.schedule,
                    "default": (q, kv) == default and not backward,
                    "dtype_supported": dtype in kern.dtypes,
                    "q_padding_tokens": padding_tokens(size, q),
                    "kv_padding_tokens": padding_tokens(size, kv),
                })
    return rows
