"""The flex-flat kernel (FlexAttention's default path) and the runtime model of flat plans."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gnasim import simulate
from gnasim.config import GNAConfig
from gnasim.errors import ConfigError, HardwareProfileError
from gnasim.hardware.kernels import Kernel
from gnasim.hardware.profile import load_profile
from gnasim.model.flat_launch import cta_classes, flat_launch_shape
from gnasim.model.kernel import resolve_kernel
from gnasim.plan.flat import flat_plan
from gnasim.record import FACTORS

HUNYUAN = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24))


@pytest.mark.parametrize("hw", ["h100", "h200", "b200", "b300", "a100"])
def test_flex_flat_resolves_on_every_profile(hw):
    profile = load_profile(hw)
    kern = profile.kernel("flex-flat")
    assert kern.tiling == "flat" and not kern.token_permute and kern.masking == "partial-only"
    assert kern.flat_tiles(128)[0] == (128, 128)          # torch's _DEFAULT_SPARSE_BLOCK_SIZE
    rk = resolve_kernel(profile, "flex-flat")
    assert rk.kernel is kern and rk.token_permute is False and rk.masking == "partial-only"
    # box kernels stay multi-dim; flat tiling picks flex-flat without being told
    assert profile.kernel().tiling == "multi-dim"
    assert simulate(GNAConfig(input_size=(64, 64), window_size=(16, 16)), profile,
                    tiling="flat").kernel == "flex-flat"


def _kernel(**changes):
    base = dict(name="k", kv_tiling="static", masking="partial-only", token_permute=False,
                dtypes=["fp16"], head_dim_dispatch="any", tiling="flat",
                forward=[{"gemm": [128, 128], "rank1": ["128/128"]}])
    return Kernel(**{**base, **changes})


@pytest.mark.parametrize("changes, message", [
    ({"token_permute": True}, "permutes no tokens"),
    ({"forward": [{"gemm": [64, 64], "rank2": ["8x8/8x8"]}]}, "token counts"),
    ({"default_tiles": ["8x16/8x16"]}, "token counts"),
    ({"tiling": "diagonal"}, "tiling"),
])
def test_flat_kernel_schema_is_validated(changes, message):
    assert _kernel().flat_tiles() == [(128, 128)]
    with pytest.raises(ValueError, match=message):
        _kernel(**changes)


def test_flat_kernel_is_refused_for_box_tiling():
    from gnasim.hardware.tiles import supported_tiles

    one_d = GNAConfig(input_size=(4096,), window_size=(512,))
    for cfg in (HUNYUAN, one_d):
        with pytest.raises(ConfigError, match="tiling"):
            simulate(cfg, "h100", kernel="flex-flat")
    # it ships no box tiles, so box-tile listings (tiles, --dry-run, --optimize) leave it out
    kern = load_profile("h100").kernel("flex-flat")
    assert kern.tile_shapes(1) == [] and kern.default_tile(1) is None
    assert all(r["kernel"] != "flex-flat"
               for r in supported_tiles(load_profile("h100"), (4096,), 128, "fp16"))
    assert simulate(one_d, "h100", tiling="flat").kernel == "flex-flat"
    with pytest.raises(HardwareProfileError, match="kernel"):
        simulate(HUNYUAN, "h100", kernel="no-such-kernel", tiling="flat")


@pytest.mark.parametrize("hw", ["h100", "b200"])
@pytest.mark.parametrize("kw", [
    {},
    {"stride": (16, 8, 8)},
    {"dilation": (1, 2, 1), "window_size": (9, 12, 24)},
])
def test_flat_runtime_prediction_is_finite_and_explained(hw, kw):
    cfg = HUNYUAN.replace(**kw)
    rec = simulate(cfg, hw, tiling="flat").to_dict()
    assert rec["kernel"] == "flex-flat"
    for key in ("predicted_time_ms", "predicted_dense_time_ms", "predicted_speedup"):
        assert math.isfinite(rec[key]) and rec[key] > 0, key
    assert rec["predicted_permute_ms"] == 0.0
    assert rec["predicted_speedup"] == rec["predicted_speedup_with_permute"]
    factors = rec["speedup_factors"]
    assert set(factors) == set(FACTORS)
    assert rec["tile_speedup"] * math.prod(factors.values()) == pytest.approx(
        rec["predicted_speedup"], rel=1e-12)


def test_flat_launch_counts_equal_the_plan():
    cfg = HUNYUAN.replace(batch=2, heads=3, stride=(1, 8, 8))
    plan = flat_plan(cfg, 128, 128)
    rk = resolve_kernel(load_profile("h100"), "flex-flat")
    shape = flat_launch_shape(cfg, plan, rk)
    hb = cfg.batch * cfg.heads
    assert shape.tile_pairs == plan.tile_pairs_visited * hb
    assert shape.masked_pairs == (plan.tile_pairs_visited - plan.tile_pairs_full) * hb
    assert shape.ctas == int(np.count_nonzero(plan.visited)) * hb
    assert shape.mean_u * shape.ctas == pytest.approx(plan.tile_pairs_full * hb)
    assert (shape.mean_u + shape.mean_m) * shape.ctas == pytest.approx(shape.tile_pairs)
    assert shape.max_tiles == plan.visited_max and shape.permute_bytes == 0.0
    assert (shape.q_rows, shape.kv_rows) == (128, 128) and shape.mask_all is False
    # the longest CTA's tiles are those of the worst Q tile
    assert max(u + m for u, m in zip(shape.front_u, shape.front_m)) == plan.visited_max
    # every (full, partial) class of the plan is dominated by a class of the front
    for f, p in plan.full_partial_histogram():
        assert any(u >= f and m >= p for u, m in zip(shape.front_u, shape.front_m))


def test_cta_classes_keep_only_undominated_ones():
    cfg = GNAConfig(input_size=(60, 8), window_size=(9, 8), stride=(3, 1))
    plan = flat_plan(cfg, 16, 8)       # Q tiles with (full, partial) = (9, 0) and (6, 6)
    us, ms = cta_classes(plan, mask_all=False)
    pairs = list(zip(us, ms))
    assert sorted(pairs) == sorted(plan.full_partial_histogram()) and len(pairs) == 2
    for a in pairs:
        assert not any(b != a and b[0] >= a[0] and b[1] >= a[1] for b in pairs)
    us_all, ms_all = cta_classes(plan, mask_all=True)
    assert us_all == (0,) and ms_all == (plan.visited_max,)


def test_masking_policy_all_masks_every_tile():
    cfg = GNAConfig(input_size=(60, 8), window_size=(9, 8), stride=(3, 1))
    plan = flat_plan(cfg, 16, 8)
    assert 0 < plan.tile_pairs_full < plan.tile_pairs_visited
    rk = resolve_kernel(load_profile("h100"), "flex-flat", masking="all")
    shape = flat_launch_shape(cfg, plan, rk)
    assert shape.mask_all and shape.mean_u == 0.0
    assert shape.masked_pairs == shape.tile_pairs == plan.tile_pairs_visited


def test_flat_causal_multi_dim_has_bounds_but_no_runtime():
    cfg = GNAConfig(input_size=(8, 16, 16), window_size=(4, 8, 8), causal=(True, False, False))
    res = simulate(cfg, "h100", tiling="flat")
    assert res.runtime is None and any("causal" in n for n in res.notes)
    one_d = simulate(GNAConfig(input_size=(4096,), window_size=(512,), causal=True), "h100",
                     tiling="flat")
    assert one_d.runtime is not None and math.isfinite(one_d.runtime.time_ms)


def test_unshipped_flat_tile_is_noted_and_simulated():
    res = simulate(HUNYUAN, "h100", tiling="flat", flat_tiles=(96, 48))
    assert res.plan.q_tile == (96,) and res.runtime is not None
    assert any("96/48" in n and "not shipped" in n for n in res.notes)


def test_docs_table_script_runs(monkeypatch):
    """benchmarks/flat_vs_box.py (the docs table) computes every cell, box and flat rows alike."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "flat_vs_box.py"
    spec = importlib.util.spec_from_file_location("flat_vs_box", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "flat_vs_box", module)
    spec.loader.exec_module(module)
    rows = module.rows()
    assert len(rows) == 4 * len(module.PROBLEMS)
    assert all("n/a" not in r for r in rows)
    flat = [r for r in rows if r[2].startswith("flat (flex-flat, 128 / 128)")]
    assert len(flat) == 2 * len(module.PROBLEMS)
    hunyuan = flat_plan(HUNYUAN, 128, 128)
    assert float(flat[0][3]) == pytest.approx(900 / hunyuan.kv_tiles_visited_max, abs=5e-4)
