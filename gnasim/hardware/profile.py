"""Hardware profiles: a GPU's facts, the attention kernels it runs and its runtime-model parameters.

One TOML file per GPU in ``hardware_profiles/`` (shipped inside the wheel as
``gnasim/hardware_profiles``). More directories can be added with the ``GNASIM_PROFILE_PATH``
environment variable (``os.pathsep``-separated), or a file can be named directly by its path.
A GPU file may name shared kernel tables (``kernels = ["hopper", "flex"]``: files under
``kernels/``) and inherit another profile's ``[model]`` section (``model_from = "h100"``).

Every number is checked against a physical range (:mod:`gnasim.hardware.ranges`); the reason for
each bound is written beside its field.
"""

from __future__ import annotations

import math
import os
import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gnasim.config import parse_tile_pair
from gnasim.errors import HardwareProfileError
from gnasim.hardware.kernels import Kernel, Name, TileSet, TileShape, Text, check_tile_text
from gnasim.hardware.ranges import bounded_text, clip_text, integer, real

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["HardwareProfile", "Kernel", "KernelModel", "RuntimeModel", "TileSet", "TileShape",
           "list_profile_names", "load_profile", "load_profiles", "profile_dirs",
           "read_profile_file"]

MaskingPolicy = Literal["all-or-none", "partial-only", "all"]
Schedule = Literal["non-persistent", "persistent"]
# profile and data-file names: lowercase file stems
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_DTYPE_KEY = r"^[a-z0-9_]{1,16}$"
_CALIBRATION_TEXT = bounded_text(1000)
DisplayName = bounded_text(200)

# -- GPU-wide facts: bounds wide enough for any GPU, narrow enough to refuse nonsense ------------
# SMs: shipped GPUs have 16 to 192 (GB202); 1,024 leaves room.
SmCount = integer(1, 1024, "SMs")
# SM clock: GPU clocks run from about 0.3 to 3 GHz.
Clock = real(0.1, 5.0, "GHz")
# Device memory: 8 GB to 288 GB (B300) today.
MemoryGB = real(0.5, 4096.0, "GB")
# HBM / GDDR bandwidth: about 0.3 to 8 TB/s today.
Bandwidth = real(10.0, 100_000.0, "GB/s")
# L2: 4 MB to 126 MB (B200) today.
L2MB = real(0.1, 1024.0, "MB")
# Shared memory per SM or per CTA: 48 KB to 228 KB today.
SmemKB = real(1.0, 2048.0, "KB")
# MUFU exp2 per clock per SM: 16 (Ampere to Blackwell), 32 (Blackwell Ultra).
Exp2Rate = real(1.0, 1024.0, "per clock per SM")
# FP32 CUDA-core peak: about 20 to 80 TFLOPS today.
Fp32TFlops = real(0.1, 10_000.0, "TFLOPS")
# Dense tensor-core peak per dtype: 156 (A100 TF32) to 4,500 (B200 FP8) TFLOPS today.
TensorTFlops = real(0.1, 100_000.0, "TFLOPS")
# Board power limit (TDP / TGP): about 70 W (L4) to 1,400 W (GB300) today; one board cannot draw
# more than a few kW through its power delivery and cooling, nor run a tensor core on under 10 W.
PowerW = real(10.0, 5000.0, "W")

# -- runtime-model parameters (the calibration fit stays inside these) ---------------------------
Fraction = real(0.0, 1.0, open_low=True)          # a share of a peak: above 0, at most all of it
# FP32-lane operations per score element: a handful (scale, max, sum, convert); 64 is generous.
SoftmaxOps = real(0.0, 64.0, "operations per element")
# extra lane operations per masked score element (coordinates, compares): tens at most.
MaskOps = real(0.0, 256.0, "operations per element")
# fixed time per CTA (Q load, pipeline fill, epilogue): microseconds.
CtaOverhead = real(0.0, 100.0, "us")
# p of the p-norm overlap: 1 (no overlap) to 64 (indistinguishable from max).
Sharpness = real(1.0, 64.0)
# fixed time per launch: a few microseconds; 1 ms would be a broken driver.
LaunchLatency = real(0.0, 1000.0, "us")
# sustained clock under load: power limits rarely cut it below half the datasheet clock.
SustainedFraction = real(0.3, 1.0)
# how fast the clock settles: milliseconds to seconds.
ClockTimeConstant = real(0.0, 100_000.0, "ms", open_low=True)
# SM cycles per KV-tile iteration not hidden behind the MMAs (row max / sum reductions, rescaling
# the O accumulator, the producer-consumer hand-off): tens to a few thousand cycles.
IterationCycles = real(0.0, 20_000.0, "cycles")
# integer operations per masked score element per axis beyond the first, to turn a flat index into
# coordinates (division, modulo) in kernels that mask a layout they did not permute: a handful.
CoordinateOps = real(0.0, 64.0, "operations per element per axis")
MmaFamily = Literal["mma.sync", "wgmma", "tcgen05"]
# Q rows per CTA a tensor-core instruction needs to keep its pipe busy: 16 to 256.
MmaRows = real(1.0, 1024.0, "rows")


class KernelModel(BaseModel):
    """Efficiency parameters of one attention implementation on one GPU (``[model.kernels.NAME]``).

    The name is a kernel of the profile (``hopper-fna``), or another implementation measured on the
    GPU: a dense baseline (``cudnn-sdpa``: give ``dense_tile``) or a GNA kernel the profile does
    not list (give ``masking`` and ``kv_tiling``). Every field is physically bounded; the defaults
    are uncalibrated first guesses (``gnasim calibrate`` fits them to measurements).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    aliases: list[Name] = Field(default_factory=list)   # implementation names in measurement files
    description: Text = ""
    dense_tile: str | None = None       # "Q/KV" rows per CTA when it runs self attention (flat)
    # per head dim ("64": head dims up to 64, ...): the dense tile when it depends on the head dim
    dense_tiles: dict[str, str] = Field(default_factory=dict)
    family: Name | None = None          # the runtime-model family it belongs to (model/families)
    # the tensor-core instruction family its MMAs use (None: the architecture's native one)
    mma: MmaFamily | None = None
    dense_only: bool = False            # runs self attention only (cuDNN, FlashAttention)
    schedule: Schedule | None = None    # None: from the tile set (non-persistent unless stated)
    masking: MaskingPolicy | None = None        # for kernels the profile does not list
    kv_tiling: Literal["static", "dynamic"] | None = None
    token_permute: bool | None = None
    # fraction of the dense tensor-core peak (datasheet clock) reached by the MMA of one tile
    tensor_efficiency: Fraction = 0.6
    # FP32-lane operations per score element besides its exp2 (scale, max, sum, convert)
    softmax_ops_per_element: SoftmaxOps = 4.0
    # extra FP32-lane operations per score element of a masked tile (coordinates, compares)
    mask_ops_per_element: MaskOps = 12.0
    # fixed time per CTA (Q load, pipeline fill, epilogue) not hidden behind the main loop
    cta_overhead_us: CtaOverhead = 1.0
    # share of HBM bandwidth the kernel's own K/V and Q/O traffic reaches
    memory_efficiency: Fraction = 0.8
    # p of the p-norm that overlaps tensor, softmax and load time in a tile (1: none, large: full)
    overlap_sharpness: Sharpness = 4.0
    # share of HBM bandwidth reached by this implementation's token permute / pad copies
    permute_bandwidth_share: Fraction = 0.35
    # SM cycles per KV-tile iteration outside the MMAs (softmax bookkeeping, O rescale, hand-off)
    iteration_cycles: IterationCycles = 300.0
    # extra operations per masked element and axis beyond the first for fused (unpermuted) masking
    coordinate_ops_per_axis: CoordinateOps = 4.0
    # the backward pass of this implementation (dQ, dK, dV), None: not modelled
    backward: "KernelModel | None" = None

    @model_validator(mode="after")
    def _check(self) -> "KernelModel":
        if self.dense_tile is not None:
            q, kv = check_tile_text(self.dense_tile)
            if len(q) != 1:
                raise ValueError(f"dense_tile '{self.dense_tile}' must be one-dimensional (rows)")
        for key, tile in self.dense_tiles.items():
            if not key.isdigit() or not 0 < int(key) <= 4096:
                raise ValueError(f"dense_tiles: key '{key[:20]}' is not a head dim (1 to 4096)")
            if len(check_tile_text(tile)[0]) != 1:
                raise ValueError(f"dense_tiles.{key}: '{tile}' must be one-dimensional (rows)")
        if self.dense_only and self.dense_tile is None and not self.dense_tiles:
            raise ValueError("a dense_only kernel needs dense_tile")
        return self

    def dense_rows(self, head_dim: int | None = None) -> tuple[int, int] | None:
        """Q and KV rows per CTA of the dense kernel: the ``dense_tiles`` entry of the smallest
        head-dim key at least ``head_dim``, else ``dense_tile`` (None: not a dense kernel)."""
        text = self.dense_tile
        if self.dense_tiles:
            keys = sorted(int(k) for k in self.dense_tiles)
            fit = [k for k in keys if head_dim is None or k >= head_dim]
            text = self.dense_tiles[str(fit[0] if fit else keys[-1])]
        if text is None:
            return None
        q, kv = parse_tile_pair(text)        # checked at construction
        return q[0], kv[0]


class RuntimeModel(BaseModel):
    """The ``[model]`` section: GPU-wide runtime parameters and per-implementation efficiencies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    baseline: Name | None = None        # dense implementation speedups are measured against
    # fixed time per kernel launch on the device (ramp-up, tail, launch gap)
    launch_latency_us: LaunchLatency = 4.0
    # clock under sustained load, as a fraction of clock_ghz (power / thermal limit)
    sustained_clock_fraction: SustainedFraction = 0.85
    # how fast the clock falls to the sustained clock as a kernel keeps running
    clock_time_constant_ms: ClockTimeConstant = 10.0
    # Q rows per CTA the GPU's native MMA instruction needs (smaller Q tiles leave it part idle)
    mma_rows: MmaRows = 64.0
    # share of the tensor peak that mma.sync kernels reach on this GPU (1 where it is native)
    legacy_mma_share: Fraction = 1.0
    kernels: dict[Name, KernelModel] = Field(default_factory=dict)
    calibration: dict[Name, _CALIBRATION_TEXT | int | float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> "RuntimeModel":
        for key, value in self.calibration.items():     # provenance only, but written back out
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"calibration.{key}: {value!r} is not a finite number")
        return self


class HardwareProfile(BaseModel):
    """A GPU: its compute, memory and on-chip facts, and the attention kernels it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=PROFILE_NAME.pattern)
    display_name: DisplayName
    aliases: list[Name] = Field(default_factory=list)
    architecture: Literal["ampere", "ada", "hopper", "blackwell"]
    compute_capability: str = Field(pattern=r"^[0-9]{1,2}\.[0-9]{1,2}$")
    sm_count: SmCount
    clock_ghz: Clock
    boost_clock_ghz: Clock | None = None
    memory_gb: MemoryGB
    memory_bandwidth_gbs: Bandwidth
    l2_mb: L2MB | None = None
    smem_per_sm_kb: SmemKB
    smem_per_cta_kb: SmemKB
    exp2_per_clk_per_sm: Exp2Rate
    fp32_tflops: Fp32TFlops
    tensor_tflops: dict[str, TensorTFlops]
    power_w: PowerW | None = None       # board power limit; the sustained clock is derived from it
    default_kernel: Name
    kernels: list[Kernel]
    sources: list[Text] = Field(default_factory=list)
    model: RuntimeModel | None = None

    @model_validator(mode="after")
    def _check(self) -> "HardwareProfile":
        names = [k.name for k in self.kernels]
        if self.default_kernel not in names:
            raise ValueError(f"default_kernel '{self.default_kernel}' is not among kernels {names}")
        for dtype in self.tensor_tflops:
            if not re.match(_DTYPE_KEY, dtype):
                raise ValueError(f"tensor_tflops: '{dtype[:40]}' is not a dtype name "
                                 "(lowercase letters, digits, '_')")
        if self.boost_clock_ghz is not None and self.boost_clock_ghz < self.clock_ghz:
            raise ValueError(f"boost_clock_ghz: {self.boost_clock_ghz} is below clock_ghz "
                             f"{self.clock_ghz}")
        if self.smem_per_cta_kb > self.smem_per_sm_kb:
            raise ValueError(f"smem_per_cta_kb: {self.smem_per_cta_kb} is more than "
                             f"smem_per_sm_kb {self.smem_per_sm_kb}")
        if self.model is not None:
            for key, km in self.model.kernels.items():
                if key in names or km.dense_tile is not None:
                    continue
                if km.masking is None or km.kv_tiling is None:
                    raise ValueError(
                        f"model.kernels.{key}: not a kernel of this profile, so it needs "
                        "dense_tile (a dense kernel) or masking and kv_tiling (a GNA kernel)")
            base = self.model.baseline
            if base is not None and base in self.model.kernels \
                    and self.model.kernels[base].dense_tile is None and base not in names:
                raise ValueError(f"model.baseline: '{base}' has no dense_tile")
        return self

    def kernel(self, name: str | None = None) -> Kernel:
        name = name or self.default_kernel
        for k in self.kernels:
            if k.name == name:
                return k
        raise HardwareProfileError(
            f"kernel: '{name[:80]}' is not a kernel of profile '{self.name}' "
            f"(has {[k.name for k in self.kernels]})")

    def tensor_flops(self, dtype: str) -> float:
        """Dense tensor-core FLOP/s for a dtype (fp32 means TF32 tensor cores)."""
        if dtype not in self.tensor_tflops:
            raise HardwareProfileError(
                f"dtype: profile '{self.name}' has no tensor throughput for '{dtype[:40]}'")
        return self.tensor_tflops[dtype] * 1e12

    @property
    def exp2_per_second(self) -> float:
        return self.exp2_per_clk_per_sm * self.sm_count * self.clock_ghz * 1e9

    @property
    def dense_baseline(self) -> KernelModel:
        """The uncalibrated dense baseline kernel of this GPU's architecture: the
        ``[dense_baseline]`` table of ``kernels/ARCHITECTURE.toml`` in the profile search path
        (used when the ``[model]`` section does not describe the baseline itself)."""
        return _dense_baseline(self.architecture, os.environ.get("GNASIM_PROFILE_PATH", ""))

    def matches(self, gpu: str) -> bool:
        """Whether a GPU name (a measurement's ``gpu`` or a device name) is this profile."""
        key = gpu.strip().lower()
        return key == self.name or key in (a.lower() for a in self.aliases)


# -- reading profile files ---------------------------------------------------------------------
MAX_FILE_BYTES = 1 << 20            # shipped profiles are about 4 KB


class KernelTable(BaseModel):
    """A file under ``kernels/``: kernels shared by the GPUs of one architecture (or family)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sources: list[Text] = Field(default_factory=list)
    kernels: list[Kernel] = Field(default_factory=list)
    # the uncalibrated dense baseline of the architecture (dense_only is implied)
    dense_baseline: KernelModel | None = None

    @model_validator(mode="before")
    @classmethod
    def _dense_only(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("dense_baseline"), dict):
            data = {**data, "dense_baseline": {**data["dense_baseline"], "dense_only": True}}
        return data


def profile_dirs() -> list[Path]:
    """Directories searched for ``NAME.toml``, first match wins."""
    dirs = [Path(p) for p in os.environ.get("GNASIM_PROFILE_PATH", "").split(os.pathsep) if p]
    package = Path(__file__).resolve().parents[1]   # installed: gnasim/hardware_profiles
    dirs += [package / "hardware_profiles", package.parent / "hardware_profiles"]
    return [d for d in dirs if d.is_dir()]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):                   # name too long, NUL byte, ...
        return False


def validation_message(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = ".".join(clip_text(str(p), 60) for p in first["loc"])
    msg = clip_text(first["msg"].removeprefix("Value error, "), 300)
    return f"{loc}: {msg}" if loc else msg


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A data file's TOML, or one line saying why it cannot be read."""
    head = f"hardware: {what} file {path}"
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise HardwareProfileError(f"{head} is {size:,} bytes, more than {MAX_FILE_BYTES:,}")
        raw = path.read_bytes()
    except OSError as err:
        raise HardwareProfileError(f"hardware: cannot read {what} file {path}: {err.strerror}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise HardwareProfileError(f"{head} is not UTF-8 text (byte {err.start})") from None
    except tomllib.TOMLDecodeError as err:
        raise HardwareProfileError(f"{head} is not valid TOML: {err}") from None
    except RecursionError:
        raise HardwareProfileError(f"{head} nests tables or arrays too deeply") from None


def _find(name: Any, sub: str, near: Path | None, key: str, head: str) -> Path:
    """``[near/]sub/NAME.toml``, else the first match in the profile search path."""
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        raise HardwareProfileError(f"{head}: {key}: {clip_text(repr(name))} is not a data file "
                                   "name (lowercase letters, digits, '.', '_', '-')")
    dirs = ([near] if near is not None else []) + profile_dirs()
    for d in dirs:
        path = (d / sub / f"{name}.toml") if sub else d / f"{name}.toml"
        if _is_file(path):
            return path.resolve()
    where = f"{sub}/{name}.toml" if sub else f"{name}.toml"
    raise HardwareProfileError(f"{head}: {key}: no {where} in {[str(d) for d in dirs]}")


@lru_cache(maxsize=64)
def read_kernel_table(path: Path) -> KernelTable:
    """A validated ``kernels/NAME.toml`` file."""
    data = read_toml(path, "kernel table")
    try:
        return KernelTable(**data)
    except ValidationError as err:
        raise HardwareProfileError(f"hardware: kernel table file {path}: {validation_message(err)}") from None


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, table by table."""
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _expand(data: dict[str, Any], path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Resolve what a GPU file names instead of holding: ``kernels = ["hopper", "flex"]`` (tables
    under ``kernels/``) and ``model_from = "h100"`` (that profile's ``[model]``, under this file's
    own ``[model]`` keys). Both are looked up beside the file first, then in the search path."""
    head = f"hardware: profile file {path}"
    data = dict(data)
    ref = data.get("kernels")
    if isinstance(ref, str) or (isinstance(ref, list) and ref
                                and all(isinstance(r, str) for r in ref)):
        kernels: list[Kernel] = []
        for name in [ref] if isinstance(ref, str) else ref:
            kernels += read_kernel_table(_find(name, "kernels", path.parent, "kernels", head)).kernels
        data["kernels"] = kernels
    if "model_from" in data:
        source = _find(data.pop("model_from"), "", path.parent, "model_from", head)
        if source in seen + (path,):
            raise HardwareProfileError(f"{head}: model_from: {source.stem} inherits from itself")
        inherited = _expand(read_toml(source, "profile"), source, seen + (path,)).get("model")
        if not isinstance(inherited, dict):
            raise HardwareProfileError(f"{head}: model_from: {source} has no [model] section")
        own = data.get("model", {})
        data["model"] = _merge(inherited, own) if isinstance(own, dict) else own
    return data


def read_profile_file(path: str | os.PathLike) -> HardwareProfile:
    """Read and validate one profile file (uncached); errors are one line naming file and key."""
    path = Path(path)
    data = _expand(read_toml(path, "profile"), path)
    try:
        return HardwareProfile(**data)
    except ValidationError as err:
        raise HardwareProfileError(f"hardware: profile file {path}: {validation_message(err)}") from None
    except ValueError as err:
        raise HardwareProfileError(f"hardware: profile file {path}: {err}") from None


@lru_cache(maxsize=64)
def _load_file(path: Path) -> HardwareProfile:
    return read_profile_file(path)


@lru_cache(maxsize=16)
def _dense_baseline(architecture: str, _search_path: str) -> KernelModel:
    head = f"hardware: architecture '{architecture}'"
    table = read_kernel_table(_find(architecture, "kernels", None, "dense_baseline", head))
    if table.dense_baseline is None:
        raise HardwareProfileError(f"{head}: kernels/{architecture}.toml has no [dense_baseline]")
    return table.dense_baseline


def list_profile_names() -> list[str]:
    names: dict[str, None] = {}
    for d in profile_dirs():
        for f in sorted(d.glob("*.toml")):
            names.setdefault(f.stem, None)
    return list(names)


def load_profile(name: str | os.PathLike) -> HardwareProfile:
    """A profile by name (``h100``), alias (``H100-SXM``) or path to a ``.toml`` file."""
    return _resolve(str(name), os.environ.get("GNASIM_PROFILE_PATH", ""))


@lru_cache(maxsize=256)
def _resolve(text: str, _search_path: str) -> HardwareProfile:
    if text.endswith(".toml") or os.sep in text:
        path = Path(text)
        if not _is_file(path):
            raise HardwareProfileError(f"hardware: profile file '{clip_text(text)}' does not exist")
        return _load_file(path.resolve())
    key = text.strip().lower()
    if PROFILE_NAME.match(key):
        for d in profile_dirs():
            path = d / f"{key}.toml"
            if path.is_file():
                prof = _load_file(path.resolve())
                if prof.name != key:
                    raise HardwareProfileError(
                        f"hardware: profile file {path} has name '{prof.name}', expected '{key}'")
                return prof
    for n in list_profile_names():
        prof = load_profile(n)
        if prof.matches(text):
            return prof
    raise HardwareProfileError(
        f"hardware: unknown profile '{clip_text(text)}' (known: {', '.join(list_profile_names())})")


def load_profiles() -> list[HardwareProfile]:
    return [load_profile(n) for n in list_profile_names()]
