"""The runtime model: kernels and their parameters (``kernel``), the parameter-free structure of
a launch (``launch``) and the arithmetic of its time (``solve``)."""

from gnasim.model.kernel import ModelParams, Rates, ResolvedKernel, resolve_kernel, runtime_model
from gnasim.model.launch import Launch, LaunchShape, build_launch, launch_for, launch_shape
from gnasim.model.solve import (DenseSide, KernelTime, RuntimePrediction, kernel_time,
                                predict_runtime, solve)

__all__ = ["DenseSide", "KernelTime", "Launch", "LaunchShape", "ModelParams", "Rates",
           "ResolvedKernel", "RuntimePrediction", "build_launch", "kernel_time", "launch_for",
           "launch_shape", "predict_runtime", "resolve_kernel", "runtime_model", "solve"]
