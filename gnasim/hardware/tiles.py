"""Which tile shapes a GPU's kernels support for a problem, and what padding each one costs."""

from __future__ import annotations

from typing import Any

from gnasim.config import GNAConfig, format_tile
from gnasim.errors import ConfigError
from gnasim.hardware.profile import HardwareProfile, Kernel


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


def backward_tiles(config: GNAConfig, kernel: Kernel | None, q=None, kv=None):
    """Backward tile shapes: explicit ones, else the kernel's first backward shape for the rank and
    head dim. Returns ``(q_tile, kv_tile, notes)``."""
    notes: list[str] = []
    if q is None or kv is None:
        shapes = []
        if kernel is not None:
            shapes = (kernel.tile_shapes(config.rank, config.head_dim, backward=True)
                      or kernel.tile_shapes(config.rank, None, backward=True))
        if not shapes:
            who = f"kernel {kernel.name} ships no rank-{config.rank} backward tile shape" \
                if kernel is not None else "no hardware profile"
            raise ConfigError(f"bwd_q_tile/bwd_kv_tile: {who}; give --bwd-q-tile and --bwd-kv-tile")
        if not kernel.tile_sets(config.head_dim, backward=True):
            notes.append(f"kernel {kernel.name} has no backward pass for head_dim "
                         f"{config.head_dim}; backward tile shapes taken from its other head dims")
        q = tuple(q) if q is not None else shapes[0][0]
        kv = tuple(kv) if kv is not None else shapes[0][1]
    q, kv = tuple(int(v) for v in q), tuple(int(v) for v in kv)
    if kernel is not None and kernel.tile_set_for((q, kv), config.head_dim, backward=True) is None:
        notes.append(f"backward tile {format_tile(q)}/{format_tile(kv)} is not shipped by "
                     f"{kernel.name} for head_dim {config.head_dim}; simulated as given")
    return q, kv, notes


def resolve_tiles(config: GNAConfig, kernel: Kernel | None) -> tuple[GNAConfig, list[str]]:
    """Fill missing tile shapes from the kernel's default; note tiles or dims it does not ship."""
    notes: list[str] = []
    q, kv = config.q_tile, config.kv_tile
    if kernel is None:
        if q is None or kv is None:
            raise ConfigError("q_tile/kv_tile: give both tile shapes, or a hardware profile")
        return config, notes
    if config.dtype not in kernel.dtypes:
        notes.append(f"kernel {kernel.name} does not run dtype {config.dtype} "
                     f"(runs {', '.join(kernel.dtypes)}); simulated anyway")
    if not kernel.tile_sets(config.head_dim):
        notes.append(f"kernel {kernel.name} does not support head_dim {config.head_dim}; "
                     "tile shapes taken from its other head dims")
    if q is None or kv is None:
        default = kernel.default_tile(config.rank, config.head_dim)
        if default is None:
            raise ConfigError(f"q_tile/kv_tile: kernel {kernel.name} ships no rank-{config.rank} "
                              "tile shape; give --q-tile and --kv-tile")
        q = q if q is not None else default[0]
        kv = kv if kv is not None else default[1]
    if len(q) != config.rank or len(kv) != config.rank:
        raise ConfigError(f"q_tile/kv_tile: tile ranks {len(q)}/{len(kv)} do not match "
                          f"input_size rank {config.rank}")
    config = config.with_tiles(q, kv)
    if kernel.tile_set_for((q, kv), config.head_dim) is None:
        notes.append(f"tile {format_tile(q)}/{format_tile(kv)} is not shipped by {kernel.name} "
                     f"for head_dim {config.head_dim}; simulated as given")
    return config, notes
