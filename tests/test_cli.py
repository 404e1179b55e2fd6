"""The gnasim command line: contract keys, tables, bad input -> one line and exit code 2."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from gnasim.cli import app, join_multi_values

runner = CliRunner()

CONTRACT_KEYS = {
    "flop_speedup", "tile_speedup", "tile_speedup_mean", "fully_block_sparse", "sparsity",
    "q_tiles", "kv_tiles", "kv_tiles_visited_max", "kv_tiles_visited_mean", "tile_pairs_visited",
    "tile_pairs_full", "tile_pairs_partial", "attended_pairs", "flops_dense", "flops_useful",
    "flops_computed", "q_tile", "kv_tile", "hardware",
}


def run(*args: str):
    return runner.invoke(app, join_multi_values(list(args)))


def test_join_multi_values():
    assert join_multi_values(["predict", "-i", "30", "48", "80", "-c", "1", "0", "0", "--format", "json"]) == \
        ["predict", "-i", "30 48 80", "-c", "1 0 0", "--format", "json"]
    assert join_multi_values(["-w", "-3", "4"]) == ["-w", "-3 4"]


def test_predict_json_contract():
    res = run("predict", "-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "16", "8", "8",
              "--q-tile", "4", "8", "8", "--kv-tile", "2", "8", "8", "--attention-fraction", "0.607",
              "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert CONTRACT_KEYS <= d.keys()
    assert {"e2e_flop_speedup", "e2e_tile_speedup"} <= d.keys()
    assert round(d["tile_speedup"], 3) == 11.111 and d["fully_block_sparse"] is True
    assert d["q_tile"] == "4x8x8" and d["hardware"] == "h100"


def test_predict_defaults_tiles_from_profile():
    d = json.loads(run("predict", "-i", "30", "48", "80", "-w", "18", "24", "24", "--hardware", "b200",
                       "--format", "json").stdout)
    assert (d["q_tile"], d["kv_tile"], d["kv_tiling"]) == ("8x4x8", "4x4x8", "static")
    d = json.loads(run("predict", "-i", "64", "64", "-w", "9", "--hardware", "a100", "--format", "json").stdout)
    assert (d["q_tile"], d["kv_tile"], d["kv_tiling"]) == ("8x8", "8x8", "dynamic")


def test_predict_table_and_note_for_unshipped_tile():
    res = run("predict", "-i", "256", "256", "-w", "80", "80", "--q-tile", "16", "16", "--kv-tile", "16", "8",
              "--histogram")
    assert res.exit_code == 0
    assert "tile speedup bound" in res.stdout and "6.095x" in res.stdout
    assert "not shipped by hopper-fna" in res.stdout
    assert "KV tiles visited per Q tile" in res.stdout


def test_tiles_and_profiles_commands():
    rows = json.loads(run("tiles", "-i", "30", "48", "80", "--hardware", "a100", "--format", "json").stdout)
    cutlass = [r for r in rows if r["kernel"] == "cutlass-fna"]
    assert len(cutlass) == 76  # 36 + 10 + 30 forward configs (NATTEN @ 8c8729f, backends/configs/cutlass)
    assert sum(r["default"] for r in cutlass) == 1
    profs = json.loads(run("profiles", "--format", "json").stdout)
    assert {"a100", "h100", "h200", "b200", "b300"} <= {p["name"] for p in profs}


@pytest.mark.parametrize("args,words", [
    (["-i", "10", "-w", "11"], "window_size (axis 0): 11 is larger than input_size 10"),
    (["-i", "10", "-w", "4", "-s", "5"], "stride (axis 0): 5 is larger than window_size 4"),
    (["-i", "10", "-w", "4", "--dilation", "3"], "window_size x dilation"),
    (["-i", "10", "10", "-w", "3", "3", "3"], "window_size: 3 values given but input_size has 2 axes"),
    (["-i", "10", "-w", "-3"], "window_size (axis 0): must be >= 2"),
    (["-i", "10", "-w", "4", "--hardware", "z100"], "unknown profile 'z100'"),
    (["-i", "10", "10", "-w", "4", "--q-tile", "4", "4", "4", "--kv-tile", "4", "4"], "q_tile"),
])
def test_bad_input_exit_2_one_line(args, words):
    res = run("predict", *args)
    assert res.exit_code == 2
    assert words in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_console_script_end_to_end(tmp_path):
    bad = tmp_path / "x.toml"
    bad.write_text("name = 'x'\n")
    proc = subprocess.run([sys.executable, "-m", "gnasim", "predict", "-i", "10", "-w", "4",
                           "--hardware", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: hardware: profile file") and proc.stderr.count("\n") == 1
    ok = subprocess.run([sys.executable, "cli.py", "predict", "-i", "32768", "-w", "2048", "-s", "256",
                         "--format", "json"], capture_output=True, text=True,
                        cwd=__file__.rsplit("/tests/", 1)[0])
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["fully_block_sparse"] is True


def test_histogram_in_json():
    res = run("predict", "-i", "16", "-w", "5", "-s", "2", "--q-tile", "4", "--kv-tile", "4",
              "--histogram", "--format", "json")
    assert json.loads(res.stdout)["kv_tiles_visited_histogram"] == {"2": 2, "3": 2}


def test_predict_without_hardware():
    d = json.loads(run("predict", "-i", "16", "-w", "5", "--hardware", "none", "--q-tile", "4",
                       "--kv-tile", "4", "--format", "json").stdout)
    assert d["hardware"] is None and "predicted_time_ms" not in d
    res = run("predict", "-i", "16", "-w", "5", "--hardware", "none")
    assert res.exit_code == 2 and "give both tile shapes" in res.stderr


def test_public_api_names_survive_submodule_imports():
    """``gnasim.simulate`` (a function) stays the function after its module is imported."""
    import importlib

    importlib.import_module("gnasim.prediction")
    import gnasim

    assert callable(gnasim.simulate) and gnasim.simulate.__name__ == "simulate"
    assert {"GNAConfig", "simulate", "tile_plan", "load_profile"} <= set(gnasim.__all__)
