"""Which kernel runs, with which efficiencies: resolving an implementation name on a profile.

An implementation name (a ``[model.kernels]`` entry, an alias, a profile kernel name with or
without the ``natten-`` prefix, or a dense name such as ``cudnn-sdpa``) resolves to a
:class:`ResolvedKernel`: its efficiency parameters and its tiling, masking and permutation
behaviour. :class:`Rates` are the GPU's per-SM throughputs; :class:`ModelParams` are the numbers
the solver reads from the kernel's and the GPU's ``[model]`` sections. Both hold floats for one
launch, or numpy arrays (one value per row) when the calibration fit evaluates many rows at once.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Sequence

import numpy as np

from gnasim.errors import ConfigError, HardwareProfileError
from gnasim.hardware.profile import HardwareProfile, Kernel, KernelModel, RuntimeModel
from gnasim.model.families import family_runtime_model
from gnasim.plan.cache import BoundedCache

DEFAULT_BASELINE = "cudnn-sdpa"

# Uncalibrated dense baselines per architecture, from the kernels' own tile tables: cuDNN sm90
# flash fprop 2 x 64 Q rows x 128 KV, persistent; sm100 2 x 128 Q rows x 128 KV, non-persistent
# (NVIDIA/cudnn-frontend @ 3929da2, include/cudnn_frontend/experimental/sm90_sdpa_prefill_engine.h
# and sm100_sdpa_prefill_engine.h); FlashAttention-2 on Ampere/Ada 128 x 64 at head dim 128
# (Dao-AILab/flash-attention @ 0251105, csrc/flash_attn/src/flash_fwd_launch_template.h).
DENSE_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "hopper": ("128/128", "persistent", "cuDNN SDPA flash forward, sm90 (2 x 64 Q rows, persistent)"),
    "blackwell": ("256/128", "non-persistent", "cuDNN SDPA flash forward, sm100 (2 x 128 Q rows)"),
    "ampere": ("128/64", "non-persistent", "FlashAttention-2 style dense kernel (128 x 64)"),
    "ada": ("128/64", "non-persistent", "FlashAttention-2 style dense kernel (128 x 64)"),
}
DENSE_NAMES = ("cudnn-sdpa", "torch-sdpa", "cudnn", "sdpa")
MASKING_NAMES = {"partial": "partial-only", "partial-only": "partial-only", "all": "all",
                 "all-or-none": "all-or-none", "none": "partial-only"}


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

    def dense_rows(self, head_dim: int | None = None) -> tuple[int, int] | None:
        """Q and KV rows per CTA when it runs self attention as one flat sequence."""
        return self.model.dense_rows(head_dim)

    @property
    def family(self) -> str:
        """The runtime-model family (the model entry's name when it names none)."""
        return self.model.family or self.name


_family_models: BoundedCache[int, tuple[HardwareProfile, RuntimeModel]] = BoundedCache(256)


def runtime_model(profile: HardwareProfile) -> RuntimeModel:
    """The profile's own ``[model]`` section, or else the shared family model for its
    architecture, its power limit and its datasheet (:mod:`gnasim.model.families`)."""
    if profile.model is not None:
        return profile.model
    hit = _family_models.get(id(profile))
    if hit is None or hit[0] is not profile:       # identities: no stale ids
        hit = _family_models.put(id(profile), (profile, family_runtime_model(profile)))
    return hit[1]


def baseline_name(profile: HardwareProfile) -> str:
    return runtime_model(profile).baseline or DEFAULT_BASELINE


def default_dense_model(profile: HardwareProfile) -> KernelModel:
    """The uncalibrated dense baseline of the profile's architecture."""
    tile, schedule, desc = DENSE_DEFAULTS.get(profile.architecture, DENSE_DEFAULTS["ampere"])
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


def normalise_masking(value: str) -> str:
    """Masking column values: ``partial`` / ``partial-only``, ``all``, ``all-or-none``."""
    v = value.strip().lower()
    if v not in MASKING_NAMES:
        raise ConfigError(f"masking: '{value}' is not one of partial, partial-only, all, all-or-none")
    return MASKING_NAMES[v]


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
    # the profile's own kernel of that name first: a family may cover several kernels
    # (flex-fna and flex-flat are one Triton kernel, tiled two ways)
    kern = by_name.get(name) or by_name.get(name.lower().removeprefix("natten-"))
    if kern is None and key is not None:
        kern = by_name.get(key)
    if key is None and kern is not None:
        key = _model_key(profile, kern.name)
    if kv_tiling and kv_tiling not in ("static", "dynamic"):
        raise ConfigError(f"kv_tiling: '{kv_tiling}' is not one of ['static', 'dynamic']")
    if key is not None:
        km, label = rm.kernels[key], key
    elif kern is not None:
        km, label = KernelModel(), kern.name
    elif name.lower() in DENSE_NAMES or name.lower() == baseline_name(profile).lower():
        km, label = default_dense_model(profile), name
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


def _stack(cls, items: Sequence[Any]):
    """One instance whose every field is the array of the items' values."""
    return cls(**{f.name: np.array([getattr(i, f.name) for i in items], dtype=np.float64)
                  for f in fields(cls)})


@dataclass(frozen=True)
class Rates:
    """Per-SM throughputs at the datasheet clock (floats, or arrays with one value per row)."""

    sms: Any
    clock_hz: Any
    tensor_flops_sm: Any
    exp_sm: Any
    lanes_sm: Any
    hbm_bytes_s: Any

    @classmethod
    def of(cls, hw: HardwareProfile, dtype: str) -> "Rates":
        clock = hw.clock_ghz * 1e9
        lane_clock = (hw.boost_clock_ghz or hw.clock_ghz) * 1e9
        lanes_per_clk = hw.fp32_tflops * 1e12 / (2.0 * hw.sm_count * lane_clock)
        return cls(hw.sm_count, clock, hw.tensor_flops(dtype) / hw.sm_count,
                   hw.exp2_per_clk_per_sm * clock, lanes_per_clk * clock,
                   hw.memory_bandwidth_gbs * 1e9)

    @classmethod
    def stack(cls, items: Sequence["Rates"]) -> "Rates":
        out = _stack(cls, items)
        return cls(**{**out.__dict__, "sms": out.sms.astype(np.int64)})


@dataclass(frozen=True)
class ModelParams:
    """What the solver reads of a kernel's and a GPU's ``[model]`` parameters."""

    tensor_efficiency: Any
    softmax_ops_per_element: Any
    mask_ops_per_element: Any
    cta_overhead_us: Any
    memory_efficiency: Any
    overlap_sharpness: Any
    permute_bandwidth_share: Any
    iteration_cycles: Any
    coordinate_ops_per_axis: Any
    mma_share: Any          # share of the tensor peak the kernel's MMA instruction can reach
    mma_rows: Any           # Q rows per CTA that instruction needs to be busy
    launch_latency_us: Any
    sustained_clock_fraction: Any
    clock_time_constant_ms: Any

    @classmethod
    def of(cls, km: KernelModel, rm: RuntimeModel) -> "ModelParams":
        legacy = km.mma == "mma.sync"
        return cls(km.tensor_efficiency, km.softmax_ops_per_element, km.mask_ops_per_element,
                   km.cta_overhead_us, km.memory_efficiency, km.overlap_sharpness,
                   km.permute_bandwidth_share, km.iteration_cycles, km.coordinate_ops_per_axis,
                   rm.legacy_mma_share if legacy else 1.0, 16.0 * 4 if legacy else rm.mma_rows,
                   rm.launch_latency_us, rm.sustained_clock_fraction, rm.clock_time_constant_ms)

    @classmethod
    def stack(cls, items: Sequence["ModelParams"]) -> "ModelParams":
        return _stack(cls, items)
