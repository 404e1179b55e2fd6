"""gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention (GNA).

The public API is the names in ``__all__``; each is imported from its module on first use, so
``import gnasim`` (and the ``gnasim`` command's start-up) stays cheap.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # one prediction
    "GNAConfig": "gnasim.config",
    "simulate": "gnasim.prediction",
    "SimulationResult": "gnasim.prediction",
    "BackwardResult": "gnasim.prediction",
    # tile plans
    "AxisPlan": "gnasim.plan.tiling",
    "TilePlan": "gnasim.plan.tiling",
    "axis_plan": "gnasim.plan.tiling",
    "tile_plan": "gnasim.plan.tiling",
    "tile_plans": "gnasim.plan.tiling",
    "BackwardPlan": "gnasim.plan.backward",
    "backward_plan": "gnasim.plan.backward",
    "FlatPlan": "gnasim.plan.flat",
    "flat_plan": "gnasim.plan.flat",
    "natten_fast_path": "gnasim.plan.fast_path",
    # formulas
    "amdahl": "gnasim.bounds",
    "attention_flops": "gnasim.bounds",
    # hardware profiles
    "HardwareProfile": "gnasim.hardware.profile",
    "Kernel": "gnasim.hardware.kernels",
    "load_profile": "gnasim.hardware.profile",
    "load_profiles": "gnasim.hardware.profile",
    "list_profile_names": "gnasim.hardware.profile",
    # exploration
    "SweepSpec": "gnasim.explore.grid",
    "spec_from_mapping": "gnasim.explore.grid",
    "load_spec_file": "gnasim.explore.grid",
    "run_sweep": "gnasim.explore.sweep",
    "sweep_table": "gnasim.explore.sweep",
    "sweep_frame": "gnasim.explore.sweep",
    "recommend": "gnasim.explore.recommend",
    "search_strides": "gnasim.explore.recommend",
    "propose_windows": "gnasim.explore.recommend",
    # presets (published models' problems)
    "Preset": "gnasim.presets",
    "load_presets": "gnasim.presets",
    "get_preset": "gnasim.presets",
    # figures (plotly)
    "tile_map_figure": "gnasim.plots",
    "stride_heatmap_figure": "gnasim.plots",
    "pareto_figure": "gnasim.plots",
    "sparsity_figure": "gnasim.plots",
    "write_figure": "gnasim.plots",
    "curse_figure": "gnasim.plots_flat",
    "write_curse_html": "gnasim.plots_flat",
    "cube_windows": "gnasim.plots_flat",
    # calibration
    "load_measurements": "gnasim.calibration.measurements",
    "corpus": "gnasim.calibration.corpus",
    "load_dataset": "gnasim.calibration.corpus",
    "load_corpus": "gnasim.calibration.corpus",
    "calibrate": "gnasim.calibration.fit",
    "compare": "gnasim.calibration.compare",
    # errors
    "GnasimError": "gnasim.errors",
    "ConfigError": "gnasim.errors",
    "HardwareProfileError": "gnasim.errors",
    "MeasurementError": "gnasim.errors",
    "OutputError": "gnasim.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gnasim' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from gnasim.bounds import amdahl, attention_flops
    from gnasim.calibration.compare import compare
    from gnasim.calibration.corpus import corpus, load_corpus, load_dataset
    from gnasim.calibration.fit import calibrate
    from gnasim.calibration.measurements import load_measurements
    from gnasim.config import GNAConfig
    from gnasim.errors import (ConfigError, GnasimError, HardwareProfileError, MeasurementError,
                               OutputError)
    from gnasim.explore.grid import SweepSpec, load_spec_file, spec_from_mapping
    from gnasim.explore.recommend import propose_windows, recommend, search_strides
    from gnasim.explore.sweep import run_sweep, sweep_frame, sweep_table
    from gnasim.hardware.kernels import Kernel
    from gnasim.hardware.profile import (HardwareProfile, list_profile_names, load_profile,
                                         load_profiles)
    from gnasim.plan.backward import BackwardPlan, backward_plan
    from gnasim.plan.fast_path import natten_fast_path
    from gnasim.plan.flat import FlatPlan, flat_plan
    from gnasim.plan.tiling import AxisPlan, TilePlan, axis_plan, tile_plan, tile_plans
    from gnasim.presets import Preset, get_preset, load_presets
    from gnasim.plots import (pareto_figure, sparsity_figure, stride_heatmap_figure,
                              tile_map_figure, write_figure)
    from gnasim.plots_flat import cube_windows, curse_figure, write_curse_html
    from gnasim.prediction import BackwardResult, SimulationResult, simulate
