"""``gnasim validate``: time the Triton GNA kernel and its baselines on a GPU, write measurements.

A thin layer over :mod:`gnasim_validate.harness` (imported only when a command runs, so ``gnasim``
works without torch). Without a GPU, or without torch / triton, it prints one line on stderr and
exits with code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gnasim.cli.options import fail, guarded, new_app

validate_app = new_app(
    "Run real Triton GNA kernels built from the tile plan, and time them against baselines.")


@validate_app.command("run")
@guarded
def run(
    suite: Optional[str] = typer.Option(None, "--suite", metavar="NAME", help="Built-in suite: smoke or h100."),
    spec: Optional[Path] = typer.Option(None, "--spec", metavar="FILE", help="JSON or CSV file of cases."),
    out: Path = typer.Option(..., "--out", metavar="FILE", help="CSV file to write (measurement schema)."),
    sets: int = typer.Option(3, "--sets", min=1, metavar="N", help="Input sets used in rotation while timing."),
    flex: bool = typer.Option(True, "--flex/--no-flex", help="Also time FlexAttention."),
    sdpa: bool = typer.Option(True, "--sdpa/--no-sdpa", help="Also time torch SDPA."),
    mask_all: bool = typer.Option(True, "--mask-all/--no-mask-all",
                                  help="Also time masking every visited tile (NATTEN's policy)."),
) -> None:
    """Time our kernel (GNA and dense), torch SDPA and FlexAttention; write CSV rows."""
    try:
        from gnasim_validate.harness import NoGPU, resolve_cases, run as run_cases
    except ImportError as err:          # validate/ not importable (e.g. installed without it)
        fail(f"validate: the validate package is not available ({err})")
    try:
        resolve_cases(suite, spec)
    except (ValueError, OSError) as err:
        fail(str(err))
    try:
        run_cases(suite, spec, out, sets=sets, flex=flex, sdpa=sdpa, mask_all=mask_all,
                  log=lambda line: typer.echo(line, err=True))
    except NoGPU as err:
        fail(str(err))


@validate_app.command("suites")
@guarded
def suites() -> None:
    """List the built-in suites and their cases (no GPU needed)."""
    from gnasim_validate.harness import SUITES

    for name, make in SUITES.items():
        cases = make()
        typer.echo(f"{name}: {len(cases)} cases")
        for c in cases:
            typer.echo(f"  {c.label()}  {c.note}")
