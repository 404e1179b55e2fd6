"""gnasim: exact tile simulator and speedup model for Generalized Neighborhood Attention (GNA)."""

from gnasim.bounds import amdahl, attention_flops
from gnasim.config import GNAConfig
from gnasim.errors import ConfigError, GnasimError, HardwareProfileError, MeasurementError
from gnasim.plan.fast_path import natten_fast_path
from gnasim.hardware.profile import HardwareProfile, Kernel, list_profile_names, load_profile, load_profiles
from gnasim.simulate import SimulationResult, simulate
from gnasim.plan.tiling import AxisPlan, TilePlan, axis_plan, tile_plan, tile_plans

__version__ = "0.1.0"

__all__ = [
    "GNAConfig", "simulate", "SimulationResult", "tile_plan", "tile_plans", "axis_plan",
    "TilePlan", "AxisPlan", "load_profile", "load_profiles", "list_profile_names",
    "HardwareProfile", "Kernel", "amdahl", "attention_flops", "natten_fast_path",
    "GnasimError", "ConfigError", "HardwareProfileError", "MeasurementError",
]
