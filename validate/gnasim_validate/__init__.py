"""validate: real Triton GNA kernels built from gnasim's tile plan, and a GPU timing harness.

``from gnasim_validate import gna_attention`` needs torch and triton; importing the package itself does
not (the names below load on first use), so the CLI can report a missing dependency in one line.
"""

from __future__ import annotations

__all__ = ["gna_attention", "gna_forward_permuted", "gna_backward_permuted", "kernel_plan",
           "permute", "unpermute", "TokenLayout"]

_LAZY = {
    "gna_attention": ("gnasim_validate.api", "gna_attention"),
    "gna_forward_permuted": ("gnasim_validate.kernel", "gna_forward_permuted"),
    "gna_backward_permuted": ("gnasim_validate.kernel_backward", "gna_backward_permuted"),
    "kernel_plan": ("gnasim_validate.plan", "kernel_plan"),
    "permute": ("gnasim_validate.permute", "permute"),
    "unpermute": ("gnasim_validate.permute", "unpermute"),
    "TokenLayout": ("gnasim_validate.permute", "TokenLayout"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'gnasim_validate' has no attribute {name!r}")
