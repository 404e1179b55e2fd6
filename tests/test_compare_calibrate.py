"""``gnasim compare`` and ``gnasim calibrate``: error report, bad rows, fitting, files written."""

import csv
import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gnasim.calibration.fit import calibrate, calibrate_profile, bind_rows
from gnasim.hardware.write import to_toml, write_profile
from gnasim.cli import app, join_multi_values
from gnasim.calibration.compare import compare, error_stats
from gnasim.config import GNAConfig
from gnasim.model.kernel import ModelParams, Rates, runtime_model
from gnasim.model.launch import launch_for
from gnasim.model.solve import permute_time_ms, time_ms
from gnasim.errors import ConfigError, HardwareProfileError, MeasurementError
from gnasim.hardware.profile import load_profile, read_profile_file
from gnasim.calibration.measurements import BASE_COLUMNS, load_measurements

runner = CliRunner()
PUBLISHED = load_measurements()


def run(*args):
    return runner.invoke(app, join_multi_values(list(args)))


def _b200_rows(tmp_path) -> Path:
    text = Path(PUBLISHED.path).read_text().splitlines()
    keep = [text[0]] + [line for line in text[1:] if ",B200," in line]
    p = tmp_path / "b200.csv"
    p.write_text("\n".join(keep) + "\n")
    return p


def test_error_stats():
    s = error_stats([1.0, 2.0, 4.0], [1.1, 1.8, 4.0])
    assert s["mape"] == pytest.approx(100 * (0.1 + 0.1 + 0) / 3)
    assert s["max_error"] == pytest.approx(10.0)
    assert s["within_10pct"] == 1.0
    assert error_stats([1.0, 2.0], [1.0, 2.5])["within_10pct"] == 0.5
    assert error_stats([], [])["n"] == 0


def test_compare_json_on_published_data():
    res = run("compare", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    for key in ("n", "mape_time", "mape_speedup", "max_error_speedup", "pearson_r_speedup",
                "within_10pct_speedup", "mape_speedup_with_permute"):
        assert key in d
    assert d["n"] == 14 and d["n_speedup"] == 10 and d["n_permute"] == 4
    rows = d["rows"]
    sp = [r for r in rows if "measured_speedup" in r]
    mape = sum(abs(r["predicted_speedup"] / r["measured_speedup"] - 1) for r in sp) / len(sp) * 100
    assert d["mape_speedup"] == pytest.approx(mape)
    assert d["max_error_speedup"] == pytest.approx(max(abs(r["error_speedup_pct"]) for r in sp))
    # the shipped profiles are calibrated on these rows: in-sample speedups within 10%
    assert d["mape_speedup"] < 10 and d["mape_speedup_with_permute"] < 10
    one_d = next(r for r in rows if r["profile"] == "h100" and r["problem"] == "32768 w2048")
    assert one_d["tile_bound"] == pytest.approx(256 / 17)
    assert one_d["masked_tiles_pct"] == 100 and one_d["mask_factor"] > 1.2
    assert one_d["predicted_speedup"] < 0.7 * one_d["tile_bound"]


def test_leave_one_out_speedup_error_under_ten_percent_per_gpu():
    report = compare(PUBLISHED, loo=True)
    per = report.metrics["per_profile"]
    for gpu in ("h100", "b200"):
        assert per[gpu]["mape_speedup"] < 10, per
        assert per[gpu]["mape_speedup_with_permute"] < 10, per
    assert report.loo and report.metrics["n"] == 14


def test_compare_bad_row_names_row_and_column_then_skips(tmp_path):
    text = Path(PUBLISHED.path).read_text().splitlines()
    text[3] = text[3].replace("0.062687", "quick")          # data row 3, line 4
    text[6] = text[6].replace("B200", "Z900")               # data row 6: no such GPU
    p = tmp_path / "bad.csv"
    p.write_text("\n".join(text) + "\n")
    res = run("compare", str(p))
    assert res.exit_code == 2
    assert res.stderr.strip() == ("error: bad.csv row 3 (line 4), column attention_ms: "
                                  "'quick' is not a number")
    res = run("compare", str(p), "--skip-bad-rows", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["n"] == 12 and len(d["skipped"]) == 2
    assert "row 3 (line 4), column attention_ms" in d["skipped"][0]
    assert "row 6 (line 7), column gpu: 'Z900' matches no hardware profile" in d["skipped"][1]
    assert res.stderr.count("skipped:") == 2
    table = run("compare", str(p), "--skip-bad-rows")
    assert table.exit_code == 0 and "Error report" in table.stdout


def test_compare_writes_csv_and_plot(tmp_path):
    out, plot = tmp_path / "cmp.csv", tmp_path / "cmp.html"
    res = run("compare", "--out", str(out), "--plot", str(plot))
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 14 and float(rows[1]["tile_bound"]) == pytest.approx(256 / 17, rel=1e-5)
    html = plot.read_text()
    assert "y = x" in html and '"measured (ms)"' in html
    assert '<script src="https://cdn.plot.ly' not in html and len(html) > 1_000_000   # inline js
    res = run("compare", "--out", str(tmp_path / "missing-dir" / "x.csv"))
    assert res.exit_code == 2 and "does not exist" in res.stderr


def test_calibrate_recovers_known_parameters():
    """Times generated by the model with known parameters are fitted back to those parameters."""
    hw = load_profile("h100")
    rm = runtime_model(hw)
    true_rm = rm.model_copy(update={
        "launch_latency_us": 5.0,
        "kernels": {**rm.kernels,
                    "hopper-fna": rm.kernels["hopper-fna"].model_copy(update={
                        "tensor_efficiency": 0.55, "mask_ops_per_element": 30.0,
                        "cta_overhead_us": 1.5, "permute_bandwidth_share": 0.25}),
                    "cudnn-sdpa": rm.kernels["cudnn-sdpa"].model_copy(update={
                        "tensor_efficiency": 0.68})}})
    truth = hw.model_copy(update={"model": true_rm})
    cases = [("32768", "2048", "1", "128"), ("32768", "2048", "2048", "128"),
             ("16384", "1024", "128", "128"), ("256x256", "80x80", "1x1", "16x8"),
             ("256x256", "80x80", "16x16", "16x8"), ("128x128", "32x32", "1x1", "16x8"),
             ("30x48x80", "18x24x24", "16x8x8", "2x8x8"), ("30x48x80", "18x24x24", "1x1x1", "2x8x8")]
    lines = [",".join(BASE_COLUMNS)]
    for layout, window, stride, tile in cases:
        for impl, w, s, t in (("natten-hopper-fna", window, stride, tile),
                              ("cudnn-sdpa", layout, "1", "")):
            cfg = GNAConfig(input_size=layout, window_size=w, stride=s, q_tile=t or None,
                            kv_tile=t or None, heads=8)
            launch = launch_for(cfg, truth, impl)
            p = ModelParams.of(truth.model.kernels[launch.kernel.name], true_rm)
            rates = Rates.of(truth, "fp16")
            ms = time_ms(launch.shape, p, rates)
            perm = permute_time_ms(launch.shape, p, rates)
            lines.append(f"synthetic,H100-SXM,{impl},1,8,128,fp16,{layout},{w},{s},1,0,{t},{t},"
                         f"{ms:.9g},{perm:.9g},")
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "synthetic.csv"
        p.write_text("\n".join(lines) + "\n")
        mset = load_measurements(p)
    rows, errors = bind_rows(mset, [hw])
    assert not errors and len(rows) == 16
    cal = calibrate_profile(hw, rows, prior_weight=0.001, loo=False)
    got = {p["parameter"]: p["value"] for p in cal.parameters()}
    assert got["hopper-fna.tensor_efficiency"] == pytest.approx(0.55, rel=0.03)
    assert got["hopper-fna.mask_ops_per_element"] == pytest.approx(30.0, rel=0.1)
    assert got["hopper-fna.permute_bandwidth_share"] == pytest.approx(0.25, rel=0.01)
    assert got["cudnn-sdpa.tensor_efficiency"] == pytest.approx(0.68, rel=0.03)
    assert cal.metrics()["mape_time"] < 0.5


def test_calibrate_cli_writes_a_new_file_and_never_overwrites(tmp_path):
    data = _b200_rows(tmp_path)
    res = run("calibrate", str(data), "--out", str(tmp_path), "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    prof = d["profiles"][0]
    assert prof["profile"] == "b200" and prof["loo_n"] == 4 and prof["written"]
    for p in prof["parameters"]:
        assert p["lower"] <= p["value"] <= p["upper"] and p["sigma"] >= 0
        if p["parameter"].endswith("efficiency"):
            assert 0 < p["value"] <= 1
    out = tmp_path / "b200-calibrated.toml"
    written = read_profile_file(out)
    assert written.name == "b200-calibrated" and written.model is not None
    assert written.model.kernels["blackwell-fna"].tensor_efficiency == pytest.approx(
        next(p["value"] for p in prof["parameters"]
             if p["parameter"] == "blackwell-fna.tensor_efficiency"))
    before = out.read_bytes()
    again = run("calibrate", str(data), "--out", str(tmp_path), "--no-loo")
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1
    assert out.read_bytes() == before
    forced = run("calibrate", str(data), "--out", str(out), "--no-loo", "--force")
    assert forced.exit_code == 0, forced.output
    assert not list(tmp_path.glob(".*.tmp"))                 # no temporary file left behind
    # the calibrated file is usable as a profile by compare
    cmp = run("compare", str(data), "--hardware", str(out), "--format", "json")
    assert cmp.exit_code == 0 and json.loads(cmp.stdout)["per_profile"]["b200-calibrated"]["n"] == 4


def test_calibrate_rejects_bad_output_names(tmp_path):
    data = _b200_rows(tmp_path)
    res = run("calibrate", str(data), "--out", str(tmp_path / "B 200.toml"), "--no-loo")
    assert res.exit_code == 2 and "not a usable profile name" in res.stderr
    res = run("calibrate", "--out", str(tmp_path / "one.toml"), "--no-loo")
    assert res.exit_code == 2 and "several profiles" in res.stderr


def test_write_profile_round_trips(tmp_path):
    hw = load_profile("h100")
    out = write_profile(hw, hw.model, tmp_path / "h100-copy.toml", header="test")
    back = read_profile_file(out)
    a = hw.model_dump()
    b = back.model_dump()
    assert b.pop("name") == "h100-copy" and a.pop("name") == "h100"
    a.pop("display_name"), b.pop("display_name")
    assert a == b
    with pytest.raises(HardwareProfileError, match="already exists"):
        write_profile(hw, hw.model, out)
    assert tomllib.loads(to_toml({"a": {"b-c": {"x": 1.5}}, "k.v": "q\""})) == {
        "a": {"b-c": {"x": 1.5}}, "k.v": 'q"'}


def test_calibrate_all_published_profiles_and_loo():
    cals, errors = calibrate(PUBLISHED)
    assert not errors and {c.profile.name for c in cals} == {"h100", "b200"}
    for c in cals:
        met = c.metrics()
        assert met["loo_mape_speedup"] < 10 and met["loo_mape_speedup_with_permute"] < 10
        assert c.fit.success
        for prm in c.parameters():
            assert prm["lower"] <= prm["value"] <= prm["upper"], prm["parameter"]
    # rows of GPUs another known profile matches are left out when a profile is selected
    assert bind_rows(PUBLISHED, [load_profile("a100")]) == ([], [])


def test_tiled_dense_row_takes_the_tiles_of_its_gna_row(tmp_path):
    header = ",".join(BASE_COLUMNS) + ",baseline,masking,kv_tiling"
    dense = ("v,H100-SXM,triton-gna-dense,1,8,128,fp16,30x48x80,30x48x80,1x1x1,1x1x1,1x0x0,,,"
             "69.8,1.5,,triton-gna-dense,partial,static")
    gna = ("v,H100-SXM,triton-gna,1,8,128,fp16,30x48x80,18x24x24,1x1x1,1x1x1,1x0x0,2x8x8,2x4x8,"
           "16.9,1.5,,triton-gna-dense,partial,static")
    p = tmp_path / "causal.csv"
    p.write_text("\n".join([header, dense, gna]) + "\n")
    rows, errors = bind_rows(load_measurements(p))
    assert not errors and rows[1].baseline == 0
    assert rows[0].launch.config.q_tile == (2, 8, 8) and rows[0].launch.shape.masked_pairs > 0
    p.write_text("\n".join([header, dense]) + "\n")
    with pytest.raises(MeasurementError, match=r"row 1 \(line 2\), column q_tile"):
        bind_rows(load_measurements(p))


def test_gna_row_without_a_baseline_row_is_reported(tmp_path):
    text = Path(PUBLISHED.path).read_text().splitlines()
    p = tmp_path / "nobase.csv"
    p.write_text("\n".join([text[0], text[2]]) + "\n")       # an H100 GNA row, no cuDNN row
    report = compare(load_measurements(p))
    assert report.metrics["n"] == 1 and report.metrics["n_speedup"] == 0
    assert report.metrics["mape_speedup"] is None
    assert any("row 1 (line 2): no dense row" in w for w in report.warnings)


def test_calibrate_one_profile_uses_the_rows_that_match_it():
    """Issue 9: ``calibrate -H h100`` on the built-in data failed on its B200 rows."""
    cals, errors = calibrate(PUBLISHED, [load_profile("h100")], loo=False)
    assert not errors and [c.profile.name for c in cals] == ["h100"]
    assert all(r.m.gpu.startswith("H100") for r in cals[0].in_sample)


@pytest.mark.parametrize("weight", [float("inf"), float("nan"), -1.0])
def test_prior_weight_must_be_finite_and_non_negative(weight):
    with pytest.raises(ConfigError, match="prior_weight"):
        calibrate(PUBLISHED, [load_profile("h100")], prior_weight=weight, loo=False)
