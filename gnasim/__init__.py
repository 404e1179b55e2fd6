"""gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention (GNA)."""

from .bounds import amdahl, attention_flops
from .config import GNAConfig
from .errors import ConfigError, GnasimError, HardwareProfileError, MeasurementError
from .hardware import HardwareProfile, Kernel, list_profile_names, load_profile, load_profiles
from .simulate import SimulationResult, simulate
from .tiling import AxisPlan, TilePlan, axis_plan, tile_plan

__version__ = "0.1.0"

__all__ = [
    "GNAConfig", "simulate", "SimulationResult", "tile_plan", "axis_plan", "TilePlan", "AxisPlan",
    "load_profile", "load_profiles", "list_profile_names", "HardwareProfile", "Kernel",
    "amdahl", "attention_flops",
    "GnasimError", "ConfigError", "HardwareProfileError", "MeasurementError",
]
