"""``gnasim validate``: suites and spec files resolve without a GPU; no GPU means one line, exit 2."""

from __future__ import annotations

import json

import pytest

from gnasim.calibration.measurements import BASE_COLUMNS
from gnasim_validate.harness import COLUMNS, SUITES, gpu_short_name, load_spec, resolve_cases


def test_schema_columns_first_and_in_order():
    assert tuple(COLUMNS[:len(BASE_COLUMNS)]) == BASE_COLUMNS
    for col in ("baseline", "device", "driver", "torch_version", "triton_version", "kv_tiling", "masking"):
        assert col in COLUMNS[len(BASE_COLUMNS):]


def test_suites_build_valid_cases():
    for name, make in SUITES.items():
        cases = make()
        assert cases, name
        for c in cases:
            c.config()                                  # validated by GNAConfig


def test_spec_file_json_and_csv(tmp_path):
    spec = tmp_path / "cases.json"
    spec.write_text(json.dumps([{"layout": "30x48x80", "window": "18x24x24", "stride": "16x8x8",
                                 "causal": "1x0x0", "q_tile": "2x8x8", "kv_tile": "2x4x8", "heads": 4}]))
    (case,) = load_spec(spec)
    assert case.causal == (True, False, False) and case.heads == 4 and case.stride == (16, 8, 8)
    csv_spec = tmp_path / "cases.csv"
    csv_spec.write_text("layout,window,stride,q_tile,kv_tile\n4096,512,1,128,64\n")
    assert load_spec(csv_spec)[0].window == (512,)
    bad = tmp_path / "bad.csv"
    bad.write_text("layout,window,q_tile,kv_tile\n16,32,16,16\n")
    with pytest.raises(ValueError, match="case 1"):
        load_spec(bad)
    with pytest.raises(ValueError, match="exactly one"):
        resolve_cases("smoke", spec)


@pytest.mark.parametrize("name,short", [("NVIDIA H100 80GB HBM3", "H100-SXM"), ("NVIDIA H100 PCIe", "H100-PCIe"),
                                        ("NVIDIA H200", "H200"), ("NVIDIA B200", "B200")])
def test_gpu_short_names(name, short):
    assert gpu_short_name(name) == short


def test_cli_without_gpu_exits_2(tmp_path):
    typer_testing = pytest.importorskip("typer.testing")
    from gnasim.cli.validate import validate_app

    runner = typer_testing.CliRunner()
    bad = runner.invoke(validate_app, ["run", "--suite", "nope", "--out", str(tmp_path / "x.csv")])
    assert bad.exit_code == 2 and "unknown suite" in bad.output
    try:
        import torch
        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        pytest.skip("a GPU is present: the no-GPU path does not apply")
    res = runner.invoke(validate_app, ["run", "--suite", "smoke", "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.csv").exists()
