"""NATTEN profiler flags (``python -m natten.profiler``, ``src/natten/profiler.py`` in
SHI-Labs/NATTEN) and what each one means for a prediction.

Flags that change the problem or the kernel change the prediction; flags about measuring are
accepted and noted (nothing is timed). What the runtime model cannot express yet is said in a
one-line note of the JSON ``notes`` list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from gnasim.errors import ConfigError, HardwareProfileError

NATTEN_BACKENDS = ("cutlass-fna", "blackwell-fna", "hopper-fna", "flex-fna")
FMHA_BACKENDS = ("cutlass-fmha", "blackwell-fmha", "hopper-fmha", "flex-fmha")
SDPA_BACKENDS = ("xformers", "cudnn", "fav2")
SCHEDULES = {"non": "non-persistent", "coop": "cooperative", "pp": "ping-pong"}
DEFAULT_WARMUP_STEPS = 10
DEFAULT_OPTIMIZE_WARMUP_STEPS = 5
DEFAULT_MAX_CONFIGS = 10


@dataclass
class Choice:
    """What the backend flags select: the GNA kernel, the dense baseline, and notes."""

    kernel: Optional[str] = None        # profile kernel running GNA (None: the profile's default)
    baseline: Optional[str] = None      # runtime-model name of the dense baseline (None: profile's)
    sdpa: Optional[str] = None          # --backend was a torch SDPA backend (self attention only)
    fmha: Optional[str] = None          # --fmha-backend
    fmha_kernel: Optional[str] = None   # the profile kernel whose dense run stands for the FMHA
    notes: list[str] = field(default_factory=list)


def _kernel_names(profile: Any) -> list[str]:
    return [k.name for k in profile.kernels]


def choose_backends(profile: Any, backend: Optional[str], fmha_backend: Optional[str]) -> Choice:
    """Map ``--backend`` / ``--fmha-backend`` onto a profile's kernels and the dense baseline."""
    choice = Choice()
    if backend is not None:
        name = backend.strip()
        if name.lower() in SDPA_BACKENDS:
            choice.sdpa = name.lower()
        else:
            choice.kernel = name
    if choice.sdpa is not None:
        if profile is None:
            raise ConfigError(f"backend: {choice.sdpa} is a dense (SDPA) backend; it needs a "
                              "hardware profile, not --hardware none")
        choice.baseline = _sdpa_baseline(profile, choice.sdpa, choice.notes)
        choice.notes.append(
            f"--backend {choice.sdpa} runs self attention only (as in NATTEN's profiler): its "
            "predicted time is predicted_dense_time_ms; the GNA numbers are for "
            f"{profile.default_kernel}")
    if fmha_backend is not None:
        fmha = fmha_backend.strip().lower()
        if fmha not in FMHA_BACKENDS:
            raise ConfigError(f"fmha_backend: '{fmha_backend}' is not one of {list(FMHA_BACKENDS)}")
        choice.fmha = fmha
        if profile is None:
            choice.notes.append(f"--fmha-backend {fmha}: no hardware profile, nothing to time")
            return choice
        kern = fmha.replace("-fmha", "-fna")
        if kern not in _kernel_names(profile):
            raise HardwareProfileError(
                f"fmha_backend: {fmha} does not run on {profile.name} (its kernels: "
                f"{', '.join(_kernel_names(profile))})")
        if choice.sdpa is None:
            choice.baseline = kern
            choice.fmha_kernel = kern
    return choice


def _sdpa_baseline(profile: Any, sdpa: str, notes: list[str]) -> str:
    base = (profile.model.baseline if profile.model is not None else None) or "cudnn-sdpa"
    if sdpa == "cudnn":
        return "cudnn-sdpa"
    notes.append(f"{sdpa} has no runtime model of its own: timed as {profile.name}'s dense "
                 f"baseline {base}")
    return base


def fmha_note(fmha: str, kernel: str, notes: list[str]) -> list[str]:
    """The runtime model names a kernel with no flat dense tile by its own dense launch; say so
    in FMHA terms instead of as a causal fallback."""
    out = [n for n in notes if not n.startswith(f"baseline {kernel} cannot run")]
    if len(out) != len(notes):
        out.append(f"--fmha-backend {fmha}: timed as {kernel} run on self attention "
                   "(window = layout)")
    return out


def schedule_notes(profile: Any, kernel: Optional[str], schedule: Optional[str],
                   persistent: bool, tile_schedule: Optional[str]) -> list[str]:
    """``--schedule`` (hopper-fna) and ``--persistent`` (blackwell-fna): accepted; the runtime
    model takes the schedule from the tile configuration, so a different one is noted."""
    notes: list[str] = []
    kern = kernel or (profile.default_kernel if profile is not None else None)
    if schedule is not None:
        want = SCHEDULES[schedule]
        if kern != "hopper-fna":
            notes.append(f"--schedule {schedule} applies to hopper-fna only; ignored for {kern}")
        elif tile_schedule is not None and tile_schedule != want:
            notes.append(f"--schedule {schedule} ({want}) is not modelled: predicted with the "
                         f"tile configuration's {tile_schedule} schedule")
    if persistent:
        if kern != "blackwell-fna":
            notes.append(f"--persistent applies to blackwell-fna only; ignored for {kern}")
        elif tile_schedule != "persistent":
            notes.append("--persistent is not modelled: predicted with the tile "
                         f"configuration's {tile_schedule} schedule")
    return notes


def measuring_notes(warmup_steps: int, optimize_warmup_steps: int, compile_flex: bool) -> list[str]:
    """Flags about measuring: nothing is timed, so they change nothing."""
    given = []
    if warmup_steps != DEFAULT_WARMUP_STEPS:
        given.append(f"--warmup-steps {warmup_steps}")
    if optimize_warmup_steps != DEFAULT_OPTIMIZE_WARMUP_STEPS:
        given.append(f"--optimize-warmup-steps {optimize_warmup_steps}")
    if compile_flex:
        given.append("--compile")
    if not given:
        return []
    return [f"{', '.join(given)}: gnasim predicts, nothing is timed or compiled"]


def add_kv_extra(config: Any, add_kv: int) -> tuple[dict[str, Any], list[str]]:
    """``--add-kv N``: every query also attends N extra KV tokens, which NATTEN computes with a
    separate FMHA kernel and merges. Their FLOPs are exact; their time is not modelled."""
    from gnasim.bounds import attention_flops

    if add_kv < 0:
        raise ConfigError(f"add_kv: must be >= 0, got {add_kv}")
    if add_kv == 0:
        return {}, []
    flops = attention_flops(config.tokens * add_kv, config.batch, config.heads, config.head_dim,
                            config.dim_v)
    return ({"add_kv": add_kv, "add_kv_flops": flops},
            [f"--add-kv {add_kv}: the extra KV tokens add {flops:,} FLOPs (add_kv_flops), run by "
             "a separate FMHA kernel whose time is not modelled"])
