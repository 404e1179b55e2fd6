"""The Triton GNA kernel against a float64 brute-force masked attention, on the CPU interpreter.

Each case runs the kernel on token-permuted tensors into a NaN-poisoned output buffer (every
element, padding rows included, must be written), compares the unpermuted output with softmax
attention under gnasim's literal N x N reference mask, and checks the per-program KV-tile counter
against gnasim's tile plan. Problems are tiny: the interpreter runs ~50 tile pairs a second.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
# first: sets TRITON_INTERPRET (without a GPU) before gnasim_validate imports triton
from validate_helpers import DEVICE, DTYPES, program_counts, reference_attention, torch

from gnasim.config import GNAConfig
from gnasim.plan.tiling import axis_plan, tile_plan
from gnasim_validate import gna_attention
from gnasim_validate.kernel import gna_forward_permuted, layouts, plan_table
from gnasim_validate.permute import permute, unpermute
from gnasim_validate.plan import kernel_plan

# max |out - ref| / max |ref|
TOLERANCE = {"fp16": 4e-3, "bf16": 3e-2, "fp32": 2e-5}


def plan_counts(cfg: GNAConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per (dilation group, Q tile), row-major over axes: KV tiles visited and fully dense ones,
    straight from gnasim's per-axis plans."""
    per_axis = []
    for d in range(cfg.rank):
        ap = axis_plan(cfg.input_size[d], cfg.window_size[d], cfg.stride[d], cfg.dilation[d],
                       cfg.causal[d], cfg.q_tile[d], cfg.kv_tile[d], "static")
        shape = (ap.dilation, ap.q_tiles_per_group)
        per_axis.append((np.broadcast_to(ap.visited, shape), np.broadcast_to(ap.full, shape)))
    return program_counts(per_axis)


# (id, layout, window, stride, dilation, causal, q_tile, kv_tile, dtype, head_dim, mask_all)
CASES = [
    ("1d-na", (64,), 33, 1, 1, False, (16,), (16,), "fp16", 32, False),
    ("1d-blocked-sparse", (64,), 16, 16, 1, False, (16,), (16,), "fp32", 32, False),
    ("1d-dense-padded", (40,), 40, 1, 1, False, (16,), (32,), "bf16", 64, False),
    ("1d-causal-strided-dilated-uneven", (45,), 7, 3, 2, True, (16,), (16,), "fp16", 32, False),
    ("2d-strided-full-and-partial", (16, 16), (12, 8), (4, 4), 1, False, (4, 4), (4, 4), "fp16", 32, False),
    ("2d-dilated-causal-mixed-tiles", (10, 12), (5, 4), (2, 3), (1, 2), (False, True), (4, 8), (4, 4),
     "bf16", 32, False),
    ("2d-mask-all", (16, 16), (12, 8), (4, 4), 1, False, (4, 4), (4, 4), "fp32", 32, True),
    ("3d-gna", (6, 6, 8), (3, 4, 5), (1, 2, 3), (2, 1, 1), (False, False, True), (2, 2, 4), (2, 2, 4),
     "fp16", 32, False),
    ("3d-blocked-headdim80", (4, 4, 8), (2, 2, 4), (2, 2, 4), 1, False, (2, 2, 4), (2, 2, 4), "fp32", 80, False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_kernel_matches_reference_and_plan(case):
    check_case(case)


@pytest.mark.parametrize("use_desc", [False, True], ids=["pointers", "descriptors"])
def test_both_load_paths(use_desc):
    """Plain pointer loads and TMA tensor-descriptor loads give the same checked result."""
    if use_desc:
        pytest.importorskip("triton.tools.tensor_descriptor")
        if DEVICE == "cuda" and torch.cuda.get_device_capability()[0] < 9:
            pytest.skip("tensor descriptors need sm90+")
    check_case(("2d-load-path", (8, 16), (5, 8), (1, 8), 1, False, (4, 4), (2, 8), "fp16", 64, False),
               use_desc=use_desc)


def check_case(case, use_desc=None):
    _, layout, window, stride, dilation, causal, q_tile, kv_tile, dtype, head_dim, mask_all = case
    cfg = GNAConfig(input_size=layout, window_size=window, stride=stride, dilation=dilation,
                    causal=causal, q_tile=q_tile, kv_tile=kv_tile)
    batch, heads = 1, 2
    gen = torch.Generator().manual_seed(hash(case[0]) % 2**31)
    q, k, v = (torch.randn(batch, *layout, heads, head_dim, generator=gen).to(DTYPES[dtype])
               for _ in range(3))

    plan = kernel_plan(cfg)
    q_lay, kv_lay = layouts(plan)
    qp, kp, vp = permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay)
    qp, kp, vp = (t.to(DEVICE) for t in (qp, kp, vp))
    out = torch.full_like(qp, float("nan"))
    counts = torch.full((qp.shape[0], plan.q_tiles, heads, 2), -1, dtype=torch.int32, device=DEVICE)
    gna_forward_permuted(qp, kp, vp, plan, plan_table(plan, DEVICE, mask_all), out=out,
                         counts=counts, use_desc=use_desc)

    assert torch.isfinite(out).all(), "some output elements were never written"
    got = unpermute(out.cpu(), q_lay).double()
    ref = reference_attention(q.double(), k.double(), v.double(), cfg)
    err = ((got - ref).abs().max() / ref.abs().max()).item()
    assert err < TOLERANCE[dtype], f"relative error {err:.2e} over {TOLERANCE[dtype]:.0e}"

    visited, full = plan_counts(cfg)                      # (groups, q_tiles)
    counts = counts.cpu().numpy().reshape(batch, plan.groups, plan.q_tiles, heads, 2)
    for b, h in product(range(batch), range(heads)):
        assert np.array_equal(counts[b, :, :, h, 0], visited), "KV tiles visited differ from the plan"
        expected_masked = visited if mask_all else visited - full
        assert np.array_equal(counts[b, :, :, h, 1], expected_masked), "masked tiles differ from the plan"
    tp = tile_plan(cfg, "static")
    assert int(visited.sum()) == tp.tile_pairs_visited
    assert int(full.sum()) == tp.tile_pairs_full
    assert int(visited.max()) == tp.kv_tiles_visited_max


def test_fully_block_sparse_case_never_masks():
    cfg = GNAConfig(input_size=(64,), window_size=16, stride=16, q_tile=16, kv_tile=16)
    assert kernel_plan(cfg).fully_block_sparse
    assert tile_plan(cfg).fully_block_sparse


def test_public_entry_point_matches_reference():
    """``gna_attention`` in NATTEN's layout, with counts, on a 2-D strided causal problem."""
    layout, window, stride, causal = (8, 12), (4, 6), (2, 3), (True, False)
    gen = torch.Generator().manual_seed(7)
    q, k, v = (torch.randn(2, *layout, 1, 32, generator=gen).half() for _ in range(3))
    out, counts = gna_attention(q.to(DEVICE), k.to(DEVICE), v.to(DEVICE), window, stride=stride,
                                is_causal=causal, q_tile=(4, 4), kv_tile=(4, 4), return_counts=True)
    assert out.shape == q.shape and out.dtype == q.dtype
    cfg = GNAConfig(input_size=layout, window_size=window, stride=stride, causal=causal,
                    q_tile=(4, 4), kv_tile=(4, 4))
    ref = reference_attention(q.double(), k.double(), v.double(), cfg)
    err = ((out.cpu().double() - ref).abs().max() / ref.abs().max()).item()
    assert err < TOLERANCE["fp16"]
    visited, _ = plan_counts(cfg)
    assert np.array_equal(counts[0, :, 0, 0].cpu().numpy(), visited[0])


def test_rejects_bad_tiles():
    q = torch.zeros(1, 16, 1, 32)
    with pytest.raises(ValueError, match="powers of two"):
        gna_attention(q, q, q, 4, q_tile=(12,), kv_tile=(16,))
