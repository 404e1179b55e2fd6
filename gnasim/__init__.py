"""gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention (GNA).

The public API is importable from here (``from gnasim import GNAConfig, simulate``); names are
loaded on first use so that ``gnasim`` on the command line starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "GNAConfig": "config", "simulate": "simulate", "SimulationResult": "simulate",
    "tile_plan": "tiling", "tile_plans": "tiling", "axis_plan": "tiling", "TilePlan": "tiling",
    "AxisPlan": "tiling", "load_profile": "hardware", "load_profiles": "hardware",
    "list_profile_names": "hardware", "HardwareProfile": "hardware", "Kernel": "hardware",
    "amdahl": "bounds", "attention_flops": "bounds", "natten_fast_path": "fast_path",
    "GnasimError": "errors", "ConfigError": "errors", "HardwareProfileError": "errors",
    "MeasurementError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gnasim' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
