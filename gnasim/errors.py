"""Typed errors raised by gnasim. Every message is one line naming the parameter and the rule."""

from __future__ import annotations


class GnasimError(ValueError):
    """Base class of every error gnasim raises on bad input."""


class ConfigError(GnasimError):
    """A GNA configuration breaks a rule (window, stride, dilation, tiles, ranks, sizes)."""


class HardwareProfileError(GnasimError):
    """A hardware profile is unknown, or its data file is malformed."""


class MeasurementError(GnasimError):
    """A measurement file has a bad row or column."""


class OutputError(GnasimError):
    """An output file cannot be written (a directory, no permission, no space, in use, or an
    unrelated file in the way), or a run writing one stopped before it was complete."""


class MissingExtraError(GnasimError):
    """A command needs a package that only one of gnasim's extras installs (plotly, pyarrow,
    scipy): the message names the extra to install."""


def require_extra(module: str, extra: str, what: str) -> None:
    """Raise :class:`MissingExtraError` (one line, with the pip command) unless ``module`` can be
    imported; ``what`` names the command or function that needs it."""
    from importlib.util import find_spec

    if find_spec(module) is None:
        raise MissingExtraError(f"{what}: needs {module}, which the core install leaves out: "
                                f"pip install 'gnasim[{extra}]'")
