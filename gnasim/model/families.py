"""Runtime-model parameters shared where the hardware is shared: kernel families and architectures.

``hardware_profiles/model/families.toml`` holds the fitted runtime model of every shipped GPU:

* ``[shared]``: what no GPU or kernel owns (launch latency, the clock's time constant);
* ``[architectures.NAME]``: what every GPU of an architecture shares: the Q rows per CTA its
  tensor-core instruction needs to be busy (``mma_rows``, a fact), the board power a full tensor
  load would draw per dense TFLOP/s at the datasheet clock (``power_per_tflops_w``: with a GPU's
  power limit it gives its sustained clock), and the share of the tensor peak older ``mma.sync``
  kernels reach (``legacy_mma_share``);
* ``[families.NAME]``: one implementation family (the same code on every GPU it runs on: NATTEN's
  Hopper FNA, cuDNN's sm90 flash kernel, FlashAttention-2 ...): the implementation names it
  answers to, the architectures it runs on, and its structure parameters (a
  :class:`~gnasim.hardware.profile.KernelModel`: tensor efficiency, softmax, masking and
  per-iteration costs), with ``[families.NAME.backward]`` for its backward pass;
* ``[evidence.NAME]``: what the fit saw of a family (rows, GPUs, sources) and its out-of-sample
  errors, from which prediction intervals come (:mod:`gnasim.model.uncertainty`).

``families.toml`` is written by hand (structure, facts, sources); ``fitted.toml`` beside it is
written by ``gnasim calibrate --corpus`` (fitted values, evidence) and overlays it table by table.

A GPU file without a ``[model]`` section gets its runtime model from here: the families of its
architecture, its architecture's parameters and a sustained clock from its power limit. A GPU
with no measured row is therefore predicted from its datasheet plus its families' parameters.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gnasim.errors import HardwareProfileError
from gnasim.hardware.kernels import Name, Text
from gnasim.hardware.profile import (HardwareProfile, KernelModel, MmaRows, RuntimeModel,
                                     profile_dirs, read_toml, validation_message)
from gnasim.hardware.ranges import real

FAMILIES_FILE = Path("model") / "families.toml"
FITTED_FILE = "fitted.toml"           # beside it: the fitted values and evidence (machine-written)
Architecture = Literal["ampere", "ada", "hopper", "blackwell"]
# sustained clock: the cube root of (power limit / power at the datasheet clock), since dynamic
# power goes as f V^2 and voltage scales with frequency across the DVFS range (P ~ f^3)
CLOCK_POWER_EXPONENT = 1.0 / 3.0
SUSTAINED_FLOOR = 0.3                 # the schema's lower bound of a sustained clock fraction

# board watts per dense fp16 TFLOP/s at the datasheet clock under a full tensor load
PowerPerTflops = real(0.05, 10.0, "W per TFLOP/s")
LegacyShare = real(0.05, 1.0)


class Shared(BaseModel):
    """Parameters no GPU or kernel owns."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    launch_latency_us: float = Field(4.0, ge=0.0, le=1000.0)
    clock_time_constant_ms: float = Field(10.0, gt=0.0, le=100_000.0)


class ArchitectureModel(BaseModel):
    """What every GPU of one architecture shares. ``mma_rows``: mma.sync needs m16 per warp x 4
    warps, wgmma m64 per warpgroup, tcgen05 m128 per CTA (PTX ISA 8.x, warpgroup-level and
    tcgen05 MMA shapes)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    mma_rows: MmaRows = 64.0
    power_per_tflops_w: PowerPerTflops = 1.0
    legacy_mma_share: LegacyShare = 1.0
    baseline: Name = "cudnn-sdpa"


class Family(KernelModel):
    """One implementation family: a kernel model plus the names and architectures it covers;
    ``dense`` names its tile table in ``kernels/dense.toml`` (per architecture and head dim)."""

    implementations: list[Name] = Field(min_length=1)
    architectures: list[Architecture] = Field(min_length=1)
    dense: Name | None = None


class Evidence(BaseModel):
    """What the fit saw of a family and how far off its predictions were out of sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rows: int = 0
    gpus: list[Name] = Field(default_factory=list)
    sources: list[Text] = Field(default_factory=list)
    in_sample_mape_time_pct: float | None = None
    oos_mape_time_pct: float | None = None
    # quantiles (q05, q95, n, mape_pct) of out-of-sample log(predicted / measured), per status
    intervals: dict[str, dict[str, float]] = Field(default_factory=dict)
    speedup_intervals: dict[str, dict[str, float]] = Field(default_factory=dict)


class FamilyModel(BaseModel):
    """The whole ``families.toml``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    sources: list[Text] = Field(default_factory=list)
    shared: Shared = Shared()
    architectures: dict[Architecture, ArchitectureModel] = Field(default_factory=dict)
    families: dict[Name, Family] = Field(default_factory=dict)
    evidence: dict[Name, Evidence] = Field(default_factory=dict)
    fit: dict[str, Any] = Field(default_factory=dict)      # provenance of the fit

    def architecture(self, name: str) -> ArchitectureModel:
        return self.architectures.get(name, ArchitectureModel())   # type: ignore[call-overload]

    def of_architecture(self, arch: str) -> dict[str, Family]:
        return {k: f for k, f in self.families.items() if arch in f.architectures}


def families_path() -> Path:
    """The families file in the profile search path (first match)."""
    for d in profile_dirs():
        path = d / FAMILIES_FILE
        if path.is_file():
            return path.resolve()
    raise HardwareProfileError(f"hardware: no {FAMILIES_FILE} in {[str(d) for d in profile_dirs()]}")


def overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, table by table."""
    out = dict(base)
    for k, v in top.items():
        out[k] = overlay(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def read_families(path: str | os.PathLike, fitted: bool = True) -> FamilyModel:
    """Read and validate a families file, with the ``fitted.toml`` beside it overlaid (one line
    naming the file and key on error)."""
    path = Path(path)
    data = read_toml(path, "model families")
    extra = path.with_name(FITTED_FILE)
    if fitted and extra.is_file():
        data = overlay(data, read_toml(extra, "fitted model"))
    try:
        return FamilyModel(**data)
    except ValidationError as err:
        raise HardwareProfileError(f"hardware: model families file {path}: "
                                   f"{validation_message(err)}") from None


@lru_cache(maxsize=8)
def _load(path: Path, fitted: bool) -> FamilyModel:
    return read_families(path, fitted)


def load_families(fitted: bool = True) -> FamilyModel:
    """The shipped (or first in ``GNASIM_PROFILE_PATH``) family model; ``fitted=False``: the
    hand-written priors only (what a fit starts from, so no fit sees its own results)."""
    return _load(families_path(), fitted)


def sustained_fraction(profile: HardwareProfile, arch: ArchitectureModel) -> float | None:
    """The clock a full tensor load sustains under the board power limit, as a fraction of the
    datasheet clock (None: the profile gives no power limit)."""
    power = getattr(profile, "power_w", None)
    if power is None:
        return None
    demand = arch.power_per_tflops_w * profile.tensor_tflops.get("fp16", max(profile.tensor_tflops.values()))
    return max(SUSTAINED_FLOOR, min(1.0, (power / demand) ** CLOCK_POWER_EXPONENT))


DENSE_FILE = Path("kernels") / "dense.toml"


@lru_cache(maxsize=4)
def _dense_tables(path: Path) -> dict[str, Any]:
    return read_toml(path, "dense kernel tiles").get("dense", {})


def dense_tables() -> dict[str, Any]:
    """``kernels/dense.toml``: dense kernels' tiles per pass, architecture and head dim."""
    for d in profile_dirs():
        if (d / DENSE_FILE).is_file():
            return _dense_tables((d / DENSE_FILE).resolve())
    return {}


def _tiles(table: dict[str, Any], name: str, part: str, arch: str) -> dict[str, str]:
    entry = table.get(name, {}).get(part, {}).get(arch, {})
    return {str(k): str(v) for k, v in entry.items()}


def kernel_models(fm: FamilyModel, arch: str) -> dict[str, KernelModel]:
    """The kernel models of an architecture's families, keyed by their first implementation
    name (the other names are aliases), with their dense tiles for the architecture."""
    out: dict[str, KernelModel] = {}
    tables = dense_tables()
    for key, fam in fm.of_architecture(arch).items():
        names = fam.implementations
        data = fam.model_dump(exclude={"implementations", "architectures", "dense"},
                              exclude_none=True)
        data.update(family=key, aliases=list(dict.fromkeys(names[1:] + list(fam.aliases))))
        if fam.dense is not None:
            data["dense_tiles"] = _tiles(tables, fam.dense, "forward", arch) or data.get("dense_tiles", {})
            back = _tiles(tables, fam.dense, "backward", arch)
            if back and data.get("backward") is not None:
                data["backward"]["dense_tiles"] = back
        out[names[0]] = KernelModel(**data)
    return out


def family_runtime_model(profile: HardwareProfile, fm: FamilyModel | None = None) -> RuntimeModel:
    """The runtime model of a GPU without a ``[model]`` section of its own."""
    fm = fm if fm is not None else load_families()
    arch = fm.architecture(profile.architecture)
    s = sustained_fraction(profile, arch)
    update: dict[str, Any] = {"launch_latency_us": fm.shared.launch_latency_us,
                              "clock_time_constant_ms": fm.shared.clock_time_constant_ms,
                              "mma_rows": arch.mma_rows, "legacy_mma_share": arch.legacy_mma_share}
    if s is not None:
        update["sustained_clock_fraction"] = s
    return RuntimeModel(baseline=arch.baseline, kernels=kernel_models(fm, profile.architecture),
                        **update)
