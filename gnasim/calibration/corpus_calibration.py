"""Calibrate the shared model on the built-in corpus and say how well it transfers.

``calibrate_corpus()`` binds every fit-role row of the corpus that the model covers, fits the
shared family model once (:mod:`gnasim.calibration.shared_fit`), refits it leaving out each GPU
and each source (:mod:`gnasim.calibration.transfer`), and turns the held-out residuals into the
evidence and interval tables that predictions read. ``fitted_tables()`` is what
``hardware_profiles/model/fitted.toml`` holds; ``gnasim calibrate --corpus --write`` writes it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from gnasim.calibration.corpus import load_corpus, model_scope
from gnasim.calibration.fit import bind_rows
from gnasim.calibration.measurements import Measurement, MeasurementSet
from gnasim.calibration.shared_fit import (ARCH_PARAMS, DEFAULT_PRIOR_WEIGHT, FAMILY_PARAMS,
                                           SHARED_PARAMS, SharedFit, SharedProblem,
                                           build_shared_problem, fit_shared, in_family_model, mape)
from gnasim.calibration.transfer import (Residual, coverage, error_table, held_out,
                                         interval_table, row_family)
from gnasim.errors import MeasurementError
from gnasim.hardware.profile import HardwareProfile
from gnasim.model.families import FamilyModel, load_families
from gnasim.model.uncertainty import POOLED


@dataclass
class CorpusCalibration:
    problem: SharedProblem
    fit: SharedFit
    residuals: list[Residual]
    left_out: list[str] = field(default_factory=list)
    splits: tuple[str, ...] = ("gpu", "source")

    @property
    def model(self) -> FamilyModel:
        return self.fit.model

    def in_sample(self) -> dict[str, list[float]]:
        by: dict[str, list[float]] = defaultdict(list)
        for i, r in zip(self.fit.fitted, self.fit.residuals):
            by[row_family(self.problem, i)].append(float(r))
        return by

    def summary(self) -> dict[str, Any]:
        """The headline numbers: rows, in-sample and held-out MAPE, interval coverage."""
        res = self.residuals
        out: dict[str, Any] = {"rows": len(self.problem.rows), "parameters": len(self.problem.params),
                               "in_sample_mape_time_pct": mape(self.fit.residuals),
                               "fit_success": self.fit.success}
        for split in self.splits:
            mine = [r for r in res if r.split.startswith(split + ":")]
            out[f"held_out_{split}_mape_time_pct"] = mape(r.value for r in mine if r.kind == "time")
            out[f"held_out_{split}_mape_speedup_pct"] = mape(
                r.value for r in mine if r.kind == "speedup")
        out["coverage_time"] = coverage(res, "time")
        out["coverage_speedup"] = coverage(res, "speedup")
        return out


def corpus_rows(datasets: Iterable[str] | None = None, roles: Iterable[str] = ("fit",)
                ) -> tuple[list[Measurement], list[str]]:
    """Corpus rows the model covers, and one line per reason for the others."""
    scope = model_scope(load_corpus(datasets, roles=roles))
    return scope.rows, ([scope.message()] if scope.message() else [])


def corpus_problem(rows: list[Measurement], fm: FamilyModel | None = None,
                   profiles: list[HardwareProfile] | None = None) -> tuple[SharedProblem, list[str]]:
    """The shared problem of measured rows (rows the model cannot bind are left out, listed).
    Priors are the hand-written family values, never an earlier fit's."""
    fm = fm if fm is not None else load_families(fitted=False)
    bound, errors = bind_rows(MeasurementSet("corpus", rows), profiles, skip_bad_rows=True)
    bound, why = in_family_model(bound, fm)
    if not bound:
        raise MeasurementError("measurements: no row the shared model covers")
    return build_shared_problem(bound, fm), errors + why


def calibrate_corpus(rows: list[Measurement] | None = None, *, splits: Iterable[str] = ("gpu", "source"),
                     groups: Iterable[str] | None = None,
                     prior_weight: float = DEFAULT_PRIOR_WEIGHT) -> CorpusCalibration:
    """Fit the shared model to ``rows`` (default: the corpus's fit rows) and hold out each GPU
    and each source (or only ``groups`` of the first split)."""
    left: list[str] = []
    if rows is None:
        rows, left = corpus_rows()
    problem, errors = corpus_problem(rows)
    full = fit_shared(problem, prior_weight=prior_weight)
    splits = tuple(splits)
    residuals: list[Residual] = []
    for k, split in enumerate(splits):
        residuals += held_out(problem, full, split, groups if k == 0 else None)  # type: ignore[arg-type]
    return CorpusCalibration(problem, full, residuals, left + errors, splits)


def _round(v: float) -> float:
    return float(f"{v:.5g}")


def fitted_tables(cal: CorpusCalibration) -> dict[str, Any]:
    """The fitted values and evidence, as the tables of ``fitted.toml``."""
    fm = cal.model
    names = [n for n, *_ in FAMILY_PARAMS]
    out: dict[str, Any] = {
        "shared": {n: _round(getattr(fm.shared, n)) for n, *_ in SHARED_PARAMS},
        "architectures": {a: {n: _round(getattr(am, n)) for n, *_ in ARCH_PARAMS}
                          for a, am in fm.architectures.items()},
        "families": {}, "evidence": {}}
    for name, fam in fm.families.items():
        entry = {n: _round(getattr(fam, n)) for n in names}
        if fam.backward is not None:
            entry["backward"] = {n: _round(getattr(fam.backward, n)) for n in names}
        out["families"][name] = entry
    rows = cal.problem.rows
    fams: dict[str, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        fams[row_family(cal.problem, i)].append(i)
    ins = cal.in_sample()
    held = defaultdict(list)
    for r in cal.residuals:
        if r.kind == "time":
            held[r.family].append(r.value)
    times, speeds = interval_table(cal.residuals, "time"), interval_table(cal.residuals, "speedup")
    rnd = lambda t: {s: {k: (_round(v) if isinstance(v, float) else v) for k, v in q.items()}
                     for s, q in t.items()}
    for fam, idx in sorted(fams.items()):
        out["evidence"][fam] = {
            "rows": len(idx),
            "gpus": sorted({rows[i].profile.name for i in idx}),
            "sources": sorted({rows[i].m.dataset or rows[i].m.source for i in idx}),
            "in_sample_mape_time_pct": _round(mape(ins.get(fam, [])) or 0.0),
            "oos_mape_time_pct": _round(mape(held.get(fam, [])) or 0.0),
            "intervals": rnd(times.get(fam, {})), "speedup_intervals": rnd(speeds.get(fam, {}))}
    out["evidence"][POOLED] = {"rows": len(rows), "intervals": rnd(times.get("*", {})),
                               "speedup_intervals": rnd(speeds.get("*", {}))}
    s = cal.summary()
    out["fit"] = {"rows": len(rows), "parameters": len(cal.problem.params),
                  "in_sample_mape_time_pct": _round(s["in_sample_mape_time_pct"] or 0.0)}
    for k in ("held_out_gpu_mape_time_pct", "held_out_source_mape_time_pct",
              "held_out_gpu_mape_speedup_pct", "held_out_source_mape_speedup_pct"):
        if s.get(k) is not None:
            out["fit"][k] = _round(s[k])
    return out


def write_fitted(cal: CorpusCalibration, path: str | Path) -> Path:
    """Write ``fitted.toml`` (atomically)."""
    from gnasim.files import atomic_write
    from gnasim.hardware.write import to_toml

    header = ("Fitted by `gnasim calibrate --corpus --write` on the built-in calibration corpus "
              f"({len(cal.problem.rows)} rows); do not edit by hand (families.toml is the "
              "hand-written part).")
    path = Path(path)
    atomic_write(path, to_toml(fitted_tables(cal), header=header))
    return path


def parameter_table(cal: CorpusCalibration) -> list[dict[str, Any]]:
    """Each fitted parameter with its uncertainty, bounds and data share."""
    return cal.fit.parameters()


def transfer_errors(cal: CorpusCalibration) -> list[dict[str, Any]]:
    """Held-out MAPE per split, GPU and family."""
    return error_table(cal.residuals)
