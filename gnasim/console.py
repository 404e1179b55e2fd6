"""The ``gnasim`` console script: Ctrl-C during start-up exits quietly, then the CLI runs.

Importing the command line (typer, rich, numpy, pydantic) takes a few hundred milliseconds; a
Ctrl-C in that window used to print a traceback from inside an import. Until the CLI is loaded,
SIGINT here ends the process with the shell's convention for an interrupt (exit code 130).
"""

from __future__ import annotations

import signal
import sys


def _interrupted_during_start_up(signum: int, frame: object) -> None:
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    raise SystemExit(130)


def main() -> None:
    """Entry point of ``gnasim`` and ``python -m gnasim``."""
    previous = signal.signal(signal.SIGINT, _interrupted_during_start_up)
    from gnasim.cli import main as cli_main

    signal.signal(signal.SIGINT, previous)
    cli_main()
