"""The ``gnasim`` command line: a thin layer that parses, calls the library and renders.

Multi-value flags take the axes of one problem space-separated, as NATTEN's profiler does
(``-i 30 48 80``), or ``x``-separated (``30x48x80``); a comma lists alternatives, which only
``gnasim sweep`` takes (see :mod:`gnasim.cli.options`).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from gnasim.cli.options import (  # noqa: F401  (re-exported for tests and scripts)
    MULTI_VALUE_FLAGS, OutputFormat, build_config, fail, guarded, join_multi_values, new_app,
    print_json,
)

app = new_app("gnasim: exact tile simulator and speedup model for Generalized Neighborhood "
              "Attention. Every command takes -h.", completion=True)


def _version(value: bool) -> None:
    if value:
        from gnasim import __version__

        typer.echo(f"gnasim {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention.

    Shell completion: `gnasim --install-completion` (or --show-completion).
    """


# -- the commands (each module keeps heavy imports inside its functions) ----------------------
from gnasim.cli.predict import predict, presets, profiles, tiles  # noqa: E402

app.command()(predict)
app.command()(profiles)
app.command()(presets)
app.command()(tiles)

from gnasim.cli.explore import plot, recommend, sweep  # noqa: E402

app.command()(sweep)
app.command()(recommend)
app.command()(plot)

from gnasim.cli.model import calibrate, compare  # noqa: E402

app.command()(calibrate)
app.command()(compare)

from gnasim.cli.validate import validate_app  # noqa: E402

app.add_typer(validate_app, name="validate")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``gnasim`` console script and ``python -m gnasim``."""
    # the CLI uses no pydantic plugins; skipping their discovery saves start-up time
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    args = join_multi_values(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="gnasim")


if __name__ == "__main__":  # pragma: no cover
    main()
