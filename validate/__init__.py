"""validate: real Triton GNA kernels built from gnasim's tile plan, and a GPU timing harness.

``from validate import gna_attention`` needs torch and triton; importing the package itself does
not (the names below load on first use), so the CLI can report a missing dependency in one line.
"""

from __future__ import annotations

__all__ = ["gna_attention", "gna_forward_permuted", "kernel_plan", "permute", "unpermute",
           "TokenLayout"]

_LAZY = {
    "gna_attention": ("validate.api", "gna_attention"),
    "gna_forward_permuted": ("validate.kernel", "gna_forward_permuted"),
    "kernel_plan": ("validate.plan", "kernel_plan"),
    "permute": ("validate.permute", "permute"),
    "unpermute": ("validate.permute", "unpermute"),
    "TokenLayout": ("validate.permute", "TokenLayout"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'validate' has no attribute {name!r}")
