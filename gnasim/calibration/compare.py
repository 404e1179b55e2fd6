"""Predicted vs measured, row by row (``gnasim compare``): errors, explanations, CSV and a plot.

Every row of a measurement file is predicted with its GPU's profile (or, with ``loo``, with the
profile refitted without that row). GNA rows are paired with their dense baseline row for
speedups, kernel only and with the measured / predicted permutation time added. For each GNA row
the model's explanation is reported: how the tile bound becomes the predicted speedup, one model
feature at a time (waves, masking, overheads, clock, baseline kernel, permutation).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gnasim.calibration.fit import (DEFAULT_PRIOR_WEIGHT, BoundRow, RowResult, bind_rows,
                                   calibrate_profile, check_prior_weight, predict_rows,
                                   row_results)
from gnasim.model.kernel import ModelParams, runtime_model
from gnasim.model.solve import explain, kernel_time, permute_time_ms
from gnasim.errors import MeasurementError
from gnasim.hardware.profile import HardwareProfile
from gnasim.calibration.measurements import MeasurementSet
from gnasim.record import FACTORS

FACTOR_STEPS = FACTORS


@dataclass
class CompareReport:
    """All rows compared, the summary metrics, and the rows that were skipped."""

    path: str
    rows: list[dict[str, Any]]
    metrics: dict[str, Any]
    skipped: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    loo: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.metrics)
        out.update({"file": self.path, "loo": self.loo, "skipped": list(self.skipped),
                    "warnings": list(self.warnings), "rows": self.rows})
        return out


def error_stats(measured: list[float], predicted: list[float], *, log_r: bool = False) -> dict[str, Any]:
    """MAPE (%), max |error| (%), Pearson r (of log values with ``log_r``), share within 10%."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if m.size == 0:
        return {"n": 0, "mape": None, "max_error": None, "pearson_r": None, "within_10pct": None}
    err = np.abs(p / m - 1.0) * 100.0
    a, b = (np.log(m), np.log(p)) if log_r else (m, p)
    r = None
    if m.size >= 2 and np.std(a) > 0 and np.std(b) > 0:
        r = float(np.corrcoef(a, b)[0, 1])
    return {"n": int(m.size), "mape": float(err.mean()), "max_error": float(err.max()),
            "pearson_r": r, "within_10pct": float((err <= 10.0 + 1e-9).mean())}


def _params(r: BoundRow) -> ModelParams:
    return ModelParams.of(r.launch.kernel.model, runtime_model(r.profile))


def _predict_rows(rows: list[BoundRow]) -> list[RowResult]:
    """Predictions with each profile's current parameters (every row in one model call)."""
    return row_results(rows, *predict_rows(rows), range(len(rows)))


def _loo_rows(rows: list[BoundRow], prior_weight: float) -> list[RowResult]:
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        groups.setdefault(r.profile.name, []).append(i)
    out: dict[int, RowResult] = {}
    for idx in groups.values():
        remap = {old: new for new, old in enumerate(idx)}
        sub = [rows[i].with_baseline(remap.get(rows[i].baseline)
                                     if rows[i].baseline is not None else None) for i in idx]
        if len(sub) < 2:
            raise MeasurementError(f"loo: profile '{sub[0].profile.name}' has one row; "
                                   "leave-one-out needs at least two")
        cal = calibrate_profile(sub[0].profile, sub, prior_weight=prior_weight, loo=True)
        for res in cal.loo:
            old = idx[res.index]
            out[old] = RowResult(old, res.m, res.kernel, res.predicted_ms, res.predicted_permute_ms,
                                 idx[res.baseline] if res.baseline is not None else None,
                                 res.baseline_predicted_ms)
    return [out[i] for i in range(len(rows))]


def _explanation(rows: list[BoundRow], i: int) -> dict[str, Any]:
    r = rows[i]
    L = r.launch
    if L.plan is None:
        return {}
    p = _params(r)
    g = kernel_time(L.shape, p, r.rates)
    shape = L.shape
    out: dict[str, Any] = {
        "tile_bound": L.tile_bound,
        "flop_bound": L.dense_plan.attended_pairs / L.plan.attended_pairs,
        "masked_tiles_pct": 100.0 * shape.masked_pairs / max(shape.tile_pairs, 1),
        "mask_factor": g.mask_factor,
        "waves": g.waves,
        "bound": g.bound,
    }
    if r.baseline is not None:
        b = rows[r.baseline]
        perm = permute_time_ms(shape, p, r.rates)
        factors, steps, _, _ = explain(shape, L.own_dense, b.launch.shape, p,
                                       ModelParams.of(b.launch.kernel.model, runtime_model(r.profile)),
                                       r.rates, L.tile_bound, perm)
        out.update({f"factor_{k}": v for k, v in factors.items()})
        out.update({f"after_{k}": v for k, v in steps.items() if k != "tile_bound"})
    return out


GROUPS = {"gpu": "profile", "source": "source", "implementation": "implementation"}


def fit_keys() -> set[tuple]:
    """Keys of the rows the shipped model was fitted on (the corpus's fit-role datasets)."""
    from gnasim.calibration.corpus import load_corpus

    return {row_key(m) for m in load_corpus(roles=("fit",))}


def row_key(m: Any) -> tuple:
    """What identifies a measured run across files: GPU, implementation, pass, problem, time."""
    c = m.config
    return (m.gpu.strip().lower(), m.implementation.lower(), m.pass_, c.input_size, c.window_size,
            c.stride, c.dilation, c.causal, c.q_tile, c.kv_tile, c.batch, c.heads, c.head_dim,
            c.dtype, round(m.attention_ms, 6))


def grouped(records: list[dict[str, Any]], by: str) -> dict[str, Any]:
    """Time and speedup errors per group (``by``: gpu, source or implementation)."""
    key = GROUPS[by]
    out: dict[str, Any] = {}
    for g in sorted({str(r.get(key)) for r in records}):
        mine = [r for r in records if str(r.get(key)) == g]
        msp = [r for r in mine if "measured_speedup" in r]
        out[g] = {"n": len(mine), "n_speedup": len(msp),
                  "in_sample": sum(bool(r.get("in_sample")) for r in mine),
                  "mape_time": error_stats([r["measured_ms"] for r in mine],
                                           [r["predicted_ms"] for r in mine])["mape"],
                  "mape_speedup": error_stats([r["measured_speedup"] for r in msp],
                                              [r["predicted_speedup"] for r in msp])["mape"]}
    return out


def compare(mset: MeasurementSet, profiles: list[HardwareProfile] | None = None, *,
            loo: bool = False, skip_bad_rows: bool = False,
            prior_weight: float = DEFAULT_PRIOR_WEIGHT, by: str | None = None) -> CompareReport:
    """Compare every row of ``mset`` with the model (``loo``: each row held out of a refit;
    ``by``: errors per gpu, source or implementation too). Each row says whether the shipped
    model was fitted on it (``in_sample``)."""
    if by is not None and by not in GROUPS:
        raise MeasurementError(f"by: '{by}' is not one of {list(GROUPS)}")
    check_prior_weight(prior_weight)
    rows, bad = bind_rows(mset, profiles, skip_bad_rows=skip_bad_rows)
    skipped = list(mset.errors) + bad
    if not rows:
        raise MeasurementError(f"measurements: no usable rows in {Path(mset.path).name}"
                               + (f" ({len(skipped)} skipped)" if skipped else ""))
    results = _loo_rows(rows, prior_weight) if loo else _predict_rows(rows)
    by_index = {res.index: res for res in results}
    fitted = fit_keys()
    records: list[dict[str, Any]] = []
    for res in results:
        r = rows[res.index]
        m, c = r.m, r.m.config
        rec: dict[str, Any] = {
            "row": m.row, "gpu": m.gpu, "profile": r.profile.name,
            "source": m.dataset or m.source or Path(mset.path).name, "pass": m.pass_,
            "in_sample": not loo and row_key(m) in fitted,
            "implementation": m.implementation, "kernel": r.kernel, "problem": m.label,
            "batch": c.batch, "heads": c.heads, "head_dim": c.head_dim, "dtype": c.dtype,
            "q_tile": "x".join(map(str, r.launch.config.q_tile)) if r.launch.plan is not None
            else f"{r.launch.shape.q_rows}",
            "kv_tile": "x".join(map(str, r.launch.config.kv_tile)) if r.launch.plan is not None
            else f"{r.launch.shape.kv_rows}",
            "measured_ms": m.attention_ms, "predicted_ms": res.predicted_ms,
            "error_time_pct": 100.0 * res.error_time,
            "measured_permute_ms": m.permute_ms, "predicted_permute_ms": res.predicted_permute_ms,
            "baseline_row": rows[res.baseline].m.row if res.baseline is not None else None,
            "baseline": rows[res.baseline].m.implementation if res.baseline is not None else None,
        }
        if res.baseline is not None and res.baseline_predicted_ms is not None:
            mb = by_index[res.baseline].m.attention_ms if res.baseline in by_index else None
            if mb is not None:
                ms, ps = mb / m.attention_ms, res.baseline_predicted_ms / res.predicted_ms
                msp = mb / (m.attention_ms + m.permute_ms)
                psp = res.baseline_predicted_ms / (res.predicted_ms + res.predicted_permute_ms)
                rec.update({"measured_speedup": ms, "predicted_speedup": ps,
                            "error_speedup_pct": 100.0 * (ps / ms - 1.0),
                            "measured_speedup_with_permute": msp,
                            "predicted_speedup_with_permute": psp,
                            "error_speedup_with_permute_pct": 100.0 * (psp / msp - 1.0)})
        rec.update(_explanation(rows, res.index))
        records.append(rec)
    records.sort(key=lambda d: d["row"])
    metrics = summary(records)
    n_in = sum(r["in_sample"] for r in records)
    metrics["in_sample_rows"], metrics["out_of_sample_rows"] = n_in, len(records) - n_in
    if by is not None:
        metrics["by"] = {by: grouped(records, by)}
    warnings = list(mset.warnings)
    name = Path(mset.path).name
    for r in rows:
        if not r.m.is_dense and r.baseline is None:
            want = f"'{r.m.baseline}'" if r.m.baseline else "dense"
            warnings.append(f"{name} {r.m.where()}: no {want} row for the same GPU and problem; "
                            "no speedup compared")
    return CompareReport(mset.path, records, metrics, skipped, warnings, loo)


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    t = error_stats([r["measured_ms"] for r in records], [r["predicted_ms"] for r in records],
                    log_r=True)
    sp = [r for r in records if "measured_speedup" in r]
    s = error_stats([r["measured_speedup"] for r in sp], [r["predicted_speedup"] for r in sp])
    sw = error_stats([r["measured_speedup_with_permute"] for r in sp],
                     [r["predicted_speedup_with_permute"] for r in sp])
    pr = [r for r in records if r["measured_permute_ms"] > 0 and r["predicted_permute_ms"] > 0]
    pe = error_stats([r["measured_permute_ms"] for r in pr], [r["predicted_permute_ms"] for r in pr])
    out: dict[str, Any] = {"n": t["n"], "n_speedup": s["n"], "n_permute": pe["n"]}
    for prefix, st in (("time", t), ("speedup", s), ("speedup_with_permute", sw), ("permute", pe)):
        out[f"mape_{prefix}"] = st["mape"]
        out[f"max_error_{prefix}"] = st["max_error"]
        out[f"pearson_r_{prefix}"] = st["pearson_r"]
        out[f"within_10pct_{prefix}"] = st["within_10pct"]
    per_gpu: dict[str, Any] = {}
    for prof in sorted({r["profile"] for r in records}):
        mine = [r for r in records if r["profile"] == prof]
        msp = [r for r in mine if "measured_speedup" in r]
        per_gpu[prof] = {
            "n": len(mine), "n_speedup": len(msp),
            "mape_time": error_stats([r["measured_ms"] for r in mine],
                                     [r["predicted_ms"] for r in mine])["mape"],
            "mape_speedup": error_stats([r["measured_speedup"] for r in msp],
                                        [r["predicted_speedup"] for r in msp])["mape"],
            "mape_speedup_with_permute": error_stats(
                [r["measured_speedup_with_permute"] for r in msp],
                [r["predicted_speedup_with_permute"] for r in msp])["mape"],
        }
    out["per_profile"] = per_gpu
    return out


# -- outputs -----------------------------------------------------------------------------------
CSV_COLUMNS = (
    "row", "gpu", "profile", "source", "pass", "in_sample", "implementation", "kernel", "problem", "batch", "heads", "head_dim",
    "dtype", "q_tile", "kv_tile", "measured_ms", "predicted_ms", "error_time_pct",
    "measured_permute_ms", "predicted_permute_ms", "baseline_row", "baseline",
    "measured_speedup", "predicted_speedup", "error_speedup_pct",
    "measured_speedup_with_permute", "predicted_speedup_with_permute",
    "error_speedup_with_permute_pct", "tile_bound", "flop_bound", "masked_tiles_pct",
    "mask_factor", "waves", "bound") + tuple(f"factor_{k}" for k in FACTOR_STEPS)


def to_csv(report: CompareReport) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in report.rows:
        w.writerow({k: _csv_value(r.get(k)) for k in CSV_COLUMNS})
    return buf.getvalue()


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def plot_html(report: CompareReport) -> str:
    """A self-contained plotly page: predicted vs measured time and speedup, with y = x."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    title = f"gnasim compare: {Path(report.path).name}" + (" (leave-one-out)" if report.loo else "")
    fig = make_subplots(rows=1, cols=2, subplot_titles=(
        "kernel time (ms), log-log", "speedup over the dense baseline"))
    gpus = sorted({r["profile"] for r in report.rows})
    symbols = ["circle", "diamond", "square", "triangle-up", "x", "cross"]

    def label(r):
        return (f"row {r['row']} {r['gpu']} {r['implementation']}<br>{r['problem']} "
                f"tiles {r['q_tile']}/{r['kv_tile']}")

    for gi, gpu in enumerate(gpus):
        mine = [r for r in report.rows if r["profile"] == gpu]
        sym = symbols[gi % len(symbols)]
        fig.add_trace(go.Scatter(
            x=[r["measured_ms"] for r in mine], y=[r["predicted_ms"] for r in mine],
            mode="markers", name=f"{gpu} time", marker=dict(symbol=sym, size=10),
            text=[label(r) for r in mine], hovertemplate="%{text}<br>measured %{x:.4g} ms"
            "<br>predicted %{y:.4g} ms<extra></extra>"), row=1, col=1)
        sp = [r for r in mine if "measured_speedup" in r]
        for key, name, marker in (("speedup", "kernel", sym), ("speedup_with_permute",
                                                                "with permute", sym + "-open")):
            fig.add_trace(go.Scatter(
                x=[r[f"measured_{key}"] for r in sp], y=[r[f"predicted_{key}"] for r in sp],
                mode="markers", name=f"{gpu} speedup ({name})", marker=dict(symbol=marker, size=10),
                text=[label(r) + f"<br>tile bound {r.get('tile_bound', float('nan')):.2f}x"
                      for r in sp],
                hovertemplate="%{text}<br>measured %{x:.3g}x<br>predicted %{y:.3g}x<extra></extra>"),
                row=1, col=2)
    times = [v for r in report.rows for v in (r["measured_ms"], r["predicted_ms"])]
    if times:
        lo, hi = min(times) * 0.7, max(times) * 1.4
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                                 line=dict(dash="dash", color="gray")), row=1, col=1)
    sps = [v for r in report.rows if "measured_speedup" in r
           for v in (r["measured_speedup"], r["predicted_speedup"],
                     r["measured_speedup_with_permute"], r["predicted_speedup_with_permute"])]
    if sps:
        lo, hi = 0.0, max(sps) * 1.1
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x ",
                                 line=dict(dash="dash", color="gray"), showlegend=False), row=1, col=2)
    fig.update_xaxes(type="log", title_text="measured (ms)", row=1, col=1)
    fig.update_yaxes(type="log", title_text="predicted (ms)", row=1, col=1)
    fig.update_xaxes(title_text="measured speedup", row=1, col=2)
    fig.update_yaxes(title_text="predicted speedup", row=1, col=2)
    m = report.metrics
    labels = (("mape_time", "time"), ("mape_speedup", "speedup"),
              ("mape_speedup_with_permute", "speedup with permutation"))
    sub = ", ".join(f"{label} {m[k]:.2f}%" for k, label in labels if m.get(k) is not None)
    fig.update_layout(title=dict(text=f"{title}<br><sup>MAPE: {sub}</sup>"), height=560,
                      width=1200, template="plotly_white")
    return fig.to_html(full_html=True, include_plotlyjs=True)


def fmt_pct(v: float | None) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.1f}%"
