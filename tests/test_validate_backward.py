"""The Triton GNA backward kernel against float64 autograd through a brute-force masked attention.

Gradients of q, k and v from ``gna_attention(...).backward(dO)`` are compared with autograd through
dense softmax attention in float64 under gnasim's literal N x N reference mask, on seeded random
configurations (ranks 1-3, stride, dilation, causal, head dims 16-64, uneven padding). Every
backward program's tile counters (Q tiles visited, pairs masked) must equal gnasim's KV-stationary
backward plan, read straight from :mod:`gnasim.plan.backward`. Problems are tiny: the CPU
interpreter runs ~40 backward tile pairs a second.
"""

from __future__ import annotations

from itertools import product

import numpy as np
import pytest
# first: sets TRITON_INTERPRET (without a GPU) before gnasim_validate imports triton
from validate_helpers import DEVICE, DTYPES, program_counts, reference_attention, torch

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.plan.backward import backward_axis_plan, backward_plan
from gnasim.reference import full_mask
from gnasim_validate import gna_attention
from gnasim_validate.kernel import GNALaunch, layouts
from gnasim_validate.kernel_backward import gna_backward_permuted
from gnasim_validate.permute import permute, unpermute
from gnasim_validate.plan import backward_tables, kernel_plan

# max |grad - ref| / max |ref|, per gradient
TOLERANCE = {"fp32": 2e-3, "fp16": 1e-2, "bf16": 5e-2}
TILES = {1: [(16,), (32,)],
         2: [(4, 4), (2, 8), (8, 2), (4, 8)],
         3: [(2, 2, 4), (1, 4, 4), (2, 4, 2), (4, 2, 2)]}


def plan_counts(cfg: GNAConfig, q_tile, kv_tile) -> tuple[np.ndarray, np.ndarray]:
    """Per (dilation group, KV tile), row-major over axes: Q tiles visited and fully dense ones,
    from gnasim's per-axis backward plans."""
    per_axis = []
    for d in range(cfg.rank):
        p = backward_axis_plan(cfg.input_size[d], cfg.window_size[d], cfg.stride[d],
                               cfg.dilation[d], cfg.causal[d], q_tile[d], kv_tile[d])
        shape = (p.dilation, p.kv_tiles_per_group)
        per_axis.append((np.broadcast_to(p.visited, shape), np.broadcast_to(p.full, shape)))
    return program_counts(per_axis)


def random_case(rng: np.random.Generator, rank: int, want_full: bool, max_pairs: int = 48) -> dict:
    """A random valid GNA problem whose forward and backward plans visit at most ``max_pairs``
    tile pairs each (the interpreter is slow); with ``want_full``, one whose backward plan has
    fully dense (unmasked) pairs."""
    lengths = {1: (20, 72), 2: (5, 14), 3: (3, 8)}[rank]
    while True:
        layout = [int(rng.integers(*lengths)) for _ in range(rank)]
        dilation = [int(rng.choice([1, 1, 2])) if x >= 6 else 1 for x in layout]
        window = [int(rng.integers(2, x // d + 1)) for x, d in zip(layout, dilation)]
        stride = [int(rng.integers(1, w + 1)) for w in window]
        causal = [bool(rng.random() < 0.35) for _ in range(rank)]
        q_tile = TILES[rank][rng.integers(len(TILES[rank]))]
        kv_tile = TILES[rank][rng.integers(len(TILES[rank]))]
        try:
            cfg = GNAConfig(input_size=layout, window_size=window, stride=stride,
                            dilation=dilation, causal=causal, q_tile=q_tile, kv_tile=kv_tile)
        except ConfigError:
            continue
        fwd = int(kernel_plan(cfg).expected_visits().sum())
        bp = backward_plan(cfg, q_tile, kv_tile)
        if max(fwd, bp.tile_pairs_visited) <= max_pairs and (bp.tile_pairs_full > 0) == want_full:
            return dict(cfg=cfg, head_dim=int(rng.choice([16, 32, 64])))


def _random_cases(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [random_case(rng, 1 + i % 3, want_full=i % 2 == 0) for i in range(n)]


FP32_CASES = _random_cases(9, seed=2026)


def test_random_cases_cover_the_semantics():
    """The seeded cases exercise every feature the kernel masks for."""
    cfgs = [c["cfg"] for c in FP32_CASES]
    assert {c.rank for c in cfgs} == {1, 2, 3}
    assert any(s > 1 for c in cfgs for s in c.stride)
    assert any(d > 1 for c in cfgs for d in c.dilation)
    assert any(any(c.causal) for c in cfgs)
    assert {c["head_dim"] for c in FP32_CASES} == {16, 32, 64}
    assert any(backward_plan(c, c.q_tile, c.kv_tile).tile_pairs_partial for c in cfgs)
    assert any(backward_plan(c, c.q_tile, c.kv_tile).tile_pairs_full for c in cfgs)


def check_gradients(cfg: GNAConfig, head_dim: int, dtype: str, *, batch: int = 1, heads: int = 1,
                    mask_all: bool = False, bwd_tiles=None, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    shape = (batch, *cfg.input_size, heads, head_dim)
    q, k, v, dout = (torch.randn(shape, generator=gen).to(DTYPES[dtype]) for _ in range(4))
    bq, bkv = bwd_tiles or (cfg.q_tile, cfg.kv_tile)
    bplan = kernel_plan(GNAConfig(input_size=cfg.input_size, window_size=cfg.window_size,
                                  stride=cfg.stride, dilation=cfg.dilation, causal=cfg.causal,
                                  q_tile=bq, kv_tile=bkv))
    counts = torch.full((batch * bplan.groups, bplan.kv_tiles, heads, 2), -1, dtype=torch.int32,
                        device=DEVICE)
    ours = [t.to(DEVICE).clone().requires_grad_() for t in (q, k, v)]
    out = gna_attention(*ours, cfg.window_size, stride=cfg.stride, dilation=cfg.dilation,
                        is_causal=cfg.causal, q_tile=cfg.q_tile, kv_tile=cfg.kv_tile,
                        mask_all=mask_all, bwd_q_tile=bq, bwd_kv_tile=bkv, backward_counts=counts)
    out.backward(dout.to(DEVICE))

    ref = [t.detach().double().requires_grad_() for t in (q, k, v)]
    reference_attention(*ref, cfg).backward(dout.double())
    for name, got, want in zip("qkv", ours, ref):
        assert got.grad.dtype == got.dtype and got.grad.shape == got.shape
        err = ((got.grad.cpu().double() - want.grad).abs().max() / want.grad.abs().max()).item()
        assert err < TOLERANCE[dtype], f"d{name}: relative error {err:.2e} over {TOLERANCE[dtype]:.0e}"

    visited, full = plan_counts(cfg, bq, bkv)
    masked = visited if mask_all else visited - full
    counts = counts.cpu().numpy().reshape(batch, bplan.groups, bplan.kv_tiles, heads, 2)
    for b, h in product(range(batch), range(heads)):
        assert np.array_equal(counts[b, :, :, h, 0], visited), "Q tiles visited differ from the plan"
        assert np.array_equal(counts[b, :, :, h, 1], masked), "masked pairs differ from the plan"
    bp = backward_plan(cfg, bq, bkv)
    assert int(visited.sum()) == bp.tile_pairs_visited and int(full.sum()) == bp.tile_pairs_full


FP32_IDS = [f"r{c['cfg'].rank}-e{c['head_dim']}-{i}" for i, c in enumerate(FP32_CASES)]


@pytest.mark.parametrize("i", range(len(FP32_CASES)), ids=FP32_IDS)
def test_fp32_gradients_and_counters(i):
    case = FP32_CASES[i]
    check_gradients(case["cfg"], case["head_dim"], "fp32", seed=i)


# (dtype, config, head_dim, batch, heads)
LOW_PRECISION = [
    ("fp16", GNAConfig(input_size=(45,), window_size=7, stride=3, dilation=2, causal=True,
                       q_tile=(16,), kv_tile=(16,)), 32, 2, 2),
    ("bf16", GNAConfig(input_size=(10, 12), window_size=(5, 4), stride=(2, 3), dilation=(1, 2),
                       causal=(False, True), q_tile=(4, 8), kv_tile=(4, 4)), 32, 1, 1),
    ("fp16", GNAConfig(input_size=(4, 4, 6), window_size=(3, 2, 4), stride=(1, 2, 2),
                       causal=(True, False, False), q_tile=(2, 2, 4), kv_tile=(1, 4, 4)), 16, 1, 1),
]


@pytest.mark.parametrize("dtype,cfg,head_dim,batch,heads", LOW_PRECISION,
                         ids=[f"{c[0]}-r{c[1].rank}" for c in LOW_PRECISION])
def test_low_precision_gradients(dtype, cfg, head_dim, batch, heads):
    check_gradients(cfg, head_dim, dtype, batch=batch, heads=heads, seed=3)


# GPU only: realistic tiles and head dim 128 (the interpreter would take minutes)
GPU_CASES = [
    ("fp16", GNAConfig(input_size=(700,), window_size=129, stride=4, causal=False,
                       q_tile=(64,), kv_tile=(128,)), 128),
    ("bf16", GNAConfig(input_size=(512,), window_size=96, stride=8, dilation=2, causal=True,
                       q_tile=(128,), kv_tile=(64,)), 64),
    ("fp16", GNAConfig(input_size=(30, 33), window_size=(13, 9), stride=(4, 2), dilation=(1, 2),
                       causal=(False, True), q_tile=(8, 8), kv_tile=(16, 8)), 128),
    ("fp32", GNAConfig(input_size=(9, 14, 16), window_size=(5, 7, 8), stride=(1, 2, 4),
                       causal=(True, False, False), q_tile=(4, 4, 4), kv_tile=(4, 4, 8)), 128),
    ("bf16", GNAConfig(input_size=(8, 16, 20), window_size=(4, 8, 8), stride=(4, 8, 8),
                       q_tile=(2, 8, 8), kv_tile=(2, 8, 8)), 128),
]


@pytest.mark.skipif(DEVICE != "cuda", reason="realistic sizes need a GPU")
@pytest.mark.parametrize("dtype,cfg,head_dim", GPU_CASES,
                         ids=[f"{c[0]}-r{c[1].rank}-e{c[2]}" for c in GPU_CASES])
def test_gpu_gradients_realistic_tiles(dtype, cfg, head_dim):
    check_gradients(cfg, head_dim, dtype, batch=2, heads=3, seed=11)


def test_mask_all_with_other_backward_tiles_and_padded_head_dim():
    """Every visited pair masked; backward tiles unlike the forward's (the saved tensors and the
    log-sum-exp are permuted again); head dim 24 (zero-filled past it in the kernel)."""
    cfg = GNAConfig(input_size=(9, 11), window_size=(4, 5), stride=(2, 1), causal=(False, True),
                    q_tile=(4, 4), kv_tile=(2, 8))
    check_gradients(cfg, 24, "fp32", mask_all=True, bwd_tiles=((2, 8), (4, 4)))


def test_forward_output_unchanged_by_lse_and_lse_exact():
    cfg = GNAConfig(input_size=(21,), window_size=6, stride=2, dilation=2, q_tile=(16,),
                    kv_tile=(16,))
    plan = kernel_plan(cfg)
    q_lay, kv_lay = layouts(plan)
    gen = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(1, 21, 2, 32, generator=gen) for _ in range(3))
    qp, kp, vp = permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay)
    plain = GNALaunch(qp, kp, vp, plan)()
    lse = torch.full((qp.shape[0], 2, qp.shape[1]), float("nan"))
    with_lse = GNALaunch(qp, kp, vp, plan, lse=lse)()
    assert torch.equal(plain, with_lse)
    assert torch.isfinite(lse).all(), "every row's log-sum-exp (padding rows too) must be written"
    scores = (q.double().transpose(1, 2) @ k.double().permute(0, 2, 3, 1)) * 32 ** -0.5
    scores = scores.masked_fill(~torch.from_numpy(full_mask(cfg)), float("-inf"))
    want = torch.logsumexp(scores, dim=-1) / np.log(2)                  # [1, H, N], base 2
    got = unpermute(lse.transpose(1, 2).unsqueeze(-1), q_lay)[..., 0].transpose(1, 2)
    assert torch.allclose(got.double(), want, rtol=0, atol=1e-5)


def test_permuted_backward_writes_every_slot_and_rejects_bad_lse():
    cfg = GNAConfig(input_size=(2, 6, 5), window_size=(2, 3, 3), stride=(1, 1, 3),
                    dilation=(1, 2, 1), q_tile=(1, 4, 4), kv_tile=(2, 2, 4))
    plan = kernel_plan(cfg)
    q_lay, kv_lay = layouts(plan)
    gen = torch.Generator().manual_seed(9)
    q, k, v, dout = (torch.randn(1, 2, 6, 5, 1, 16, generator=gen) for _ in range(4))
    qp, kp, vp = permute(q, q_lay), permute(k, kv_lay), permute(v, kv_lay)
    lse = torch.empty((qp.shape[0], 1, qp.shape[1]))
    op = GNALaunch(qp, kp, vp, plan, lse=lse)()
    dq, dk, dv = gna_backward_permuted(qp, kp, vp, op, permute(dout, q_lay), lse, plan)
    for g in (dq, dk, dv):
        assert torch.isfinite(g).all()
    # padding query slots carry dO = 0: their dQ rows stay exactly zero
    pad = permute(torch.ones(1, 2, 6, 5, 1, 1), q_lay)[..., 0, 0] == 0
    assert pad.any() and (dq[pad] == 0).all()
    assert int(backward_tables(plan).expected_visits().sum()) == \
        backward_plan(cfg, cfg.q_tile, cfg.kv_tile).tile_pairs_visited
    with pytest.raises(ValueError, match="lse must be float32"):
        gna_backward_permuted(qp, kp, vp, op, permute(dout, q_lay), lse.half(), plan)


def test_no_grad_inputs_take_the_plain_forward():
    q = torch.randn(1, 32, 1, 16)
    out = gna_attention(q, q, q, 8, q_tile=(16,), kv_tile=(16,))
    assert not out.requires_grad
    with torch.no_grad():
        out = gna_attention(q.requires_grad_(), q, q, 8, q_tile=(16,), kv_tile=(16,))
    assert not out.requires_grad


def test_harness_backprop_rows_on_the_interpreter(monkeypatch, tmp_path):
    """``--backprop`` end to end on tiny cases with the GPU parts stubbed (one call per timing):
    every implementation gets a ``pass = bwd`` row, our gradients agree with SDPA's where SDPA
    runs, and the CSV loads as measurements."""
    if DEVICE == "cuda":
        pytest.skip("the GPU script runs the real harness")
    from gnasim.calibration.measurements import load_measurements
    from gnasim_validate import harness
    from gnasim_validate.cases import Case

    monkeypatch.setattr(harness, "require_gpu", lambda: torch)
    monkeypatch.setattr(harness, "device_info", lambda t: {
        "gpu": "H100-SXM", "device": "cpu (interpreter)", "driver": "", "torch_version": "",
        "triton_version": ""})
    monkeypatch.setattr(harness, "bench", lambda fn, warmup_ms=0, rep_ms=0: (fn(), 1.0)[1])
    cases = [Case.make(40, 10, 2, q_tile=16, kv_tile=16, bwd_q_tile=32, bwd_kv_tile=16, heads=1,
                       head_dim=16, dtype="fp32"),
             Case.make("4x8", "3x4", "1x2", causal="1x0", q_tile="2x8", kv_tile="4x4", heads=1,
                       head_dim=16, dtype="fp32")]
    runner = harness.Runner(sets=1, flex=False, backprop=True, device="cpu", log=lambda s: None)
    for case in cases:
        runner.run_case(case)
    bwd = [r for r in runner.rows if r["pass"] == "bwd"]
    fwd = [r for r in runner.rows if r["pass"] == "fwd"]
    def key(r):
        return r["implementation"], r["masking"], r["layout"], r["window"]

    assert len(fwd) >= 6 and sorted(map(key, bwd)) == sorted(map(key, fwd))
    gna = [r for r in bwd if r["implementation"] == "triton-gna"]
    assert {r["masking"] for r in gna} == {"partial", "all"}
    assert gna[0]["q_tile"] == "32" and gna[0]["kv_tile"] == "16"      # the backward tiles
    for r in bwd:
        if r["diff_against"]:
            assert float(r["max_abs_diff"]) < 1e-4, r
    out = tmp_path / "rows.csv"
    harness.write_csv(runner.rows, out)
    ms = load_measurements(out)
    assert len(ms) == len(runner.rows) and not ms.errors
