"""The runtime model: predicted kernel, permutation and total time on one GPU, and why.

From first principles plus the efficiency parameters of a hardware profile (``[model]``):

* **One tile** (a Q tile against a KV tile) costs the p-norm (``overlap_sharpness``) of three
  times: its MMAs (``2 q k (d + d_v)`` FLOPs at ``tensor_efficiency`` of the SM's tensor peak),
  its softmax (one exp2 per score element on the MUFU, plus ``softmax_ops_per_element`` FP32-lane
  operations) and its K/V load (``k (d + d_v)`` bytes from HBM, shared by the resident CTAs that
  read the same KV tile). A *masked* tile adds ``mask_ops_per_element`` lane operations per score
  element to the softmax side.
* **Masking policy** of the kernel decides which tiles are masked: ``all-or-none`` (NATTEN Hopper
  and Blackwell) masks every visited tile unless NATTEN's fast-path predicate holds,
  ``partial-only`` (Flex) masks the partial tiles, ``all`` (Ampere) masks every tile.
* **One CTA** (one Q tile of one head of one batch) costs its unmasked and masked tiles plus
  ``cta_overhead_us``. The exact per-Q-tile (full, partial) histogram of the tile plan gives every
  CTA class; CTAs are scheduled over the SMs in waves (``floor(n / SMs)`` full waves of the mean
  CTA, a tail wave, never less than the longest CTA).
* **One launch** adds ``launch_latency_us`` and is never faster than its compulsory HBM traffic.
  The clock falls from the datasheet clock towards ``sustained_clock_fraction`` of it as a kernel
  keeps running (time constant ``clock_time_constant_ms``): long measured runs are power-limited.
* **Token permutation** (and padding) moves Q, K, V in and O out at ``permute_bandwidth_share`` of
  HBM bandwidth; a 1-D, non-dilated, unpadded problem needs none.
* **The dense baseline** is a named dense kernel (``cudnn-sdpa`` unless the profile says otherwise)
  with its own tile, schedule and efficiencies, on the same problem as one flat sequence.

Nothing here is fitted per case: the same parameters serve every configuration on a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError, HardwareProfileError
from gnasim.plan.fast_path import natten_fast_path
from gnasim.hardware.profile import HardwareProfile, Kernel, KernelModel, RuntimeModel
from gnasim.plan.tiling import TilePlan, axis_plan, tile_plan

DEFAULT_BASELINE = "cudnn-sdpa"
BOUNDS = ("tensor", "exp", "memory", "latency")

# Uncalibrated dense baselines per architecture, from the kernels' own tile tables (hardware.md
# 4.5: cuDNN sm90 flash fprop 2 x 64 Q rows x 128 KV, persistent; sm100 2 x 128 Q rows x 128 KV,
# non-persistent; FlashAttention-2 on Ampere/Ada 128 x 64).
_DENSE_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "hopper": ("128/128", "persistent", "cuDNN SDPA flash forward, sm90 (2 x 64 Q rows, persistent)"),
    "blackwell": ("256/128", "non-persistent", "cuDNN SDPA flash forward, sm100 (2 x 128 Q rows)"),
    "ampere": ("128/64", "non-persistent", "FlashAttention-2 style dense kernel (128 x 64)"),
    "ada": ("128/64", "non-persistent", "FlashAttention-2 style dense kernel (128 x 64)"),
}
_DENSE_NAMES = ("cudnn-sdpa", "torch-sdpa", "cudnn", "sdpa")


# -- resolving an implementation name to a kernel and its parameters ---------------------------
@dataclass(frozen=True)
class ResolvedKernel:
    """An implementation on a GPU: its efficiency parameters and its tiling / masking behaviour."""

    name: str
    model: KernelModel
    kernel: Kernel | None
    masking: str
    kv_tiling: str
    token_permute: bool
    dense_only: bool

    @property
    def dense_rows(self) -> tuple[int, int] | None:
        return self.model.dense_rows()


def runtime_model(profile: HardwareProfile) -> RuntimeModel:
    """The profile's ``[model]`` section, or the uncalibrated defaults when it has none."""
    return profile.model if profile.model is not None else RuntimeModel()


def baseline_name(profile: HardwareProfile) -> str:
    return runtime_model(profile).baseline or DEFAULT_BASELINE


def _default_dense_model(profile: HardwareProfile) -> KernelModel:
    tile, schedule, desc = _DENSE_DEFAULTS.get(profile.architecture, _DENSE_DEFAULTS["ampere"])
    return KernelModel(description=desc, dense_tile=tile, dense_only=True, schedule=schedule)


def _model_key(profile: HardwareProfile, name: str) -> str | None:
    rm = runtime_model(profile)
    key = name.strip()
    if key in rm.kernels:
        return key
    low = key.lower()
    for k, km in rm.kernels.items():
        if k.lower() == low or low in (a.lower() for a in km.aliases):
            return k
    return None


def resolve_kernel(profile: HardwareProfile, name: str | None = None, masking: str | None = None,
                   kv_tiling: str | None = None) -> ResolvedKernel:
    """An implementation by model name, alias, profile kernel name (``natten-`` prefix allowed) or
    a known dense name; ``masking`` / ``kv_tiling`` override its behaviour (a measurement row's
    columns), and describe an implementation the profile does not know.
    """
    name = (name or profile.default_kernel).strip()
    rm = runtime_model(profile)
    by_name = {k.name: k for k in profile.kernels}
    key = _model_key(profile, name)
    kern = by_name.get(key) if key else None
    if key is None:
        kern = by_name.get(name) or by_name.get(name.lower().removeprefix("natten-"))
        if kern is not None:
            key = _model_key(profile, kern.name)
    if kv_tiling and kv_tiling not in ("static", "dynamic"):
        raise ConfigError(f"kv_tiling: '{kv_tiling}' is not one of ['static', 'dynamic']")
    if key is not None:
        km, label = rm.kernels[key], key
    elif kern is not None:
        km, label = KernelModel(), kern.name
    elif name.lower() in _DENSE_NAMES or name.lower() == baseline_name(profile).lower():
        km, label = _default_dense_model(profile), name
    elif masking and kv_tiling:
        km, label = KernelModel(masking=normalise_masking(masking), kv_tiling=kv_tiling), name
    else:
        raise HardwareProfileError(
            f"implementation: '{name}' is not a kernel of profile '{profile.name}' "
            f"(kernels {[k.name for k in profile.kernels]}, model entries {list(rm.kernels)}); "
            "give its masking and kv_tiling")
    if km.dense_only:
        pol, tiling, permute = "partial-only", "static", False
    else:
        pol = km.masking or (kern.masking if kern is not None else "partial-only")
        tiling = km.kv_tiling or (kern.kv_tiling if kern is not None else "static")
        if km.token_permute is not None:
            permute = km.token_permute
        else:
            permute = kern.token_permute if kern is not None else tiling == "static"
        if masking:
            pol = normalise_masking(masking)
        if kv_tiling:
            tiling = kv_tiling
    return ResolvedKernel(label, km, kern, pol, tiling, permute, km.dense_only)


def normalise_masking(value: str) -> str:
    """Masking column values: ``partial`` / ``partial-only``, ``all``, ``all-or-none``."""
    v = value.strip().lower()
    table = {"partial": "partial-only", "partial-only": "partial-only", "all": "all",
             "all-or-none": "all-or-none", "none": "partial-only"}
    if v not in table:
        raise ConfigError(f"masking: '{value}' is not one of partial, partial-only, all, all-or-none")
    return table[v]


# -- the parameter-free structure of one launch ------------------------------------------------
@dataclass(frozen=True)
class LaunchShape:
    """What the tile plan says about one kernel launch: CTA classes and bytes, no efficiencies.

    ``unmasked[i]`` / ``masked[i]`` are the tiles a CTA of class ``i`` runs without and with the
    element mask (after the kernel's masking policy), ``counts[i]`` the CTAs of the class over
    batch x heads (dilation groups are inside the Q tiles).
    """

    kernel: str
    q_rows: int
    kv_rows: int
    head_dim: int
    head_dim_v: int
    dtype: str
    dtype_bytes: int
    unmasked: np.ndarray
    masked: np.ndarray
    counts: np.ndarray
    persistent: bool
    hbm_bytes: float
    kv_reuse: float
    masking: str
    mask_all: bool
    permute_bytes: float = 0.0
    notes: tuple[str, ...] = ()

    @property
    def ctas(self) -> int:
        return int(self.counts.sum())

    @property
    def tile_pairs(self) -> int:
        return int((self.counts * (self.unmasked + self.masked)).sum())

    @property
    def masked_pairs(self) -> int:
        return int((self.counts * self.masked).sum())

    @cached_property
    def per_cta(self) -> tuple[int, float, float, tuple[tuple[float, float], ...]]:
        """CTAs, mean unmasked and masked tiles per CTA, and the CTA classes that can be longest."""
        n = float(self.counts.sum())
        mean_u = float((self.counts * self.unmasked).sum()) / n
        mean_m = float((self.counts * self.masked).sum()) / n
        # only classes no other class dominates (more unmasked and more masked tiles) can be the
        # longest CTA, whatever the tile costs
        # walk the classes by unmasked tiles, then masked tiles, both descending; keep a class when
        # it has more masked tiles than every class before it
        u, m = np.asarray(self.unmasked), np.asarray(self.masked)
        order = np.lexsort((-m, -u))
        us, ms = u[order], m[order]
        before = np.maximum.accumulate(np.concatenate([[-np.inf], ms[:-1]]))
        keep = ms > before
        front = tuple(zip(us[keep].tolist(), ms[keep].tolist()))
        return int(n), mean_u, mean_m, front

    @property
    def flops(self) -> float:
        return 2.0 * self.tile_pairs * self.q_rows * self.kv_rows * (self.head_dim + self.head_dim_v)

    def uniform(self) -> "LaunchShape":
        """The same launch with every tile costed as unmasked (for explanations)."""
        return replace(self, unmasked=self.unmasked + self.masked, masked=self.masked * 0)


def _schedule_persistent(rk: ResolvedKernel, config: GNAConfig | None, plan: TilePlan | None) -> bool:
    if rk.model.schedule is not None:
        return rk.model.schedule == "persistent"
    if rk.kernel is not None and plan is not None and config is not None:
        ts = rk.kernel.tile_set_for((plan.q_tile, plan.kv_tile), config.head_dim)
        if ts is not None:
            return ts.schedule != "non-persistent"
    return False


_CACHE_MAX = 4096
_axis_cache: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
_plan_cache: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _axis_key(a) -> tuple:
    return (a.length, a.window, a.stride, a.dilation, a.causal, a.q_tile, a.kv_tile, a.mode)


def _remember(cache: dict, key: tuple, value):
    if len(cache) >= _CACHE_MAX:
        cache.pop(next(iter(cache)))
    cache[key] = value
    return value


def plan_classes(plan: TilePlan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(full, partial, Q tiles) per class of Q tile: the outer product of the per-axis
    (visited, full) distributions (the same numbers as ``full_partial_histogram``, classes with
    equal counts not merged). Cached by the axes' parameters: plans are immutable."""
    key = tuple(_axis_key(a) for a in plan.axes)
    hit = _plan_cache.get(key)
    if hit is not None:
        return hit
    vis = full = cnt = np.ones(1)
    for a in plan.axes:
        k = _axis_key(a)
        ax = _axis_cache.get(k)
        if ax is None:
            pairs, counts = a.pair_counts()
            ax = _remember(_axis_cache, k, (pairs[:, 0].astype(np.float64),
                                            pairs[:, 1].astype(np.float64),
                                            counts.astype(np.float64)))
        vis = np.multiply.outer(vis, ax[0]).ravel()
        full = np.multiply.outer(full, ax[1]).ravel()
        cnt = np.multiply.outer(cnt, ax[2]).ravel()
    keep = cnt > 0
    return _remember(_plan_cache, key, (full[keep], (vis - full)[keep], cnt[keep]))


_shape_cache: dict[tuple, "LaunchShape"] = {}
_fast_cache: dict[tuple, bool] = {}


def _fast_path(config: GNAConfig) -> bool:
    key = (config.input_size, config.window_size, config.stride, config.dilation, config.causal,
           config.q_tile, config.kv_tile)
    hit = _fast_cache.get(key)
    if hit is None:
        hit = _remember(_fast_cache, key, natten_fast_path(config))
    return hit


def launch_shape(config: GNAConfig, plan: TilePlan, rk: ResolvedKernel,
                 fast_path: bool | None = None) -> LaunchShape:
    """The launch of a tiled (GNA or dense-as-GNA) kernel over a tile plan (cached: immutable)."""
    if rk.masking == "all":
        mask_all = True
    elif rk.masking == "all-or-none":
        mask_all = not (_fast_path(config) if fast_path is None else fast_path)
    else:
        mask_all = False
    key = (tuple(_axis_key(a) for a in plan.axes), rk.name, rk.masking, rk.token_permute,
           rk.model.schedule, mask_all, config.batch, config.heads, config.kv_heads,
           config.head_dim, config.dim_v, config.dtype)
    hit = _shape_cache.get(key)
    if hit is not None:
        return hit
    full, part, cnt = plan_classes(plan)
    if mask_all:
        unmasked, masked = np.zeros_like(full), full + part
    else:
        unmasked, masked = full, part
    keep = (unmasked + masked) > 0
    hb = config.batch * config.heads
    axes = plan.axes
    q_rows = math.prod(a.q_tile for a in axes)
    kv_rows = math.prod(a.kv_tile for a in axes)
    q_tiles = math.prod(a.dilation * a.q_tiles_per_group for a in axes)
    kv_tiles = math.prod(a.dilation * a.kv_tiles_per_group for a in axes)
    visited = math.prod(a.visited_sum for a in axes)
    reuse = visited / max(kv_tiles, 1)          # Q tiles reading each KV tile (per head)
    shape = LaunchShape(
        kernel=rk.name, q_rows=q_rows, kv_rows=kv_rows, head_dim=config.head_dim,
        head_dim_v=config.dim_v, dtype=config.dtype, dtype_bytes=config.dtype_bytes,
        unmasked=unmasked[keep], masked=masked[keep], counts=cnt[keep] * hb,
        persistent=_schedule_persistent(rk, config, plan),
        hbm_bytes=_hbm_bytes(config, q_tiles * q_rows, kv_tiles * kv_rows),
        kv_reuse=float(max(1.0, reuse)), masking=rk.masking, mask_all=mask_all,
        permute_bytes=permute_bytes(config, plan) if rk.token_permute else 0.0)
    return _remember(_shape_cache, key, shape)


def _hbm_bytes(config: GNAConfig, q_tokens: int, kv_tokens: int) -> float:
    """Compulsory HBM traffic: Q and K/V read once, O written once (padded layouts)."""
    b, e = config.batch, config.dtype_bytes
    return float(b * e * (q_tokens * config.heads * (config.head_dim + config.dim_v)
                          + kv_tokens * config.kv_heads * (config.head_dim + config.dim_v)))


def permute_bytes(config: GNAConfig, plan: TilePlan) -> float:
    """Bytes moved by token permutation and padding: Q, K, V copied in, O copied out.

    Zero when the permuted layout is the input layout: no dilation, no padding, and every tile
    spans the whole extent of every axis but the first (a 1-D non-dilated unpadded problem).
    """
    axes = plan.axes
    q_pad = math.prod(a.padded_q_length for a in axes)
    kv_pad = math.prod(a.padded_kv_length for a in axes)
    n = config.tokens
    identity = (all(a.dilation == 1 for a in axes) and q_pad == n and kv_pad == n
                and all(a.q_tile == a.length and a.kv_tile == a.length for a in axes[1:]))
    if identity:
        return 0.0
    b, e = config.batch, config.dtype_bytes
    d, dv, h, hk = config.head_dim, config.dim_v, config.heads, config.kv_heads
    moved = ((n + q_pad) * h * d                      # Q in
             + (n + kv_pad) * hk * (d + dv)           # K and V in
             + (q_pad + n) * h * dv)                  # O out
    return float(b * e * moved)


def dense_launch_shape(config: GNAConfig, rk: ResolvedKernel) -> LaunchShape | None:
    """A dense kernel on the self-attention problem as one flat sequence (None: it cannot run it,
    i.e. causal masking on more than one axis)."""
    rows = rk.dense_rows
    if rows is None:
        return None
    causal_axes = [ax for ax, c in enumerate(config.causal) if c]
    if causal_axes and (len(causal_axes) > 1 or any(
            L > 1 for ax, L in enumerate(config.input_size) if ax != causal_axes[0])):
        return None
    n = config.tokens
    causal = bool(causal_axes)
    key = ("dense", n, causal, rows, rk.name, rk.model.schedule, config.batch, config.heads,
           config.kv_heads, config.head_dim, config.dim_v, config.dtype)
    hit = _shape_cache.get(key)
    if hit is not None:
        return hit
    ap = axis_plan(n, n, 1, 1, causal, rows[0], rows[1], "static")
    plan = TilePlan((ap,))
    flat = config.model_copy(update={
        "input_size": (n,), "window_size": (n,), "stride": (1,), "dilation": (1,),
        "causal": (causal,), "q_tile": (rows[0],), "kv_tile": (rows[1],)})
    dense_rk = replace(rk, masking="partial-only", token_permute=False)
    return _remember(_shape_cache, key, launch_shape(flat, plan, dense_rk, fast_path=not causal))


# -- rates of the GPU and the time of one launch -----------------------------------------------
@dataclass(frozen=True)
class Rates:
    """Per-SM throughputs at the datasheet clock (``clock_ghz``)."""

    sms: int
    clock_hz: float
    tensor_flops_sm: float
    exp_sm: float
    lanes_sm: float
    hbm_bytes_s: float

    @classmethod
    def of(cls, hw: HardwareProfile, dtype: str) -> "Rates":
        clock = hw.clock_ghz * 1e9
        lane_clock = (hw.boost_clock_ghz or hw.clock_ghz) * 1e9
        lanes_per_clk = hw.fp32_tflops * 1e12 / (2.0 * hw.sm_count * lane_clock)
        return cls(hw.sm_count, clock, hw.tensor_flops(dtype) / hw.sm_count,
                   hw.exp2_per_clk_per_sm * clock, lanes_per_clk * clock,
                   hw.memory_bandwidth_gbs * 1e9)


@dataclass(frozen=True)
class KernelTime:
    """The predicted time of one launch and where it goes."""

    time_ms: float
    clock_fraction: float
    ctas: int
    waves: float
    tile_us: float
    masked_tile_us: float
    cta_us_mean: float
    cta_us_max: float
    makespan_ms: float
    memory_ms: float
    components_ms: dict[str, float]
    bound: str

    @property
    def mask_factor(self) -> float:
        return self.masked_tile_us / self.tile_us


def _pnorm(values: tuple[float, float, float], p: float) -> float:
    """Smooth maximum: how far three concurrent pipes overlap (p = 1: not at all; large: fully)."""
    a, b, c = values
    top = max(a, b, c)
    if top <= 0:
        return 0.0
    return top * ((a / top) ** p + (b / top) ** p + (c / top) ** p) ** (1.0 / p)


def _solve(shape: LaunchShape, km: KernelModel, rm: RuntimeModel, rates: Rates,
           derate_clock: bool, overheads: bool, memory: bool = True) -> tuple:
    """The arithmetic of :func:`kernel_time` (seconds); plain floats, called often by the fit."""
    dd = shape.head_dim + shape.head_dim_v
    elems = float(shape.q_rows * shape.kv_rows)
    t_mma0 = 2.0 * elems * dd / (rates.tensor_flops_sm * km.tensor_efficiency)
    t_sfx0 = elems * (1.0 / rates.exp_sm + km.softmax_ops_per_element / rates.lanes_sm)
    t_msk0 = elems * km.mask_ops_per_element / rates.lanes_sm
    mem_eff = km.memory_efficiency
    share = min(shape.kv_reuse, float(rates.sms))
    t_ld = shape.kv_rows * dd * shape.dtype_bytes * rates.sms / (share * rates.hbm_bytes_s * mem_eff)
    if not memory:
        t_ld = 0.0
    p = km.overlap_sharpness
    n, mean_u, mean_m, front = shape.per_cta
    full_waves, rem = divmod(n, rates.sms)
    waves = full_waves + (1 if rem else 0)
    mem_s = shape.hbm_bytes / (rates.hbm_bytes_s * mem_eff) if memory else 0.0
    over = km.cta_overhead_us * 1e-6 if overheads else 0.0
    launch = rm.launch_latency_us * 1e-6 if overheads else 0.0
    inv_p = 1.0 / p

    def evaluate(f: float) -> tuple:
        t_mma, t_sfx = t_mma0 / f, t_sfx0 / f
        t_sm = t_sfx + t_msk0 / f
        top = max(t_mma, t_sfx, t_ld)
        t_u = top * ((t_mma / top) ** p + (t_sfx / top) ** p + (t_ld / top) ** p) ** inv_p
        top = max(t_mma, t_sm, t_ld)
        t_m = top * ((t_mma / top) ** p + (t_sm / top) ** p + (t_ld / top) ** p) ** inv_p
        mean = mean_u * t_u + mean_m * t_m + over
        cmax = max(u * t_u + m * t_m for u, m in front) + over
        makespan = waves * mean
        if cmax > makespan:
            makespan = cmax
        total = (makespan if makespan > mem_s else mem_s) + launch
        return total, f, t_u, t_m, mean, cmax, makespan, t_mma, t_sfx, t_msk0 / f

    res = evaluate(1.0)
    if derate_clock:
        s, tau = rm.sustained_clock_fraction, rm.clock_time_constant_ms * 1e-3
        f = 1.0
        for _ in range(20):
            f_new = s + (1.0 - s) * math.exp(-res[0] / tau)
            if abs(f_new - f) < 1e-6:
                break
            f = f_new
            res = evaluate(f)
    return res + (t_ld, mem_s, over, launch, n, mean_u, mean_m)


def kernel_time(shape: LaunchShape, km: KernelModel, rm: RuntimeModel, rates: Rates,
                *, derate_clock: bool = True, overheads: bool = True) -> KernelTime:
    """Time of one launch (forward pass) under the given parameters, and where it goes."""
    (total, f, t_u, t_m, mean, cmax, makespan, t_mma, t_sfx, t_msk,
     t_ld, mem_s, over, launch, n, mean_u, mean_m) = _solve(shape, km, rm, rates, derate_clock,
                                                             overheads)
    waves_eff = makespan / mean if mean > 0 else 0.0
    tiles = mean_u + mean_m
    comp = {
        "tensor": waves_eff * tiles * t_mma * 1e3,
        "exp": waves_eff * (tiles * t_sfx + mean_m * t_msk) * 1e3,
        "memory": max(waves_eff * tiles * t_ld, mem_s) * 1e3,
        "latency": (launch + waves_eff * over) * 1e3,
    }
    bound = max(comp, key=comp.get)
    return KernelTime(total * 1e3, f, n, n / rates.sms, t_u * 1e6, t_m * 1e6, mean * 1e6,
                      cmax * 1e6, makespan * 1e3, mem_s * 1e3, comp, bound)


def time_ms(shape: LaunchShape, km: KernelModel, rm: RuntimeModel, rates: Rates,
            derate_clock: bool = True, overheads: bool = True) -> float:
    """Only the predicted time of one launch (ms)."""
    return _solve(shape, km, rm, rates, derate_clock, overheads)[0] * 1e3


def _tile_makespan(shape: LaunchShape, sms: int) -> float:
    """Makespan in tile-times when every tile costs the same and nothing else costs anything."""
    n, mean_u, mean_m, front = shape.per_cta
    waves = -(-n // sms)
    return max(waves * (mean_u + mean_m), max(u + m for u, m in front))


def permute_time_ms(shape: LaunchShape, km: KernelModel, rates: Rates) -> float:
    if shape.permute_bytes <= 0:
        return 0.0
    return shape.permute_bytes / (rates.hbm_bytes_s * km.permute_bandwidth_share) * 1e3


# -- one prediction with its explanation -------------------------------------------------------
@dataclass(frozen=True)
class RuntimePrediction:
    """Predicted times on one GPU, the realistic speedups, and the factors between bound and them."""

    kernel: str
    baseline: str
    gna: KernelTime
    dense: KernelTime
    permute_ms: float
    factors: dict[str, float]
    speedups: dict[str, float]
    masked_tiles: int
    tile_pairs: int
    mask_all: bool
    notes: tuple[str, ...] = field(default=())

    @property
    def time_ms(self) -> float:
        return self.gna.time_ms

    @property
    def total_ms(self) -> float:
        return self.gna.time_ms + self.permute_ms

    @property
    def speedup(self) -> float:
        return self.dense.time_ms / self.gna.time_ms

    @property
    def speedup_with_permute(self) -> float:
        return self.dense.time_ms / self.total_ms

    def to_dict(self) -> dict[str, Any]:
        g = self.gna
        return {
            "predicted_time_ms": g.time_ms,
            "predicted_dense_time_ms": self.dense.time_ms,
            "predicted_permute_ms": self.permute_ms,
            "predicted_total_ms": self.total_ms,
            "predicted_speedup": self.speedup,
            "predicted_speedup_with_permute": self.speedup_with_permute,
            "bound": g.bound,
            "dense_bound": self.dense.bound,
            "baseline": self.baseline,
            "predicted_waves": g.waves,
            "predicted_ctas": g.ctas,
            "predicted_clock_fraction": g.clock_fraction,
            "tile_time_us": g.tile_us,
            "masked_tile_time_us": g.masked_tile_us,
            "mask_cost_factor": g.mask_factor,
            "masked_tile_pairs": self.masked_tiles,
            "masks_every_tile": self.mask_all,
            "time_components_ms": dict(g.components_ms),
            "speedup_factors": dict(self.factors),
        }


def explain(gna: LaunchShape, own_dense: LaunchShape, base: LaunchShape, km: KernelModel,
            base_km: KernelModel, rm: RuntimeModel, rates: Rates, tile_bound: float,
            permute_ms: float) -> tuple[dict[str, float], dict[str, float], KernelTime, KernelTime]:
    """Speedup from the tile bound to the prediction, one model feature at a time.

    Steps (each a ratio of dense-time / GNA-time under the model with one more feature on):
    ``waves`` (real CTA schedule, every tile the same cost), ``masking`` (tile costs from tensor
    and softmax throughput, masked tiles dearer), ``overheads`` (CTA overhead, launch, K/V loads
    and the HBM floor), ``clock`` (each run at its own sustained clock), ``baseline`` (the named
    dense kernel instead of this kernel run dense), ``permute`` (permutation time added).
    """
    steps: dict[str, float] = {"tile_bound": tile_bound}

    def ratio(clock: bool, over: bool, memory: bool) -> float:
        return (_solve(own_dense, km, rm, rates, clock, over, memory)[0]
                / _solve(gna, km, rm, rates, clock, over, memory)[0])

    steps["waves"] = _tile_makespan(own_dense, rates.sms) / _tile_makespan(gna, rates.sms)
    steps["masking"] = ratio(False, False, False)
    steps["overheads"] = ratio(False, True, True)
    g = kernel_time(gna, km, rm, rates)
    d = kernel_time(base, base_km, rm, rates)
    steps["clock"] = _solve(own_dense, km, rm, rates, True, True)[0] * 1e3 / g.time_ms
    steps["baseline"] = d.time_ms / g.time_ms
    steps["permute"] = d.time_ms / (g.time_ms + permute_ms)
    names = list(steps)
    factors = {n: steps[n] / steps[names[i - 1]] for i, n in enumerate(names) if i > 0}
    return factors, steps, g, d


@dataclass(frozen=True)
class DenseSide:
    """What a prediction needs of the dense side, the same for every GNA config with the same
    dense problem (layout, causal axes, tiles, batch, heads, dims, dtype) on one kernel: the
    kernel's own dense launch under the explanation's model steps, and the baseline's time."""

    mask_s: float          # own dense launch: tile costs only (no overheads, memory or clock)
    over_s: float          # ... with overheads and memory
    full_s: float          # ... with the sustained clock too
    tile_makespan: float   # ... in tile-times
    dense: KernelTime      # the baseline launch
    baseline: str
    notes: tuple[str, ...] = ()


_dense_cache: dict[tuple, tuple[HardwareProfile, KernelModel, DenseSide]] = {}


def dense_side(config: GNAConfig, dense_plan: TilePlan, profile: HardwareProfile,
               rk: ResolvedKernel, baseline: str | None = None) -> DenseSide:
    """The dense side of a prediction (cached by the dense problem; ``profile`` by identity)."""
    key = (id(profile), id(rk.model), rk.name, rk.masking, rk.token_permute, baseline,
           tuple(_axis_key(a) for a in dense_plan.axes),
           config.tokens, config.causal, config.batch, config.heads, config.kv_heads,
           config.head_dim, config.dim_v, config.dtype)
    hit = _dense_cache.get(key)
    if hit is not None and hit[0] is profile and hit[1] is rk.model:   # identities: no stale ids
        return hit[2]
    rm = runtime_model(profile)
    rates = Rates.of(profile, config.dtype)
    km = rk.model
    notes: list[str] = []
    own_dense = launch_shape(config.dense(), dense_plan, rk,
                             fast_path=None if any(config.causal) else True)
    brk = resolve_kernel(profile, baseline or baseline_name(profile))
    base = dense_launch_shape(config, brk) if brk.dense_rows else None
    base_km = brk.model
    base_name = brk.name
    if base is None:
        base, base_km, base_name = own_dense, km, f"{rk.name} (dense)"
        notes.append(f"baseline {brk.name} cannot run this causal pattern; "
                     f"{rk.name} with window = layout is the baseline")
    side = DenseSide(_solve(own_dense, km, rm, rates, False, False, False)[0],
                     _solve(own_dense, km, rm, rates, False, True, True)[0],
                     _solve(own_dense, km, rm, rates, True, True)[0],
                     _tile_makespan(own_dense, rates.sms),
                     kernel_time(base, base_km, rm, rates), base_name, tuple(notes))
    _remember(_dense_cache, key, (profile, km, side))
    return side


def _speedup_steps(tile_bound, side: DenseSide, tile_makespan, mask_s, over_s, time_ms,
                   permute_ms) -> tuple[dict, dict]:
    """The steps of :func:`explain` and the factors between them, from the GNA launch's times
    (floats, or arrays of them: the same elementwise arithmetic either way)."""
    steps = {
        "tile_bound": tile_bound,
        "waves": side.tile_makespan / tile_makespan,
        "masking": side.mask_s / mask_s,
        "overheads": side.over_s / over_s,
        "clock": side.full_s * 1e3 / time_ms,
        "baseline": side.dense.time_ms / time_ms,
        "permute": side.dense.time_ms / (time_ms + permute_ms),
    }
    names = list(steps)
    factors = {n: steps[n] / steps[names[i - 1]] for i, n in enumerate(names) if i > 0}
    return factors, steps


def predict_runtime(config: GNAConfig, plan: TilePlan, dense_plan: TilePlan,
                    profile: HardwareProfile, kernel: str | None = None,
                    tile_bound: float | None = None, baseline: str | None = None,
                    fast_path: bool | None = None) -> RuntimePrediction:
    """The runtime prediction for a simulated configuration (tiles set) on a profile.

    The numbers are those of :func:`explain`; the dense side is cached (:func:`dense_side`) and
    :func:`predict_runtime_many` computes the same with the same arithmetic for many configs."""
    rm = runtime_model(profile)
    rk = resolve_kernel(profile, kernel)
    if rk.dense_only:
        raise ConfigError(f"kernel: '{rk.name}' runs self attention only, not GNA")
    rates = Rates.of(profile, config.dtype)
    km = rk.model
    gna = launch_shape(config, plan, rk, fast_path)
    side = dense_side(config, dense_plan, profile, rk, baseline)
    perm = permute_time_ms(gna, km, rates)
    if tile_bound is None:
        tile_bound = dense_plan.kv_tiles_visited_max / plan.kv_tiles_visited_max
    g = kernel_time(gna, km, rm, rates)
    factors, steps = _speedup_steps(
        tile_bound, side, _tile_makespan(gna, rates.sms),
        _solve(gna, km, rm, rates, False, False, False)[0],
        _solve(gna, km, rm, rates, False, True, True)[0], g.time_ms, perm)
    return RuntimePrediction(rk.name, side.baseline, g, side.dense, perm, factors, steps,
                             gna.masked_pairs, gna.tile_pairs, gna.mask_all, side.notes)


# -- many configurations at once ---------------------------------------------------------------
# The per-config part of a prediction as array code: every operation below is the elementwise
# IEEE operation the scalar code (``_solve``, ``kernel_time``, ``_tile_makespan``, ``explain``)
# does on Python floats, in the same order, so the numbers are bit for bit the same. Powers and
# exponentials are computed by Python's own ``**`` and ``math.exp`` element by element (numpy's
# SIMD versions may differ in the last bit); maxima over CTA classes are exact.

@dataclass(frozen=True)
class LaunchBatch:
    """``N`` launches of one kernel with one tile shape, head dims and dtype: per config, what
    :class:`LaunchShape` says (``per_cta``, ``kv_reuse``, bytes ...) as arrays of length ``N``.

    ``front_u`` / ``front_m`` ``(N, K)``: unmasked / masked tiles of CTA classes that include
    every class no other class dominates (the longest CTA is one of them whatever the tile costs;
    rows are padded by repeating a class). ``max_tiles``: tiles of the CTA with the most.
    """

    q_rows: int
    kv_rows: int
    head_dim: int
    head_dim_v: int
    dtype_bytes: int
    ctas: np.ndarray            # int64
    mean_u: np.ndarray
    mean_m: np.ndarray
    front_u: np.ndarray
    front_m: np.ndarray
    max_tiles: np.ndarray
    kv_reuse: np.ndarray
    hbm_bytes: np.ndarray
    permute_bytes: np.ndarray
    masked_pairs: np.ndarray    # int64
    tile_pairs: np.ndarray      # int64
    mask_all: np.ndarray        # bool

    def __len__(self) -> int:
        return len(self.ctas)

    def take(self, rows: np.ndarray) -> "LaunchBatch":
        return replace(self, **{f: getattr(self, f)[rows] for f in _BATCH_ARRAYS})

    @classmethod
    def of(cls, shapes: list[LaunchShape]) -> "LaunchBatch":
        """The batch of launch shapes that differ only per config (tiles, dims, dtype shared)."""
        s0 = shapes[0]
        for s in shapes:
            if (s.q_rows, s.kv_rows, s.head_dim, s.head_dim_v, s.dtype_bytes) != \
                    (s0.q_rows, s0.kv_rows, s0.head_dim, s0.head_dim_v, s0.dtype_bytes):
                raise ValueError("LaunchBatch.of: launches differ in tile shape, dims or dtype")
        per = [s.per_cta for s in shapes]
        k = max(len(p[3]) for p in per)
        fronts = [list(p[3]) + [p[3][0]] * (k - len(p[3])) for p in per]
        return cls(
            s0.q_rows, s0.kv_rows, s0.head_dim, s0.head_dim_v, s0.dtype_bytes,
            ctas=np.array([p[0] for p in per], dtype=np.int64),
            mean_u=np.array([p[1] for p in per], dtype=np.float64),
            mean_m=np.array([p[2] for p in per], dtype=np.float64),
            front_u=np.array([[u for u, _ in f] for f in fronts], dtype=np.float64),
            front_m=np.array([[m for _, m in f] for f in fronts], dtype=np.float64),
            max_tiles=np.array([max(u + m for u, m in p[3]) for p in per], dtype=np.float64),
            kv_reuse=np.array([s.kv_reuse for s in shapes], dtype=np.float64),
            hbm_bytes=np.array([s.hbm_bytes for s in shapes], dtype=np.float64),
            permute_bytes=np.array([s.permute_bytes for s in shapes], dtype=np.float64),
            masked_pairs=np.array([s.masked_pairs for s in shapes], dtype=np.int64),
            tile_pairs=np.array([s.tile_pairs for s in shapes], dtype=np.int64),
            mask_all=np.array([s.mask_all for s in shapes], dtype=bool))


_BATCH_ARRAYS = ("ctas", "mean_u", "mean_m", "front_u", "front_m", "max_tiles", "kv_reuse",
                 "hbm_bytes", "permute_bytes", "masked_pairs", "tile_pairs", "mask_all")


def _pow_each(x: np.ndarray, p: float) -> np.ndarray:
    """``x ** p`` elementwise with Python's float power (the scalar code's operation)."""
    return np.array([v ** p for v in x.tolist()], dtype=np.float64)


def _max3(a: np.ndarray, b: np.ndarray, c) -> np.ndarray:
    return np.maximum(np.maximum(a, b), c)


def _solve_many(b: LaunchBatch, km: KernelModel, rm: RuntimeModel, rates: Rates,
                derate_clock: bool, overheads: bool, memory: bool = True) -> dict[str, Any]:
    """:func:`_solve` for every launch of a batch (seconds; same arithmetic, same numbers)."""
    dd = b.head_dim + b.head_dim_v
    elems = float(b.q_rows * b.kv_rows)
    t_mma0 = 2.0 * elems * dd / (rates.tensor_flops_sm * km.tensor_efficiency)
    t_sfx0 = elems * (1.0 / rates.exp_sm + km.softmax_ops_per_element / rates.lanes_sm)
    t_msk0 = elems * km.mask_ops_per_element / rates.lanes_sm
    mem_eff = km.memory_efficiency
    nb = len(b)
    if memory:
        share = np.minimum(b.kv_reuse, float(rates.sms))
        num = float(b.kv_rows * dd * b.dtype_bytes * rates.sms)
        t_ld_all = num / (share * rates.hbm_bytes_s * mem_eff)
        mem_all = b.hbm_bytes / (rates.hbm_bytes_s * mem_eff)
    else:
        t_ld_all = np.zeros(nb)
        mem_all = np.zeros(nb)
    p = km.overlap_sharpness
    n = b.ctas
    waves_all = -(-n // rates.sms)
    over = km.cta_overhead_us * 1e-6 if overheads else 0.0
    launch = rm.launch_latency_us * 1e-6 if overheads else 0.0
    inv_p = 1.0 / p

    def evaluate(f: np.ndarray, rows) -> dict[str, np.ndarray]:
        t_ld, mem_s, waves = t_ld_all[rows], mem_all[rows], waves_all[rows]
        t_mma, t_sfx = t_mma0 / f, t_sfx0 / f
        t_msk = t_msk0 / f
        t_sm = t_sfx + t_msk
        top = _max3(t_mma, t_sfx, t_ld)
        t_u = top * _pow_each(_pow_each(t_mma / top, p) + _pow_each(t_sfx / top, p)
                              + _pow_each(t_ld / top, p), inv_p)
        top = _max3(t_mma, t_sm, t_ld)
        t_m = top * _pow_each(_pow_each(t_mma / top, p) + _pow_each(t_sm / top, p)
                              + _pow_each(t_ld / top, p), inv_p)
        mean = b.mean_u[rows] * t_u + b.mean_m[rows] * t_m + over
        cmax = (b.front_u[rows] * t_u[:, None] + b.front_m[rows] * t_m[:, None]).max(axis=1) + over
        makespan = waves * mean
        makespan = np.where(cmax > makespan, cmax, makespan)
        total = np.where(makespan > mem_s, makespan, mem_s) + launch
        return {"total": total, "f": f, "t_u": t_u, "t_m": t_m, "mean": mean, "cmax": cmax,
                "makespan": makespan, "t_mma": t_mma, "t_sfx": t_sfx, "t_msk": t_msk}

    every = np.arange(nb)
    res = evaluate(np.ones(nb), every)
    if derate_clock:
        s, tau = rm.sustained_clock_fraction, rm.clock_time_constant_ms * 1e-3
        f = np.ones(nb)
        active = every
        for _ in range(20):
            if not len(active):
                break
            f_new = np.array([s + (1.0 - s) * math.exp(-t / tau)
                              for t in res["total"][active].tolist()], dtype=np.float64)
            move = np.abs(f_new - f[active]) >= 1e-6
            active = active[move]
            if not len(active):
                break
            f[active] = f_new[move]
            upd = evaluate(f[active], active)
            for key, v in upd.items():
                res[key][active] = v
    res.update(t_ld=t_ld_all, mem_s=mem_all, over=over, launch=launch, n=n,
               mean_u=b.mean_u, mean_m=b.mean_m)
    return res


def kernel_time_many(b: LaunchBatch, km: KernelModel, rm: RuntimeModel,
                     rates: Rates) -> dict[str, Any]:
    """:func:`kernel_time` for every launch of a batch: the fields of :class:`KernelTime` as
    arrays (``components_ms`` a dict of arrays, ``bound`` an index into :data:`BOUNDS`)."""
    r = _solve_many(b, km, rm, rates, True, True)
    mean, makespan = r["mean"], r["makespan"]
    pos = mean > 0
    waves_eff = np.where(pos, makespan / np.where(pos, mean, 1.0), 0.0)
    tiles = r["mean_u"] + r["mean_m"]
    comp = {
        "tensor": waves_eff * tiles * r["t_mma"] * 1e3,
        "exp": waves_eff * (tiles * r["t_sfx"] + r["mean_m"] * r["t_msk"]) * 1e3,
        "memory": np.maximum(waves_eff * tiles * r["t_ld"], r["mem_s"]) * 1e3,
        "latency": (r["launch"] + waves_eff * r["over"]) * 1e3,
    }
    bound = np.argmax(np.stack([comp[k] for k in BOUNDS], axis=1), axis=1)
    t_u, t_m = r["t_u"] * 1e6, r["t_m"] * 1e6
    return {"time_ms": r["total"] * 1e3, "clock_fraction": r["f"], "ctas": r["n"],
            "waves": r["n"] / rates.sms, "tile_us": t_u, "masked_tile_us": t_m,
            "cta_us_mean": mean * 1e6, "cta_us_max": r["cmax"] * 1e6,
            "makespan_ms": makespan * 1e3, "memory_ms": r["mem_s"] * 1e3,
            "components_ms": comp, "bound": bound, "mask_factor": t_m / t_u}


def _tile_makespan_many(b: LaunchBatch, sms: int) -> np.ndarray:
    waves = -(-b.ctas // sms)
    return np.maximum(waves * (b.mean_u + b.mean_m), b.max_tiles)


def permute_time_ms_many(b: LaunchBatch, km: KernelModel, rates: Rates) -> np.ndarray:
    pos = b.permute_bytes > 0
    return np.where(pos, b.permute_bytes / (rates.hbm_bytes_s * km.permute_bandwidth_share) * 1e3,
                    0.0)


def predict_runtime_many(b: LaunchBatch, side: DenseSide, km: KernelModel, rm: RuntimeModel,
                         rates: Rates, tile_bound: np.ndarray) -> dict[str, Any]:
    """:func:`predict_runtime` for a batch of GNA launches sharing one dense side: the
    flattened :meth:`RuntimePrediction.to_dict` record as columns (arrays; ``bound`` as
    strings; constants as scalars), with the same arithmetic and so the same numbers."""
    g = kernel_time_many(b, km, rm, rates)
    perm = permute_time_ms_many(b, km, rates)
    g_ms = g["time_ms"]
    factors, _ = _speedup_steps(
        tile_bound, side, _tile_makespan_many(b, rates.sms),
        _solve_many(b, km, rm, rates, False, False, False)["total"],
        _solve_many(b, km, rm, rates, False, True, True)["total"], g_ms, perm)
    d_ms = side.dense.time_ms
    total = g_ms + perm
    out: dict[str, Any] = {
        "predicted_time_ms": g_ms,
        "predicted_dense_time_ms": d_ms,
        "predicted_permute_ms": perm,
        "predicted_total_ms": total,
        "predicted_speedup": d_ms / g_ms,
        "predicted_speedup_with_permute": d_ms / total,
        "bound": np.array(BOUNDS, dtype=object)[g["bound"]],
        "dense_bound": side.dense.bound,
        "baseline": side.baseline,
        "predicted_waves": g["waves"],
        "predicted_ctas": g["ctas"],
        "predicted_clock_fraction": g["clock_fraction"],
        "tile_time_us": g["tile_us"],
        "masked_tile_time_us": g["masked_tile_us"],
        "mask_cost_factor": g["mask_factor"],
        "masked_tile_pairs": b.masked_pairs,
        "masks_every_tile": b.mask_all,
    }
    for k, v in g["components_ms"].items():
        out[f"time_components_ms.{k}"] = v
    for k, v in factors.items():
        out[f"speedup_factors.{k}"] = v
    return out


# -- one measured implementation on one problem (used by calibrate / compare) ------------------
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
               masking: str | None = None, kv_tiling: str | None = None) -> Launch:
    """Bind an implementation run on a problem to the model.

    Self attention (window = layout) on a kernel with a ``dense_tile`` and no tiles given runs as
    one flat sequence with that tile; anything else runs the kernel's tile plan (tiles from the
    config, else the kernel's default).
    """
    from gnasim.hardware.tiles import resolve_tiles

    rk = resolve_kernel(profile, implementation, masking, kv_tiling)
    dense = (config.window_size == config.input_size and all(s == 1 for s in config.stride)
             and all(d == 1 for d in config.dilation))
    if rk.dense_only and not dense:
        raise ConfigError(f"window: implementation '{rk.name}' runs self attention only "
                          f"(window must equal layout)")
    if dense and (rk.dense_only or (not config.has_tiles and rk.dense_rows is not None)):
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
    own = launch_shape(config.dense(), dense_plan, rk,
                       fast_path=None if any(config.causal) else True)
    return Launch(rk, config, shape, plan, dense_plan, own)
