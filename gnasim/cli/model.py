"""``gnasim calibrate`` and ``gnasim compare``: the runtime model against measurements.

Registered on the main app at the end of :mod:`gnasim.cli`. Heavy libraries (scipy, plotly) are
imported inside the commands, so ``gnasim predict`` does not pay for them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer

from gnasim.cli.options import OutputFormat, guarded, print_json

MeasurementsArg = typer.Argument(
    None, help="Measurement CSV (default: the built-in published H100/B200 measurements).")
ProfilesOpt = typer.Option(
    None, "--hardware", "-H",
    help="Profile name or .toml path to use (repeatable; default: every profile, matched by gpu).")
SkipOpt = typer.Option(False, "--skip-bad-rows", help="Leave bad rows out and report them.")
PriorOpt = typer.Option(0.1, "--prior-weight", min=0.0,
                        help="Weight of the pull towards the uncalibrated defaults.")
FormatOpt = typer.Option(OutputFormat.table, "--format", help="table for people, json for scripts.")


def _profiles(names: Optional[list[str]]):
    if not names:
        return None
    from gnasim.hardware.profile import load_profile

    return [load_profile(n) for n in names]


def _load(path: Optional[Path], skip: bool):
    from gnasim.calibration.measurements import load_measurements

    return load_measurements(path, skip_bad_rows=skip)


def _warn(lines: list[str]) -> None:
    for line in lines:
        typer.echo(f"skipped: {line}", err=True)


def _num(v: Any, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


@guarded
def compare(
    measurements: Optional[Path] = MeasurementsArg,
    hardware: Optional[list[str]] = ProfilesOpt,
    loo: bool = typer.Option(False, "--loo", help="Predict each row from a fit without it."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the per-row comparison as CSV."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a plotly HTML scatter (y = x)."),
    skip_bad_rows: bool = SkipOpt,
    prior_weight: float = PriorOpt,
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Predicted vs measured kernel times and speedups for every row of a measurement file."""
    from gnasim.calibration.compare import atomic_write_text, compare as run_compare, plot_html, to_csv

    mset = _load(measurements, skip_bad_rows)
    report = run_compare(mset, _profiles(hardware), loo=loo, skip_bad_rows=skip_bad_rows,
                         prior_weight=prior_weight)
    if out is not None:
        atomic_write_text(out, to_csv(report))
    if plot is not None:
        atomic_write_text(plot, plot_html(report))
    _warn(report.skipped)
    if fmt == OutputFormat.json:
        print_json(report.to_dict())
        return
    render_compare(report, out, plot)


@guarded
def calibrate(
    measurements: Optional[Path] = MeasurementsArg,
    hardware: Optional[list[str]] = ProfilesOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", help="Directory for NAME-calibrated.toml (default: current), or a .toml file."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fit and report; write nothing."),
    loo: bool = typer.Option(True, "--loo/--no-loo", help="Report leave-one-out errors."),
    skip_bad_rows: bool = SkipOpt,
    prior_weight: float = PriorOpt,
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Fit each profile's runtime-model efficiencies to measurements; write calibrated profiles."""
    from gnasim.calibration.fit import calibrate as run_calibrate
    from gnasim.hardware.write import default_output, write_profile

    mset = _load(measurements, skip_bad_rows)
    cals, errors = run_calibrate(mset, _profiles(hardware), prior_weight=prior_weight, loo=loo,
                                 skip_bad_rows=skip_bad_rows)
    targets = [default_output(c.profile, out, len(cals) > 1) for c in cals]
    written: list[str | None] = []
    if not dry_run:
        for t in targets:
            if t.exists() and not force:
                from gnasim.errors import HardwareProfileError
                raise HardwareProfileError(f"out: '{t}' already exists; choose another name "
                                           "or pass --force")
        for c, t in zip(cals, targets):
            header = (f"Calibrated by gnasim calibrate from {Path(mset.path).name} "
                      f"({len(c.problem.rows)} rows) on profile '{c.profile.name}'.")
            written.append(str(write_profile(c.profile, c.model, t, force=force, header=header)))
    else:
        written = [None] * len(cals)
    _warn(list(mset.errors) + errors)
    if fmt == OutputFormat.json:
        print_json({"file": mset.path, "skipped": list(mset.errors) + errors,
                    "profiles": [dict(c.metrics(), written=w, parameters=c.parameters(),
                                      fit_success=c.fit.success,
                                      loo_rows=[_loo_row(r) for r in c.loo])
                                 for c, w in zip(cals, written)]})
        return
    render_calibration(cals, written)


def _loo_row(r) -> dict[str, Any]:
    return {"row": r.m.row, "implementation": r.m.implementation, "problem": r.m.label,
            "measured_ms": r.m.attention_ms, "predicted_ms": r.predicted_ms,
            "error_time_pct": 100 * r.error_time}


# -- tables ------------------------------------------------------------------------------------
def render_compare(report, out: Optional[Path] = None, plot: Optional[Path] = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from gnasim.calibration.compare import FACTOR_STEPS, fmt_pct

    con = Console(highlight=False)
    kind = "leave-one-out predictions" if report.loo else "predictions"
    t = Table(title=f"{Path(report.path).name}: measured vs {kind}", title_justify="left")
    for col, just in (("row", "right"), ("gpu", "left"), ("implementation", "left"),
                      ("problem", "left"), ("tiles", "left"), ("meas ms", "right"),
                      ("pred ms", "right"), ("err", "right"), ("meas x", "right"),
                      ("pred x", "right"), ("err", "right"), ("meas x+perm", "right"),
                      ("pred x+perm", "right"), ("err", "right")):
        t.add_column(col, justify=just)
    for r in report.rows:
        has = "measured_speedup" in r
        t.add_row(str(r["row"]), r["profile"], r["implementation"], r["problem"],
                  f"{r['q_tile']}/{r['kv_tile']}", f"{r['measured_ms']:.4g}",
                  f"{r['predicted_ms']:.4g}", fmt_pct(r["error_time_pct"]),
                  _num(r.get("measured_speedup"), ".2f"), _num(r.get("predicted_speedup"), ".2f"),
                  fmt_pct(r.get("error_speedup_pct")) if has else "",
                  _num(r.get("measured_speedup_with_permute"), ".2f"),
                  _num(r.get("predicted_speedup_with_permute"), ".2f"),
                  fmt_pct(r.get("error_speedup_with_permute_pct")) if has else "")
    con.print(t)

    gna = [r for r in report.rows if "tile_bound" in r]
    if gna:
        note = " with the profile's parameters" if report.loo else ""
        e = Table(title=f"From the tile bound to the predicted speedup, one model feature at a time"
                        f" (factors{note})", title_justify="left")
        for col in ("row", "gpu", "problem", "tile bound", "CTAs/SMs", "masked tiles",
                    "mask cost", *FACTOR_STEPS, "pred x", "bound"):
            e.add_column(col, justify="left" if col in ("gpu", "problem", "bound") else "right")
        for r in gna:
            e.add_row(str(r["row"]), r["profile"], r["problem"], f"{r['tile_bound']:.2f}x",
                      f"{r['waves']:.2f}", f"{r['masked_tiles_pct']:.0f}%",
                      f"{r['mask_factor']:.2f}x" if r["masked_tiles_pct"] > 0 else "-",
                      *[_num(r.get(f"factor_{k}"), ".3f") for k in FACTOR_STEPS],
                      _num(r.get("after_baseline"), ".2f"), r["bound"])
        con.print(e)

    m = report.metrics
    s = Table(title="Error report (|predicted / measured - 1|)", title_justify="left")
    for col in ("quantity", "n", "MAPE", "max error", "Pearson r", "within 10%"):
        s.add_column(col, justify="left" if col == "quantity" else "right")
    for key, label in (("time", "kernel time (r on log)"), ("speedup", "speedup, kernel only"),
                       ("speedup_with_permute", "speedup with permute"),
                       ("permute", "permute time")):
        n = m["n"] if key == "time" else m["n_permute"] if key == "permute" else m["n_speedup"]
        s.add_row(label, str(n), _num(m[f"mape_{key}"], ".2f") + ("%" if m[f"mape_{key}"] is not None else ""),
                  _num(m[f"max_error_{key}"], ".2f") + ("%" if m[f"max_error_{key}"] is not None else ""),
                  _num(m[f"pearson_r_{key}"], ".4f"),
                  _num(None if m[f"within_10pct_{key}"] is None else 100 * m[f"within_10pct_{key}"], ".0f")
                  + ("%" if m[f"within_10pct_{key}"] is not None else ""))
    for prof, pm in m["per_profile"].items():
        s.add_row(f"{prof}: MAPE time / speedup / +permute", f"{pm['n']} / {pm['n_speedup']}",
                  " / ".join(_num(pm[k], ".2f") or "-" for k in
                             ("mape_time", "mape_speedup", "mape_speedup_with_permute")),
                  "", "", "")
    con.print(s)
    for w in report.warnings:
        con.print(f"[yellow]note:[/] {w}")
    if report.skipped:
        con.print(f"[yellow]{len(report.skipped)} bad rows skipped (listed on stderr)[/]")
    for label, path in (("CSV", out), ("plot", plot)):
        if path is not None:
            con.print(f"{label} written to {path}")


def render_calibration(cals, written: list[str | None]) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False)
    for c, w in zip(cals, written):
        t = Table(title=f"{c.profile.name}: fitted parameters ({len(c.problem.rows)} rows)",
                  title_justify="left")
        for col in ("parameter", "prior", "fitted", "+/- 1 sigma", "data share", "bounds", ""):
            t.add_column(col, justify="left" if col in ("parameter", "") else "right")
        for p in c.parameters():
            t.add_row(p["parameter"], f"{p['prior']:.4g}", f"{p['value']:.4g}", f"{p['sigma']:.3g}",
                      f"{p['data_share']:.2f}", f"[{p['lower']:g}, {p['upper']:g}]",
                      "at bound" if p["at_bound"] else "")
        con.print(t)
        met = c.metrics()
        r = Table(title=f"{c.profile.name}: errors (MAPE %)", title_justify="left")
        for col in ("", "time", "speedup", "speedup + permute", "max speedup error"):
            r.add_column(col, justify="left" if col == "" else "right")
        r.add_row("in sample", _num(met["mape_time"], ".2f"), _num(met["mape_speedup"], ".2f"),
                  _num(met["mape_speedup_with_permute"], ".2f"), "")
        if c.loo:
            r.add_row("leave-one-out", _num(met["loo_mape_time"], ".2f"),
                      _num(met["loo_mape_speedup"], ".2f"),
                      _num(met["loo_mape_speedup_with_permute"], ".2f"),
                      _num(met["loo_max_error_speedup"], ".2f"))
        con.print(r)
        if c.loo:
            lt = Table(title=f"{c.profile.name}: leave-one-out, each row predicted from a fit "
                             "without it", title_justify="left")
            for col in ("row", "implementation", "problem", "measured ms", "predicted ms", "error"):
                lt.add_column(col, justify="left" if col in ("implementation", "problem") else "right")
            for res in c.loo:
                lt.add_row(str(res.m.row), res.m.implementation, res.m.label,
                           f"{res.m.attention_ms:.4g}", f"{res.predicted_ms:.4g}",
                           f"{100 * res.error_time:+.1f}%")
            con.print(lt)
        con.print(f"written: {w}" if w else "dry run: nothing written")
    sys.stdout.flush()
