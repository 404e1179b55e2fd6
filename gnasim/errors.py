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
