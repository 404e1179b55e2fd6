"""``gnasim calibrate --corpus``: fit the shared family model and report how well it transfers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from gnasim.cli.options import OutputFormat, print_json


def _rows(measurements: Optional[Path], skip: bool) -> list:
    from gnasim.calibration.corpus import model_scope
    from gnasim.calibration.corpus_calibration import corpus_rows
    from gnasim.calibration.measurements import load_measurements

    rows, _ = corpus_rows()
    if measurements is not None:
        extra = load_measurements(measurements, skip_bad_rows=skip).rows
        rows += model_scope(extra).rows
    return rows


def calibrate_corpus_command(measurements: Optional[Path], skip: bool, prior_weight: float,
                             holdout_gpu: Optional[str], holdout_source: Optional[str],
                             write: Optional[Path], force: bool, fmt: OutputFormat) -> None:
    from gnasim.calibration.corpus_calibration import (calibrate_corpus, fitted_tables,
                                                       parameter_table, transfer_errors,
                                                       write_fitted)
    from gnasim.errors import ConfigError, HardwareProfileError
    from gnasim.files import check_output_path

    if holdout_gpu and holdout_source:
        raise ConfigError("holdout-gpu: give --holdout-gpu or --holdout-source, not both")
    if write is not None:
        check_output_path(write, "write")
        if write.exists() and not force:
            raise HardwareProfileError(f"write: '{write}' already exists; pass --force to replace it")
    splits: tuple[str, ...] = ("gpu", "source")
    groups = None
    if holdout_gpu:
        from gnasim.hardware.profile import load_profile
        splits, groups = ("gpu",), [load_profile(holdout_gpu).name]
    elif holdout_source:
        from gnasim.calibration.corpus import get_dataset
        splits, groups = ("source",), [get_dataset(holdout_source).name]
    cal = calibrate_corpus(_rows(measurements, skip), splits=splits, groups=groups,
                           prior_weight=prior_weight)
    if groups and not cal.residuals:
        raise ConfigError(f"holdout: no corpus row of '{groups[0]}' the model covers")
    written = str(write_fitted(cal, write)) if write is not None else None
    summary, errors, params = cal.summary(), transfer_errors(cal), parameter_table(cal)
    if fmt == OutputFormat.json:
        print_json({"summary": summary, "held_out": errors, "parameters": params,
                    "left_out": cal.left_out, "written": written,
                    "evidence": fitted_tables(cal)["evidence"]})
        return
    _render(summary, errors, params, cal.left_out, written)


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _render(summary: dict, errors: list[dict], params: list[dict], left_out: list[str],
            written: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="Held-out errors (each GPU / source predicted by a fit without it)",
              title_justify="left")
    for col in ("held out", "gpu", "family", "status", "rows", "MAPE time", "speedups",
                "MAPE speedup"):
        t.add_column(col, justify="right" if col in ("rows", "speedups") or "MAPE" in col else "left")
    for e in errors:
        t.add_row(e["held_out"], e["gpu"], e["family"], e["status"], str(e["rows"]),
                  _pct(e["mape_time_pct"]), str(e["speedups"]), _pct(e["mape_speedup_pct"]))
    con.print(t)
    p = Table(title=f"Fitted parameters ({summary['parameters']}, shared across GPUs)",
              title_justify="left")
    for col in ("parameter", "prior", "fitted", "+/- 1 sigma", "data share", "bounds", ""):
        p.add_column(col, justify="left" if col in ("parameter", "") else "right")
    for q in params:
        p.add_row(q["parameter"], f"{q['prior']:.4g}", f"{q['value']:.4g}", f"{q['sigma']:.3g}",
                  f"{q['data_share']:.2f}", f"[{q['lower']:g}, {q['upper']:g}]",
                  "at bound" if q["at_bound"] else "")
    con.print(p)
    con.print(f"{summary['rows']} rows; in-sample time MAPE {_pct(summary['in_sample_mape_time_pct'])}")
    for split in ("gpu", "source"):
        if f"held_out_{split}_mape_time_pct" in summary:
            con.print(f"leave-one-{split}-out: time MAPE {_pct(summary[f'held_out_{split}_mape_time_pct'])}, "
                      f"speedup MAPE {_pct(summary[f'held_out_{split}_mape_speedup_pct'])}")
    for kind in ("time", "speedup"):
        c = summary[f"coverage_{kind}"]
        if c["coverage"] is not None:
            con.print(f"90% intervals ({kind}): {100 * c['coverage']:.0f}% of {c['n']} held-out "
                      f"predictions inside; median half-width {c['median_half_width_pct']:.1f}%")
    for line in left_out:
        con.print(f"[yellow]note:[/] {line}")
    if written:
        con.print(f"written to {written}")
