"""Fit the shared family model to the calibration corpus (``gnasim calibrate --corpus``).

One bounded, weakly regularised least-squares problem over every row of every GPU: a row's time
is predicted from its implementation family's structure parameters, its architecture's
parameters, the shared ones and its GPU's datasheet (:mod:`gnasim.model.families`), so a family's
parameters are fitted once across every GPU it runs on.

* residuals: ``log(predicted / measured)`` of each row's time (forward, backward, or their sum),
  divided by ``sqrt(u^2 + MODEL_FLOOR^2)`` (``u``: the row's recorded uncertainty; chart reads
  weigh less than exact timings), with a soft-L1 loss so that a few rows the model cannot
  explain do not pull every parameter;
* priors: ``prior_weight * (value - prior) / scale`` per parameter (the hand-written
  ``families.toml`` values), so a parameter the data do not pin down stays at its prior;
* bounds: each parameter's physical range (:data:`FAMILY_PARAMS`, :data:`ARCH_PARAMS`,
  :data:`SHARED_PARAMS`);
* a parameter is fitted only where data can move it: a family's masking cost only when its rows
  have masked tiles, its permutation bandwidth only when a permutation time was measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from gnasim.calibration.fit import BoundRow, predict_rows
from gnasim.errors import MeasurementError
from gnasim.hardware.profile import HardwareProfile, KernelModel
from gnasim.model.families import FamilyModel, family_runtime_model, load_families
from gnasim.model.kernel import ModelParams
from gnasim.model.launch import Launch

# (name, lower, upper, prior scale): the physical range of each fitted parameter
FAMILY_PARAMS: tuple[tuple[str, float, float, float], ...] = (
    ("tensor_efficiency", 0.05, 1.0, 0.3),
    ("softmax_ops_per_element", 0.0, 32.0, 4.0),
    ("mask_ops_per_element", 0.0, 128.0, 16.0),
    ("iteration_cycles", 0.0, 4000.0, 400.0),
    ("cta_overhead_us", 0.0, 30.0, 3.0),
    ("permute_bandwidth_share", 0.05, 1.0, 0.3),
)
ARCH_PARAMS: tuple[tuple[str, float, float, float], ...] = (
    ("power_per_tflops_w", 0.3, 4.0, 0.5),
    ("legacy_mma_share", 0.2, 1.0, 0.3),
)
SHARED_PARAMS: tuple[tuple[str, float, float, float], ...] = (
    ("launch_latency_us", 0.0, 30.0, 5.0),
    ("clock_time_constant_ms", 0.5, 500.0, 20.0),
)
MODEL_FLOOR = 0.05          # the model's own relative error floor in the residual weights
LOSS_SCALE = 3.0            # soft-L1 turns linear beyond 3 weighted units (15% at the floor)
DEFAULT_PRIOR_WEIGHT = 0.3


@dataclass(frozen=True)
class Param:
    scope: str          # "shared", "arch:NAME" or "family:KEY" (KEY: a family or FAMILY/bwd)
    name: str
    lower: float
    upper: float
    scale: float
    prior: float

    @property
    def key(self) -> str:
        return f"{self.scope.split(':', 1)[-1]}.{self.name}" if self.scope != "shared" \
            else self.name


def family_key(launch: Launch) -> str | None:
    """The family key of a launch (``hopper-fna``, ``cudnn-sdpa-sm90/bwd``), None: no family."""
    return launch.kernel.model.family


def family_of(fm: FamilyModel, key: str) -> KernelModel | None:
    """The kernel model of a family key in a family model."""
    name, _, part = key.partition("/")
    fam = fm.families.get(name)
    if fam is None:
        return None
    return fam.backward if part == "bwd" else fam


def _with_family(fm: FamilyModel, key: str, values: dict[str, float]) -> FamilyModel:
    name, _, part = key.partition("/")
    fam = fm.families[name]
    if part == "bwd":
        fam = fam.model_copy(update={"backward": fam.backward.model_copy(update=values)})
    else:
        fam = fam.model_copy(update=values)
    return fm.model_copy(update={"families": {**fm.families, name: fam}})


@dataclass
class SharedProblem:
    """The corpus rows bound to the family model, and the parameters that fit them."""

    rows: list[BoundRow]
    start: FamilyModel
    params: list[Param]

    def model(self, x: np.ndarray, seen: frozenset[str] | None = None) -> FamilyModel:
        """The family model with parameters ``x``; with ``seen`` (the family keys the fit had
        rows of), every other family takes the median fitted value of the seen families of its
        pass (:func:`typical_values`): a kernel the fit never saw is taken to be typical."""
        fm = self.start
        shared: dict[str, float] = {}
        arch: dict[str, dict[str, float]] = {}
        fams: dict[str, dict[str, float]] = {}
        for p, v in zip(self.params, x):
            if p.scope == "shared":
                shared[p.name] = float(v)
            elif p.scope.startswith("arch:"):
                arch.setdefault(p.scope[5:], {})[p.name] = float(v)
            else:
                fams.setdefault(p.scope[7:], {})[p.name] = float(v)
        archs = {a: (fm.architectures[a].model_copy(update=arch[a]) if a in arch
                     else fm.architectures[a]) for a in fm.architectures}
        fm = fm.model_copy(update={"shared": fm.shared.model_copy(update=shared),
                                   "architectures": archs})
        if seen is not None:
            fams = typical_values(fams, seen, fm)
        for key, values in fams.items():
            fm = _with_family(fm, key, values)
        return fm

    def times(self, x: np.ndarray, seen: frozenset[str] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Times and permutation times (ms) of every row under ``x`` (one model call)."""
        return predict_rows(self.rows, params_under(self.model(x, seen)))


def typical_values(fams: dict[str, dict[str, float]], seen: frozenset[str], fm: FamilyModel
                   ) -> dict[str, dict[str, float]]:
    """``fams`` with every family key of ``fm`` not in ``seen`` set to the median value, per
    parameter, of the seen families of the same pass (forward or backward)."""
    out = {k: v for k, v in fams.items() if k in seen}
    keys = [k for name, fam in fm.families.items()
            for k in ([name] + ([f"{name}/bwd"] if fam.backward is not None else []))]
    for key in keys:
        if key in seen:
            continue
        bwd = key.endswith("/bwd")
        peers = [v for k, v in out.items() if k.endswith("/bwd") == bwd]
        values = {}
        for name, *_ in FAMILY_PARAMS:
            got = [v[name] for v in peers if name in v]
            if got:
                values[name] = float(np.median(got))
        if values:
            out[key] = values
    return out


def params_under(fm: FamilyModel):
    """``params_for`` of :func:`predict_rows` under a family model (cached per GPU and family)."""
    cache: dict[tuple[str, str], ModelParams] = {}
    runtime: dict[str, Any] = {}

    def params_for(launch: Launch, profile: HardwareProfile) -> ModelParams:
        key = (profile.name, family_key(launch) or "")
        hit = cache.get(key)
        if hit is None:
            rm = runtime.get(profile.name)
            if rm is None:
                rm = runtime[profile.name] = family_runtime_model(profile, fm)
            km = family_of(fm, key[1]) or launch.kernel.model
            hit = cache[key] = ModelParams.of(km, rm)
        return hit
    return params_for


def in_family_model(rows: Iterable[BoundRow], fm: FamilyModel) -> tuple[list[BoundRow], list[str]]:
    """Rows whose every launch belongs to a family of ``fm`` (and the reasons for the others)."""
    keep, why = [], []
    for r in rows:
        missing = [L.kernel.name for L in r.launches
                   if family_key(L) is None or family_of(fm, family_key(L)) is None]
        if missing or r.profile.model is not None:
            what = (f"profile {r.profile.name} has its own [model]" if not missing
                    else f"implementation {missing[0]} has no family")
            why.append(f"{r.m.dataset or r.m.source} {r.m.where()}: {what}")
        else:
            keep.append(r)
    return keep, why


def build_shared_problem(rows: list[BoundRow], fm: FamilyModel | None = None) -> SharedProblem:
    """The parameters the rows can inform, with the hand-written family values as priors."""
    fm = fm if fm is not None else load_families(fitted=False)
    params: list[Param] = []
    for name, lo, hi, scale in SHARED_PARAMS:
        params.append(Param("shared", name, lo, hi, scale, float(getattr(fm.shared, name))))
    archs = sorted({r.profile.architecture for r in rows})
    legacy = {r.profile.architecture for r in rows for L in r.launches
              if L.kernel.model.mma == "mma.sync" and r.profile.architecture in ("hopper", "blackwell")}
    powered = {r.profile.architecture for r in rows if getattr(r.profile, "power_w", None)}
    for a in archs:
        am = fm.architecture(a)
        for name, lo, hi, scale in ARCH_PARAMS:
            if (name == "legacy_mma_share" and a not in legacy) or \
                    (name == "power_per_tflops_w" and a not in powered):
                continue
            params.append(Param(f"arch:{a}", name, lo, hi, scale, float(getattr(am, name))))
    units: dict[str, list[tuple[BoundRow, Launch]]] = {}
    for r in rows:
        for L in r.launches:
            units.setdefault(family_key(L), []).append((r, L))
    for key in sorted(units):
        km = family_of(fm, key)
        mine = units[key]
        for name, lo, hi, scale in FAMILY_PARAMS:
            if name == "mask_ops_per_element" and not any(L.shape.masked_pairs for _, L in mine):
                continue
            if name == "permute_bandwidth_share" and not any(
                    r.has_permute for r, L in mine if L is r.launch):
                continue
            prior = float(np.clip(getattr(km, name), lo, hi))
            params.append(Param(f"family:{key}", name, lo, hi, scale, prior))
    return SharedProblem(rows, fm, params)


def _sparsity(problem: SharedProblem, idx: list[int]) -> np.ndarray:
    """Which parameters each residual can depend on (measurement rows, then priors)."""
    ps = problem.params
    shared = [j for j, p in enumerate(ps) if p.scope == "shared"]
    n, m = len(idx), len(ps)
    perm = [i for i in idx if problem.rows[i].has_permute]
    out = np.zeros((n + len(perm) + m, m), dtype=bool)

    def deps(i: int) -> list[int]:
        r = problem.rows[i]
        cols = list(shared) + [j for j, p in enumerate(ps) if p.scope == f"arch:{r.profile.architecture}"]
        for L in r.launches:
            cols += [j for j, p in enumerate(ps) if p.scope == f"family:{family_key(L)}"]
        return cols
    for k, i in enumerate(idx):
        out[k, deps(i)] = True
    for k, i in enumerate(perm):
        out[n + k, deps(i)] = True
    out[n + len(perm):, :] = np.eye(m, dtype=bool)
    return out


@dataclass
class SharedFit:
    problem: SharedProblem
    x: np.ndarray
    sigma: np.ndarray
    at_bound: list[bool]
    data_share: np.ndarray
    residuals: np.ndarray      # log(predicted / measured) of the fitted rows (unweighted)
    fitted: list[int]          # the row indices fitted
    success: bool
    message: str
    seen: frozenset[str] = frozenset()    # family keys with fitted rows

    @property
    def model(self) -> FamilyModel:
        return self.problem.model(self.x, self.seen)

    def times(self) -> tuple[np.ndarray, np.ndarray]:
        """Every row's predicted times under the fit (unseen families typical)."""
        return self.problem.times(self.x, self.seen)

    def parameters(self) -> list[dict[str, Any]]:
        out = []
        for j, p in enumerate(self.problem.params):
            out.append({"parameter": p.key, "value": float(self.x[j]),
                        "sigma": float(self.sigma[j]), "prior": p.prior, "lower": p.lower,
                        "upper": p.upper, "at_bound": self.at_bound[j],
                        "data_share": float(self.data_share[j])})
        return out


def fit_shared(problem: SharedProblem, *, exclude: Iterable[int] = (),
               prior_weight: float = DEFAULT_PRIOR_WEIGHT, x0: np.ndarray | None = None,
               max_nfev: int = 200) -> SharedFit:
    """Bounded robust least squares over the problem's rows (minus ``exclude``)."""
    from scipy.optimize import least_squares

    ps = problem.params
    if not ps:
        raise MeasurementError("measurements: nothing to fit")
    lo = np.array([p.lower for p in ps])
    hi = np.array([p.upper for p in ps])
    scale = np.array([p.scale for p in ps])
    prior = np.array([p.prior for p in ps])
    start = prior if x0 is None else np.asarray(x0, dtype=float)
    start = np.clip(start, lo + 1e-6 * (hi - lo), hi - 1e-6 * (hi - lo))
    skip = set(exclude)
    idx = [i for i in range(len(problem.rows)) if i not in skip]
    if not idx:
        raise MeasurementError("measurements: every row is excluded")
    perm_idx = [i for i in idx if problem.rows[i].has_permute]
    meas_t = np.array([problem.rows[i].m.attention_ms for i in idx])
    meas_p = np.array([problem.rows[i].m.permute_ms for i in perm_idx])
    u = np.array([problem.rows[i].m.uncertainty for i in idx])
    w_t = 1.0 / np.sqrt(u ** 2 + MODEL_FLOOR ** 2)
    w_p = np.full(len(perm_idx), 1.0 / MODEL_FLOOR)

    def residuals(x: np.ndarray) -> np.ndarray:
        t, perm = problem.times(x)
        return np.concatenate([w_t * np.log(t[idx] / meas_t), w_p * np.log(perm[perm_idx] / meas_p),
                               prior_weight * (x - prior) / scale])

    sol = least_squares(residuals, start, bounds=(lo, hi), method="trf", x_scale=scale,
                        loss="soft_l1", f_scale=LOSS_SCALE, diff_step=1e-4,
                        jac_sparsity=_sparsity(problem, idx), max_nfev=max_nfev,
                        xtol=1e-8, ftol=1e-8)
    t, _ = problem.times(sol.x)
    r_meas = np.log(t[idx] / meas_t)
    jac = sol.jac.toarray() if hasattr(sol.jac, "toarray") else np.asarray(sol.jac)
    n_meas = len(idx) + len(perm_idx)
    jm = jac[:n_meas]
    cov_unit = np.linalg.pinv(jac.T @ jac)
    dof = max(n_meas - len(ps), 1)
    s2 = float(np.sum((w_t * r_meas) ** 2)) / dof
    sigma = np.sqrt(np.clip(np.diag(cov_unit), 0.0, None) * s2)
    info_data = np.einsum("ij,ij->j", jm, jm)
    info_all = np.einsum("ij,ij->j", jac, jac)
    share = np.divide(info_data, info_all, out=np.zeros_like(info_all), where=info_all > 0)
    tol = 1e-4 * (hi - lo)
    at_bound = [bool(v <= a + t_ or v >= b - t_) for v, a, b, t_ in zip(sol.x, lo, hi, tol)]
    seen = frozenset(family_key(L) for i in idx for L in problem.rows[i].launches)
    return SharedFit(problem, sol.x, sigma, at_bound, share, r_meas, idx, bool(sol.success),
                     str(sol.message), seen)


def mape(values: Iterable[float]) -> float | None:
    """Mean absolute percentage error of log residuals ``log(predicted / measured)``."""
    v = [abs(math.expm1(r)) * 100.0 for r in values]
    return float(np.mean(v)) if v else None
