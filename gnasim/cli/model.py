"""``gnasim calibrate`` and ``gnasim compare``: the runtime model against measurements.

Registered on the main app at the end of :mod:`gnasim.cli`. Heavy libraries (scipy, plotly) are
imported inside the commands, so ``gnasim predict`` does not pay for them.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Optional

import typer

from gnasim.cli.options import OutputFormat, guarded, print_json

MeasurementsArg = typer.Argument(
    None, help="Measurement CSV (default: the built-in published H100/B200 measurements).")
ProfilesOpt = typer.Option(
    None, "--hardware", "-H", metavar="GPU",
    help="Profile name or .toml path to use (repeatable; default: every profile, matched by gpu).")
SkipOpt = typer.Option(False, "--skip-bad-rows", help="Leave bad rows out and report them.")
PriorOpt = typer.Option(0.1, "--prior-weight", min=0.0, metavar="W",
                        help="Weight of the pull towards the uncalibrated defaults.")
FormatOpt = typer.Option(OutputFormat.table, "--format", help="table for people, json for scripts.")


class GroupBy(str, Enum):
    gpu = "gpu"
    source = "source"
    implementation = "implementation"


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


@guarded
def compare(
    measurements: Optional[Path] = MeasurementsArg,
    hardware: Optional[list[str]] = ProfilesOpt,
    loo: bool = typer.Option(False, "--loo", help="Predict each row from a fit without it."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="FILE", help="Write the per-row comparison as CSV."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE", help="Write a plotly HTML scatter (y = x)."),
    skip_bad_rows: bool = SkipOpt,
    prior_weight: float = PriorOpt,
    by: Optional[GroupBy] = typer.Option(None, "--by", help="Also report errors per gpu, source or implementation."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Predicted vs measured kernel times and speedups for every row of a measurement file."""
    from gnasim.calibration.compare import compare as run_compare, plot_html, to_csv
    from gnasim.files import atomic_write, check_output_path

    for path, label in ((out, "out"), (plot, "plot")):
        if path is not None:
            check_output_path(path, label)

    mset = _load(measurements, skip_bad_rows)
    report = run_compare(mset, _profiles(hardware), loo=loo, skip_bad_rows=skip_bad_rows,
                         prior_weight=prior_weight, by=by.value if by is not None else None)
    if out is not None:
        atomic_write(out, to_csv(report))
    if plot is not None:
        atomic_write(plot, plot_html(report), label="plot")
    _warn(report.skipped)
    if fmt == OutputFormat.json:
        print_json(report.to_dict())
        return
    from gnasim.render import render_compare

    render_compare(report, out, plot)


@guarded
def calibrate(
    measurements: Optional[Path] = MeasurementsArg,
    hardware: Optional[list[str]] = ProfilesOpt,
    out: Optional[Path] = typer.Option(
        None, "--out", metavar="PATH", help="Directory for NAME-calibrated.toml (default: current), or a .toml file."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output file."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Fit and report; write nothing."),
    loo: bool = typer.Option(True, "--loo/--no-loo", help="Report leave-one-out errors."),
    skip_bad_rows: bool = SkipOpt,
    prior_weight: float = PriorOpt,
    corpus: bool = typer.Option(False, "--corpus", help="Fit the shared family model to the built-in corpus (with the measurement file's rows added) and report held-out errors."),
    holdout_gpu: Optional[str] = typer.Option(None, "--holdout-gpu", metavar="NAME", help="With --corpus: only predict this GPU from a fit without its rows."),
    holdout_source: Optional[str] = typer.Option(None, "--holdout-source", metavar="NAME", help="With --corpus: only predict this source (dataset) from a fit without it."),
    write: Optional[Path] = typer.Option(None, "--write", metavar="FILE", help="With --corpus: write the fitted values and evidence (a fitted.toml) to FILE."),
    fmt: OutputFormat = FormatOpt,
) -> None:
    """Fit the runtime model to measurements: per GPU (writes NAME-calibrated.toml), or with
    --corpus the shared family model on the built-in corpus, with held-out errors."""
    if corpus or holdout_gpu or holdout_source or write:
        from gnasim.cli.corpus_report import calibrate_corpus_command

        calibrate_corpus_command(measurements, skip_bad_rows, prior_weight, holdout_gpu,
                                 holdout_source, write, force, fmt)
        return
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
    from gnasim.render import render_calibration

    render_calibration(cals, written)


def _loo_row(r) -> dict[str, Any]:
    return {"row": r.m.row, "implementation": r.m.implementation, "problem": r.m.label,
            "measured_ms": r.m.attention_ms, "predicted_ms": r.predicted_ms,
            "error_time_pct": 100 * r.error_time}


