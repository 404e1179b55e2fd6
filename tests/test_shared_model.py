"""The runtime model shared across GPUs: families, power-derived clocks, held-out errors, intervals."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from gnasim import GNAConfig, simulate
from gnasim.calibration.corpus import load_dataset, model_scope
from gnasim.calibration.corpus_calibration import corpus_problem
from gnasim.calibration.shared_fit import FAMILY_PARAMS, fit_shared, typical_values
from gnasim.calibration.transfer import Residual, coverage, held_out, interval_table
from gnasim.cli import app
from gnasim.hardware.profile import list_profile_names, load_profile
from gnasim.model.families import (ArchitectureModel, families_path, load_families,
                                   read_families, sustained_fraction)
from gnasim.model.kernel import runtime_model
from gnasim.model.uncertainty import choose_quantiles, ratio_quantiles, speedup_quantiles

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HUNYUAN = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), heads=24, head_dim=128)


def test_every_profile_gets_a_bounded_runtime_model_from_the_families():
    fm = load_families()
    for name in list_profile_names():
        prof = load_profile(name)
        rm = runtime_model(prof)
        assert prof.model is None and 0.3 <= rm.sustained_clock_fraction <= 1.0
        for key, km in rm.kernels.items():
            assert km.family in fm.families, (name, key)
            for p, lo, hi, _ in FAMILY_PARAMS:
                assert lo <= getattr(km, p) <= hi, (name, key, p)
                if km.backward is not None:
                    assert lo <= getattr(km.backward, p) <= hi, (name, key, p)


def test_sustained_clock_is_the_cube_root_of_the_power_ratio():
    h100 = load_profile("h100")
    arch = ArchitectureModel(power_per_tflops_w=1.2)
    want = (700.0 / (1.2 * 989.4)) ** (1 / 3)
    assert sustained_fraction(h100, arch) == pytest.approx(want, rel=1e-12)
    more = h100.model_copy(update={"power_w": 1400.0})
    assert sustained_fraction(more, arch) == 1.0                     # never above the datasheet
    assert sustained_fraction(h100.model_copy(update={"power_w": None}), arch) is None


def test_fitted_file_only_overlays_the_hand_written_priors():
    path = families_path()
    prior, fitted = read_families(path, fitted=False), read_families(path)
    assert prior.families.keys() == fitted.families.keys() and prior.evidence == {}
    raw = tomllib.loads(path.with_name("fitted.toml").read_text())
    for name, values in raw["families"].items():
        for key, v in values.items():
            if key != "backward":
                assert getattr(fitted.families[name], key) == v


def test_unseen_families_take_the_median_of_the_seen_ones():
    fm = load_families(fitted=False)
    fams = {"cudnn-sdpa-sm90": {"tensor_efficiency": 0.6, "iteration_cycles": 100.0},
            "fa3": {"tensor_efficiency": 0.8, "iteration_cycles": 300.0},
            "fa2/bwd": {"tensor_efficiency": 0.5}}
    out = typical_values(fams, frozenset(fams), fm)
    assert out["hopper-fna"] == {"tensor_efficiency": pytest.approx(0.7),
                                 "iteration_cycles": pytest.approx(200.0)}
    assert out["cudnn-sdpa-sm90/bwd"] == {"tensor_efficiency": 0.5}    # backward from backward
    assert out["fa3"] == fams["fa3"]


@pytest.fixture(scope="module")
def small():
    """The Triton suites on H100 and H200: one family, two GPUs."""
    rows = model_scope(load_dataset("gnasim_h100_suite").rows
                       + load_dataset("gnasim_h200_suite").rows).rows
    problem, errors = corpus_problem(rows)
    return problem, fit_shared(problem), errors


def test_shared_fit_stays_in_bounds_and_fits_both_gpus(small):
    problem, fit, errors = small
    assert fit.success and len(problem.rows) > 60
    for p in fit.parameters():
        assert p["lower"] <= p["value"] <= p["upper"], p["parameter"]
    err = np.abs(np.expm1(fit.residuals))
    assert err.mean() < 0.10
    assert {r.profile.name for r in problem.rows} == {"h100", "h200"}


def test_held_out_gpu_is_classed_by_what_the_refit_knew(small):
    problem, fit, _ = small
    res = held_out(problem, fit, "gpu")
    assert {r.split for r in res} == {"gpu:h100", "gpu:h200"}
    by = {(r.family, r.status) for r in res if r.kind == "time"}
    # triton-gna runs on both GPUs: each is predicted from the other; flex only ran on the H100
    assert ("triton-gna", "transferred") in by and ("flex-fna", "datasheet-only") in by
    spd = [r for r in res if r.kind == "speedup" and r.family == "triton-gna"]
    assert spd and np.mean([abs(math.expm1(r.value)) for r in spd]) < 0.10
    assert all(r.baseline and r.baseline_status for r in spd)


def test_interval_rule_and_honest_coverage():
    own = {"transferred": {"q05": -0.1, "q95": 0.1, "n": 20}}
    pooled = {"transferred": {"q05": -0.3, "q95": 0.3, "n": 200},
              "datasheet-only": {"q05": -0.6, "q95": 0.6, "n": 50}}
    q, basis = choose_quantiles(own, pooled, "transferred")
    assert (q["q05"], q["q95"]) == (-0.3, 0.3) and basis == "own/transferred"   # the wider
    q, basis = choose_quantiles({}, pooled, "calibrated")                       # falls back
    assert q["q95"] == 0.3 and basis == "pooled/transferred"
    r = ratio_quantiles({"q05": -0.3, "q95": 0.3}, {"q05": -0.4, "q95": 0.4})
    assert r["q95"] == pytest.approx(0.5) and r["q05"] == pytest.approx(-0.5)
    direct = ({"q05": -0.05, "q95": 0.05}, "")
    assert speedup_quantiles(direct, (q, ""), (q, "")) == direct[0]
    # a band from residuals scattered +-10% covers fresh residuals of the same scatter
    rng = np.random.default_rng(3)
    res = [Residual(i, "f", f"g{i % 5}", "s", "transferred", f"gpu:g{i % 5}",
                    float(rng.normal(0, 0.06))) for i in range(400)]
    table = interval_table(res)
    assert table["f"]["transferred"]["q95"] == -table["f"]["transferred"]["q05"]
    c = coverage(res)
    assert 0.85 <= c["coverage"] <= 0.95 and 5 < c["median_half_width_pct"] < 15


@pytest.mark.parametrize("hw,kernel,status", [("h100", None, "calibrated"),
                                               ("b300", None, "transferred"),
                                               ("a100", None, "datasheet-only")])
def test_every_prediction_carries_its_interval_and_status(hw, kernel, status):
    d = simulate(HUNYUAN, hw, kernel).to_dict()
    assert d["calibration_status"] == status
    for key in ("predicted_time_ms", "predicted_dense_time_ms", "predicted_speedup",
                "predicted_speedup_with_permute"):
        assert d[f"{key}_low"] < d[key] < d[f"{key}_high"], key
    assert d["calibration"]["family"] and isinstance(d["calibration"]["rows"], int)
    warned = [n for n in d["notes"] if n.startswith(status)]
    assert bool(warned) == (status != "calibrated")


def test_backward_time_is_costed_on_the_kv_stationary_plan():
    d = simulate(HUNYUAN.replace(stride=(16, 8, 8)), "h100", backward=True).to_dict()
    fwd = simulate(HUNYUAN.replace(stride=(16, 8, 8)), "h100").to_dict()
    # 5 GEMMs against 2, plus the recomputed softmax: the backward takes longer than the forward
    assert d["predicted_dense_bwd_time_ms"] > 2 * fwd["predicted_dense_time_ms"]
    assert d["predicted_bwd_time_ms"] > fwd["predicted_time_ms"]
    assert d["predicted_bwd_speedup_low"] < d["predicted_bwd_speedup"] < d["predicted_bwd_speedup_high"]


def test_a_power_limit_is_worth_a_clock():
    big = HUNYUAN.replace(heads=48)
    b200, gb200 = simulate(big, "b200").runtime, simulate(big, "gb200").runtime
    assert gb200.gna.clock_fraction > b200.gna.clock_fraction


def _run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize("name", ["h100_suite", "h100_holdout", "h200_suite"])
def test_compare_validation_files_with_the_shipped_model(name):
    res = _run("compare", f"validate/data/{name}.csv", "--by", "implementation",
               "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["mape_speedup"] <= 8.0
    # the hold-out file was never fitted; the suites were
    assert (d["in_sample_rows"] == 0) == (name == "h100_holdout")
    assert d["in_sample_rows"] + d["out_of_sample_rows"] == d["n"]
    assert set(d["by"]["implementation"]) >= {"triton-gna", "torch-sdpa"}


def test_calibrate_corpus_holdout_reports_transfer_and_writes_the_shipped_values(tmp_path):
    out = tmp_path / "fitted.toml"
    res = _run("calibrate", "--corpus", "--holdout-source", "natten_published", "--write",
               str(out), "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    held = d["held_out"]
    assert held and {e["held_out"] for e in held} == {"source"}
    assert {e["family"] for e in held} >= {"hopper-fna", "blackwell-fna"}
    # what the corpus fit writes is what ships
    shipped = tomllib.loads(families_path().with_name("fitted.toml").read_text())
    mine = tomllib.loads(out.read_text())
    for section in ("shared", "families"):
        for key, value in shipped[section].items():
            if isinstance(value, dict):
                for k, v in value.items():
                    if not isinstance(v, dict):
                        assert mine[section][key][k] == pytest.approx(v, rel=1e-3), (key, k)
    again = _run("calibrate", "--corpus", "--write", str(out))
    assert again.exit_code == 2 and "already exists" in again.stderr


def test_natten_dense_fallback_carries_the_baselines_certainty():
    d = simulate(GNAConfig(input_size=4096, window_size=4096, causal=True), "h100").to_dict()
    assert d["predicted_speedup"] == 1.0
    assert d["predicted_speedup_low"] == d["predicted_speedup_high"] == 1.0
    assert d["predicted_time_ms_low"] == d["predicted_dense_time_ms_low"]
    assert d["calibration"]["family"] == "cudnn-sdpa-sm90"
