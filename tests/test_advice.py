"""Warnings, one line each in the record's notes (gnasim.advice): KV tiling the kernel does not
run, tiles longer than the layout, NATTEN's FMHA fallback (and its runtime), causal tile bound
above the FLOP bound; the sweep's rows carry the same notes and numbers as simulate()."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from gnasim import GNAConfig, load_profile, simulate
from gnasim.advice import natten_runs_fmha
from gnasim.cli import app, join_multi_values
from gnasim.explore.grid import spec_from_mapping
from gnasim.explore.sweep import sweep_table
from gnasim.model.solve import predict_runtime


def predict(*args: str) -> dict:
    res = CliRunner().invoke(app, join_multi_values(["predict", *args, "--format", "json"]))
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def notes_with(rec: dict, words: str) -> list[str]:
    return [n for n in rec["notes"] if words in n]


def test_every_note_is_one_line():
    rec = predict("-i", "30", "48", "80", "--q-tile", "128", "--kv-tile", "128", "--kv-tiling",
                  "dynamic", "-c", "1", "0", "0")
    assert rec["notes"] and all("\n" not in n for n in rec["notes"])


def test_kv_tiling_the_kernel_does_not_run():
    rec = predict("-i", "4096", "-w", "512", "--kv-tiling", "dynamic", "--hardware", "h100")
    [note] = notes_with(rec, "KV tiling")
    assert "hopper-fna runs static KV tiling, not dynamic" in note
    assert not notes_with(predict("-i", "4096", "-w", "512", "--hardware", "h100"), "KV tiling")
    assert not notes_with(predict("-i", "4096", "-w", "512", "--hardware", "a100"), "KV tiling")


def test_tile_longer_than_the_layout():
    rec = predict("-i", "30", "48", "80", "-w", "18", "24", "24", "--q-tile", "128",
                  "--kv-tile", "128", "--hardware", "none")
    [note] = notes_with(rec, "longer than the layout")
    assert "Q tile 128x128x128" in note and "KV tile 128x128x128" in note and "axes 0, 1, 2" in note
    rec = predict("-i", "30", "48", "80", "-w", "18", "24", "24", "--q-tile", "4", "8", "128",
                  "--kv-tile", "2", "8", "8", "--hardware", "none")
    [note] = notes_with(rec, "longer than the layout")
    assert "on axis 2" in note and "KV tile" not in note
    rec = predict("-i", "30", "48", "80", "-w", "18", "24", "24", "--hardware", "none",
                  "--q-tile", "4", "8", "8", "--kv-tile", "2", "8", "8")
    assert not notes_with(rec, "longer than the layout")


def test_unshipped_tile_is_noted_once():
    rec = predict("-i", "4096", "-w", "512", "--q-tile", "64", "--kv-tile", "64", "--hardware",
                  "h100")
    assert len(notes_with(rec, "not shipped")) == 1


@pytest.mark.parametrize("size,window,causal,add_kv,fmha", [
    ((64,), (64,), (1,), False, True),          # 1-D causal, full window: NATTEN runs FMHA
    ((64,), (64,), (0,), False, True),
    ((64,), (64,), (1,), True, False),          # ... unless there is additional KV
    ((64,), (64,), (0,), True, True),
    ((64,), (32,), (0,), False, False),
    ((16, 32), (16, 32), (0, 0), False, True),
    ((16, 32), (16, 32), (1, 0), False, False), # multi-dim causal stays FNA
    ((16, 32), (16, 16), (0, 0), False, False),
])
def test_natten_fmha_rule(size, window, causal, add_kv, fmha):
    assert natten_runs_fmha(size, window, causal, add_kv) is fmha


def test_fmha_fallback_predicts_the_dense_baseline():
    cfg = GNAConfig(input_size=4096, window_size=4096, causal=1, head_dim=64)
    res = simulate(cfg, "h100")
    d = res.to_dict()
    assert notes_with(d, "FMHA")
    assert d["predicted_speedup"] == 1.0 and d["predicted_speedup_with_permute"] == 1.0
    assert d["predicted_time_ms"] == d["predicted_dense_time_ms"] and d["predicted_permute_ms"] == 0
    assert all(v == 1.0 for v in d["speedup_factors"].values())
    # the FNA kernel's own prediction for the same plan is what the fallback replaces
    fna = predict_runtime(res.config, res.plan, res.dense_plan, load_profile("h100"), res.kernel)
    assert fna.speedup != pytest.approx(1.0, abs=1e-3)
    # the CLI (whose backend flags re-predict against another baseline) agrees
    rec = predict("-i", "4096", "-w", "4096", "-c", "1", "--backend", "cudnn")
    assert rec["predicted_speedup"] == 1.0 and notes_with(rec, "FMHA")
    # a causal 2-D problem with full windows stays on FNA
    d2 = simulate(GNAConfig(input_size=(32, 64), window_size=(32, 64), causal=(1, 0)),
                  "h100").to_dict()
    assert not notes_with(d2, "FMHA")


def test_causal_tile_bound_above_flop_bound_is_explained():
    cfg = GNAConfig(input_size=32768, window_size=2048, causal=1, q_tile=128, kv_tile=128)
    r = simulate(cfg)
    assert r.tile_speedup > r.flop_speedup > r.tile_speedup_mean
    [note] = notes_with(r.to_dict(), "exceeds the FLOP bound")
    assert f"{r.tile_speedup:.3f}x" in note and f"{r.flop_speedup:.3f}x" in note
    assert f"{r.tile_speedup_mean:.3f}x" in note and "worst Q tile" in note
    plain = simulate(cfg.replace(causal=(0,)))
    assert not notes_with(plain.to_dict(), "exceeds the FLOP bound")


def test_sweep_rows_carry_the_same_notes_and_fallback_as_simulate():
    rows = []
    for m in ({"input_size": "64 32", "window_size": "32,64 16,32", "q_tile": "16 8",
               "kv_tile": "16 8"},
              {"input_size": "4096", "window_size": "512,4096", "q_tile": "64",
               "kv_tile": "128"}):
        spec = spec_from_mapping({**m, "causal": "all", "hardware": "h100", "head_dim": 64,
                                  "kv_tiling": "static"})
        rows += sweep_table(spec).to_pylist()
    seen = set()
    for r in rows:
        cfg = GNAConfig(input_size=r["input_size"], window_size=r["window_size"],
                        causal=[int(v) for v in r["causal"].split("x")], q_tile=r["q_tile"],
                        kv_tile=r["kv_tile"], head_dim=64)
        want = simulate(cfg, "h100").to_dict()
        assert r["notes"] == want["notes"], (r["window_size"], r["causal"])
        assert r["predicted_time_ms"] == pytest.approx(want["predicted_time_ms"], rel=1e-12)
        assert r["predicted_permute_ms"] == pytest.approx(want["predicted_permute_ms"], abs=1e-15)
        seen |= {w for n in r["notes"] for w in ("FMHA", "exceeds the FLOP bound") if w in n}
    assert seen == {"FMHA", "exceeds the FLOP bound"}
