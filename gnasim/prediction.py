"""One prediction: config (+ hardware profile) -> tile plans -> FLOPs, sparsity and bounds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from gnasim import record
from gnasim.advice import block_notes, natten_runs_fmha, plan_notes
from gnasim.bounds import amdahl, attention_flops, effective_fraction, flops_per_pair
from gnasim.config import GNAConfig, format_tile
from gnasim.errors import ConfigError, GnasimError
from gnasim.model.flat_launch import flat_launch_shape
from gnasim.model.launch import fast_path, flat_config
from gnasim.model.uncertainty import Interval
from gnasim.model.solve import (BackwardPrediction, RuntimePrediction, predict_backward,
                               predict_launch, predict_runtime, prepare)
from gnasim.hardware.profile import HardwareProfile, Kernel, load_profile
from gnasim.hardware.tiles import backward_tiles, resolve_tiles
from gnasim.plan.flat import FlatPlan, flat_plan
from gnasim.plan.tiling import KV_TILINGS, TilePlan, tile_plan, tile_plans
from gnasim.plan.backward import BackwardPlan, backward_flops, backward_plan


@dataclass(frozen=True)
class SimulationResult:
    """Everything gnasim computes for one configuration (all numbers are computed, none stored)."""

    config: GNAConfig
    plan: TilePlan
    dense_plan: TilePlan
    hardware: str | None
    kernel: str | None
    attention_fraction: float | None = None
    full_attention_steps: int = 0
    total_steps: int | None = None
    notes: tuple[str, ...] = field(default=())
    runtime: RuntimePrediction | None = None   # when a hardware profile was given
    backward: BackwardResult | None = None     # when simulate(..., backward=True)
    backward_runtime: BackwardPrediction | None = None   # both

    # -- FLOPs --------------------------------------------------------------------------------
    def _flops(self, pairs: int) -> int:
        c = self.config
        return attention_flops(pairs, c.batch, c.heads, c.head_dim, c.dim_v)

    @property
    def flops_dense(self) -> int:
        return self._flops(self.dense_plan.attended_pairs)

    @property
    def flops_useful(self) -> int:
        return self._flops(self.plan.attended_pairs)

    @property
    def flops_computed(self) -> int:
        p = self.plan
        return self._flops(p.tile_pairs_visited * p.q_tile_size * p.kv_tile_size)

    @property
    def flops_wasted(self) -> int:
        return self.flops_computed - self.flops_useful

    # -- bounds -------------------------------------------------------------------------------
    @property
    def sparsity(self) -> float:
        return 1.0 - self.plan.attended_pairs / self.dense_plan.attended_pairs

    @property
    def flop_speedup(self) -> float:
        """Attended pairs of self attention / attended pairs of GNA."""
        return self.dense_plan.attended_pairs / self.plan.attended_pairs

    @property
    def tile_speedup(self) -> float:
        """The paper's tile bound: self-attention KV tiles per Q tile / those of the worst Q tile."""
        return self.dense_plan.kv_tiles_visited_max / self.plan.kv_tiles_visited_max

    @property
    def tile_speedup_mean(self) -> float:
        """All self-attention tile pairs / all visited tile pairs (padding and waste included)."""
        return self.dense_plan.tile_pairs_visited / self.plan.tile_pairs_visited

    def e2e(self, speedup: float) -> float | None:
        if self.attention_fraction is None:
            return None
        return amdahl(speedup, self.attention_fraction, self.full_attention_steps, self.total_steps)

    def to_dict(self) -> dict[str, Any]:
        """The flat record printed by ``gnasim predict --format json`` (key names are a contract;
        the columns are declared in :mod:`gnasim.record`)."""
        c, p, d = self.config, self.plan, self.dense_plan
        fraction = None
        if self.attention_fraction is not None:
            fraction = effective_fraction(self.attention_fraction, self.full_attention_steps,
                                          self.total_steps)
        return record.to_dict(record.Row(
            hardware=self.hardware, kernel=self.kernel, input_size=format_tile(c.input_size),
            window_size=format_tile(c.window_size), stride=format_tile(c.stride),
            dilation=format_tile(c.dilation), causal="x".join(str(int(v)) for v in c.causal),
            q_tile=format_tile(p.q_tile), kv_tile=format_tile(p.kv_tile), kv_tiling=p.mode,
            batch=c.batch, heads=c.heads, heads_kv=c.kv_heads, head_dim=c.head_dim,
            head_dim_v=c.dim_v, dtype=c.dtype, tokens=c.tokens, q_tiles=p.q_tiles,
            kv_tiles=p.kv_tiles, vsum=p.tile_pairs_visited, fsum=p.tile_pairs_full,
            vmax=p.kv_tiles_visited_max, att=p.attended_pairs, dvmax=d.kv_tiles_visited_max,
            dvsum=d.tile_pairs_visited, datt=d.attended_pairs,
            fast=False if isinstance(p, FlatPlan) else fast_path(c),
            per_pair=flops_per_pair(c.batch, c.heads, c.head_dim, c.dim_v),
            tile_elems=p.q_tile_size * p.kv_tile_size, attention_fraction=self.attention_fraction,
            fraction=fraction, rt=self.runtime, bwd=self.backward, bwd_rt=self.backward_runtime,
            notes=list(self.notes) + (list(self.runtime.notes) if self.runtime else [])))


@dataclass(frozen=True)
class BackwardResult:
    """The backward (KV-stationary) plan of a configuration and its bounds (``bwd_`` keys)."""

    config: GNAConfig
    plan: BackwardPlan
    dense_plan: BackwardPlan
    attended_pairs: int        # of GNA and of self attention (the forward plans' counts:
    dense_attended_pairs: int  # the mask is the same in both passes)

    def _flops(self, pairs: int) -> int:
        c = self.config
        return backward_flops(pairs, c.batch, c.heads, c.head_dim, c.dim_v)

    @property
    def tile_speedup(self) -> float:
        """Self-attention Q tiles per KV tile / Q tiles visited by the worst KV tile."""
        return self.dense_plan.q_tiles_visited_max / self.plan.q_tiles_visited_max

    @property
    def tile_speedup_mean(self) -> float:
        """All self-attention (KV tile, Q tile) pairs / all visited pairs."""
        return self.dense_plan.tile_pairs_visited / self.plan.tile_pairs_visited

    def to_dict(self) -> dict[str, Any]:
        """The ``bwd_`` columns of the record (:mod:`gnasim.record`)."""
        return {c.name: c.compute(record.Row(bwd=self)) for c in record.columns({"backward"})}

    @property
    def flops_dense(self) -> int:
        return self._flops(self.dense_attended_pairs)

    @property
    def flops_useful(self) -> int:
        return self._flops(self.attended_pairs)

    @property
    def flops_computed(self) -> int:
        p = self.plan
        return self._flops(p.tile_pairs_visited * p.q_tile_size * p.kv_tile_size)


def simulate(config: GNAConfig, hardware: str | HardwareProfile | None = None,
             kernel: str | None = None, kv_tiling: str | None = None,
             attention_fraction: float | None = None, full_attention_steps: int = 0,
             total_steps: int | None = None, backward: bool = False,
             bwd_q_tile: tuple[int, ...] | None = None,
             bwd_kv_tile: tuple[int, ...] | None = None, tiling: str = "multi-dim",
             flat_tiles: tuple[int, int] | None = None) -> SimulationResult:
    """Simulate one configuration: its tile plan, FLOPs, sparsity and speedup bounds.

    ``hardware`` (a profile name, path or object) supplies default tile shapes and the KV tiling
    mode of its kernel; explicit tiles and ``kv_tiling`` override them. ``backward=True`` adds
    the KV-stationary backward plan (``bwd_`` keys), tiled by ``bwd_q_tile``/``bwd_kv_tile`` or
    the kernel's first backward tile shape for the rank and head dim.

    ``tiling="flat"`` tiles the row-major flattening of the layout into runs of tokens (what
    FlexAttention does with a plain mask): ``flat_tiles`` = (Q, KV) tokens. With a profile the
    kernel is its flat-tiling kernel (``flex-flat``) unless one is named, its default flat tiles
    are that kernel's (128/128), and the runtime is predicted for it; without a profile the
    default tiles are the token counts of the config's box tiles. Flat plans have no backward
    plan yet.
    """
    profile = load_profile(hardware) if isinstance(hardware, str) else hardware
    if tiling not in TILINGS:
        raise ConfigError(f"tiling: '{tiling}' is not one of {list(TILINGS)}")
    if tiling == "flat":
        return _simulate_flat(config, profile, kernel, kv_tiling, flat_tiles, attention_fraction,
                              full_attention_steps, total_steps, backward)
    kern = profile.kernel(kernel) if profile is not None else None
    if kern is not None and kern.tiling == "flat":
        raise ConfigError(f"tiling: kernel '{kern.name}' tiles the row-major flattening of the "
                          "layout; use tiling='flat' (--tiling flat)")
    config, notes = resolve_tiles(config, kern)
    mode = kv_tiling or (kern.kv_tiling if kern is not None else "static")
    if mode not in KV_TILINGS:
        raise ConfigError(f"kv_tiling: '{mode}' is not one of {list(KV_TILINGS)}")
    if attention_fraction is not None:
        amdahl(1.0, attention_fraction, full_attention_steps, total_steps)  # validates the inputs
    plan, dense_plan = tile_plans([config, config.dense()], mode)
    notes += block_notes(config, kern, mode)
    bwd = None
    if backward:
        bq, bkv, bnotes = backward_tiles(config, kern, bwd_q_tile, bwd_kv_tile)
        notes += bnotes
        bwd = BackwardResult(config, backward_plan(config, bq, bkv),
                             backward_plan(config.dense(), bq, bkv), plan.attended_pairs,
                             dense_plan.attended_pairs)
    runtime = bwd_rt = None
    if profile is not None:
        try:
            runtime = natten_dense_fallback(
                predict_runtime(config, plan, dense_plan, profile, kern.name),
                natten_runs_fmha(config.input_size, config.window_size, config.causal))
        except GnasimError as err:
            notes.append(f"no runtime prediction: {err}")
        if bwd is not None:
            try:
                bwd_rt = predict_backward(config, bwd.plan, profile, kern.name)
            except GnasimError as err:
                notes.append(f"no backward runtime prediction: {err}")
    notes += plan_notes(config, plan, dense_plan)
    return SimulationResult(config, plan, dense_plan,
                            profile.name if profile is not None else None,
                            kern.name if kern is not None else None,
                            attention_fraction, full_attention_steps, total_steps, tuple(notes),
                            runtime, bwd, bwd_rt)


TILINGS = ("multi-dim", "flat")


def natten_dense_fallback(runtime: RuntimePrediction | None, fmha: Any) -> RuntimePrediction | None:
    """Where NATTEN calls its FMHA kernel instead of FNA (``fmha``: a bool, or a bool array per
    sweep row; :func:`gnasim.advice.natten_runs_fmha`), the GNA side of the prediction becomes
    the dense baseline: same time, no token permute, speedup 1 at every step."""
    if runtime is None or not np.any(fmha):
        return runtime
    pick = (lambda dense, gna: dense) if np.ndim(fmha) == 0 else \
        (lambda dense, gna: np.where(fmha, dense, gna))
    ones = lambda d: {k: pick(1.0, v) for k, v in d.items()}
    gna = runtime.gna
    blended = {f.name: (ones(getattr(gna, f.name)) if isinstance(getattr(gna, f.name), dict)
                        else pick(getattr(runtime.dense, f.name), getattr(gna, f.name)))
               for f in fields(gna)}
    blended["components_ms"] = {k: pick(runtime.dense.components_ms[k], v)
                                for k, v in gna.components_ms.items()}
    certain = runtime.certainty
    if certain is not None and np.ndim(fmha) == 0:
        # the GNA side is the baseline kernel: its status and band, and a speedup of exactly 1
        certain = replace(certain, kernel=certain.baseline, time=certain.dense_time,
                          speedup=Interval(1.0, 1.0, 0, "the baseline kernel on both sides"))
    return replace(runtime, gna=replace(gna, **blended),
                   permute_ms=pick(0.0 * runtime.permute_ms, runtime.permute_ms),
                   factors=ones(runtime.factors), speedups=ones(runtime.speedups),
                   certainty=certain)


def flat_kernel(profile: HardwareProfile, kernel: str | None) -> Kernel:
    """The kernel of a flat prediction: the one named, else the profile's first flat-tiling
    kernel (``flex-flat``), else its default kernel."""
    if kernel is not None:
        return profile.kernel(kernel)
    return next((k for k in profile.kernels if k.tiling == "flat"), profile.kernel())


def flat_tile_sizes(config: GNAConfig, kern: Kernel | None,
                    flat_tiles: tuple[int, int] | None) -> tuple[tuple[int, int], list[str]]:
    """(Q tokens, KV tokens) of a flat plan: the ones given, else the flat kernel's default,
    else the token counts of the box tiles (the config's, or the box kernel's default)."""
    notes: list[str] = []
    if flat_tiles is not None:
        q, kv = flat_tiles
    elif kern is not None and kern.tiling == "flat":
        q, kv = kern.flat_tiles(config.head_dim)[0]
    else:
        tiled, notes = resolve_tiles(config, kern)
        q, kv = math.prod(tiled.q_tile), math.prod(tiled.kv_tile)
    if kern is not None and kern.tiling == "flat":
        if config.dtype not in kern.dtypes:
            notes.append(f"kernel {kern.name} does not run dtype {config.dtype} "
                         f"(runs {', '.join(kern.dtypes)}); simulated anyway")
        if (q, kv) not in kern.flat_tiles(config.head_dim):
            notes.append(f"flat tile {q}/{kv} tokens is not shipped by {kern.name}; "
                         "simulated as given")
    return (q, kv), notes


def flat_runtime(config: GNAConfig, plan: FlatPlan, dense_plan: FlatPlan,
                 profile: HardwareProfile, kernel: str,
                 baseline: str | None = None) -> RuntimePrediction:
    """The runtime prediction of a flat launch, by the solver that predicts box launches.

    The kernel's own dense run (the explanation's reference) is self attention over the
    flattened sequence with the same tiles; the baseline is the profile's dense kernel. A
    causal axis of a multi-dimensional layout is no causal mask of the flattened sequence, so
    such problems have no flat runtime prediction yet.
    """
    seq = flat_config(config, (plan.q_tile_tokens, plan.kv_tile_tokens))
    if seq is None:
        raise ConfigError("causal: a causal axis of a multi-dimensional layout is not a causal "
                          "mask of the flattened sequence; the flat runtime model does not "
                          "cover it yet")
    prep = prepare(seq, tile_plan(seq.dense(), "static"), profile, kernel, baseline)
    rk = prep.kernel
    if rk.kernel is not None and rk.kernel.tiling != "flat":
        raise ConfigError(f"kernel: '{rk.name}' tiles boxes; a flat runtime prediction needs a "
                          "flat-tiling kernel (flex-flat)")
    tile_bound = dense_plan.kv_tiles_visited_max / plan.kv_tiles_visited_max
    return predict_launch(rk.name, flat_launch_shape(config, plan, rk), prep.side, prep.params,
                          prep.rates, tile_bound, prep.certainty)


def _simulate_flat(config: GNAConfig, profile: HardwareProfile | None, kernel: str | None,
                   kv_tiling: str | None, flat_tiles: tuple[int, int] | None,
                   attention_fraction: float | None, full_attention_steps: int,
                   total_steps: int | None, backward: bool) -> SimulationResult:
    """The flat-tiling prediction: exact plans of GNA and of self attention, and with a
    profile the runtime of its flat kernel (``flex-flat`` by default)."""
    if backward:
        raise ConfigError("backward: flat tiling has no backward plan yet; use --tiling multi-dim")
    if kv_tiling is not None and kv_tiling not in KV_TILINGS:
        raise ConfigError(f"kv_tiling: '{kv_tiling}' is not one of {list(KV_TILINGS)}")
    if attention_fraction is not None:
        amdahl(1.0, attention_fraction, full_attention_steps, total_steps)  # validates the inputs
    kern = flat_kernel(profile, kernel) if profile is not None else None
    (q, kv), notes = flat_tile_sizes(config, kern, flat_tiles)
    plan, dense_plan = flat_plan(config, q, kv), flat_plan(config.dense(), q, kv)
    runtime = None
    if kern is not None and kern.tiling != "flat":
        notes.append(f"no runtime prediction: kernel {kern.name} tiles boxes; the flat runtime "
                     "model needs a flat-tiling kernel (flex-flat)")
    elif profile is not None:
        try:
            runtime = flat_runtime(config, plan, dense_plan, profile, kern.name)
        except GnasimError as err:
            notes.append(f"no runtime prediction: {err}")
    return SimulationResult(config, plan, dense_plan,
                            profile.name if profile is not None else None,
                            kern.name if kern is not None else None,
                            attention_fraction, full_attention_steps, total_steps, tuple(notes),
                            runtime)
