"""The runtime model's arithmetic: a launch's time on one GPU, and why (written once).

From first principles plus the efficiency parameters of a hardware profile (``[model]``):

* **One tile** (a Q tile against a KV tile) costs the p-norm (``overlap_sharpness``) of three
  times: its MMAs (``2 q k (d + d_v)`` FLOPs at ``tensor_efficiency`` of the SM's tensor peak),
  its softmax (one exp2 per score element on the MUFU, plus ``softmax_ops_per_element`` FP32-lane
  operations) and its K/V load (``k (d + d_v)`` bytes from HBM, shared by the resident CTAs that
  read the same KV tile). A *masked* tile adds ``mask_ops_per_element`` lane operations per score
  element to the softmax side.
* **One CTA** costs its unmasked and masked tiles plus ``cta_overhead_us``; CTAs are scheduled
  over the SMs in waves (``ceil(n / SMs)`` waves of the mean CTA, never less than the longest).
* **One launch** adds ``launch_latency_us`` and is never faster than its compulsory HBM traffic.
  The clock falls from the datasheet clock towards ``sustained_clock_fraction`` of it as a kernel
  keeps running (time constant ``clock_time_constant_ms``): long measured runs are power-limited.
* **Token permutation** moves Q, K, V in and O out at ``permute_bandwidth_share`` of HBM bandwidth.
* **The dense baseline** is a named dense kernel with its own tile, schedule and efficiencies.

Every function takes a :class:`~gnasim.model.launch.LaunchShape` of one launch (floats) or of many
(numpy arrays, one value per row) and does the same elementwise arithmetic on either: the helper
namespace (:data:`SCALAR` or :data:`ARRAY`) is picked once per call; ``**`` is Python's power
on floats and numpy's on arrays (they agree to about 1e-16 relative). Parameters
(:class:`~gnasim.model.kernel.ModelParams`, :class:`~gnasim.model.kernel.Rates`) may be arrays
too (the calibration fit evaluates every row in one call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, NamedTuple

import numpy as np

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError, GnasimError
from gnasim.hardware.profile import HardwareProfile
from gnasim.model.kernel import ModelParams, Rates, ResolvedKernel, baseline_name, resolve_kernel, runtime_model
from gnasim.plan.cache import BoundedCache
from gnasim.model.launch import (CACHE_SIZE, LaunchShape, axis_key, backward_kernel,
                                 backward_launch_shape, dense_backward_shape, dense_launch_shape,
                                 launch_shape)
from gnasim.plan.backward import BackwardPlan
from gnasim.model.uncertainty import Certainty, certainty
from gnasim.plan.tiling import TilePlan

BOUNDS = ("tensor", "exp", "memory", "latency")


class SCALAR:
    """Elementwise helpers on Python floats."""

    maximum = staticmethod(max)
    exp = staticmethod(math.exp)
    any = staticmethod(bool)

    @staticmethod
    def where(cond: bool, a: Any, b: Any) -> Any:
        return a if cond else b

    @staticmethod
    def ratio(a: float, b: float) -> float:
        """``a / b``, 0 where ``b`` is not positive."""
        return a / b if b > 0 else 0.0

    @staticmethod
    def front_max(fu: tuple, fm: tuple, t_u: float, t_m: float) -> float:
        if len(fu) == 1:
            return fu[0] * t_u + fm[0] * t_m
        return max(u * t_u + m * t_m for u, m in zip(fu, fm))

    @staticmethod
    def argmax(values: dict[str, float]) -> str:
        return max(values, key=values.get)


class ARRAY:
    """The same helpers on numpy arrays."""

    exp = staticmethod(np.exp)
    any = staticmethod(np.any)
    where = staticmethod(np.where)

    @staticmethod
    def maximum(*xs: Any) -> np.ndarray:
        return reduce(np.maximum, xs)

    @staticmethod
    def ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        pos = b > 0
        return np.where(pos, a / np.where(pos, b, 1.0), 0.0)

    @staticmethod
    def front_max(fu: np.ndarray, fm: np.ndarray, t_u: Any, t_m: Any) -> np.ndarray:
        out = fu * np.reshape(t_u, (-1, 1))
        out += fm * np.reshape(t_m, (-1, 1))
        return out.max(axis=1)

    @staticmethod
    def argmax(values: dict[str, np.ndarray]) -> np.ndarray:
        stacked = np.stack(np.broadcast_arrays(*(values[k] for k in BOUNDS)), axis=1)
        return np.array(BOUNDS, dtype=object)[np.argmax(stacked, axis=1)]


def ops_for(value: Any) -> type:
    """The helper namespace for a launch's values (arrays or floats)."""
    return ARRAY if isinstance(value, np.ndarray) else SCALAR


class Solved(NamedTuple):
    """Seconds of one model evaluation (floats or arrays)."""

    total: Any
    f: Any
    t_u: Any
    t_m: Any
    mean: Any
    cmax: Any
    makespan: Any
    t_mma: Any
    t_sfx: Any
    t_msk: Any
    t_it: Any
    t_ld: Any
    mem_s: Any
    over: Any
    launch: Any


def solve(shape: LaunchShape, p: ModelParams, rates: Rates, clock: bool = True,
          overheads: bool = True, memory: bool = True, mma_shape: bool = True,
          iteration: bool = True) -> Solved:
    """The time of a launch under the model, with the sustained clock, the overheads (CTA,
    launch), memory (K/V loads, HBM floor), the MMA instruction's shape and share of the peak,
    and the fixed cost per KV-tile iteration each switched on or off (the explanation steps)."""
    ops = ops_for(shape.ctas)
    dd = shape.head_dim + shape.head_dim_v
    elems = shape.q_rows * shape.kv_rows * 1.0
    eff = p.tensor_efficiency
    if mma_shape:
        rows = ops.where(shape.q_rows < p.mma_rows, shape.q_rows / p.mma_rows, 1.0)
        eff = eff * p.mma_share * rows
    t_mma0 = 2.0 * elems * shape.gemm_dim / (rates.tensor_flops_sm * eff)
    t_sfx0 = elems * (1.0 / rates.exp_sm + p.softmax_ops_per_element / rates.lanes_sm)
    coords = p.coordinate_ops_per_axis * (shape.rank - 1) * shape.fused_masking
    t_msk0 = elems * (p.mask_ops_per_element + coords) / rates.lanes_sm
    t_it0 = p.iteration_cycles / rates.clock_hz if iteration else 0.0
    t_ld = mem_s = 0.0
    if memory:
        share = ops.where(shape.kv_reuse < rates.sms, shape.kv_reuse, rates.sms * 1.0)
        t_ld = (shape.kv_rows * dd * shape.dtype_bytes * rates.sms
                / (share * rates.hbm_bytes_s * p.memory_efficiency))
        mem_s = shape.hbm_bytes * shape.hbm_passes / (rates.hbm_bytes_s * p.memory_efficiency)
    waves = -(-shape.ctas // rates.sms)
    over = p.cta_overhead_us * 1e-6 if overheads else 0.0
    launch = p.launch_latency_us * 1e-6 if overheads else 0.0
    sharp = p.overlap_sharpness
    inv_p = 1.0 / sharp
    maximum, front_max = ops.maximum, ops.front_max
    mean_u, mean_m, front_u, front_m = shape.mean_u, shape.mean_m, shape.front_u, shape.front_m

    def evaluate(f: Any) -> tuple:
        t_mma, t_sfx, t_msk, t_it = t_mma0 / f, t_sfx0 / f, t_msk0 / f, t_it0 / f
        t_sm = t_sfx + t_msk
        # tile times: smooth maxima (p-norms) of MMA, softmax (+ mask) and load times, plus the
        # iteration's fixed cost, which the MMAs do not hide
        top = maximum(t_mma, t_sfx, t_ld)
        t_u = top * ((t_mma / top) ** sharp + (t_sfx / top) ** sharp
                     + (t_ld / top) ** sharp) ** inv_p + t_it
        top = maximum(t_mma, t_sm, t_ld)
        t_m = top * ((t_mma / top) ** sharp + (t_sm / top) ** sharp
                     + (t_ld / top) ** sharp) ** inv_p + t_it
        mean = mean_u * t_u + mean_m * t_m + over
        cmax = front_max(front_u, front_m, t_u, t_m) + over
        makespan = maximum(waves * mean, cmax)
        return (maximum(makespan, mem_s) + launch, f, t_u, t_m, mean, cmax, makespan, t_mma,
                t_sfx, t_msk, t_it)

    f = 1.0 if ops is SCALAR else np.ones(np.shape(shape.ctas))
    res = evaluate(f)
    if clock:
        s, tau = p.sustained_clock_fraction, p.clock_time_constant_ms * 1e-3
        exp, where, anything = ops.exp, ops.where, ops.any
        for _ in range(20):
            # rows whose clock has settled keep it (and so their time): the fixed point per row
            f_new = s + (1.0 - s) * exp(-res[0] / tau)
            move = abs(f_new - f) >= 1e-6
            if not anything(move):
                break
            f = where(move, f_new, f)
            res = evaluate(f)
    return Solved(*res, t_ld, mem_s, over, launch)


def time_ms(shape: LaunchShape, p: ModelParams, rates: Rates) -> Any:
    """Only the predicted time of a launch (ms)."""
    return solve(shape, p, rates).total * 1e3


def tile_makespan(shape: LaunchShape, sms: Any) -> Any:
    """Makespan in tile-times when every tile costs the same and nothing else costs anything."""
    waves = -(-shape.ctas // sms)
    return ops_for(shape.ctas).maximum(waves * (shape.mean_u + shape.mean_m), shape.max_tiles)


def permute_time_ms(shape: LaunchShape, p: ModelParams, rates: Rates) -> Any:
    """Time of the token permutation (and padding) around the launch, 0 when it needs none."""
    ops = ops_for(shape.permute_bytes)
    return ops.where(shape.permute_bytes > 0,
                     shape.permute_bytes / (rates.hbm_bytes_s * p.permute_bandwidth_share) * 1e3,
                     0.0)


@dataclass(frozen=True)
class KernelTime:
    """The predicted time of a launch and where it goes (floats, or arrays per row)."""

    time_ms: Any
    clock_fraction: Any
    ctas: Any
    waves: Any
    tile_us: Any
    masked_tile_us: Any
    cta_us_mean: Any
    cta_us_max: Any
    makespan_ms: Any
    memory_ms: Any
    components_ms: dict[str, Any]
    bound: Any

    @property
    def mask_factor(self) -> Any:
        return self.masked_tile_us / self.tile_us


def kernel_time(shape: LaunchShape, p: ModelParams, rates: Rates) -> KernelTime:
    """Time of a launch (forward pass) under the given parameters, and where it goes."""
    ops = ops_for(shape.ctas)
    r = solve(shape, p, rates)
    waves_eff = ops.ratio(r.makespan, r.mean)
    tiles = shape.mean_u + shape.mean_m
    comp = {
        "tensor": waves_eff * tiles * r.t_mma * 1e3,
        "exp": waves_eff * (tiles * r.t_sfx + shape.mean_m * r.t_msk) * 1e3,
        "memory": ops.maximum(waves_eff * tiles * r.t_ld, r.mem_s) * 1e3,
        "latency": (r.launch + waves_eff * (r.over + tiles * r.t_it)) * 1e3,
    }
    return KernelTime(r.total * 1e3, r.f, shape.ctas, shape.ctas / rates.sms, r.t_u * 1e6,
                      r.t_m * 1e6, r.mean * 1e6, r.cmax * 1e6, r.makespan * 1e3, r.mem_s * 1e3,
                      comp, ops.argmax(comp))


# -- the dense side and the explanation --------------------------------------------------------
@dataclass(frozen=True)
class DenseSide:
    """What a prediction needs of the dense side, the same for every GNA config with the same
    dense problem on one kernel: the kernel's own dense launch under the explanation's model
    steps, and the baseline's time. Fields are arrays when stacked per row (:meth:`take`)."""

    step_s: dict[str, Any]  # own dense launch under each model step (:func:`step_times`)
    tile_makespan: Any      # ... in tile-times
    dense: KernelTime      # the baseline launch
    baseline: Any
    notes: tuple[str, ...] = ()

    @staticmethod
    def take(sides: list["DenseSide"], which: np.ndarray) -> "DenseSide":
        """Per row ``i``, the values of ``sides[which[i]]`` (as arrays)."""
        pick = lambda get: np.array([get(s) for s in sides])[which]
        d = {f: pick(lambda s, f=f: getattr(s.dense, f)) for f in KernelTime.__dataclass_fields__
             if f != "components_ms"}
        d["components_ms"] = {k: pick(lambda s, k=k: s.dense.components_ms[k]) for k in BOUNDS}
        steps = {k: pick(lambda s, k=k: s.step_s[k]) for k in MODEL_STEPS}
        return DenseSide(steps, pick(lambda s: s.tile_makespan), KernelTime(**d),
                         np.array([s.baseline for s in sides], dtype=object)[which])


# the explanation's model steps, each switching one more feature of :func:`solve` on
MODEL_STEPS = ("masking", "mma_shape", "iteration", "overheads", "clock")


def step_times(shape: LaunchShape, p: ModelParams, rates: Rates) -> dict[str, Any]:
    """Seconds of a launch under each model step: ``masking`` (tile costs from tensor and softmax
    throughput at the kernel's efficiency, masked tiles dearer), ``mma_shape`` (the MMA
    instruction's share of the peak and the Q rows it needs), ``iteration`` (the fixed cost per
    KV-tile iteration), ``overheads`` (CTA overhead, launch, K/V loads, the HBM floor), ``clock``
    (the sustained clock): the last is the prediction."""
    return {
        "masking": solve(shape, p, rates, False, False, False, False, False).total,
        "mma_shape": solve(shape, p, rates, False, False, False, True, False).total,
        "iteration": solve(shape, p, rates, False, False, False, True, True).total,
        "overheads": solve(shape, p, rates, False, True, True, True, True).total,
        "clock": solve(shape, p, rates).total,
    }


def make_side(own_dense: LaunchShape, p: ModelParams, base: LaunchShape, base_p: ModelParams,
              rates: Rates, baseline: str, notes: tuple[str, ...] = ()) -> DenseSide:
    return DenseSide(step_times(own_dense, p, rates), tile_makespan(own_dense, rates.sms),
                     kernel_time(base, base_p, rates), baseline, notes)


_dense_cache: BoundedCache[tuple, tuple[HardwareProfile, Any, DenseSide]] = \
    BoundedCache(CACHE_SIZE)


def dense_side(config: GNAConfig, dense_plan: TilePlan, profile: HardwareProfile,
               rk: ResolvedKernel, baseline: str | None = None,
               certain: Certainty | None = None) -> DenseSide:
    """The dense side of a prediction (cached by the dense problem; ``profile`` by identity);
    ``certain``'s warning, if any, joins its notes."""
    key = (id(profile), id(rk.model), rk.name, rk.masking, rk.token_permute, baseline,
           tuple(axis_key(a) for a in dense_plan.axes),
           config.tokens, config.causal, config.batch, config.heads, config.kv_heads,
           config.head_dim, config.dim_v, config.dtype)
    hit = _dense_cache.get(key)
    if hit is not None and hit[0] is profile and hit[1] is rk.model:   # identities: no stale ids
        return hit[2]
    rm = runtime_model(profile)
    rates = Rates.of(profile, config.dtype)
    own_dense = launch_shape(config.dense(), dense_plan, rk,
                             fast=None if any(config.causal) else True)
    brk = resolve_kernel(profile, baseline or baseline_name(profile))
    base = dense_launch_shape(config, brk) if brk.dense_rows(config.head_dim) else None
    base_model, base_name, notes = brk.model, brk.name, ()
    if base is None:
        base, base_model, base_name = own_dense, rk.model, f"{rk.name} (dense)"
        notes = (f"baseline {brk.name} cannot run this causal pattern; "
                 f"{rk.name} with window = layout is the baseline",)
    warning = certain.warning(rk.name, profile.name) if certain is not None else None
    notes += (warning,) if warning else ()
    side = make_side(own_dense, ModelParams.of(rk.model, rm), base,
                     ModelParams.of(base_model, rm), rates, base_name, notes)
    _dense_cache.put(key, (profile, rk.model, side))
    return side


def speedup_steps(tile_bound: Any, side: DenseSide, tile_makespan: Any,
                  gna_s: dict[str, Any], permute_ms: Any) -> tuple[dict, dict]:
    """Speedup from the tile bound to the prediction, one model feature at a time, and the
    factors between the steps. Each step is a ratio dense / GNA under the model with one more
    feature on: ``waves`` (real CTA schedule, every tile the same cost), then the
    :data:`MODEL_STEPS` (:func:`step_times`; the GNA kernel run dense on the dense side),
    ``baseline`` (the named dense kernel instead of this kernel run dense), ``permute``
    (permutation added). The factors multiply exactly to the predicted speedup."""
    steps = {"tile_bound": tile_bound, "waves": side.tile_makespan / tile_makespan}
    steps.update({k: side.step_s[k] / gna_s[k] for k in MODEL_STEPS})
    time_ms = gna_s["clock"] * 1e3
    steps["baseline"] = side.dense.time_ms / time_ms
    steps["permute"] = side.dense.time_ms / (time_ms + permute_ms)
    names = list(steps)
    factors = {n: steps[n] / steps[names[i - 1]] for i, n in enumerate(names) if i > 0}
    return factors, steps


# -- one prediction with its explanation -------------------------------------------------------
@dataclass(frozen=True)
class RuntimePrediction:
    """Predicted times on one GPU, the realistic speedups, and the factors between bound and them
    (floats for one configuration, arrays for a sweep chunk)."""

    kernel: str
    baseline: Any
    gna: KernelTime
    dense: KernelTime
    permute_ms: Any
    factors: dict[str, Any]
    speedups: dict[str, Any]
    masked_tiles: Any
    tile_pairs: Any
    mask_all: Any
    notes: tuple[str, ...] = field(default=())
    certainty: Certainty | None = None      # calibration status and 90% intervals

    @property
    def time_ms(self) -> Any:
        return self.gna.time_ms

    @property
    def total_ms(self) -> Any:
        return self.gna.time_ms + self.permute_ms

    @property
    def speedup(self) -> Any:
        return self.dense.time_ms / self.gna.time_ms

    @property
    def speedup_with_permute(self) -> Any:
        return self.dense.time_ms / self.total_ms


def predict_launch(kernel: str, shape: LaunchShape, side: DenseSide, p: ModelParams,
                   rates: Rates, tile_bound: Any, certain: Certainty | None = None
                   ) -> RuntimePrediction:
    """The prediction for a GNA launch (or one per row) against its dense side."""
    g = kernel_time(shape, p, rates)
    perm = permute_time_ms(shape, p, rates)
    factors, steps = speedup_steps(tile_bound, side, tile_makespan(shape, rates.sms),
                                   step_times(shape, p, rates), perm)
    return RuntimePrediction(kernel, side.baseline, g, side.dense, perm, factors, steps,
                             shape.masked_pairs, shape.tile_pairs, shape.mask_all, side.notes,
                             certain)


class Prepared(NamedTuple):
    """What every GNA launch of one kernel on one dense problem shares."""

    kernel: ResolvedKernel
    params: ModelParams
    rates: Rates
    side: DenseSide
    certainty: Certainty | None = None


def prepare(config: GNAConfig, dense_plan: TilePlan, profile: HardwareProfile,
            kernel: str | None = None, baseline: str | None = None) -> Prepared:
    """The kernel, its parameters, the GPU's rates and the dense side for ``config``'s problem
    (raises a GnasimError when the model cannot predict it)."""
    rk = resolve_kernel(profile, kernel)
    if rk.dense_only:
        raise ConfigError(f"kernel: '{rk.name}' runs self attention only, not GNA")
    key = (id(profile), id(rk.model), config.dtype, baseline)
    hit = _params_cache.get(key)
    if hit is None or hit[0] is not profile or hit[1] is not rk.model:   # identities: no stale ids
        hit = _params_cache.put(key, (profile, rk.model, ModelParams.of(
            rk.model, runtime_model(profile)), Rates.of(profile, config.dtype),
            prediction_certainty(profile, rk, baseline or baseline_name(profile))))
    side = dense_side(config, dense_plan, profile, rk, baseline, hit[4])
    return Prepared(rk, hit[2], hit[3], side, hit[4])


def prediction_certainty(profile: HardwareProfile, rk: ResolvedKernel, baseline: str
                         ) -> Certainty | None:
    """Calibration status and intervals of a kernel against a baseline on a profile (None when
    the family model cannot be read, e.g. a profile path without one)."""
    try:
        base = resolve_kernel(profile, baseline)
    except GnasimError:
        return None
    return certainty(profile, rk.family, base.family)


_params_cache: BoundedCache[tuple, tuple] = BoundedCache(CACHE_SIZE)


def predict_runtime(config: GNAConfig, plan: TilePlan, dense_plan: TilePlan,
                    profile: HardwareProfile, kernel: str | None = None,
                    tile_bound: float | None = None, baseline: str | None = None,
                    fast: bool | None = None) -> RuntimePrediction:
    """The runtime prediction for a simulated configuration (tiles set) on a profile."""
    prep = prepare(config, dense_plan, profile, kernel, baseline)
    if tile_bound is None:
        tile_bound = dense_plan.kv_tiles_visited_max / plan.kv_tiles_visited_max
    return predict_launch(prep.kernel.name, launch_shape(config, plan, prep.kernel, fast),
                          prep.side, prep.params, prep.rates, tile_bound, prep.certainty)


def explain(gna: LaunchShape, own_dense: LaunchShape, base: LaunchShape, p: ModelParams,
            base_p: ModelParams, rates: Rates, tile_bound: float, permute_ms: float
            ) -> tuple[dict[str, float], dict[str, float], KernelTime, KernelTime]:
    """:func:`speedup_steps` for a measured GNA launch against a measured baseline launch."""
    side = make_side(own_dense, p, base, base_p, rates, "")
    g = kernel_time(gna, p, rates)
    factors, steps = speedup_steps(tile_bound, side, tile_makespan(gna, rates.sms),
                                   step_times(gna, p, rates), permute_ms)
    return factors, steps, g, side.dense


# -- the backward pass -----------------------------------------------------------------------
@dataclass(frozen=True)
class BackwardPrediction:
    """Predicted backward-pass times of a GNA kernel and of the dense baseline's backward."""

    kernel: str
    baseline: str
    time_ms: float
    dense_time_ms: float
    certainty: Certainty | None = None

    @property
    def speedup(self) -> float:
        return self.dense_time_ms / self.time_ms


def predict_backward(config: GNAConfig, plan: BackwardPlan, profile: HardwareProfile,
                     kernel: str | None = None, baseline: str | None = None) -> BackwardPrediction:
    """The backward pass over its KV-stationary plan (dQ, dK, dV GEMMs, the recomputed softmax,
    the dQ accumulation in the per-iteration cost) against the baseline's dense backward."""
    rm, rates = runtime_model(profile), Rates.of(profile, config.dtype)
    rk = backward_kernel(resolve_kernel(profile, kernel))
    brk = backward_kernel(resolve_kernel(profile, baseline or baseline_name(profile)))
    gna = time_ms(backward_launch_shape(config, plan, rk), ModelParams.of(rk.model, rm), rates)
    dense = dense_backward_shape(config, brk)
    if dense is None:
        raise ConfigError(f"causal: the baseline {brk.name} cannot run this causal pattern's "
                          "backward pass as one sequence")
    dense_ms = time_ms(dense, ModelParams.of(brk.model, rm), rates)
    try:
        certain = certainty(profile, rk.family, brk.family)
    except GnasimError:
        certain = None
    return BackwardPrediction(rk.name, brk.name, float(gna), float(dense_ms), certain)
