"""The calibration corpus: the built-in measurement datasets, their provenance, and row filters.

Each dataset is one CSV under ``gnasim/data/`` in the measurement schema (see
:mod:`gnasim.calibration.measurements`), documented in ``gnasim/data/README.md``. The corpus is
the only data the runtime model is meant to be fitted on; every other published timing stays
outside it, so that errors reported against it are honest.

``corpus()`` lists the datasets (rows, GPUs and whether a hardware profile covers them, passes,
implementations); ``load_dataset(name)`` loads one; ``load_corpus()`` loads several as one list of
rows; ``select`` / ``forward_rows`` filter rows; ``model_scope`` splits rows into those the current
runtime model can predict and the rest, with a reason per row left out (never an exception).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from gnasim.calibration.measurements import (DATA_DIR, Measurement, MeasurementSet,
                                             load_measurements)
from gnasim.errors import MeasurementError
from gnasim.hardware.profile import HardwareProfile, load_profiles

Kind = Literal["exact", "chart", "exact+chart"]
Role = Literal["fit", "holdout"]


@dataclass(frozen=True)
class Dataset:
    """A built-in dataset: its file and where its numbers come from (public sources only)."""

    name: str
    file: str
    title: str
    provenance: str
    kind: Kind            # exact timings, values read off charts, or both
    role: Role = "fit"    # "holdout": measured to test a calibration out of sample

    @property
    def path(self) -> Path:
        return DATA_DIR / self.file


DATASETS: tuple[Dataset, ...] = (
    Dataset("natten_published", "published_measurements.csv",
            "NATTEN's published GNA and cuDNN forward times on H100 and B200",
            "SHI-Labs/NATTEN@3864f11 docs/profiler.md (timed by the NATTEN authors with "
            "python -m natten.profiler)", "exact"),
    Dataset("cudnn_frontend_sdpa", "cudnn_frontend_sdpa.csv",
            "cuDNN flash SDPA on GB200 and H200: dense, causal and sliding-window, fwd and bwd, "
            "bf16 / fp8 / mxfp8",
            "NVIDIA/cudnn-frontend@3929da2 benchmark/sdpa_benchmark_training/results/ "
            "(one results file per row in `source`)", "exact"),
    Dataset("flash_attention_charts", "flash_attention_charts.csv",
            "FlashAttention-2/3 paper charts (A100, H100) and tritonbench logs (H100)",
            "Dao-AILab/flash-attention@0251105 assets/flash3_fp16_fwd.png, "
            "assets/flash2_{a100,h100}_fwd_bwd_benchmark.png (arXiv 2307.08691, 2407.08608); "
            "pytorch/benchmark commits ff65cb6 and e05b6fa (tritonbench logs)", "exact+chart"),
    Dataset("gnasim_h100_suite", "gnasim_h100_suite.csv",
            "gnasim's Triton GNA kernel, torch SDPA and FlexAttention on an H100 SXM (suite h100)",
            "this repository: validate/data/h100_suite.csv (python -m validate.harness --suite "
            "h100), see validate/data/README.md", "exact"),
    Dataset("gnasim_h100_holdout", "gnasim_h100_holdout.csv",
            "gnasim's Triton GNA kernel on 12 problems not in the h100 suite (H100 SXM)",
            "this repository: validate/data/h100_holdout.csv "
            "(validate/data/h100_holdout_spec.json)",
            "exact", role="holdout"),
    Dataset("gnasim_h200_suite", "gnasim_h200_suite.csv",
            "the h100 suite without FlexAttention on an H200",
            "this repository: validate/data/h200_suite.csv, see validate/data/README.md", "exact"),
)


@dataclass(frozen=True)
class DatasetSummary:
    """What a dataset holds: counts per GPU, pass, implementation and dtype."""

    dataset: Dataset
    rows: int
    gpus: dict[str, int]
    profiles: dict[str, str | None]     # GPU name -> hardware profile name, None: no profile
    passes: dict[str, int]
    implementations: dict[str, int]
    dtypes: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        d = self.dataset
        return {"name": d.name, "file": d.file, "title": d.title, "provenance": d.provenance,
                "kind": d.kind, "role": d.role, "rows": self.rows, "gpus": self.gpus,
                "profiles": self.profiles, "passes": self.passes,
                "implementations": self.implementations, "dtypes": self.dtypes}


def dataset_names() -> list[str]:
    return [d.name for d in DATASETS]


def get_dataset(name: str) -> Dataset:
    """A dataset by name; an unknown name is a one-line :class:`MeasurementError`."""
    for d in DATASETS:
        if d.name == name.strip().lower():
            return d
    raise MeasurementError(f"dataset: '{name}' is not one of {dataset_names()}")


def load_dataset(name: str) -> MeasurementSet:
    """Load one built-in dataset (strict: every row of a shipped file must load)."""
    d = get_dataset(name)
    return load_measurements(d.path, dataset=d.name)


def load_corpus(names: Iterable[str] | None = None, *,
                roles: Iterable[str] = ("fit", "holdout")) -> list[Measurement]:
    """The rows of several datasets (default: all), each tagged with its dataset name."""
    chosen = [get_dataset(n) for n in names] if names is not None else list(DATASETS)
    keep = set(roles)
    rows: list[Measurement] = []
    for d in chosen:
        if d.role in keep:
            rows += load_measurements(d.path, dataset=d.name).rows
    return rows


def gpu_profiles(gpus: Iterable[str],
                 profiles: list[HardwareProfile] | None = None) -> dict[str, str | None]:
    """Each GPU name -> the name of the hardware profile that matches it, or None."""
    profs = profiles if profiles is not None else load_profiles()
    out: dict[str, str | None] = {}
    for gpu in gpus:
        if gpu not in out:
            out[gpu] = next((p.name for p in profs if p.matches(gpu)), None)
    return out


def unmatched_gpus(rows: Iterable[Measurement],
                   profiles: list[HardwareProfile] | None = None) -> dict[str, int]:
    """Rows per GPU name that no hardware profile matches."""
    counts = Counter(m.gpu for m in rows)
    found = gpu_profiles(counts, profiles)
    return {g: n for g, n in counts.items() if found[g] is None}


def summarize(name: str, profiles: list[HardwareProfile] | None = None) -> DatasetSummary:
    d = get_dataset(name)
    rows = load_measurements(d.path, dataset=d.name).rows
    gpus = dict(Counter(m.gpu for m in rows))
    return DatasetSummary(
        dataset=d, rows=len(rows), gpus=gpus, profiles=gpu_profiles(gpus, profiles),
        passes=dict(Counter(m.pass_ for m in rows)),
        implementations=dict(Counter(m.implementation for m in rows)),
        dtypes=dict(Counter(m.dtype for m in rows)))


def corpus(profiles: list[HardwareProfile] | None = None) -> list[DatasetSummary]:
    """Every built-in dataset with its provenance and contents."""
    profs = profiles if profiles is not None else load_profiles()
    return [summarize(d.name, profs) for d in DATASETS]


def select(rows: Iterable[Measurement], *, passes: Iterable[str] | None = None,
           gpus: Iterable[str] | None = None, implementations: Iterable[str] | None = None,
           dtypes: Iterable[str] | None = None,
           datasets: Iterable[str] | None = None) -> list[Measurement]:
    """The rows matching every filter given (names compared case-insensitively)."""
    def norm(v: Iterable[str] | None) -> set[str] | None:
        return None if v is None else {s.strip().lower() for s in v}
    want = {"pass_": norm(passes), "gpu": norm(gpus), "implementation": norm(implementations),
            "dtype": norm(dtypes), "dataset": norm(datasets)}
    return [m for m in rows
            if all(v is None or getattr(m, k).lower() in v for k, v in want.items())]


def forward_rows(rows: Iterable[Measurement]) -> list[Measurement]:
    """The forward-pass rows (``pass`` = fwd)."""
    return [m for m in rows if m.pass_ == "fwd"]


@dataclass
class Scope:
    """Rows the current runtime model can predict, and why each other row was left out."""

    rows: list[Measurement]
    left_out: list[tuple[Measurement, str]] = field(default_factory=list)

    def reasons(self) -> dict[str, int]:
        """Rows left out per reason."""
        return dict(Counter(r for _, r in self.left_out))

    def message(self) -> str:
        """One line: how many rows were left out and why (empty when none)."""
        if not self.left_out:
            return ""
        parts = [f"{n} x {r}" for r, n in sorted(self.reasons().items(), key=lambda t: -t[1])]
        return f"left out {len(self.left_out)} rows the runtime model cannot predict: " + \
            "; ".join(parts)


def scope_reason(m: Measurement, profile: HardwareProfile | None) -> str | None:
    """Why the current runtime model cannot predict a row, or None when it can."""
    if profile is None:
        return f"gpu {m.gpu}: no hardware profile"
    if m.block_scaled:
        return f"dtype {m.dtype}: block-scaled fp8 is not modelled"
    if m.config.dtype not in profile.tensor_tflops:
        return f"dtype {m.config.dtype}: profile {profile.name} has no tensor throughput for it"
    return None


def model_scope(rows: Iterable[Measurement],
                profiles: list[HardwareProfile] | None = None) -> Scope:
    """Split rows into those the current model can predict and the rest (with reasons)."""
    profs = profiles if profiles is not None else load_profiles()
    rows = list(rows)
    match = gpu_profiles((m.gpu for m in rows), profs)
    by_name = {p.name: p for p in profs}
    out = Scope([])
    for m in rows:
        name = match[m.gpu]
        why = scope_reason(m, by_name[name] if name is not None else None)
        if why is None:
            out.rows.append(m)
        else:
            out.left_out.append((m, why))
    return out
