"""Fit a profile's runtime-model efficiencies to measured kernel times (``gnasim calibrate``).

Bounded, weakly regularised least squares (``scipy.optimize.least_squares``, method ``trf``):

* residuals: ``log(predicted / measured)`` of every row's kernel time, and of its permutation
  time when one was measured;
* priors: ``prior_weight * (value - default) / scale`` for every fitted parameter, so that a
  parameter the data do not pin down stays near its uncalibrated default instead of drifting to a
  bound (with 4 rows for a GPU, some parameters are not identifiable);
* bounds: physical (efficiencies and bandwidth shares in (0, 1], operation counts and overheads
  non-negative), inside the schema bounds of :class:`~gnasim.hardware.KernelModel`.

Uncertainties are the square roots of the diagonal of ``s^2 (J^T J)^-1`` at the solution (J:
Jacobian of all residuals, s^2: measurement residual variance). Leave-one-out refits without one
row and predicts it; speedups pair each GNA row with its dense baseline row (which stays in).
The calibrated profile is written by :func:`gnasim.hardware.write.write_profile`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from gnasim.model.kernel import DEFAULT_BASELINE, ModelParams, Rates, baseline_name, runtime_model
from gnasim.model.launch import Launch, launch_for, stack_launches
from gnasim.model.solve import permute_time_ms, time_ms
from gnasim.errors import ConfigError, GnasimError, MeasurementError
from gnasim.hardware.profile import HardwareProfile, KernelModel, RuntimeModel, load_profiles
from gnasim.calibration.measurements import Measurement, MeasurementSet

# (name, lower, upper, prior scale) of the fitted parameters; priors are the schema defaults
GLOBAL_PARAMS: tuple[tuple[str, float, float, float], ...] = (
    ("launch_latency_us", 0.0, 50.0, 8.0),
    ("sustained_clock_fraction", 0.3, 1.0, 0.5),
    ("clock_time_constant_ms", 0.1, 1000.0, 20.0),
)
KERNEL_PARAMS: tuple[tuple[str, float, float, float], ...] = (
    ("tensor_efficiency", 0.02, 1.0, 0.5),
    ("softmax_ops_per_element", 0.0, 64.0, 8.0),
    ("mask_ops_per_element", 0.0, 256.0, 32.0),
    ("cta_overhead_us", 0.0, 100.0, 4.0),
    ("permute_bandwidth_share", 0.01, 1.0, 0.5),
)
DEFAULT_PRIOR_WEIGHT = 0.1


# -- rows bound to profiles and kernels --------------------------------------------------------
@dataclass(frozen=True)
class BoundRow:
    """A measurement with its profile, its launch under the model, and its baseline row."""

    m: Measurement
    profile: HardwareProfile
    launch: Launch
    rates: Rates
    baseline: int | None = None   # index (in the bound list) of the dense row to compare with
    backward: Launch | None = None   # the backward launch of a fwd+bwd row

    @property
    def kernel(self) -> str:
        return self.launch.kernel.name

    @property
    def launches(self) -> list[Launch]:
        """The launches whose times add up to the row's measured time."""
        return [self.launch] + ([self.backward] if self.backward is not None else [])

    def with_baseline(self, baseline: int | None) -> "BoundRow":
        return BoundRow(self.m, self.profile, self.launch, self.rates, baseline, self.backward)

    @property
    def has_permute(self) -> bool:
        return self.m.permute_ms > 0 and self.launch.shape.permute_bytes > 0


def _column_of(message: str) -> str:
    head = message.split(":", 1)[0].strip()
    table = {"implementation": "implementation", "kernel": "implementation", "window": "window",
             "causal": "causal", "q_tile": "q_tile", "kv_tile": "kv_tile",
             "q_tile/kv_tile": "q_tile", "masking": "masking", "kv_tiling": "kv_tiling",
             "dtype": "dtype", "hardware": "gpu"}
    return table.get(head, "implementation")


def _tiles_from_partner(m: Measurement, rows: list[Measurement]) -> tuple | None:
    """Tiles for a dense row that gives none: those of a GNA row of the same problem that names
    it as its baseline (the validation harness runs such a dense row with the case's tiles)."""
    for o in rows:
        if (o is not m and not o.is_dense and o.problem == m.problem and o.config.has_tiles
                and (o.baseline or "").lower() == m.implementation.lower()):
            return o.config.q_tile, o.config.kv_tile
    return None


def bind_rows(mset: MeasurementSet, profiles: list[HardwareProfile] | None = None, *,
              skip_bad_rows: bool = False) -> tuple[list[BoundRow], list[str]]:
    """Match every row to a profile (by ``gpu``) and bind it to the model; link baselines.

    A dense row without tiles that cannot run as one flat sequence (causal on several axes) takes
    the tiles of the GNA row that uses it as baseline. With ``profiles`` given, rows of GPUs that
    another known profile matches are left out (they belong to a profile not selected).
    """
    profs = profiles if profiles is not None else load_profiles()
    others = [p for p in load_profiles() if p.name not in {q.name for q in profs}] \
        if profiles is not None else []
    name = Path(mset.path).name
    bound: list[BoundRow] = []
    errors: list[str] = []
    for m in mset.rows:
        where = f"{name} {m.where()}"
        try:
            prof = next((p for p in profs if p.matches(m.gpu)), None)
            if prof is None and any(p.matches(m.gpu) for p in others):
                continue
            if prof is None:
                raise MeasurementError(
                    f"column gpu: '{m.gpu}' matches no hardware profile "
                    f"(profiles: {', '.join(p.name for p in profs)}; add it to a profile's aliases)")
            config = m.config
            if m.is_dense and not config.has_tiles and sum(config.causal) > 0:
                tiles = _tiles_from_partner(m, mset.rows)
                if tiles is not None:
                    config = config.with_tiles(*tiles)
            try:
                launch = launch_for(config, prof, m.implementation, m.masking, m.kv_tiling,
                                    backward=m.pass_ == "bwd")
                back = (launch_for(config, prof, m.implementation, m.masking, m.kv_tiling,
                                   backward=True) if m.pass_ == "fwd+bwd" else None)
                rates = Rates.of(prof, m.config.dtype)
            except GnasimError as err:
                raise MeasurementError(f"column {_column_of(str(err))}: {err}") from None
            bound.append(BoundRow(m, prof, launch, rates, None, back))
        except MeasurementError as err:
            msg = f"{where}, {err}"
            if not skip_bad_rows:
                raise MeasurementError(msg) from None
            errors.append(msg)
    return _link_baselines(bound), errors


def _link_baselines(rows: list[BoundRow]) -> list[BoundRow]:
    dense: dict[tuple, list[int]] = {}
    for i, r in enumerate(rows):
        if r.m.is_dense:
            dense.setdefault(r.m.problem, []).append(i)
    out = []
    for i, r in enumerate(rows):
        link = None
        if not r.m.is_dense or (r.m.baseline and r.m.baseline.lower() != r.m.implementation.lower()):
            cands = [j for j in dense.get(r.m.problem, []) if j != i]
            if r.m.baseline:
                want = r.m.baseline.lower()
                cands = [j for j in cands if rows[j].m.implementation.lower() == want]
            else:
                base = baseline_name(r.profile).lower()
                preferred = [j for j in cands if rows[j].kernel.lower() == base
                             or rows[j].m.implementation.lower() == base]
                cands = preferred or [j for j in cands if rows[j].launch.kernel.dense_only] or cands
            same_source = [j for j in cands if rows[j].m.source == r.m.source]
            cands = same_source or cands
            link = cands[0] if cands else None
        out.append(r.with_baseline(link))
    return out


# -- the parameter vector ----------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    scope: str          # "model" (GPU-wide) or a kernel's model name
    name: str
    lower: float
    upper: float
    scale: float
    prior: float
    start: float

    @property
    def key(self) -> str:
        return self.name if self.scope == "model" else f"{self.scope}.{self.name}"


@dataclass
class Problem:
    """The rows of one profile and the parameters that fit them."""

    profile: HardwareProfile
    rows: list[BoundRow]
    params: list[Param]
    models: dict[str, KernelModel]     # current kernel models (start values, non-fitted fields)
    base: RuntimeModel

    def build(self, x: np.ndarray) -> tuple[RuntimeModel, dict[str, KernelModel]]:
        g: dict[str, float] = {}
        k: dict[str, dict[str, float]] = {}
        for p, v in zip(self.params, x):
            (g if p.scope == "model" else k.setdefault(p.scope, {}))[p.name] = float(v)
        rm = self.base.model_copy(update=g)
        kms = {name: km.model_copy(update=k.get(name, {})) for name, km in self.models.items()}
        return rm, kms

    def times(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Kernel and permutation times (ms) of every row under parameters ``x``, in one call."""
        rm, kms = self.build(x)
        return predict_rows(self.rows, lambda launch, _: ModelParams.of(kms[launch.kernel.name], rm))


ParamsFor = Callable[[Launch, HardwareProfile], ModelParams]


def current_params(launch: Launch, profile: HardwareProfile) -> ModelParams:
    """A launch's parameters under the profile's current runtime model."""
    return ModelParams.of(launch.kernel.model, runtime_model(profile))


def predict_rows(rows: list[BoundRow], params_for: ParamsFor = current_params
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and permutation times (ms) of bound rows (the sum of a fwd+bwd row's two
    launches), each launch under ``params_for(launch, profile)``: one evaluation of the runtime
    model over every launch (the launches are stacked once)."""
    key = tuple(id(r) for r in rows)     # the entry holds the rows: their ids stay theirs
    hit = _STACKED.get(key)
    if hit is None:
        units = [(i, L) for i, r in enumerate(rows) for L in r.launches]
        hit = (tuple(rows), units, stack_launches([L.shape for _, L in units]),
               Rates.stack([rows[i].rates for i, _ in units]),
               np.array([i for i, _ in units], dtype=np.int64))
        _STACKED.clear()
        _STACKED[key] = hit
    _, units, shape, rates, owner = hit
    p = ModelParams.stack([params_for(L, rows[i].profile) for i, L in units])
    t = np.zeros(len(rows))
    perm = np.zeros(len(rows))
    np.add.at(t, owner, time_ms(shape, p, rates))
    np.add.at(perm, owner, permute_time_ms(shape, p, rates))
    return t, perm


_STACKED: dict[tuple, tuple] = {}


def _prior_model(km: KernelModel) -> KernelModel:
    """The uncalibrated defaults of the fitted fields, keeping what a kernel model *is*."""
    defaults = KernelModel()
    return km.model_copy(update={name: getattr(defaults, name) for name, *_ in KERNEL_PARAMS})


def build_problem(profile: HardwareProfile, rows: list[BoundRow]) -> Problem:
    rm = runtime_model(profile)
    prior_rm = RuntimeModel()
    models: dict[str, KernelModel] = {}
    for r in rows:
        models.setdefault(r.kernel, r.launch.kernel.model)
    params: list[Param] = []
    for name, lo, hi, scale in GLOBAL_PARAMS:
        params.append(Param("model", name, lo, hi, scale, getattr(prior_rm, name),
                            float(np.clip(getattr(rm, name), lo, hi))))
    for kname in sorted(models):
        mine = [r for r in rows if r.kernel == kname]
        prior = _prior_model(models[kname])
        for name, lo, hi, scale in KERNEL_PARAMS:
            if name == "mask_ops_per_element" and not any(r.launch.shape.masked_pairs for r in mine):
                continue
            if name == "permute_bandwidth_share" and not any(r.has_permute for r in mine):
                continue
            params.append(Param(kname, name, lo, hi, scale, getattr(prior, name),
                                float(np.clip(getattr(models[kname], name), lo, hi))))
    return Problem(profile, rows, params, models, rm)


# -- fitting -----------------------------------------------------------------------------------
@dataclass
class Fit:
    x: np.ndarray
    sigma: np.ndarray
    at_bound: list[bool]
    residuals: np.ndarray          # measurement residuals (log ratios)
    n_measurements: int
    cost: float
    success: bool
    message: str
    cov_unit: np.ndarray           # (J^T J)^-1: sigma^2 = diag(cov_unit) * s^2
    data_share: np.ndarray         # share of each parameter's information that is data, not prior
    s2: float


def check_prior_weight(prior_weight: float) -> None:
    """The pull towards the defaults is a finite weight >= 0."""
    if not math.isfinite(prior_weight) or prior_weight < 0:
        raise ConfigError(f"prior_weight: must be a finite number >= 0, got {prior_weight}")


def fit(problem: Problem, *, prior_weight: float = DEFAULT_PRIOR_WEIGHT,
        exclude: frozenset[int] = frozenset(), x0: np.ndarray | None = None) -> Fit:
    """Bounded least squares over the problem's rows (minus ``exclude``)."""
    from scipy.optimize import least_squares

    check_prior_weight(prior_weight)
    ps = problem.params
    lo = np.array([p.lower for p in ps])
    hi = np.array([p.upper for p in ps])
    scale = np.array([p.scale for p in ps])
    prior = np.array([p.prior for p in ps])
    start = np.array([p.start for p in ps]) if x0 is None else np.asarray(x0, dtype=float)
    start = np.clip(start, lo + 1e-9 * (hi - lo), hi - 1e-9 * (hi - lo))
    idx = [i for i in range(len(problem.rows)) if i not in exclude]
    perm_idx = [i for i in idx if problem.rows[i].has_permute]

    meas_t = np.array([problem.rows[i].m.attention_ms for i in idx])
    meas_p = np.array([problem.rows[i].m.permute_ms for i in perm_idx])

    def meas_residuals(x: np.ndarray) -> np.ndarray:
        t, perm = problem.times(x)
        return np.concatenate([np.log(t[idx] / meas_t), np.log(perm[perm_idx] / meas_p)])

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.concatenate([meas_residuals(x), prior_weight * (x - prior) / scale])

    sol = least_squares(residuals, start, bounds=(lo, hi), method="trf", x_scale=scale,
                        diff_step=1e-4, xtol=1e-10, ftol=1e-10, max_nfev=2000)
    r_meas = meas_residuals(sol.x)
    m = len(r_meas)
    jac = np.asarray(sol.jac)
    jm = jac[:m]
    cov_unit = np.linalg.pinv(jac.T @ jac)
    # effective parameters (trace of the hat matrix) give the residual degrees of freedom
    n_eff = float(np.trace(jm @ cov_unit @ jm.T)) if m else 0.0
    s2 = float(r_meas @ r_meas) / max(m - n_eff, 1.0)
    sigma = np.sqrt(np.clip(np.diag(cov_unit), 0.0, None) * s2)
    info_data = np.einsum("ij,ij->j", jm, jm)
    info_all = np.einsum("ij,ij->j", jac, jac)
    share = np.divide(info_data, info_all, out=np.zeros_like(info_all), where=info_all > 0)
    tol = 1e-6 * (hi - lo)
    at_bound = [bool(v <= a + t or v >= b - t) for v, a, b, t in zip(sol.x, lo, hi, tol)]
    return Fit(sol.x, sigma, at_bound, r_meas, m, float(sol.cost), bool(sol.success), sol.message,
               cov_unit, share, s2)


# -- calibration of one profile, with leave-one-out --------------------------------------------
@dataclass
class RowResult:
    index: int
    m: Measurement
    kernel: str
    predicted_ms: float
    predicted_permute_ms: float
    baseline: int | None
    baseline_predicted_ms: float | None = None

    @property
    def error_time(self) -> float:
        return self.predicted_ms / self.m.attention_ms - 1.0


@dataclass
class Calibration:
    """One profile's fit: parameters, in-sample and leave-one-out predictions, the new model."""

    profile: HardwareProfile
    problem: Problem
    fit: Fit
    model: RuntimeModel
    in_sample: list[RowResult]
    loo: list[RowResult] = field(default_factory=list)
    source: str = ""

    def parameters(self) -> list[dict[str, Any]]:
        out = []
        for p, v, s, b in zip(self.problem.params, self.fit.x, self.fit.sigma, self.fit.at_bound):
            out.append({"parameter": p.key, "value": float(v), "sigma": float(s),
                        "prior": p.prior, "lower": p.lower, "upper": p.upper, "at_bound": b,
                        "data_share": float(self.fit.data_share[len(out)])})
        return out

    def metrics(self) -> dict[str, Any]:
        ins = speedup_metrics(self.in_sample)
        out = {"profile": self.profile.name, "rows": len(self.problem.rows),
               "mape_time": ins["mape_time"], "mape_speedup": ins["mape_speedup"],
               "mape_speedup_with_permute": ins["mape_speedup_with_permute"]}
        if self.loo:
            lo = speedup_metrics(self.loo)
            out.update({f"loo_{k}": v for k, v in lo.items()})
        return out


def speedup_pairs(results: list[RowResult]) -> list[tuple[RowResult, float, float, float, float]]:
    """(row, measured speedup, predicted, measured with permute, predicted with permute)."""
    by_index = {r.index: r for r in results}
    out = []
    for r in results:
        if r.baseline is None or r.baseline_predicted_ms is None:
            continue
        base = by_index.get(r.baseline)
        if base is None:
            continue
        mb = base.m.attention_ms
        out.append((r, mb / r.m.attention_ms, r.baseline_predicted_ms / r.predicted_ms,
                    mb / (r.m.attention_ms + r.m.permute_ms),
                    r.baseline_predicted_ms / (r.predicted_ms + r.predicted_permute_ms)))
    return out


def speedup_metrics(results: list[RowResult]) -> dict[str, float | int | None]:
    times = [abs(r.error_time) * 100 for r in results]
    pairs = speedup_pairs(results)
    sp = [abs(p / m - 1) * 100 for _, m, p, _, _ in pairs]
    spp = [abs(p / m - 1) * 100 for _, _, _, m, p in pairs]
    mean = lambda v: float(np.mean(v)) if v else None
    return {"n": len(results), "n_speedup": len(pairs), "mape_time": mean(times),
            "max_error_time": max(times) if times else None,
            "mape_speedup": mean(sp), "max_error_speedup": max(sp) if sp else None,
            "mape_speedup_with_permute": mean(spp),
            "max_error_speedup_with_permute": max(spp) if spp else None}


def _row_results(problem: Problem, x: np.ndarray, idx: list[int]) -> list[RowResult]:
    return row_results(problem.rows, *problem.times(x), idx)


def row_results(rows: list[BoundRow], t: np.ndarray, perm: np.ndarray,
                idx: Iterable[int]) -> list[RowResult]:
    """Rows ``idx`` with their predicted times and their baseline row's."""
    out = []
    for i in idx:
        r, b = rows[i], rows[i].baseline
        out.append(RowResult(i, r.m, r.kernel, float(t[i]), float(perm[i]), b,
                             float(t[b]) if b is not None else None))
    return out


def calibrate_profile(profile: HardwareProfile, rows: list[BoundRow], *,
                      prior_weight: float = DEFAULT_PRIOR_WEIGHT, loo: bool = True,
                      source: str = "") -> Calibration:
    """Fit one profile to its rows (indices of ``baseline`` refer to ``rows``)."""
    if not rows:
        raise MeasurementError(f"measurements: no rows for profile '{profile.name}'")
    problem = build_problem(profile, rows)
    f = fit(problem, prior_weight=prior_weight)
    all_idx = list(range(len(rows)))
    cal = Calibration(profile, problem, f, _new_model(problem, f), _row_results(problem, f.x, all_idx),
                      source=source)
    if loo and len(rows) > 1:
        for i in all_idx:
            fi = fit(problem, prior_weight=prior_weight, exclude=frozenset({i}), x0=f.x)
            cal.loo.extend(_row_results(problem, fi.x, [i]))
        # out-of-sample scatter is the honest noise level when few rows over-fit in sample
        s2_loo = float(np.mean([math.log1p(r.error_time) ** 2 for r in cal.loo]))
        if s2_loo > f.s2:
            f.s2 = s2_loo
            f.sigma = np.sqrt(np.clip(np.diag(f.cov_unit), 0.0, None) * s2_loo)
    cal.model = _new_model(problem, f, cal)
    return cal


def _new_model(problem: Problem, f: Fit, cal: Calibration | None = None) -> RuntimeModel:
    rm, kms = problem.build(f.x)
    kernels = dict(rm.kernels)
    for name, km in kms.items():
        kernels[name] = km
    baseline = rm.baseline
    if baseline is None and DEFAULT_BASELINE in kernels:
        baseline = DEFAULT_BASELINE
    prov: dict[str, str | int | float] = {
        "rows": len(problem.rows),
        "prior_weight_note": "weakly regularised towards the uncalibrated defaults",
    }
    if cal is not None:
        prov["source"] = cal.source
        met = cal.metrics()
        for key in ("mape_time", "loo_mape_time", "loo_mape_speedup", "loo_mape_speedup_with_permute"):
            if met.get(key) is not None:
                prov[key + "_pct"] = round(float(met[key]), 3)
        for p in cal.parameters():
            prov[f"sigma.{p['parameter']}"] = float(f"{p['sigma']:.4g}")
    return rm.model_copy(update={"kernels": kernels, "baseline": baseline, "calibration": prov})


def calibrate(mset: MeasurementSet, profiles: list[HardwareProfile] | None = None, *,
              prior_weight: float = DEFAULT_PRIOR_WEIGHT, loo: bool = True,
              skip_bad_rows: bool = False) -> tuple[list[Calibration], list[str]]:
    """Calibrate every profile that has rows in the measurement set."""
    check_prior_weight(prior_weight)
    rows, errors = bind_rows(mset, profiles, skip_bad_rows=skip_bad_rows)
    groups: dict[str, list[int]] = {}
    order: dict[str, HardwareProfile] = {}
    for i, r in enumerate(rows):
        if r.m.pass_ != "fwd":
            errors.append(f"{Path(mset.path).name} {r.m.where()}: pass {r.m.pass_}: a per-GPU "
                          "calibration fits forward rows (gnasim calibrate --corpus fits both)")
            continue
        groups.setdefault(r.profile.name, []).append(i)
        order[r.profile.name] = r.profile
    if not groups:
        raise MeasurementError(f"measurements: no usable rows in {mset.path}")
    out = []
    for name, idx in groups.items():
        remap = {old: new for new, old in enumerate(idx)}
        sub = [rows[i].with_baseline(remap.get(rows[i].baseline)
                                     if rows[i].baseline is not None else None) for i in idx]
        out.append(calibrate_profile(order[name], sub, prior_weight=prior_weight, loo=loo,
                                     source=Path(mset.path).name))
    return out, errors
