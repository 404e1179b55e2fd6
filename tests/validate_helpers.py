"""Setup shared by the Triton kernel tests (imported by them; not a test module).

torch and triton or a module skip; without a GPU the kernels run on the CPU interpreter (read
when triton is imported, so this module must be imported before gnasim_validate). Also the
brute-force reference attention under gnasim's literal N x N mask, and per-program tile counts
from per-axis plan rows.
"""

from __future__ import annotations

import os
from itertools import product

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from gnasim.config import GNAConfig  # noqa: E402
from gnasim.reference import full_mask  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def reference_attention(q, k, v, cfg: GNAConfig):
    """Softmax attention under the literal N x N mask, in the inputs' dtype, device and layout
    ``[B, *layout, H, E]`` (autograd flows through it)."""
    B, H, E = q.shape[0], q.shape[-2], q.shape[-1]

    def flat(x):
        return x.reshape(B, -1, H, E).transpose(1, 2)

    scores = flat(q) @ flat(k).transpose(-1, -2) * E ** -0.5
    scores = scores.masked_fill(~torch.from_numpy(full_mask(cfg)), float("-inf"))
    return (torch.softmax(scores, dim=-1) @ flat(v)).transpose(1, 2).reshape(q.shape)


def program_counts(per_axis: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per (dilation group, tile), both row-major over axes: the products over axes of each axis's
    ``(visited, full)`` rows, given as ``(dilation, tiles)`` arrays."""
    visited, full = [], []
    for g in product(*[range(v.shape[0]) for v, _ in per_axis]):
        row_v, row_f = [], []
        for t in product(*[range(v.shape[1]) for v, _ in per_axis]):
            row_v.append(int(np.prod([v[g[a], t[a]] for a, (v, _) in enumerate(per_axis)])))
            row_f.append(int(np.prod([f[g[a], t[a]] for a, (_, f) in enumerate(per_axis)])))
        visited.append(row_v)
        full.append(row_f)
    return np.array(visited), np.array(full)
