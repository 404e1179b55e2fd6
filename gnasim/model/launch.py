"""The parameter-free structure of a kernel launch, from per-axis tile statistics.

A launch is what the tile plan says about one kernel run, before any efficiency: how many CTAs
(one per Q tile that visits a KV tile, per batch and head), how many unmasked and masked tiles
the mean CTA runs, the CTA classes that can be the longest, the compulsory HBM traffic and the
bytes a token permutation moves. Every one of these is a product over axes of per-axis numbers
(the GNA mask is an AND of per-axis masks), so :func:`build_launch` takes per-axis facts and is
the one place these formulas live: ``predict`` gives it one configuration's ints, the sweep
gives it numpy arrays with one value per row, and the arithmetic is the same.

Masking policy decides which tiles are masked: ``all`` masks every tile, ``all-or-none`` every
visited tile unless NATTEN's fast-path predicate holds, ``partial-only`` the partial tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import reduce
from operator import mul
from typing import Any

import numpy as np

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.hardware.profile import HardwareProfile
from gnasim.hardware.tiles import backward_tiles, resolve_tiles
from gnasim.model.kernel import ResolvedKernel, resolve_kernel
from gnasim.plan.cache import BoundedCache
from gnasim.plan.fast_path import natten_fast_path
from gnasim.plan.backward import BackwardAxisPlan, BackwardPlan, backward_plan
from gnasim.plan.tiling import AxisPlan, TilePlan, axis_plan, tile_plan

# launch caches: keyed by the (immutable) plans' parameters, bounded like the plan caches
CACHE_SIZE = 4096


@dataclass(frozen=True)
class AxisFacts:
    """One axis of a launch: tile sums, Q and KV tiles, Q tiles that visit a KV tile, and the
    (full, visited) tiles of the axis's CTA classes no other class dominates (``front_full``,
    ``front_vis``). Ints and tuples for one configuration; per-row arrays (fronts ``(N, K)``) for
    many. ``length``, ``q_tile`` and ``kv_tile`` are always ints."""

    length: int
    q_tile: int
    kv_tile: int
    dilation: Any
    vsum: Any
    fsum: Any
    vmax: Any
    qt: Any
    kvt: Any
    nz: Any
    front_full: Any
    front_vis: Any


_axis_cache: BoundedCache[tuple, AxisFacts] = BoundedCache(CACHE_SIZE)


def axis_key(ap: AxisPlan) -> tuple:
    """The parameters that determine a planned axis."""
    return (ap.length, ap.window, ap.stride, ap.dilation, ap.causal, ap.q_tile, ap.kv_tile, ap.mode)


def axis_facts(ap: AxisPlan) -> AxisFacts:
    """The facts of one planned axis (cached by its parameters: plans are immutable)."""
    key = axis_key(ap)
    hit = _axis_cache.get(key)
    if hit is None:
        nz, ff, fv = ap.front()
        hit = _axis_cache.put(key, AxisFacts(
            ap.length, ap.q_tile, ap.kv_tile, ap.dilation, ap.visited_sum, ap.full_sum,
            ap.visited_max, ap.dilation * ap.q_tiles_per_group,
            ap.dilation * ap.kv_tiles_per_group, nz, ff, fv))
    return hit


@dataclass(frozen=True)
class LaunchShape:
    """What the tile plan says about a launch (or one per row, as arrays): CTAs, the mean CTA's
    unmasked and masked tiles, the CTA classes that can be longest (``front_u``/``front_m``:
    tuples, or ``(N, K)`` arrays), the most tiles of one CTA, Q tiles reading each KV tile, and
    bytes. Tile shape, head dims and dtype size are the same for every row."""

    q_rows: Any
    kv_rows: Any
    head_dim: Any
    head_dim_v: Any
    dtype_bytes: Any
    ctas: Any
    mean_u: Any
    mean_m: Any
    front_u: Any
    front_m: Any
    max_tiles: Any
    kv_reuse: Any
    hbm_bytes: Any
    permute_bytes: Any
    masked_pairs: Any
    tile_pairs: Any
    mask_all: Any
    rank: Any = 1               # axes of the layout the mask is computed over
    fused_masking: Any = False  # masks an unpermuted layout (coordinates from flat indices)
    gemm_dim: Any = None        # GEMM dims per score element: d + d_v forward, 3 d + 2 d_v backward
    hbm_passes: Any = 1.0       # compulsory traffic in units of Q, K, V, O once (backward: 2)

    def __post_init__(self) -> None:
        if self.gemm_dim is None:
            object.__setattr__(self, "gemm_dim", self.head_dim + self.head_dim_v)


def _prod(values) -> Any:
    return reduce(mul, values)


def _front_product(axes: list[AxisFacts]) -> tuple[Any, Any]:
    full, vis = axes[0].front_full, axes[0].front_vis
    if isinstance(full, np.ndarray):
        n = len(full)
        full, vis = full.astype(np.float64), vis.astype(np.float64)   # exact below 2**53
        for a in axes[1:]:
            full = (full[:, :, None] * a.front_full[:, None, :]).reshape(n, -1)
            vis = (vis[:, :, None] * a.front_vis[:, None, :]).reshape(n, -1)
        return full, vis
    for a in axes[1:]:
        full = tuple(x * y for x in full for y in a.front_full)
        vis = tuple(x * y for x in vis for y in a.front_vis)
    # one launch: keep only the classes no other dominates (fewer terms in the solver's maximum)
    keep: list[tuple[int, int]] = []
    for f, v in sorted(zip(full, vis), key=lambda c: (-c[0], -(c[1] - c[0]))):
        if not keep or v - f > keep[-1][1] - keep[-1][0]:
            keep.append((f, v))
    return tuple(f for f, _ in keep), tuple(v for _, v in keep)


def masks_every_tile(masking: str, fast: Any) -> Any:
    """The masking-policy decision: does the kernel mask every visited tile?"""
    if masking == "all":
        return fast | True
    if masking == "all-or-none":
        return ~fast if isinstance(fast, np.ndarray) else not fast
    return fast & False


def hbm_bytes(batch: int, dtype_bytes: int, heads: int, kv_heads: int, dd: int, q_tokens: Any,
              kv_tokens: Any) -> Any:
    """Compulsory HBM traffic: Q and K/V read once, O written once (padded layouts)."""
    return batch * dtype_bytes * (q_tokens * heads * dd + kv_tokens * kv_heads * dd)


def permute_moved(batch: int, dtype_bytes: int, heads: int, kv_heads: int, head_dim: int,
                  head_dim_v: int, tokens: int, q_pad: Any, kv_pad: Any) -> Any:
    """Bytes a token permutation moves: Q, K, V copied in (and padded), O copied out."""
    return batch * dtype_bytes * ((tokens + q_pad) * heads * head_dim
                                  + (tokens + kv_pad) * kv_heads * (head_dim + head_dim_v)
                                  + (q_pad + tokens) * heads * head_dim_v)


def build_launch(axes: list[AxisFacts], config: GNAConfig, masking: str, token_permute: bool,
                 fast: Any) -> LaunchShape:
    """A launch from per-axis facts (ints or per-row arrays), for ``config``'s batch, heads, dims
    and dtype (its per-axis options are those of ``axes``). ``fast``: NATTEN's fast-path
    predicate (a bool or per-row bools)."""
    many = isinstance(axes[0].vsum, np.ndarray)
    f64 = (lambda x: np.asarray(x, dtype=np.float64)) if many else float
    i64 = (lambda x: np.asarray(x).astype(np.int64)) if many else int
    where = np.where if many else (lambda c, a, b: a if c else b)
    hb = config.batch * config.heads
    vsum, fsum = _prod(a.vsum for a in axes), _prod(a.fsum for a in axes)
    qt, kvt = _prod(a.qt for a in axes), _prod(a.kvt for a in axes)
    ctas = _prod(a.nz for a in axes) * hb
    mask_all = masks_every_tile(masking, fast)
    vmax = _prod(a.vmax for a in axes)
    # every tile masked, or no partial tile: the CTA with the most tiles is the longest
    one_class = mask_all | (vsum == fsum)
    if one_class.all() if many else one_class:
        front_u = where(mask_all, 0.0, f64(vmax))
        front_m = where(mask_all, f64(vmax), 0.0)
        front_u, front_m = ((front_u[:, None], front_m[:, None]) if many
                            else ((front_u,), (front_m,)))
    else:
        full, vis = _front_product(axes)
        if many:
            front_u = np.where(mask_all[:, None], 0.0, full)
            front_m = np.where(mask_all[:, None], vis, vis - full)
        elif mask_all:
            front_u, front_m = tuple(0 for _ in full), vis
        else:
            front_u, front_m = full, tuple(v - f for v, f in zip(vis, full))
    q_rows = math.prod(a.q_tile for a in axes)
    kv_rows = math.prod(a.kv_tile for a in axes)
    b, e, h, hk = config.batch, config.dtype_bytes, config.heads, config.kv_heads
    d, dv = config.head_dim, config.dim_v
    perm = np.zeros(len(vsum)) if many else 0.0
    if token_permute:
        q_pad, kv_pad = qt * q_rows, kvt * kv_rows
        n = config.tokens
        spans = all(a.q_tile == a.length and a.kv_tile == a.length for a in axes[1:])
        undilated = _prod([a.dilation == 1 for a in axes])
        identity = undilated & (q_pad == n) & (kv_pad == n) & spans
        perm = where(identity, 0.0, f64(permute_moved(b, e, h, hk, d, dv, n, q_pad, kv_pad)))
    masked = where(mask_all, vsum, vsum - fsum)
    return LaunchShape(
        q_rows, kv_rows, d, dv, e, ctas=i64(ctas),
        mean_u=where(mask_all, 0.0, f64(fsum * hb) / f64(ctas)),
        mean_m=f64(masked * hb) / f64(ctas),
        front_u=front_u, front_m=front_m, max_tiles=f64(vmax),
        kv_reuse=np.maximum(1.0, f64(vsum) / np.maximum(f64(kvt), 1.0)) if many
        else max(1.0, vsum / max(kvt, 1)),
        hbm_bytes=f64(hbm_bytes(b, e, h, hk, d + dv, qt * q_rows, kvt * kv_rows)),
        permute_bytes=perm, masked_pairs=i64(masked * hb), tile_pairs=i64(vsum * hb),
        mask_all=mask_all, rank=len(axes), fused_masking=not token_permute)


def stack_launches(shapes: list[LaunchShape]) -> LaunchShape:
    """One launch per row from launches of one configuration each (fronts padded by repeating
    a class): what the calibration fit evaluates in one call."""
    k = max(len(s.front_u) for s in shapes)
    pad = lambda t: list(t) + [t[0]] * (k - len(t))
    ints = ("q_rows", "kv_rows", "head_dim", "head_dim_v", "dtype_bytes", "ctas", "masked_pairs",
            "tile_pairs", "rank", "gemm_dim")
    bools = ("mask_all", "fused_masking")
    out = {f: np.array([getattr(s, f) for s in shapes],
                       dtype=np.int64 if f in ints else bool if f in bools else np.float64)
           for f in LaunchShape.__dataclass_fields__ if f not in ("front_u", "front_m")}
    return LaunchShape(**out, front_u=np.array([pad(s.front_u) for s in shapes], dtype=np.float64),
                       front_m=np.array([pad(s.front_m) for s in shapes], dtype=np.float64))


_fast_cache: BoundedCache[tuple, bool] = BoundedCache(CACHE_SIZE)
_shape_cache: BoundedCache[tuple, LaunchShape] = BoundedCache(CACHE_SIZE)


def fast_path(config: GNAConfig) -> bool:
    """NATTEN's fast-path predicate of a configuration (cached)."""
    key = (config.input_size, config.window_size, config.stride, config.dilation, config.causal,
           config.q_tile, config.kv_tile)
    hit = _fast_cache.get(key)
    if hit is None:
        hit = _fast_cache.put(key, natten_fast_path(config))
    return hit


def launch_shape(config: GNAConfig, plan: TilePlan, rk: ResolvedKernel,
                 fast: bool | None = None) -> LaunchShape:
    """The launch of a tiled (GNA or dense-as-GNA) kernel over a tile plan (cached)."""
    fast = fast_path(config) if fast is None else fast
    key = (tuple(axis_key(a) for a in plan.axes), rk.masking, rk.token_permute, fast, config.batch, config.heads,
           config.kv_heads, config.head_dim, config.dim_v, config.dtype)
    hit = _shape_cache.get(key)
    if hit is None:
        hit = _shape_cache.put(key, build_launch([axis_facts(a) for a in plan.axes], config,
                                                       rk.masking, rk.token_permute, fast))
    return hit


def permute_bytes(config: GNAConfig, plan: TilePlan) -> float:
    """Bytes moved by token permutation and padding (zero when the permuted layout is the input
    layout: no dilation, no padding, every tile spanning every axis but the first)."""
    return build_launch([axis_facts(a) for a in plan.axes], config, "partial-only", True,
                        False).permute_bytes


def flat_config(config: GNAConfig, rows: tuple[int, int]) -> GNAConfig | None:
    """Self attention on ``config``'s problem as one flat sequence tiled by ``rows`` (None: causal
    masking on more than one axis cannot be flattened)."""
    causal_axes = [ax for ax, c in enumerate(config.causal) if c]
    if causal_axes and (len(causal_axes) > 1 or any(
            L > 1 for ax, L in enumerate(config.input_size) if ax != causal_axes[0])):
        return None
    n = config.tokens
    return config.model_copy(update={
        "input_size": (n,), "window_size": (n,), "stride": (1,), "dilation": (1,),
        "causal": (bool(causal_axes),), "q_tile": (rows[0],), "kv_tile": (rows[1],)})


def dense_launch_shape(config: GNAConfig, rk: ResolvedKernel,
                       rows: tuple[int, int] | None = None) -> LaunchShape | None:
    """A dense kernel on the self-attention problem as one flat sequence, with ``rows``
    (stationary, iterated) per CTA, by default the kernel's dense tile (None: it cannot run it,
    i.e. causal masking on more than one axis)."""
    rows = rows if rows is not None else rk.dense_rows(config.head_dim)
    flat = flat_config(config, rows) if rows is not None else None
    if flat is None:
        return None
    n, causal = flat.input_size[0], flat.causal[0]
    plan = TilePlan((axis_plan(n, n, 1, 1, causal, rows[0], rows[1], "static"),))
    dense_rk = replace(rk, masking="partial-only", token_permute=False)
    return launch_shape(flat, plan, dense_rk, fast=not causal)


# -- the backward pass ---------------------------------------------------------------------------
BACKWARD_HBM_PASSES = 2.0    # reads Q, K, V, O, dO and writes dQ, dK, dV: twice the forward's


def backward_gemm_dim(head_dim: int, head_dim_v: int) -> int:
    """GEMM dims per score element of the backward pass: S = Q K^T (d), dP = dO V^T (d_v),
    dV += P^T dO (d_v), dK += dS^T Q (d), dQ += dS K (d)."""
    return 3 * head_dim + 2 * head_dim_v


def backward_kernel(rk: ResolvedKernel) -> ResolvedKernel:
    """The backward pass of an implementation, as a kernel of its own family ``FAMILY/bwd``."""
    km = rk.model.backward
    if km is None:
        raise ConfigError(f"backward: the runtime model has no backward pass for '{rk.name}'")
    km = km.model_copy(update={"family": f"{rk.family}/bwd",
                               "dense_only": km.dense_only or rk.dense_only})
    return replace(rk, model=km)


def as_backward(shape: LaunchShape) -> LaunchShape:
    """A KV-stationary launch with the backward pass's GEMMs, traffic and no permutation (the
    forward pass's permuted layout is reused)."""
    zero = shape.permute_bytes * 0.0
    return replace(shape, gemm_dim=backward_gemm_dim(shape.head_dim, shape.head_dim_v),
                   hbm_passes=BACKWARD_HBM_PASSES, permute_bytes=zero)


def backward_axis_facts(ap: BackwardAxisPlan) -> AxisFacts:
    """One axis of a KV-stationary launch: the stationary (CTA) side is the KV tile."""
    nz, ff, fv = ap.front()
    return AxisFacts(ap.length, ap.kv_tile, ap.q_tile, ap.dilation, ap.visited_sum, ap.full_sum,
                     ap.visited_max, ap.dilation * ap.kv_tiles_per_group,
                     ap.dilation * ap.q_tiles_per_group, nz, ff, fv)


def backward_launch_shape(config: GNAConfig, plan: BackwardPlan, rk: ResolvedKernel) -> LaunchShape:
    """The backward launch of a GNA kernel over its KV-stationary plan (``rk``: the backward
    kernel). Its ``q_rows`` are the stationary KV tile's rows, ``kv_rows`` the iterated Q tile's."""
    return as_backward(build_launch([backward_axis_facts(a) for a in plan.axes], config,
                                    rk.masking, rk.token_permute, fast_path(config)))


def dense_backward_shape(config: GNAConfig, rk: ResolvedKernel) -> LaunchShape | None:
    """The backward pass of a dense kernel on the problem as one flat sequence (``rk``: the
    backward kernel, whose tile reads Q rows / KV rows; self attention is symmetric, so the
    KV-stationary launch is the forward launch's structure with KV rows stationary)."""
    tile = rk.dense_rows(config.head_dim)
    shape = None if tile is None else dense_launch_shape(config, rk, (tile[1], tile[0]))
    return None if shape is None else as_backward(shape)


# -- one measured implementation on one problem (calibration and compare) --------------------
@dataclass(frozen=True)
class Launch:
    """An implementation on a problem, bound to the model: the launch shape and, for GNA runs,
    the tile plans and the kernel's own dense launch (for explanations)."""

    kernel: ResolvedKernel
    config: GNAConfig
    shape: LaunchShape
    plan: TilePlan | None = None
    dense_plan: TilePlan | None = None
    own_dense: LaunchShape | None = None

    @property
    def tile_bound(self) -> float | None:
        if self.plan is None or self.dense_plan is None:
            return None
        return self.dense_plan.kv_tiles_visited_max / self.plan.kv_tiles_visited_max


def launch_for(config: GNAConfig, profile: HardwareProfile, implementation: str,
               masking: str | None = None, kv_tiling: str | None = None,
               backward: bool = False) -> Launch:
    """Bind an implementation run on a problem to the model (its backward pass with
    ``backward``).

    Self attention (window = layout) on a kernel with a ``dense_tile`` and no tiles given runs as
    one flat sequence with that tile; anything else runs the kernel's tile plan (tiles from the
    config, else the kernel's default).
    """
    rk = resolve_kernel(profile, implementation, masking, kv_tiling)
    if backward:
        return backward_launch_for(config, rk)
    dense = (config.window_size == config.input_size and all(s == 1 for s in config.stride)
             and all(d == 1 for d in config.dilation))
    if rk.dense_only and not dense:
        if not sliding_window(config):
            raise ConfigError(f"window: implementation '{rk.name}' runs self attention or a 1-D "
                              "sliding window only")
        config = config.with_tiles(*[(r,) for r in rk.dense_rows(config.head_dim)])
    if dense and (rk.dense_only or (not config.has_tiles
                                   and rk.dense_rows(config.head_dim) is not None)):
        shape = dense_launch_shape(config, rk)
        if shape is None:
            if rk.dense_only:
                raise ConfigError(f"causal: '{rk.name}' cannot run causal masking on several axes")
            raise ConfigError(f"q_tile: '{rk.name}' runs causal self attention on several axes "
                              "tiled, not as one sequence; give q_tile and kv_tile")
        return Launch(rk, config, shape)
    if not config.has_tiles:
        if rk.kernel is None:
            raise ConfigError(f"q_tile: implementation '{rk.name}' has no default tile shape; "
                              "give q_tile and kv_tile")
        config, _ = resolve_tiles(config, rk.kernel)
    plan = tile_plan(config, rk.kv_tiling)
    dense_plan = tile_plan(config.dense(), rk.kv_tiling)
    shape = launch_shape(config, plan, rk)
    own = launch_shape(config.dense(), dense_plan, rk, fast=None if any(config.causal) else True)
    return Launch(rk, config, shape, plan, dense_plan, own)


def sliding_window(config: GNAConfig) -> bool:
    """A 1-D window without stride or dilation: what dense kernels run as a sliding window
    (cuDNN's and FlashAttention's left/right window), tiled like self attention."""
    return config.rank == 1 and config.stride == (1,) and config.dilation == (1,)


def backward_launch_for(config: GNAConfig, rk: ResolvedKernel) -> Launch:
    """The backward pass of an implementation on a problem: dense kernels as one flat sequence,
    GNA kernels over the KV-stationary plan with the config's tiles (else the kernel's default
    backward tiles)."""
    brk = backward_kernel(rk)
    dense = (config.window_size == config.input_size and all(s == 1 for s in config.stride)
             and all(d == 1 for d in config.dilation))
    if dense and brk.dense_rows(config.head_dim) is not None and not config.has_tiles:
        shape = dense_backward_shape(config, brk)
        if shape is None:
            raise ConfigError(f"causal: '{rk.name}' cannot run causal masking on several axes "
                              "as one sequence")
        return Launch(brk, config, shape)
    if brk.dense_only:
        if not sliding_window(config):
            raise ConfigError(f"window: implementation '{rk.name}' runs self attention or a 1-D "
                              "sliding window only")
        q_rows, kv_rows = brk.dense_rows(config.head_dim)
        bq, bkv = (q_rows,), (kv_rows,)
    elif rk.kernel is None:
        raise ConfigError(f"backward: implementation '{rk.name}' has no backward tile shapes")
    else:
        if not config.has_tiles:
            config, _ = resolve_tiles(config, rk.kernel)
        bq, bkv, _ = backward_tiles(config, rk.kernel, None, None)
    plan = backward_plan(config, bq, bkv)
    return Launch(brk, config, backward_launch_shape(config, plan, brk))
