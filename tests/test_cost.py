"""The runtime model: physical floors, monotonicity, masking policy, permutation, schema bounds."""

import math
import statistics
import time
import tomllib
from pathlib import Path

import pytest

from gnasim.record import FACTORS
from typer.testing import CliRunner

from gnasim.hardware.write import to_toml
from gnasim.cli import app, join_multi_values
from gnasim.config import GNAConfig
from gnasim import record
from gnasim.model.kernel import ModelParams, Rates, resolve_kernel, runtime_model
from gnasim.model.launch import (AxisFacts, axis_facts, build_launch, dense_launch_shape, fast_path,
                                 launch_for, launch_shape, permute_bytes, stack_launches)
from gnasim.model.solve import kernel_time, predict_launch, prepare
from gnasim.errors import ConfigError, HardwareProfileError
from gnasim.hardware.profile import KernelModel, load_profile, load_profiles, read_profile_file
from gnasim.prediction import simulate
from gnasim.plan.tiling import tile_plan

PROFILES = Path(__file__).resolve().parents[1] / "hardware_profiles"

CASES = [
    dict(input_size=32768, window_size=2048, stride=1, q_tile=128, kv_tile=128),
    dict(input_size=32768, window_size=2048, stride=2048, q_tile=128, kv_tile=128),
    dict(input_size="256x256", window_size="80x80", stride="16x16", q_tile="16x8", kv_tile="16x8", heads=24),
    dict(input_size="30x48x80", window_size="18x24x24", q_tile="2x8x8", kv_tile="2x8x8", heads=24),
    dict(input_size="30x48x80", window_size="18x24x24", stride="16x8x8", dilation="1x2x1",
         q_tile="2x8x8", kv_tile="2x8x8", heads=8),
    dict(input_size="64x64", window_size="16x16", causal="1 0", q_tile="16x8", kv_tile="16x8", heads=4),
    dict(input_size=1000, window_size=37, stride=5, q_tile=64, kv_tile=128, batch=3, heads=2),
    dict(input_size=8192, window_size=8192, causal=True, q_tile=128, kv_tile=128),
]


def _sim(profile, **kw):
    return simulate(GNAConfig(**kw), profile)


@pytest.mark.parametrize("profile", ["a100", "h100", "h200", "b200", "b300"])
def test_nothing_beats_the_flop_peak_floor(profile):
    hw = load_profile(profile)
    for case in CASES:
        r = _sim(hw, **case)
        rt = r.runtime
        assert rt is not None, r.notes
        peak = hw.tensor_flops(r.config.dtype)
        # the GNA kernel computes every visited tile; the dense kernel the whole self attention
        assert rt.time_ms * 1e-3 >= r.flops_computed / peak
        assert rt.dense.time_ms * 1e-3 >= r.flops_dense / peak
        assert rt.dense.time_ms > 0 and rt.permute_ms >= 0
        assert 0 < rt.gna.clock_fraction <= 1.0
        assert rt.gna.bound in ("tensor", "exp", "memory", "latency")
        # the explanation chain multiplies out to the predictions
        prod_factors = math.prod(rt.factors[k] for k in FACTORS if k != "permute")
        assert rt.speedups["tile_bound"] * prod_factors == pytest.approx(rt.speedup, rel=1e-9)
        assert rt.speedups["permute"] == pytest.approx(rt.speedup_with_permute, rel=1e-9)


def test_every_shipped_efficiency_is_physical():
    for hw in load_profiles():
        rm = runtime_model(hw)
        assert 0.3 <= rm.sustained_clock_fraction <= 1.0
        for name, km in rm.kernels.items():
            assert 0 < km.tensor_efficiency <= 1.0, (hw.name, name)
            assert 0 < km.memory_efficiency <= 1.0
            assert 0 < km.permute_bandwidth_share <= 1.0
            assert km.softmax_ops_per_element >= 0 and km.mask_ops_per_element >= 0
            assert km.cta_overhead_us >= 0


def test_schema_rejects_unphysical_values(tmp_path):
    data = tomllib.loads(PROFILES.joinpath("h100.toml").read_text())
    data["model"] = {"kernels": {"hopper-fna": {"tensor_efficiency": 1.2}}}
    bad = tmp_path / "x.toml"
    bad.write_text(to_toml(data))
    with pytest.raises(HardwareProfileError, match="model.kernels.hopper-fna.tensor_efficiency"):
        read_profile_file(bad)
    data["model"]["kernels"]["hopper-fna"]["tensor_efficiency"] = 0.7
    data["model"]["sustained_clock_fraction"] = 1.5
    bad.write_text(to_toml(data))
    with pytest.raises(HardwareProfileError, match="model.sustained_clock_fraction"):
        read_profile_file(bad)
    with pytest.raises(ValueError):
        KernelModel(permute_bandwidth_share=0.0)
    with pytest.raises(ValueError):
        KernelModel(mask_ops_per_element=-1)


def test_model_entry_for_unknown_kernel_needs_its_behaviour(tmp_path):
    src = PROFILES.joinpath("b200.toml").read_text()
    p = tmp_path / "b200x.toml"
    p.write_text(src + "\n[model.kernels.mystery]\ntensor_efficiency = 0.5\n")
    with pytest.raises(HardwareProfileError, match="model.kernels.mystery"):
        read_profile_file(p)


def test_masking_policies_follow_the_kernel():
    hw = load_profile("h100")
    na = GNAConfig(input_size=32768, window_size=2048, q_tile=128, kv_tile=128)
    blocked = na.replace(stride=2048)
    plan_na, plan_bl = tile_plan(na), tile_plan(blocked)
    allnone = resolve_kernel(hw, "hopper-fna")
    flex = resolve_kernel(hw, "hopper-fna", masking="partial")
    s_all = launch_for(na, hw, "natten-hopper-fna").shape
    assert s_all.mask_all and s_all.masked_pairs == plan_na.tile_pairs_visited
    s_part = launch_for(na, hw, "hopper-fna", masking="partial").shape
    assert not s_part.mask_all and s_part.masked_pairs == plan_na.tile_pairs_partial
    s_bl = launch_for(blocked, hw, "hopper-fna").shape
    assert s_bl.masked_pairs == 0 and plan_bl.fully_block_sparse
    rm, rates = runtime_model(hw), Rates.of(hw, "fp16")
    t_all = kernel_time(s_all, ModelParams.of(allnone.model, rm), rates)
    t_part = kernel_time(s_part, ModelParams.of(flex.model, rm), rates)
    t_bl = kernel_time(s_bl, ModelParams.of(allnone.model, rm), rates)
    assert t_bl.time_ms < t_part.time_ms < t_all.time_ms
    assert t_all.masked_tile_us > t_all.tile_us


def test_monotone_in_window_heads_and_efficiency():
    hw = load_profile("h100")
    times = [_sim(hw, input_size="128x128", window_size=f"{w}x{w}", q_tile="16x8", kv_tile="16x8",
                  heads=8).runtime.time_ms for w in (8, 16, 32, 64, 96, 128)]
    assert times == sorted(times)
    heads = [_sim(hw, input_size=16384, window_size=1024, q_tile=128, kv_tile=128,
                  heads=h).runtime.time_ms for h in (1, 2, 8, 32, 128)]
    assert heads == sorted(heads)
    cfg = GNAConfig(input_size="30x48x80", window_size="18x24x24", q_tile="2x8x8", kv_tile="2x8x8",
                    heads=24)
    launch = launch_for(cfg, hw, "hopper-fna")
    rm, rates = runtime_model(hw), Rates.of(hw, "fp16")
    effs = [kernel_time(launch.shape, ModelParams.of(launch.kernel.model.model_copy(
        update={"tensor_efficiency": e}), rm), rates).time_ms for e in (0.2, 0.4, 0.6, 0.8, 1.0)]
    assert effs == sorted(effs, reverse=True)
    masks = [kernel_time(launch.shape, ModelParams.of(launch.kernel.model.model_copy(
        update={"mask_ops_per_element": m}), rm), rates).time_ms for m in (0, 10, 40, 160)]
    assert masks == sorted(masks)


def test_waves_quantise_and_launch_latency_floors_tiny_problems():
    hw = load_profile("h100")
    rm, rates = runtime_model(hw), Rates.of(hw, "fp16")
    p = ModelParams.of(resolve_kernel(hw, "hopper-fna").model, rm)
    one = lambda h: kernel_time(launch_for(GNAConfig(input_size=8192, window_size=8192,
                                                     q_tile=128, kv_tile=128, heads=h), hw,
                                           "hopper-fna").shape, p, rates)
    a, b, c = one(2), one(3), one(4)          # 128, 192, 256 CTAs of 64 tiles on 132 SMs
    assert a.waves < 1 < b.waves < c.waves <= 2
    assert c.time_ms == pytest.approx(b.time_ms, rel=0.01)    # the same two waves
    assert b.time_ms > 1.8 * a.time_ms
    tiny = _sim(hw, input_size=64, window_size=8, q_tile=64, kv_tile=64).runtime
    assert tiny.gna.bound == "latency"
    assert tiny.time_ms >= rm.launch_latency_us * 1e-3


def test_permutation_bytes():
    one_d = GNAConfig(input_size=32768, window_size=2048, q_tile=128, kv_tile=128, heads=2)
    assert permute_bytes(one_d, tile_plan(one_d)) == 0
    padded = GNAConfig(input_size=1000, window_size=64, q_tile=128, kv_tile=128)
    assert permute_bytes(padded, tile_plan(padded)) > 0
    dilated = GNAConfig(input_size=4096, window_size=64, dilation=2, q_tile=128, kv_tile=128)
    assert permute_bytes(dilated, tile_plan(dilated)) > 0
    two = GNAConfig(input_size="256x256", window_size="80x80", q_tile="16x8", kv_tile="16x8",
                    heads=24)
    # Q, K, V read and written, O read and written: 8 copies of 65536 x 24 x 128 fp16 values
    assert permute_bytes(two, tile_plan(two)) == 8 * 65536 * 24 * 128 * 2
    r = simulate(two, "h100").runtime
    assert r.permute_ms > 0 and r.speedup_with_permute < r.speedup


def test_dense_baselines():
    hw = load_profile("b200")
    cfg = GNAConfig(input_size=32768, window_size=2048, q_tile=256, kv_tile=128)
    rk = resolve_kernel(hw, "cudnn-sdpa")
    assert rk.dense_only and rk.dense_rows(cfg.head_dim) == (256, 128)
    shape = dense_launch_shape(cfg, rk)
    assert shape.ctas == 128 and shape.masked_pairs == 0
    causal = dense_launch_shape(cfg.replace(causal=True), rk)
    # a 256-row Q tile on the diagonal meets two 128-row KV tiles that need the causal mask
    assert causal.masked_pairs == 2 * 128 and causal.tile_pairs < shape.tile_pairs
    assert dense_launch_shape(GNAConfig(input_size="32x32", window_size=8, causal="1 1"), rk) is None
    r = _sim(hw, input_size="32x32", window_size=8, causal="1 1", q_tile="16x16", kv_tile="16x8")
    assert "window = layout is the baseline" in " ".join(r.to_dict()["notes"])
    # a 1-D window is cuDNN's sliding window: its own tile, the GNA plan of that tile
    slide = launch_for(cfg, hw, "cudnn-sdpa")
    assert slide.shape.q_rows == 256 and slide.shape.kv_rows == 128 and slide.plan is not None
    with pytest.raises(ConfigError, match="window"):
        launch_for(GNAConfig(input_size="64x64", window_size="8x8"), hw, "cudnn-sdpa")
    with pytest.raises(HardwareProfileError, match="implementation"):
        resolve_kernel(hw, "no-such-kernel")


def test_predict_json_and_table_carry_the_runtime():
    runner = CliRunner()
    res = runner.invoke(app, join_multi_values(
        ["predict", "-i", "32768", "-w", "2048", "--q-tile", "128", "--kv-tile", "128",
         "--format", "json"]))
    assert res.exit_code == 0, res.output
    d = __import__("json").loads(res.stdout)
    for key in ("predicted_time_ms", "predicted_dense_time_ms", "predicted_permute_ms",
                "predicted_speedup", "predicted_speedup_with_permute", "bound"):
        assert key in d
    assert d["predicted_speedup"] == pytest.approx(d["predicted_dense_time_ms"] / d["predicted_time_ms"])
    assert d["predicted_speedup"] < d["tile_speedup"]
    table = runner.invoke(app, join_multi_values(
        ["predict", "-i", "64", "64", "-w", "16", "16", "--hardware", "b200"]))
    assert table.exit_code == 0 and "predicted speedup" in table.stdout
    bare = simulate(GNAConfig(input_size=64, window_size=8, q_tile=16, kv_tile=16)).to_dict()
    assert "predicted_time_ms" not in bare


def test_unsupported_dtype_is_a_note_not_a_crash():
    r = _sim("a100", input_size=4096, window_size=256, dtype="fp8", q_tile=64, kv_tile=64)
    assert r.runtime is None and any("no runtime prediction" in n for n in r.notes)


def test_a_3d_prediction_stays_fast():
    cfg = GNAConfig(input_size="30x48x80", window_size="18x24x24", heads=24)
    simulate(cfg, "h100")
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(40):
            simulate(cfg, "h100").to_dict()
        best.append((time.perf_counter() - t) / 40)
    assert min(best) < 1e-3, f"{statistics.median(best) * 1e3:.2f} ms per prediction"


def _close(got, want, what):
    """Equal, or for floats equal to rel 1e-12 (numpy's power and exp against Python's)."""
    got = got.item() if hasattr(got, "item") else got
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12), what
    else:
        assert got == want, what


@pytest.mark.parametrize("hw,kernel", [("h100", None), ("h100", "flex-fna"), ("b200", None),
                                       ("a100", None)])
def test_solver_scalar_and_array_paths_agree(hw, kernel):
    """The runtime model on one launch (floats) and on many (numpy arrays) gives the same numbers
    to rel 1e-12: launches built from per-axis facts as the sweep does, and stacked scalar
    launches with per-row parameters as the calibration fit does."""
    import random

    import numpy as np

    from gnasim.plan.tiling import tile_plans

    rng = random.Random(7)
    prof = load_profile(hw)
    L, W = (16, 24, 40), (8, 8, 16)
    cfgs = [GNAConfig(input_size=L, window_size=W,
                      stride=tuple(rng.randint(1, w) for w in W),
                      dilation=tuple(rng.choice([1, 2]) if l // w >= 2 else 1 for l, w in zip(L, W)),
                      causal=(False, rng.random() < 0.3, False),
                      q_tile=(2, 4, 8), kv_tile=(2, 4, 8), heads=3) for _ in range(150)]
    mode = prof.kernel(kernel).kv_tiling
    plans = tile_plans(cfgs, mode)
    dense_plan = tile_plans([cfgs[0].dense()], mode)[0]
    prep = prepare(cfgs[0], dense_plan, prof, kernel)
    rk, params, rates, side = prep.kernel, prep.params, prep.rates, prep.side
    bounds = np.array([dense_plan.kv_tiles_visited_max / p.kv_tiles_visited_max for p in plans])
    shapes = [launch_shape(c, p, rk) for c, p in zip(cfgs, plans)]
    scalar = [predict_launch(rk.name, s, side, params, rates, float(b))
              for s, b in zip(shapes, bounds)]
    # the sweep's way: per-axis facts as arrays, one launch per row
    axes = []
    for d in range(3):
        facts = [axis_facts(p.axes[d]) for p in plans]
        k = max(len(f.front_full) for f in facts)
        pad = lambda t: list(t) + [t[0]] * (k - len(t))
        col = lambda name: np.array([getattr(f, name) for f in facts], dtype=np.int64)
        axes.append(AxisFacts(L[d], 2 ** (d + 1), 2 ** (d + 1), col("dilation"), col("vsum"),
                              col("fsum"), col("vmax"), col("qt"), col("kvt"), col("nz"),
                              np.array([pad(f.front_full) for f in facts], dtype=np.int64),
                              np.array([pad(f.front_vis) for f in facts], dtype=np.int64)))
    fast = np.array([fast_path(c) for c in cfgs])
    built = build_launch(axes, cfgs[0], rk.masking, rk.token_permute, fast)
    # partial-only masking with partial tiles: CTA classes from the product of per-axis fronts
    assert built.front_u.shape[1] > 1 or rk.masking != "partial-only"
    for many in (built, stack_launches(shapes)):
        pred = predict_launch(rk.name, many, side, params, rates, bounds)
        for col in record.columns({"runtime"}):
            got = col.compute(record.Row(rt=pred))
            for i, one in enumerate(scalar):
                want = col.compute(record.Row(rt=one))
                _close(got[i] if isinstance(got, np.ndarray) else got, want, (col.name, i))
    # per-row parameters (the fit): row i under its own efficiencies
    rm = runtime_model(prof)
    per_row = [ModelParams.of(rk.model.model_copy(update={
        "tensor_efficiency": rng.uniform(0.3, 0.9), "mask_ops_per_element": rng.uniform(0, 40),
        "cta_overhead_us": rng.uniform(0, 5)}), rm) for _ in cfgs]
    many = kernel_time(stack_launches(shapes), ModelParams.stack(per_row),
                       Rates.stack([rates] * len(cfgs)))
    for i, (s, p) in enumerate(zip(shapes, per_row)):
        one = kernel_time(s, p, rates)
        for f in ("time_ms", "clock_fraction", "waves", "tile_us", "masked_tile_us", "cta_us_max",
                  "makespan_ms", "bound"):
            _close(getattr(many, f)[i], getattr(one, f), (f, i))
