"""Warnings a user needs, one line each (the record's ``notes``): pure functions of a problem,
its kernel and its tile plans.

- a KV tiling mode the kernel does not run (``--kv-tiling dynamic`` on hopper-fna);
- a tile larger than the layout on some axis (a single ``--q-tile 128`` on a 3-D layout);
- NATTEN's fallback to its dense (FMHA) kernel when the window covers the whole layout
  (:func:`natten_runs_fmha`);
- a causal problem whose tile bound exceeds its FLOP bound, and why.

Tiles a kernel does not ship are noted where the tiles are resolved
(:func:`gnasim.hardware.tiles.resolve_tiles`), not here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from gnasim.config import GNAConfig, format_tile

FMHA_NOTE = ("NATTEN runs its dense FMHA kernel here, not FNA: the window covers the whole layout "
             "({why}; is_self_attention in src/natten/utils/checks.py, NATTEN@8c8729f)")


def kv_tiling_note(kernel: Any, mode: str) -> str | None:
    """A KV tiling the kernel does not run (static: token-permuted box tiles, Hopper/Blackwell/
    Flex; dynamic: tiles started at each Q tile's first key, CUTLASS 2.x FNA)."""
    if kernel is None or mode == kernel.kv_tiling:
        return None
    return (f"kernel {kernel.name} runs {kernel.kv_tiling} KV tiling, not {mode}: the plan is "
            f"simulated as asked, but no {kernel.name} launch iterates KV tiles that way")


def oversized_tile_note(config: GNAConfig) -> str | None:
    """A Q or KV tile longer than its axis: most of each tile is padding. (Against the layout,
    not the dilation groups, so the rows of a sweep block, which share tiles and layout, share
    the note.)"""
    parts = []
    for name, tile in (("Q", config.q_tile), ("KV", config.kv_tile)):
        if tile is None:
            continue
        axes = [d for d, (t, L) in enumerate(zip(tile, config.input_size)) if t > L]
        if axes:
            parts.append(f"{name} tile {format_tile(tile)} is longer than the layout "
                         f"{format_tile(config.input_size)} on {'axes' if len(axes) > 1 else 'axis'} "
                         f"{', '.join(map(str, axes))}")
    if not parts:
        return None
    return ("; ".join(parts) + ": the excess is padding, computed and thrown away (one --q-tile/"
            "--kv-tile value is used on every axis; give one value per axis)")


def natten_runs_fmha(input_size: Sequence[int], window_size: Sequence[int],
                     causal: Sequence[Any], additional_kv: bool = False) -> bool:
    """NATTEN's rule for calling its FMHA kernel instead of FNA (``is_self_attention``): 1-D with
    window = length and no additional KV (causal or not), or window = length and non-causal on
    every axis."""
    if len(input_size) == 1 and not additional_kv:
        return window_size[0] == input_size[0]
    return all(k == n and not c for n, k, c in zip(input_size, window_size, causal))


def fmha_note(config: GNAConfig, additional_kv: bool = False) -> str | None:
    return _fmha_note(config.input_size, config.window_size, config.causal, additional_kv)


def _fmha_note(size: Sequence[int], window: Sequence[int], causal: Sequence[Any],
               additional_kv: bool = False) -> str | None:
    if not natten_runs_fmha(size, window, causal, additional_kv):
        return None
    why = ("1-D, window = length, causal" if len(size) == 1 and causal[0]
           else "window = layout on every axis")
    return FMHA_NOTE.format(why=why) + "; predicted as the dense baseline, speedup 1"


def causal_bound_note(causal: Sequence[Any], tile_bound: float, flop_bound: float,
                      tile_bound_mean: float) -> str | None:
    """Why a causal problem's tile bound can exceed its FLOP bound."""
    if not any(causal) or tile_bound <= flop_bound * (1 + 1e-12):
        return None
    return (f"causal: the tile bound {tile_bound:.3f}x exceeds the FLOP bound {flop_bound:.3f}x "
            "because it compares worst Q tiles: causal self attention's last Q tile visits every "
            "KV tile (about twice its average Q tile), while GNA's Q tiles visit about the same "
            f"number each; the mean tile bound {tile_bound_mean:.3f}x is the better guide")


def block_notes(config: GNAConfig, kernel: Any, mode: str) -> list[str]:
    """The warnings that depend only on the layout, tiles, kernel and KV tiling (a sweep block's
    rows share them)."""
    return [n for n in (kv_tiling_note(kernel, mode), oversized_tile_note(config)) if n]


def plan_notes(config: GNAConfig, plan: Any, dense_plan: Any,
               additional_kv: bool = False) -> list[str]:
    """The warnings that depend on the window, causal flags and plans."""
    notes = [fmha_note(config, additional_kv), causal_bound_note(
        config.causal, dense_plan.kv_tiles_visited_max / plan.kv_tiles_visited_max,
        dense_plan.attended_pairs / plan.attended_pairs,
        dense_plan.tile_pairs_visited / plan.tile_pairs_visited)]
    return [n for n in notes if n]


def advise(config: GNAConfig, kernel: Any, mode: str, plan: Any, dense_plan: Any,
           additional_kv: bool = False) -> list[str]:
    """Every warning for one configuration (tiles set) and its forward plans."""
    return block_notes(config, kernel, mode) + plan_notes(config, plan, dense_plan, additional_kv)


# -- many rows at once (a sweep chunk: one layout and tile shape, per-row windows) --------------
def fmha_rows(size: Sequence[int], windows: Sequence[np.ndarray],
              causals: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`natten_runs_fmha` per row, from per-axis arrays of windows and causal flags."""
    if len(size) == 1:
        return np.asarray(windows[0] == size[0], dtype=bool)
    out = np.ones(len(windows[0]), dtype=bool)
    for n, w, c in zip(size, windows, causals):
        out &= (w == n) & (c == 0)
    return out


def row_notes(size: Sequence[int], windows: Sequence[np.ndarray], causals: Sequence[np.ndarray],
              tile_bound: np.ndarray, flop_bound: np.ndarray, tile_bound_mean: np.ndarray
              ) -> dict[int, tuple[str, ...]]:
    """:func:`plan_notes` for the rows that have any (row index -> notes); the bounds are the
    rows' tile, FLOP and mean tile bounds."""
    fmha = fmha_rows(size, windows, causals)
    causal = np.zeros(len(fmha), dtype=bool)
    for c in causals:
        causal |= c != 0
    flagged = fmha | (causal & (np.asarray(tile_bound) > np.asarray(flop_bound) * (1 + 1e-12)))
    out = {}
    for i in np.flatnonzero(flagged).tolist():
        w = [int(a[i]) for a in windows]
        c = [int(a[i]) for a in causals]
        notes = (_fmha_note(size, w, c), causal_bound_note(
            c, float(tile_bound[i]), float(flop_bound[i]), float(tile_bound_mean[i])))
        out[i] = tuple(n for n in notes if n)
    return out
