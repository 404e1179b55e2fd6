"""Interactive plotly figures: tile maps, stride heatmaps, the Pareto front, speedup vs sparsity.

Every figure is computed from the same exact per-axis tile plans as ``gnasim predict`` (nothing is
sampled or stored), and every hover text names the configuration it describes.
:func:`write_figure` writes an HTML file, plotly.js either inlined (4.9 MB, opens offline) or
loaded from plotly's CDN (small, needs the network when opened), and, when asked, a PNG through
kaleido. plotly comes with the ``plot`` extra (``pip install 'gnasim[plot]'``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from gnasim.config import GNAConfig, format_tile
from gnasim.errors import ConfigError, GnasimError, require_extra
from gnasim.files import atomic_write, check_output_path
from gnasim.explore.recommend import StrideSearch, search_strides
from gnasim.plan.stats import STAT_INDEX, axis_stats_many
from gnasim.plan.axis import ROWS
from gnasim.plan.tiling import axis_plan
from gnasim.plan.windows import group_lengths, window_bounds

FULL, PARTIAL, SKIPPED = "full", "partial", "skipped"
COLOURS = {FULL: "#2ca02c", PARTIAL: "#ff7f0e", SKIPPED: "#d9d9d9"}
#: ``plotly_js`` values: plotly.js inlined in the page, or a script tag loading it from the CDN
PLOTLY_JS = {"inline": True, "cdn": "cdn"}


def plotly_go():
    """``plotly.graph_objects``, or one line naming the extra that installs plotly."""
    require_extra("plotly", "plot", "plots")
    import plotly.graph_objects as go

    return go


def _cfg_text(c: GNAConfig, mode: str | None = None, stride: str | None = None) -> str:
    """The configuration in words; ``stride`` replaces ``stride AxBxC`` (``""``: left out)."""
    stride = f"stride {format_tile(c.stride)}" if stride is None else stride
    text = (f"layout {format_tile(c.input_size)}, window {format_tile(c.window_size)}, "
            + (f"{stride}, " if stride else "")
            + f"dilation {format_tile(c.dilation)}, "
            f"causal {'x'.join(str(int(v)) for v in c.causal)}")
    if c.has_tiles:
        text += f", Q tile {format_tile(c.q_tile)}, KV tile {format_tile(c.kv_tile)}"
    if mode:
        text += f", {mode} KV tiling"
    return text


# -- (a) tile map ------------------------------------------------------------------------------

@dataclass
class AxisView:
    """One axis of one Q tile: which keys its queries attend and what each KV tile is."""

    group_length: int          # keys of the dilation group (group-local coordinates)
    padded_length: int         # KV slots after padding
    real_queries: int          # real (non-padding) queries of the Q tile on this axis
    q_range: tuple[int, int]   # the Q tile's query slots
    coverage: np.ndarray       # per KV slot: how many of the real queries attend it
    tiles: list[tuple[int, int, str]]   # (first slot, end slot, status) for every KV tile
    kv_tiles: int = 0          # KV tiles of the dilation group (visited or not)

    def count(self, status: str | None) -> int:
        """KV tiles on this axis with ``status`` (``None``: visited; skipped: the group's tiles
        not visited)."""
        visited = sum(1 for t in self.tiles if t[2] != SKIPPED)
        if status == SKIPPED:
            return self.kv_tiles - visited
        return visited if status is None else sum(1 for t in self.tiles if t[2] == status)


def axis_view(length: int, window: int, stride: int, dilation: int, causal: bool, q_tile: int,
              kv_tile: int, mode: str, q_index: int, group: int = 0, axis: int = 0) -> AxisView:
    """The per-axis picture of Q tile ``q_index`` in dilation group ``group``.

    Visited KV tiles and which of them are fully dense come from the tile plan's rows
    (:meth:`gnasim.plan.tiling.AxisPlan.rows_at`: ``first``, ``visited``, ``full_first``,
    ``full``); the token mask only shades the picture (``coverage``).
    """
    plan = axis_plan(length, window, stride, dilation, causal, q_tile, kv_tile, mode)
    if not 0 <= group < dilation:
        raise ConfigError(f"group (axis {axis}): must be in 0..{dilation - 1}, got {group}")
    if not 0 <= q_index < plan.q_tiles_per_group:
        raise ConfigError(f"q_index (axis {axis}): must be in 0..{plan.q_tiles_per_group - 1} "
                          f"({plan.q_tiles_per_group} Q tiles per dilation group), got {q_index}")
    Lg = int(group_lengths(length, dilation)[group])
    padded = plan.kv_tiles_per_group * kv_tile
    q0 = q_index * q_tile
    row = dict(zip(ROWS, plan.rows_at(group, [q_index])[:, 0].tolist()))
    visited, first, real = row["visited"], row["first"], row["real"]
    full_lo, full_hi = row["full_first"], row["full_first"] + row["full"] * kv_tile
    cover = np.zeros(padded, dtype=np.int64)
    if real:
        start, end = window_bounds(np.arange(q0, q0 + real), Lg, window, stride, causal)
        for s, e in zip(start.tolist(), end.tolist()):
            cover[s:e] += 1
    tiles: list[tuple[int, int, str]] = []
    for j in range(visited):
        a, b = first + j * kv_tile, first + (j + 1) * kv_tile
        tiles.append((a, b, FULL if full_lo <= a < full_hi else PARTIAL))
    if mode == "static":   # the rest of the aligned KV tile grid is skipped
        lo, hi = first // kv_tile, first // kv_tile + visited
        tiles = ([(j * kv_tile, (j + 1) * kv_tile, SKIPPED) for j in range(lo)] + tiles
                 + [(j * kv_tile, (j + 1) * kv_tile, SKIPPED)
                    for j in range(hi, plan.kv_tiles_per_group)])
    else:                  # dynamic: only the slots outside the visited run
        end_v = first + visited * kv_tile
        if first > 0:
            tiles.insert(0, (0, first, SKIPPED))
        if end_v < padded:
            tiles.append((end_v, padded, SKIPPED))
    return AxisView(Lg, max(padded, first + visited * kv_tile), real, (q0, q0 + q_tile),
                    cover, tiles, plan.kv_tiles_per_group)


def _combine(statuses: Sequence[str]) -> str:
    if SKIPPED in statuses:
        return SKIPPED
    return FULL if all(s == FULL for s in statuses) else PARTIAL


def tile_map_figure(config: GNAConfig, mode: str = "static",
                    q_index: Sequence[int] | None = None, axes: Sequence[int] | None = None,
                    slice_key: Sequence[int | None] | None = None,
                    group: Sequence[int] | None = None):
    """Which KV tiles one Q tile visits: full / partial / skipped, with the token mask inside.

    1-D layouts show the query x key mask of the Q tiles around ``q_index``; 2-D layouts (or two
    ``axes`` of a 3-D one) show the key plane, each key shaded by the share of the Q tile's queries
    that attend it. Other axes are sliced at key ``slice_key[d]`` (default: the first key of a KV
    tile full on that axis, else the first key attended); a pair's status combines every axis.
    """
    go = plotly_go()
    if not config.has_tiles:
        raise ConfigError("q_tile/kv_tile: the tile map needs tile shapes (or a hardware profile)")
    rank = config.rank
    q_index = tuple(q_index) if q_index is not None else (0,) * rank
    group = tuple(group) if group is not None else (0,) * rank
    if len(q_index) == 1 and rank > 1:
        q_index = q_index * rank
    if len(group) == 1 and rank > 1:
        group = group * rank
    for name, v in (("q_index", q_index), ("group", group)):
        if len(v) != rank:
            raise ConfigError(f"{name}: {len(v)} values given but input_size has {rank} axes")
    if axes is None:
        axes = tuple(range(min(rank, 2)))
    axes = tuple(axes)
    if not 1 <= len(axes) <= 2 or len(set(axes)) != len(axes) or any(not 0 <= a < rank for a in axes):
        raise ConfigError(f"axes: give one or two distinct axes in 0..{rank - 1}, got {list(axes)}")
    if rank == 1:
        return _tile_map_1d(config, mode, q_index[0], group[0])
    if len(axes) == 1:
        raise ConfigError("axes: a multi-dimensional layout is drawn on two axes (e.g. --axes 1 2)")
    views = [axis_view(config.input_size[d], config.window_size[d], config.stride[d],
                       config.dilation[d], config.causal[d], config.q_tile[d], config.kv_tile[d],
                       mode, q_index[d], group[d], d) for d in range(rank)]
    hidden = [d for d in range(rank) if d not in axes]
    keys = list(slice_key) if slice_key is not None else [None] * rank
    if len(keys) == 1 and rank > 1:
        keys = keys * rank
    if len(keys) != rank:
        raise ConfigError(f"slice_key: {len(keys)} values given but input_size has {rank} axes")
    factor = 1.0
    hidden_status = []
    slice_text = []
    for d in hidden:
        v = views[d]
        k = keys[d]
        if k is None:     # a fully dense tile's first key, else the first key attended
            hit = [a for a, _, st in v.tiles if st == FULL] or np.flatnonzero(v.coverage)
            k = int(hit[0]) if len(hit) else 0
        if not 0 <= k < v.padded_length:
            raise ConfigError(f"slice_key (axis {d}): must be in 0..{v.padded_length - 1}, got {k}")
        status = next(s for a, b, s in v.tiles if a <= k < b) if any(
            a <= k < b for a, b, _ in v.tiles) else SKIPPED
        hidden_status.append(status)
        factor *= v.coverage[k] / v.real_queries if v.real_queries else 0.0
        slice_text.append(f"axis {d} = key {k} ({status} on that axis)")
    a0, a1 = axes
    v0, v1 = views[a0], views[a1]
    real = v0.real_queries * v1.real_queries
    share = (np.outer(v0.coverage, v1.coverage) / real * factor) if real else \
        np.zeros((v0.padded_length, v1.padded_length))
    z = np.where(share > 0, share, np.nan)
    desc = _cfg_text(config, mode)
    fig = go.Figure()
    # KV tile pairs: filled rectangles below the mask, with a hover marker at each centre
    cx, cy, ctext, ccol = [], [], [], []
    counts = {FULL: 0, PARTIAL: 0, SKIPPED: 0}
    for (ya, yb, s0) in v0.tiles:
        for (xa, xb, s1) in v1.tiles:
            status = _combine([s0, s1] + hidden_status)
            counts[status] += 1
            fig.add_shape(type="rect", x0=xa - 0.5, x1=xb - 0.5, y0=ya - 0.5, y1=yb - 0.5,
                          fillcolor=COLOURS[status], opacity=0.7, layer="below",
                          line=dict(color="white", width=1))
            cx.append((xa + xb - 1) / 2)
            cy.append((ya + yb - 1) / 2)
            ctext.append(f"KV tile keys [{ya}, {yb}) x [{xa}, {xb}) on axes {a0}, {a1}: "
                         f"<b>{status}</b><br>{desc}")
            ccol.append(COLOURS[status])
    fig.add_trace(go.Heatmap(
        z=z, colorscale="Blues", zmin=0, zmax=1, showscale=True, opacity=0.5,
        colorbar=dict(title="share of the<br>Q tile's queries", x=1.02),
        hovertemplate=(f"key (axis {a0} = %{{y}}, axis {a1} = %{{x}})<br>attended by "
                       "%{z:.0%} of the Q tile's queries<extra></extra>"), name="mask"))
    fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", marker=dict(size=6, color=ccol,
                             line=dict(color="black", width=0.5)),
                             hovertext=ctext, hoverinfo="text", name="KV tiles", showlegend=False))
    # the title counts every KV tile of the Q tile's pass (all axes), not only the drawn plane:
    # a KV tile is visited when it is on every axis, and fully dense when it is full on every axis
    visited, full = (math.prod(v.count(s) for v in views) for s in (None, FULL))
    total = math.prod(v.kv_tiles for v in views)
    if not hidden:
        counts = {FULL: full, PARTIAL: visited - full, SKIPPED: total - visited}
    where = " in this slice" if hidden else ""
    for status in (FULL, PARTIAL, SKIPPED):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers",
                                 name=f"{status} ({counts[status]:,}{where})",
                                 marker=dict(size=12, symbol="square", color=COLOURS[status])))
    # the Q tile itself (queries and keys share the token layout in self attention)
    (qy0, qy1), (qx0, qx1) = v0.q_range, v1.q_range
    fig.add_shape(type="rect", x0=qx0 - 0.5, x1=qx1 - 0.5, y0=qy0 - 0.5, y1=qy1 - 0.5,
                  line=dict(color="crimson", width=3, dash="dash"), fillcolor="rgba(0,0,0,0)")
    fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name="the Q tile",
                             line=dict(color="crimson", width=3, dash="dash")))
    title = (f"Q tile {format_tile(q_index)}: {visited:,} KV tiles visited "
             f"({full:,} full, {visited - full:,} partial), {total - visited:,} skipped")
    if hidden:
        title += f" of {total:,}"
    sub = desc + (f"; slice {', '.join(slice_text)}" if slice_text else "")
    if any(config.dilation[d] > 1 for d in axes):
        sub += f"; dilation group {format_tile(group)} in group-local coordinates"
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>{sub}</sup>"), template="plotly_white",
        xaxis=dict(title=f"key index, axis {a1}", constrain="domain", showgrid=False),
        yaxis=dict(title=f"key index, axis {a0}", scaleanchor="x", autorange="reversed",
                   showgrid=False),
        legend=dict(orientation="h", y=-0.15), height=720, width=900)
    return fig


def _tile_map_1d(config: GNAConfig, mode: str, q_index: int, group: int):
    go = plotly_go()
    L, K, S, D = config.input_size[0], config.window_size[0], config.stride[0], config.dilation[0]
    c, qt, kvt = config.causal[0], config.q_tile[0], config.kv_tile[0]
    plan = axis_plan(L, K, S, D, c, qt, kvt, mode)
    nq = plan.q_tiles_per_group
    view = axis_view(L, K, S, D, c, qt, kvt, mode, q_index, group)
    lo, hi = (0, nq) if nq * qt <= 512 else (max(0, q_index - 4), min(nq, q_index + 4))
    Lg = view.group_length
    padded = max(view.padded_length, plan.kv_tiles_per_group * kvt)
    queries = np.arange(lo * qt, hi * qt)
    mask = np.full((len(queries), padded), np.nan)
    real = queries < Lg
    start, end = window_bounds(queries[real], Lg, K, S, c)
    keys = np.arange(padded)
    inside = (keys[None, :] >= start[:, None]) & (keys[None, :] < end[:, None])
    mask[real] = np.where(inside, 1.0, np.nan)
    desc = _cfg_text(config, mode)
    fig = go.Figure()
    cx, cy, ctext, ccol = [], [], [], []
    for qi in range(lo, hi):
        v = view if qi == q_index else axis_view(L, K, S, D, c, qt, kvt, mode, qi, group)
        for a, b, status in v.tiles:
            fig.add_shape(type="rect", x0=a - 0.5, x1=b - 0.5, y0=qi * qt - 0.5,
                          y1=(qi + 1) * qt - 0.5, fillcolor=COLOURS[status], layer="below",
                          opacity=0.45 if qi == q_index else 0.2,
                          line=dict(color="white", width=1))
            cx.append((a + b - 1) / 2)
            cy.append(qi * qt + (qt - 1) / 2)
            ctext.append(f"Q tile {qi} (queries [{qi * qt}, {(qi + 1) * qt})) x KV slots "
                         f"[{a}, {b}): <b>{status}</b><br>{desc}")
            ccol.append(COLOURS[status])
    fig.add_trace(go.Heatmap(x=keys, y=queries, z=mask, colorscale=[[0, "#1f4e79"], [1, "#1f4e79"]],
                             showscale=False, opacity=0.9, name="mask",
                             hovertemplate="query %{y} attends key %{x}<extra></extra>"))
    fig.add_trace(go.Scatter(x=cx, y=cy, mode="markers", marker=dict(size=5, color=ccol),
                             hovertext=ctext, hoverinfo="text", showlegend=False, name="tiles"))
    for status in (FULL, PARTIAL, SKIPPED):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers",
                                 name=f"{status} ({view.count(status)} for Q tile {q_index})",
                                 marker=dict(size=12, symbol="square", color=COLOURS[status])))
    fig.add_shape(type="rect", x0=-0.5, x1=padded - 0.5, y0=q_index * qt - 0.5,
                  y1=(q_index + 1) * qt - 0.5, line=dict(color="crimson", width=3, dash="dash"))
    title = (f"Q tile {q_index}: {view.count(FULL)} full, {view.count(PARTIAL)} partial, "
             f"{view.count(SKIPPED)} skipped KV tiles")
    sub = desc + (f"; dilation group {group}, group-local coordinates" if D > 1 else "")
    fig.update_layout(
        title=dict(text=f"{title}<br><sup>{sub}</sup>"), template="plotly_white",
        xaxis=dict(title="key (KV slot)", showgrid=False, constrain="domain"),
        yaxis=dict(title="query", autorange="reversed", scaleanchor="x", showgrid=False),
        legend=dict(orientation="h", y=-0.15), height=720, width=900)
    return fig


# -- (b) tile bound over two stride axes ---------------------------------------------------------

def stride_heatmap_figure(config: GNAConfig, mode: str = "static",
                          axes: Sequence[int] | None = None,
                          search: StrideSearch | None = None):
    """The tile bound for every stride on two axes (the other axes keep ``config.stride``).

    Cells on the full Pareto set and perfectly block-sparse cells are marked.
    """
    go = plotly_go()
    search = search or search_strides(config, mode)
    rank = config.rank
    if axes is None:
        axes = (0, 1) if rank >= 2 else (0,)
    axes = tuple(axes)
    if rank < 2:
        raise ConfigError("axes: the stride heatmap needs a layout with at least two axes")
    if len(axes) != 2 or len(set(axes)) != 2 or any(not 0 <= a < rank for a in axes):
        raise ConfigError(f"axes: give two distinct axes in 0..{rank - 1}, got {list(axes)}")
    a0, a1 = axes
    fixed = list(config.stride)
    K0, K1 = config.window_size[a0], config.window_size[a1]
    z = np.zeros((K0, K1))
    text = [[""] * K1 for _ in range(K0)]
    px, py, ptext = [], [], []
    bx, by = [], []
    desc = _cfg_text(config, mode, stride="")     # each cell names its own stride
    for s0 in range(1, K0 + 1):
        for s1 in range(1, K1 + 1):
            st = list(fixed)
            st[a0], st[a1] = s0, s1
            st = tuple(st)
            bound = search.tile_speedup(st)
            z[s0 - 1, s1 - 1] = bound
            bs = search.fully_block_sparse(st)
            on = bool(search.pareto[tuple(s - 1 for s in st)])
            text[s0 - 1][s1 - 1] = (
                f"stride {format_tile(st)}<br>tile bound {bound:.3f} "
                f"({search.dense_vmax} / {int(search.vmax[tuple(s - 1 for s in st)])} KV tiles)"
                f"<br>FLOP bound {search.flop_speedup(st):.3f}<br>block-sparse: "
                f"{'yes' if bs else 'no'}; Pareto: {'yes' if on else 'no'}<br>{desc}")
            if on:
                px.append(s1)
                py.append(s0)
                ptext.append(text[s0 - 1][s1 - 1])
            if bs:
                bx.append(s1)
                by.append(s0)
    fig = go.Figure(go.Heatmap(x=np.arange(1, K1 + 1), y=np.arange(1, K0 + 1), z=z,
                               text=text, hoverinfo="text", colorscale="Viridis",
                               colorbar=dict(title="tile bound")))
    fig.add_trace(go.Scatter(x=bx, y=by, mode="markers", name="perfectly block-sparse",
                             hoverinfo="skip",
                             marker=dict(symbol="square-open", size=14, color="white",
                                         line=dict(width=2))))
    fig.add_trace(go.Scatter(x=px, y=py, mode="markers", name="Pareto stride",
                             hovertext=ptext, hoverinfo="text",
                             marker=dict(symbol="star", size=11, color="crimson")))
    swept = "x".join(f"[1..{config.window_size[d]}]" if d in axes else str(fixed[d])
                     for d in range(rank))
    sub = _cfg_text(config, mode, stride=f"stride {swept}")
    fig.update_layout(
        title=dict(text=f"Tile speedup bound over strides on axes {a0} and {a1}<br><sup>{sub}</sup>"),
        xaxis=dict(title=f"stride, axis {a1}", dtick=1 if K1 <= 32 else None,
                   range=[0.5, K1 + 0.5]),
        yaxis=dict(title=f"stride, axis {a0}", dtick=1 if K0 <= 32 else None,
                   range=[0.5, K0 + 0.5]),
        showlegend=True, template="plotly_white", legend=dict(orientation="h", y=-0.12),
        height=760, width=850)
    return fig


# -- (c) the Pareto front --------------------------------------------------------------------------

def pareto_figure(search: StrideSearch):
    """Tile bound vs stride size for every stride; the Pareto front joined; NA, GNA, blocked marked.

    NA is stride 1 on every axis, blocked is stride = window, and GNA is the smallest perfectly
    block-sparse stride (or, without one, the smallest stride with the highest bound).
    """
    go = plotly_go()
    c = search.config
    grid = np.argwhere(np.ones(search.shape, dtype=bool)) + 1
    size = grid.prod(axis=1)
    vmax = search.vmax.reshape(-1).astype(np.int64)
    desc = _cfg_text(c, search.mode, stride="")   # each point names its own stride
    swept = "x".join(f"[1..{k}]" for k in search.shape)
    # every stride, drawn once per distinct (stride size, bound): exact and small, so the page
    # stays SVG (no WebGL) however many strides there are
    pairs, first, count = np.unique(np.stack([size, vmax]), axis=1, return_index=True,
                                    return_counts=True)
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=pairs[0], y=search.dense_vmax / pairs[1], mode="markers",
        name=f"every stride ({len(grid):,})", marker=dict(size=6, color="#9e9e9e", opacity=0.5),
        hovertext=[f"{n:,} stride(s) of size {sz}, e.g. {format_tile(tuple(grid[i]))}: tile bound "
                   f"{search.dense_vmax / v:.3f}" for sz, v, i, n in zip(pairs[0], pairs[1], first, count)],
        hoverinfo="text"))
    front = search.pareto_strides()
    fig.add_trace(go.Scatter(
        x=[math.prod(s) for s in front], y=[search.tile_speedup(s) for s in front],
        mode="markers+text", name=f"Pareto set ({len(front)} strides)",
        text=[format_tile(s) for s in front], textposition=_label_positions(search, front),
        textfont=dict(size=10, color="#1f4e79"),
        marker=dict(size=10, color="#1f77b4", line=dict(color="white", width=1)),
        hovertext=[_point_text(search, s, desc) for s in front], hoverinfo="text"))
    # the best bound reachable with a stride no larger than x (the front's upper envelope)
    env_x, env_y = [], []
    for s in sorted(front, key=math.prod):
        b = search.tile_speedup(s)
        if not env_y or b > env_y[-1]:
            env_x.append(math.prod(s))
            env_y.append(b)
    env_x.append(int(size.max()))
    env_y.append(env_y[-1])
    fig.add_trace(go.Scatter(x=env_x, y=env_y, mode="lines", line=dict(shape="hv", dash="dot",
                                                                       color="#1f77b4"),
                             name="best bound up to this stride size", hoverinfo="skip"))
    na = tuple([1] * c.rank)
    blocked = tuple(c.window_size)
    gna = search.smallest_block_sparse or search.best_stride()
    gna_label = "GNA (smallest block-sparse stride)" if search.smallest_block_sparse else \
        "GNA (best tile bound)"
    for st, name, symbol, colour in ((na, "NA (stride 1)", "circle", "#d62728"),
                                     (gna, gna_label, "star", "#2ca02c"),
                                     (blocked, "blocked (stride = window)", "diamond", "#9467bd")):
        fig.add_trace(go.Scatter(
            x=[math.prod(st)], y=[search.tile_speedup(st)], mode="markers+text",
            name=f"{name}: {format_tile(st)}", text=[name.split(" ")[0]], textposition="top center",
            marker=dict(size=16, symbol=symbol, color=colour, line=dict(color="black", width=1)),
            hovertext=[_point_text(search, st, desc)], hoverinfo="text"))
    flop = search.flop_speedup(na)
    fig.add_hline(y=flop, line=dict(dash="dash", color="black"),
                  annotation_text=f"FLOP bound {flop:.3f}", annotation_position="top left")
    fig.update_layout(
        title=dict(text=f"Tile speedup bound vs stride size<br><sup>"
                        f"{_cfg_text(c, search.mode, stride=f'stride {swept}')}</sup>"),
        xaxis=dict(title="stride size (product of strides)", type="log"),
        yaxis=dict(title="tile speedup bound (x)"), template="plotly_white",
        legend=dict(orientation="h", y=-0.2), height=650, width=950)
    return fig


def _label_positions(search: StrideSearch, front: list[tuple[int, ...]]) -> list[str]:
    """Where each Pareto point's stride label goes: below right of the first point of a bound
    (clear of the envelope's steps), above the others of that bound, alternately left."""
    seen: dict[float, int] = {}
    out = []
    for s in front:
        b = round(search.tile_speedup(s), 6)
        n = seen[b] = seen.get(b, -1) + 1
        out.append("bottom right" if n == 0 else ("top center", "top left")[n % 2 - 1])
    return out


def _point_text(search: StrideSearch, st: tuple[int, ...], desc: str) -> str:
    return (f"stride {format_tile(st)} (size {math.prod(st)})<br>tile bound "
            f"{search.tile_speedup(st):.3f}, FLOP bound {search.flop_speedup(st):.3f}<br>"
            f"block-sparse: {'yes' if search.fully_block_sparse(st) else 'no'}<br>{desc}")


# -- (d) speedup vs sparsity -------------------------------------------------------------------------

# Strides the sparsity plot tries per axis and window (each is one per-axis plan).
MAX_STRIDES = 100_000


def sparsity_curves(config: GNAConfig, mode: str = "static", points: int = 24) -> list[dict[str, Any]]:
    """NA, GNA and blocked tile bounds for windows of growing size, all multiples of the KV tile.

    Window ``d`` is ``round(r * L_d / t_d) * t_d`` for ``r`` from small to ``1 / D_d`` (distinct
    windows kept), so every window shape follows the layout. Per window: NA = stride 1, blocked =
    stride = window, GNA = the smallest stride with the highest tile bound (per axis, the stride
    minimising that axis's worst-Q-tile count).
    """
    if not config.has_tiles:
        raise ConfigError("q_tile/kv_tile: the sparsity plot needs tile shapes (or a hardware profile)")
    if points < 2:
        raise ConfigError(f"points: must be >= 2, got {points}")
    rank = config.rank
    windows: dict[tuple[int, ...], None] = {}
    for r in np.linspace(0.0, 1.0, points * 4)[1:]:
        w = []
        for d in range(rank):
            L, D, t = config.input_size[d], config.dilation[d], config.kv_tile[d]
            top = (L // D) // t * t
            if top < 2:
                raise ConfigError(f"kv_tile (axis {d}): no multiple of {t} fits input_size {L} "
                                  f"with dilation {D}")
            k = int(round(r * (L // D) / t)) * t
            w.append(min(max(k, t if t >= 2 else 2), top))
        windows[tuple(w)] = None
    wins = list(windows)
    for d in range(rank):
        widest = max(w[d] for w in wins)
        if widest > MAX_STRIDES:
            raise ConfigError(f"input_size (axis {d}): the sparsity plot tries every stride up to "
                              f"the window ({widest:,} here); at most {MAX_STRIDES:,}")
    if len(wins) > points:
        keep = np.unique(np.linspace(0, len(wins) - 1, points).round().astype(int))
        wins = [wins[i] for i in keep]
    rows = []
    for w in wins:
        per_axis = []
        for d in range(rank):
            keys = [(config.input_size[d], w[d], s, config.dilation[d], bool(config.causal[d]),
                     config.q_tile[d], config.kv_tile[d], mode) for s in range(1, w[d] + 1)]
            per_axis.append(np.array(axis_stats_many(keys), dtype=object))
        prod = lambda name, pick: math.prod(int(pick(a[:, STAT_INDEX[name]])) for a in per_axis)
        dense = prod("dvmax", lambda col: col[0])
        att1 = prod("att", lambda col: col[0])
        datt = prod("datt", lambda col: col[0])
        best = tuple(int(np.argmin(a[:, STAT_INDEX["vmax"]].astype(np.int64))) + 1 for a in per_axis)
        rows.append({
            "window": w, "sparsity": 1.0 - att1 / datt, "flop_speedup": datt / att1,
            "na": dense / prod("vmax", lambda col: col[0]),
            "blocked": dense / prod("vmax", lambda col: col[-1]),
            "gna": dense / math.prod(int(a[s - 1, STAT_INDEX["vmax"]]) for a, s in zip(per_axis, best)),
            "gna_stride": best,
            "gna_block_sparse": all(a[s - 1, STAT_INDEX["vsum"]] == a[s - 1, STAT_INDEX["fsum"]]
                                    for a, s in zip(per_axis, best)),
        })
    rows.sort(key=lambda r: r["sparsity"])
    return rows


def sparsity_figure(config: GNAConfig, mode: str = "static", points: int = 24):
    """Speedup bound vs sparsity on one layout: FLOP bound, NA, GNA and blocked attention."""
    go = plotly_go()
    rows = sparsity_curves(config, mode, points)
    x = [100 * r["sparsity"] for r in rows]
    base = (f"layout {format_tile(config.input_size)}, dilation {format_tile(config.dilation)}, "
            f"causal {'x'.join(str(int(v)) for v in config.causal)}, Q tile "
            f"{format_tile(config.q_tile)}, KV tile {format_tile(config.kv_tile)}, {mode} KV tiling")
    fig = go.Figure()
    series = (("flop_speedup", "FLOP bound", "black", "dash", lambda r: "any stride"),
              ("na", "NA (stride 1)", "#d62728", "solid", lambda r: format_tile((1,) * len(r["window"]))),
              ("gna", "GNA (best stride)", "#2ca02c", "solid", lambda r: format_tile(r["gna_stride"])
               + (" (block-sparse)" if r["gna_block_sparse"] else "")),
              ("blocked", "blocked (stride = window)", "#9467bd", "solid",
               lambda r: format_tile(r["window"])))
    for key, name, colour, dash, stride_of in series:
        fig.add_trace(go.Scatter(
            x=x, y=[r[key] for r in rows], mode="lines+markers", name=name,
            line=dict(color=colour, dash=dash), marker=dict(size=6),
            hovertext=[f"{name}<br>window {format_tile(r['window'])}, stride {stride_of(r)}<br>"
                       f"sparsity {100 * r['sparsity']:.1f}%, bound {r[key]:.3f}<br>{base}"
                       for r in rows], hoverinfo="text"))
    fig.update_layout(
        title=dict(text=f"Speedup bound vs sparsity<br><sup>{base}; windows are multiples of "
                        "the KV tile</sup>"),
        xaxis=dict(title="sparsity (%)"), yaxis=dict(title="speedup bound (x)", type="log"),
        template="plotly_white", legend=dict(orientation="h", y=-0.2), height=600, width=900)
    return fig


# -- writing ---------------------------------------------------------------------------------------

def kaleido_available() -> bool:
    from importlib.util import find_spec

    return find_spec("kaleido") is not None


def plotly_js_mode(plotly_js: str) -> bool | str:
    """plotly's ``include_plotlyjs`` for ``plotly_js`` ("inline" or "cdn")."""
    if plotly_js not in PLOTLY_JS:
        raise ConfigError(f"plotly_js: '{plotly_js}' is not one of {list(PLOTLY_JS)}")
    return PLOTLY_JS[plotly_js]


def write_figure(fig, html: str | os.PathLike, png: str | os.PathLike | None = None,
                 plotly_js: str = "inline") -> list[Path]:
    """Write an HTML file and, if asked, a PNG (kaleido), each atomically
    (:func:`gnasim.files.atomic_write`). ``plotly_js="inline"`` embeds plotly.js (4.9 MB, opens
    offline); ``"cdn"`` loads it from plotly's CDN (a small file; needs the network to open)."""
    include = plotly_js_mode(plotly_js)
    html = Path(html)
    if html.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"out: '{html.name}' must end in .html")
    check_output_path(html, "out")
    if png is not None:
        png = check_output_path(png, "png")
        if png.suffix.lower() != ".png":
            raise ConfigError(f"png: '{png.name}' must end in .png")
        if not kaleido_available():
            raise GnasimError("png: writing PNG needs the kaleido package (pip install kaleido); "
                              "nothing was written")
    atomic_write(html, lambda tmp: fig.write_html(
        str(tmp), include_plotlyjs=include, full_html=True, config={"responsive": True}))
    written = [html]
    if png is not None:
        atomic_write(png, lambda tmp: fig.write_image(str(tmp), format="png"), label="png")
        written.append(png)
    return written
