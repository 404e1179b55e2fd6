"""Out-of-sample errors of the shared model, and the prediction intervals made from them.

``held_out(problem, by="gpu")`` refits the shared model once per GPU without that GPU's rows and
predicts them (leave-one-GPU-out); ``by="source"`` does the same per dataset
(leave-one-source-out). Each held-out prediction is classed by what the refit knew of the row's
family, which is what a user's prediction would be classed as (:mod:`gnasim.model.uncertainty`):

* ``calibrated``: the family had rows on this GPU (from other sources);
* ``transferred``: the family had rows on other GPUs only;
* ``datasheet-only``: the family had no rows at all (its parameters are the priors).

:func:`interval_table` turns the residuals into a symmetric 90% band per family and class
(pooled over families where a family has fewer than :data:`MIN_GROUP` residuals). :func:`coverage` checks
them honestly: each residual is tested against quantiles computed from the other refits' residuals.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Literal

import numpy as np

from gnasim.calibration.fit import speedup_pairs, row_results
from gnasim.calibration.shared_fit import SharedFit, SharedProblem, family_key, fit_shared, mape
from gnasim.model.uncertainty import choose_quantiles, speedup_quantiles

Split = Literal["gpu", "source"]
STATUSES = ("calibrated", "transferred", "datasheet-only")
MIN_GROUP = 10          # fewer residuals than this: use the class's pooled quantiles
LOW_Q, HIGH_Q = 0.05, 0.95


@dataclass(frozen=True)
class Residual:
    """One held-out prediction: ``log(predicted / measured)``."""

    row: int
    family: str
    gpu: str
    source: str
    status: str
    split: str            # "gpu:NAME" or "source:NAME"
    value: float
    kind: str = "time"    # "time" or "speedup"
    baseline: str = ""    # speedups: the dense row's family and class
    baseline_status: str = ""


def row_family(problem: SharedProblem, i: int) -> str:
    """A row's family key (the first launch's; fwd+bwd rows are keyed by their forward pass)."""
    return family_key(problem.rows[i].launch) or ""


def group_of(problem: SharedProblem, i: int, by: Split) -> str:
    r = problem.rows[i]
    return r.profile.name if by == "gpu" else (r.m.dataset or r.m.source)


def status_of(problem: SharedProblem, i: int, trained: Iterable[int]) -> str:
    """What a fit on rows ``trained`` knew of row ``i``'s family."""
    fam, gpu = row_family(problem, i), problem.rows[i].profile.name
    gpus = {problem.rows[j].profile.name for j in trained if row_family(problem, j) == fam}
    if gpu in gpus:
        return "calibrated"
    return "transferred" if gpus else "datasheet-only"


def held_out(problem: SharedProblem, full: SharedFit, by: Split,
             groups: Iterable[str] | None = None) -> list[Residual]:
    """Leave-one-GPU-out (``by="gpu"``) or leave-one-source-out residuals, times and speedups."""
    n = len(problem.rows)
    names = sorted({group_of(problem, i, by) for i in range(n)}) if groups is None else list(groups)
    out: list[Residual] = []
    for g in names:
        test = [i for i in range(n) if group_of(problem, i, by) == g]
        train = [i for i in range(n) if i not in set(test)]
        if not test or not train:
            continue
        f = fit_shared(problem, exclude=test, x0=full.x)
        t, perm = f.times()
        split = f"{by}:{g}"
        status = {i: status_of(problem, i, train) for i in test}
        for i in test:
            r = problem.rows[i]
            out.append(Residual(i, row_family(problem, i), r.profile.name, r.m.dataset or r.m.source,
                                status[i], split, float(np.log(t[i] / r.m.attention_ms))))
        results = row_results(problem.rows, t, perm, test)
        for res, meas, pred, _, _ in speedup_pairs(results):
            r = problem.rows[res.index]
            b = res.baseline
            out.append(Residual(res.index, row_family(problem, res.index), r.profile.name,
                                r.m.dataset or r.m.source, status[res.index], split,
                                float(np.log(pred / meas)), "speedup", row_family(problem, b),
                                status.get(b) or status_of(problem, b, train)))
    return out


def _quantiles(values: list[float]) -> dict[str, float]:
    """A symmetric 90% band: the 90th percentile of |residual| on both sides. Held-out errors of
    one class carry a bias whose sign depends on which GPU or source was left out (H100 -> H200
    and H200 -> H100 err in opposite directions), so a new prediction's sign is unknown."""
    v = np.asarray(values, dtype=float)
    q = float(np.quantile(np.abs(v), HIGH_Q - LOW_Q))
    return {"q05": -q, "q95": q, "n": int(v.size), "mape_pct": float(mape(v) or 0.0)}


def interval_table(residuals: list[Residual], kind: str = "time") -> dict[str, dict[str, Any]]:
    """``{family or "*": {status: {q05, q95, n, mape_pct}}}``: quantiles of ``kind`` residuals
    per family and class; ``"*"`` pools every family of a class."""
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in residuals:
        if r.kind == kind:
            by[(r.family, r.status)].append(r.value)
            by[("*", r.status)].append(r.value)
    out: dict[str, dict[str, Any]] = {}
    for (fam, status), vals in sorted(by.items()):
        if fam == "*" or len(vals) >= MIN_GROUP:
            out.setdefault(fam, {})[status] = _quantiles(vals)
    return out


def coverage(residuals: list[Residual], kind: str = "time", status: str | None = None
             ) -> dict[str, Any]:
    """Share of held-out ``kind`` residuals inside a 90% interval built, by the rule predictions
    use, from the residuals of the other refits (other held-out GPUs and sources, never the same
    row), and the median half-width of those intervals (%)."""
    mine = [r for r in residuals if r.kind == kind and status in (None, r.status)]
    inside, halves = [], []
    for r in mine:
        others = [o for o in residuals if o.split != r.split and o.row != r.row]
        table = interval_table(others, kind)
        hit = choose_quantiles(table.get(r.family, {}), table.get("*", {}), r.status)
        if kind == "speedup":
            times = interval_table(others, "time")
            pick = lambda fam, st: choose_quantiles(times.get(fam, {}), times.get("*", {}), st)
            q = speedup_quantiles(hit, pick(r.family, r.status),
                                  pick(r.baseline, r.baseline_status))
        else:
            q = hit[0] if hit is not None else None
        if q is None:
            continue
        inside.append(q["q05"] <= r.value <= q["q95"])
        halves.append((np.exp(-q["q05"]) - np.exp(-q["q95"])) / 2 * 100)
    return {"n": len(inside), "coverage": float(np.mean(inside)) if inside else None,
            "median_half_width_pct": float(np.median(halves)) if halves else None}


def error_table(residuals: list[Residual]) -> list[dict[str, Any]]:
    """MAPE of held-out times and speedups per split kind, GPU and family."""
    by: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: {"time": [], "speedup": []})
    for r in residuals:
        key = (r.split.split(":", 1)[0], r.gpu, r.family, r.status)
        by[key][r.kind].append(r.value)
    out = []
    for (split, gpu, fam, status), v in sorted(by.items()):
        out.append({"held_out": split, "gpu": gpu, "family": fam, "status": status,
                    "rows": len(v["time"]), "mape_time_pct": mape(v["time"]),
                    "speedups": len(v["speedup"]), "mape_speedup_pct": mape(v["speedup"])})
    return out
