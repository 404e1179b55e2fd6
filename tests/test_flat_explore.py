"""Flat tiling through `sweep`, `recommend` and `plot` (CLI and API)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from gnasim import simulate
from gnasim.cli import app, join_multi_values
from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.explore.flat_search import MAX_FLAT_STRIDES, recommend_flat, search_flat_strides
from gnasim.explore.sweep import sweep_frame
from gnasim.hardware.profile import load_profile
from gnasim.plan.flat import flat_plan
from gnasim.record import flatten_record


def run(*args):
    return CliRunner().invoke(app, join_multi_values(list(args)))


def test_sweep_cli_rows_equal_simulate(tmp_path):
    out = tmp_path / "flat.csv"
    res = run("sweep", "-i", "16", "24", "-w", "5", "7", "-s", "1", "-s", "2", "3", "-c", "0",
              "-c", "1", "0", "--tiling", "flat", "--q-tile", "32,48", "--kv-tile", "32",
              "--hardware", "h100", "-o", str(out), "--format", "json", "--no-progress")
    assert res.exit_code == 0, res.stderr
    assert json.loads(res.stdout)["rows"] == 8
    import pandas as pd

    df = pd.read_csv(out)
    assert set(df["kv_tiling"]) == {"flat"} and set(df["kernel"]) == {"flex-flat"}
    for _, row in df.iterrows():
        cfg = GNAConfig(input_size=(16, 24), window_size=(5, 7), stride=row["stride"], head_dim=64,
                        causal=tuple(int(c) for c in row["causal"].split("x")))
        rec = flatten_record(simulate(cfg, "h100", tiling="flat",
                                      flat_tiles=(int(row["q_tile"]), int(row["kv_tile"])))
                             .to_dict())
        for key in ("tile_speedup", "tile_pairs_visited", "tile_pairs_full", "flops_wasted",
                    "kv_tiles_visited_max", "sparsity"):
            assert row[key] == pytest.approx(rec[key], rel=1e-12), key
        if row["causal"] == "0x0":     # a causal axis of a 2-D layout: bounds only
            assert row["predicted_time_ms"] == pytest.approx(rec["predicted_time_ms"], rel=1e-12)
            assert row["speedup_factors.waves"] == pytest.approx(rec["speedup_factors.waves"])
        else:
            assert math.isnan(row["predicted_time_ms"]) and "causal" in row["notes"]


def test_sweep_api_bounds_only_fractions_and_parquet(tmp_path):
    spec = {"input_size": "12 20", "window_size": "4 6", "stride": "1,2 1", "tiling": "flat",
            "q_tile": 16, "kv_tile": 16, "hardware": "none", "attention_fraction": "0.5"}
    df = sweep_frame(spec)
    assert len(df) == 2 and "predicted_time_ms" not in df.columns
    cfg = GNAConfig(input_size=(12, 20), window_size=(4, 6))
    ref = simulate(cfg, None, tiling="flat", flat_tiles=(16, 16), attention_fraction=0.5)
    assert df["e2e_tile_speedup"][0] == pytest.approx(ref.to_dict()["e2e_tile_speedup"])
    res = run("sweep", "-i", "12", "20", "-w", "4", "6", "--tiling", "flat", "--hardware",
              "b200", "--bounds-only", "-o", str(tmp_path / "f.parquet"), "--no-progress")
    assert res.exit_code == 0, res.stderr
    import pyarrow.parquet as pq

    t = pq.read_table(tmp_path / "f.parquet")
    assert t.column("q_tile").to_pylist() == ["128"]      # flex-flat's default tile
    assert "predicted_time_ms" not in t.column_names


@pytest.mark.parametrize("args, message", [
    (["--q-tile", "4", "8"], "token counts"),
    (["--tiling", "diagonal"], "'diagonal' is not one of"),
    (["--hardware", "none"], "both token counts"),
])
def test_sweep_cli_flat_errors(tmp_path, args, message):
    res = run("sweep", "-i", "16", "24", "-w", "5", "7", "--tiling", "flat",
              "-o", str(tmp_path / "x.csv"), *args) if "--tiling" not in args else \
        run("sweep", "-i", "16", "24", "-w", "5", "7", "-o", str(tmp_path / "x.csv"), *args)
    assert res.exit_code == 2 and message in res.stderr, res.stderr


def test_box_sweep_skips_the_flat_kernel_on_multi_dim_layouts():
    df = sweep_frame({"input_size": "16 24", "window_size": "5 7", "kernel": "all",
                      "hardware": "h100", "bounds_only": True})
    assert "flex-flat" not in set(df["kernel"]) and len(df) > 0


def _pareto_brute(vmax: np.ndarray) -> set[tuple[int, ...]]:
    keep = set()
    for a in itertools.product(*(range(n) for n in vmax.shape)):
        dominated = any(b != a and all(x <= y for x, y in zip(b, a)) and vmax[b] <= vmax[a]
                        for b in itertools.product(*(range(n + 1) for n in a)))
        if not dominated:
            keep.add(tuple(v + 1 for v in a))
    return keep


def test_flat_stride_search_matches_plans_one_by_one():
    cfg = GNAConfig(input_size=(18, 20), window_size=(5, 6), causal=(False, True))
    search = search_flat_strides(cfg, 24, 16)
    for stride in itertools.product(range(1, 6), range(1, 7)):
        plan = flat_plan(cfg.replace(stride=stride), 24, 16)
        assert search.vmax[stride[0] - 1, stride[1] - 1] == plan.kv_tiles_visited_max
        assert search.fully_block_sparse(stride) == (plan.tile_pairs_full
                                                    == plan.tile_pairs_visited)
    pareto = {tuple(int(v) + 1 for v in ix) for ix in np.argwhere(search.pareto)}
    assert pareto == _pareto_brute(search.vmax)
    best = search.best_stride()
    assert search.vmax[tuple(s - 1 for s in best)] == search.vmax.min()
    assert [r["stride"] for r in search.records()][0] == "1x1"


def test_block_sparse_flat_stride_is_found():
    # one row of 8 tokens per Q tile, windows of whole rows: stride 4 on axis 0 is block-sparse
    cfg = GNAConfig(input_size=(32, 8), window_size=(8, 8))
    search = search_flat_strides(cfg, 8, 8)
    assert search.smallest_block_sparse is not None
    assert search.fully_block_sparse(search.smallest_block_sparse)


def test_flat_search_limits_and_tiles():
    with pytest.raises(ConfigError, match="stride vectors"):
        search_flat_strides(GNAConfig(input_size=(200, 200), window_size=(150, 150)), 128, 128)
    assert MAX_FLAT_STRIDES >= 18 * 24 * 24        # HunyuanVideo's window fits
    cfg = GNAConfig(input_size=(32, 32), window_size=(6, 6))
    tiles = [s.config.q_tile for s in recommend_flat(cfg, load_profile("h100"), all_tiles=True)]
    assert tiles == [(128,), (64,)]
    with pytest.raises(ConfigError, match="all_tiles"):
        recommend_flat(cfg, None, all_tiles=True)


def test_recommend_cli_flat():
    res = run("recommend", "-i", "18", "20", "-w", "5", "6", "--tiling", "flat", "--q-tile",
              "24", "--kv-tile", "16", "--hardware", "none", "--format", "json")
    assert res.exit_code == 0, res.stderr
    recs = json.loads(res.stdout)
    search = search_flat_strides(GNAConfig(input_size=(18, 20), window_size=(5, 6)), 24, 16)
    assert {r["stride"] for r in recs if r["pareto"]} == {
        "x".join(str(int(v) + 1) for v in ix) for ix in np.argwhere(search.pareto)}
    assert all(r["kv_tiling"] == "flat" and r["q_tile"] == "24" for r in recs)
    text = run("recommend", "-i", "18", "20", "-w", "5", "6", "--tiling", "flat")
    assert text.exit_code == 0 and "flex-flat" in text.stdout
    bad = run("recommend", "-i", "18", "20", "--target-sparsity", "0.9", "--tiling", "flat")
    assert bad.exit_code == 2 and "target_sparsity" in bad.stderr


def test_plot_curse_and_flat_pareto(tmp_path):
    out = tmp_path / "curse.html"
    res = run("plot", "curse", "-i", "12", "16", "20", "--curse-windows", "3x4x4", "6",
              "-s", "window", "--q-tile", "64", "--kv-tile", "32", "-o", str(out))
    assert res.exit_code == 0, res.stderr
    html = out.read_text().replace("\\u002f", "/")
    assert "flat, Q 64 / KV 32 tokens" in html and "FLOP bound" in html and "box, Q " in html
    assert "2 windows" in res.stdout
    res = run("plot", "curse", "-i", "12", "16", "--points", "4", "--hardware", "none",
              "-o", str(tmp_path / "c2.html"))
    assert res.exit_code == 0 and "flat 128/128 tokens" in res.stdout, res.stderr
    res = run("plot", "pareto", "-i", "12", "16", "-w", "4", "5", "--tiling", "flat",
              "-o", str(tmp_path / "p.html"))
    assert res.exit_code == 0 and "flat tiles Q 128 / KV 128" in res.stdout, res.stderr
    for args, word in ((["tile-map", "-w", "4", "5", "--tiling", "flat"], "tiling"),
                       (["curse", "--curse-windows", "0x2"], "curse_windows"),
                       (["curse", "--kernel", "flex-flat"], "box kernel")):
        res = run("plot", args[0], "-i", "12", "16", *args[1:], "-o", str(tmp_path / "x.html"))
        assert res.exit_code == 2 and word in res.stderr, (args, res.stderr)


def test_flat_sweep_resumes_and_its_identity_columns_equal_simulate(tmp_path):
    from gnasim.explore.columns import compute_chunk
    from gnasim.explore.blocks import plan_sweep
    from gnasim.explore.grid import spec_from_mapping
    from gnasim.explore.sweep import run_sweep
    from gnasim.record import IDENTITY_KEYS

    spec = spec_from_mapping({"input_size": "12 20", "window_size": "3:5 6", "stride": "1,2 1",
                              "tiling": "flat", "q_tile": 16, "kv_tile": "8,16",
                              "hardware": "h100", "attention_fraction": "0.4 0.6"})
    plan = plan_sweep(spec)
    keys = [k for k in IDENTITY_KEYS if k in plan.columns]
    full = compute_chunk(plan, 0, 0, plan.blocks[0].rows)
    assert compute_chunk(plan, 0, 0, plan.blocks[0].rows, keys=keys).equals(full.select(keys))

    def stop_after_first(done, total):
        if done < total:
            raise KeyboardInterrupt
    out = tmp_path / "s.csv"
    first = run_sweep(spec, out, chunk_rows=5, progress=stop_after_first)
    assert first.interrupted and first.written == 5 and not out.exists()
    rest = run_sweep(spec, out, resume=True, chunk_rows=5)
    assert rest.resumed_rows == 5 and rest.written == plan.rows - 5
    whole = run_sweep(spec, tmp_path / "w.csv", chunk_rows=5)
    assert out.read_bytes() == (tmp_path / "w.csv").read_bytes() and whole.rows == 24
