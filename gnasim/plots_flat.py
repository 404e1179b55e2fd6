"""The curse of multi-dimensionality as a figure: flat (1-D) tiling against box tiling.

For one layout and a range of windows, the tile bound (self-attention KV tiles per Q tile over
those of the worst Q tile) of flat tiling (runs of consecutive tokens, :mod:`gnasim.plan.flat`)
and of box tiling (the kernels' multi-dimensional tiles, :mod:`gnasim.plan.tiling`), beside the
FLOP bound they both approach at best. Every tile shape is named in the legend. The GNA paper
(arXiv 2504.16922, section 3.2 and appendix A.3) makes the same comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gnasim.config import GNAConfig, parse_ints
from gnasim.errors import ConfigError, require_extra
from gnasim.config import format_tile
from gnasim.plan.flat import flat_plan
from gnasim.plan.tiling import KV_TILINGS, tile_plans

FlatTiles = tuple[int, int]                               # (Q tokens, KV tokens)
BoxTiles = tuple[tuple[int, ...], tuple[int, ...]]        # (Q tile, KV tile)


@dataclass(frozen=True)
class CursePoint:
    """Bounds of one window under one tiling (``tiling`` names the tile shapes)."""

    window: tuple[int, ...]
    tiling: str
    tile_bound: float
    tile_bound_mean: float
    wasted_share: float      # FLOPs computed on masked-out pairs / FLOPs computed
    flop_bound: float


def flat_name(tiles: FlatTiles) -> str:
    return f"flat, Q {tiles[0]} / KV {tiles[1]} tokens"


def box_name(tiles: BoxTiles, mode: str) -> str:
    return f"box, Q {format_tile(tiles[0])} / KV {format_tile(tiles[1])} ({mode} KV tiling)"


def cube_windows(input_size: Sequence[int], sizes: Sequence[int]) -> list[tuple[int, ...]]:
    """Windows ``k x k x ...`` for each ``k`` in ``sizes``, each extent capped at its axis."""
    return [tuple(min(int(k), int(L)) for L in input_size) for k in sizes]


def curse_points(input_size, windows: Sequence, stride=1, dilation=1, causal=False,
                 flat_tiles: Sequence[FlatTiles] = ((128, 128),),
                 box_tiles: Sequence[BoxTiles] = (),
                 kv_tiling: str = "static") -> list[CursePoint]:
    """Bounds of every window under every flat and box tiling (exact plans, no sampling).

    ``stride="window"`` gives each window its own size as stride (blocked attention).
    """
    if kv_tiling not in KV_TILINGS:
        raise ConfigError(f"kv_tiling: '{kv_tiling}' is not one of {list(KV_TILINGS)}")
    if not windows:
        raise ConfigError("windows: give at least one window")
    if not flat_tiles and not box_tiles:
        raise ConfigError("tiles: give at least one flat or box tiling")
    blocked = isinstance(stride, str) and stride.strip().lower() == "window"
    configs = [GNAConfig(input_size=input_size, window_size=w, stride=w if blocked else stride,
                         dilation=dilation, causal=causal) for w in windows]
    dense = configs[0].dense()
    points: list[CursePoint] = []
    dense_flat = {t: flat_plan(dense, *t) for t in flat_tiles}
    for cfg in configs:
        for t in flat_tiles:
            plan = flat_plan(cfg, *t)
            points.append(_point(cfg, flat_name(t), plan, dense_flat[t]))
    for q, kv in box_tiles:
        q, kv = parse_ints(q, "box q_tile"), parse_ints(kv, "box kv_tile")
        tiled = [c.with_tiles(q, kv) for c in configs]
        plans = tile_plans(tiled + [dense.with_tiles(q, kv)], kv_tiling)
        for cfg, plan in zip(configs, plans[:-1]):
            points.append(_point(cfg, box_name((q, kv), kv_tiling), plan, plans[-1]))
    return points


def _point(cfg: GNAConfig, name: str, plan, dense) -> CursePoint:
    computed = plan.tile_pairs_visited * plan.q_tile_size * plan.kv_tile_size
    return CursePoint(
        window=tuple(cfg.window_size), tiling=name,
        tile_bound=dense.kv_tiles_visited_max / plan.kv_tiles_visited_max,
        tile_bound_mean=dense.tile_pairs_visited / plan.tile_pairs_visited,
        wasted_share=1.0 - plan.attended_pairs / computed,
        flop_bound=dense.attended_pairs / plan.attended_pairs)


def curse_figure(input_size, windows: Sequence, stride=1, dilation=1, causal=False,
                 flat_tiles: Sequence[FlatTiles] = ((128, 128),),
                 box_tiles: Sequence[BoxTiles] = (), kv_tiling: str = "static"):
    """A plotly figure: tile bound against the window, one line per tiling, and the FLOP bound."""
    require_extra("plotly", "plot", "curse_figure")
    import plotly.graph_objects as go

    points = curse_points(input_size, windows, stride, dilation, causal, flat_tiles, box_tiles,
                          kv_tiling)
    labels = [format_tile(tuple(w)) for w in dict.fromkeys(p.window for p in points)]
    fig = go.Figure()
    for name in dict.fromkeys(p.tiling for p in points):
        mine = [p for p in points if p.tiling == name]
        fig.add_trace(go.Scatter(
            x=labels, y=[p.tile_bound for p in mine], mode="lines+markers", name=name,
            customdata=[[p.tile_bound_mean, 100 * p.wasted_share] for p in mine],
            hovertemplate=("window %{x}<br>tile bound %{y:.3f}<br>mean-tile bound "
                           "%{customdata[0]:.3f}<br>wasted FLOPs %{customdata[1]:.1f}%"
                           f"<extra>{name}</extra>")))
    first = [p for p in points if p.tiling == points[0].tiling]
    fig.add_trace(go.Scatter(x=labels, y=[p.flop_bound for p in first], mode="lines",
                             name="FLOP bound", line={"dash": "dash", "color": "black"},
                             hovertemplate="window %{x}<br>FLOP bound %{y:.3f}<extra></extra>"))
    blocked = isinstance(stride, str)
    c = GNAConfig(input_size=input_size, window_size=first[0].window,
                  stride=first[0].window if blocked else stride, dilation=dilation, causal=causal)
    fig.update_layout(
        title=(f"Flat vs box tiling: layout {format_tile(c.input_size)}, stride "
               f"{'= window' if blocked else format_tile(c.stride)}, dilation "
               f"{format_tile(c.dilation)}, causal "
               f"{'x'.join(str(int(v)) for v in c.causal)}"),
        xaxis_title="window", yaxis_title="speedup bound over self attention",
        yaxis_type="log", legend_title="tiling", template="plotly_white")
    return fig


def write_curse_html(path: str | Path, input_size, windows: Sequence, plotly_js: str = "inline",
                     **kwargs) -> Path:
    """Write :func:`curse_figure` as an HTML file: ``plotly_js="inline"`` embeds plotly.js
    (4.9 MB, opens offline), ``"cdn"`` loads it from plotly's CDN (small; needs the network)."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"output: '{path}' must end in .html")
    if plotly_js not in ("inline", "cdn"):
        raise ConfigError(f"plotly_js: '{plotly_js}' is not one of ['inline', 'cdn']")
    fig = curse_figure(input_size, windows, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.write_html(str(path), include_plotlyjs=True if plotly_js == "inline" else "cdn",
                   full_html=True)
    return path


__all__ = ["CursePoint", "box_name", "cube_windows", "curse_figure",
           "curse_points", "flat_name", "write_curse_html"]
