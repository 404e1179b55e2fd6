"""gnasim recommend --objective: strides (and tile shapes) ranked by predicted time; the tile-bound
Pareto set stays available as --objective bound."""

from __future__ import annotations

import itertools
import json

import pytest
from typer.testing import CliRunner

from gnasim import GNAConfig, load_profile
from gnasim.cli import app, join_multi_values
from gnasim.errors import ConfigError
from gnasim.explore.recommend import (check_objective, default_objective, is_time_column,
                                      ranked_records, recommend, time_searches)
from gnasim.prediction import simulate

PROBLEM = ["-i", "32", "48", "-w", "12", "16", "-n", "4"]


def run(*args: str):
    return CliRunner().invoke(app, join_multi_values(list(args)), env={"COLUMNS": "80"})


def _json(*args: str) -> list[dict]:
    res = run(*args, "--format", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _sim(rec: dict, heads: int = 4, hardware: str = "h100") -> dict:
    cfg = GNAConfig(input_size=rec["input_size"], window_size=rec["window_size"],
                    stride=rec["stride"], q_tile=rec["q_tile"], kv_tile=rec["kv_tile"],
                    heads=heads, head_dim=64)
    return simulate(cfg, hardware).to_dict()


def test_default_objective_with_a_profile_ranks_by_time_with_permute():
    rows = _json("recommend", *PROBLEM, "--hardware", "h100")
    assert rows and all(r["objective"] == "time-with-permute" for r in rows)
    totals = [r["predicted_total_ms"] for r in rows]
    assert totals == sorted(totals) and [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
    for rec in rows[:5]:       # the numbers `gnasim predict` gives for that stride and tile
        want = _sim(rec)
        for key in ("predicted_time_ms", "predicted_total_ms", "predicted_speedup_with_permute",
                    "tile_speedup"):
            assert rec[key] == pytest.approx(want[key], rel=1e-9), key


def test_time_pareto_set_matches_brute_force_over_every_stride():
    cfg = GNAConfig(input_size=(32, 48), window_size=(12, 16), heads=4, head_dim=64)
    prof = load_profile("h100")
    [search] = recommend(cfg, prof)
    [ts] = time_searches([search], "h100", "time")
    times = {}
    for s in itertools.product(range(1, 13), range(1, 17)):
        c = search.config.replace(stride=s)
        times[s] = simulate(c, prof).to_dict()["predicted_time_ms"]
        assert ts.times[s[0] - 1, s[1] - 1] == pytest.approx(times[s], rel=1e-9)
    for s, t in times.items():
        lower = [o for o in times if o != s and all(a <= b for a, b in zip(o, s))]
        dominated = any(times[o] <= t * (1 + 1e-12) for o in lower)
        assert bool(ts.pareto[s[0] - 1, s[1] - 1]) == (not dominated), s
    best = min(times, key=lambda s: (times[s], s[0] * s[1]))
    rows = ranked_records([ts])
    assert tuple(int(v) for v in rows[0]["stride"].split("x")) == best


def test_time_objective_differs_from_bound_and_bound_keeps_the_tile_pareto_set():
    bound = _json("recommend", *PROBLEM, "--hardware", "h100", "--objective", "bound")
    cfg = GNAConfig(input_size=(32, 48), window_size=(12, 16), heads=4, head_dim=64)
    [search] = recommend(cfg, load_profile("h100"))
    assert bound == json.loads(json.dumps(search.records()))
    assert "predicted_time_ms" not in bound[0] and "objective" not in bound[0]
    timed = _json("recommend", *PROBLEM, "--hardware", "h100", "--objective", "time")
    assert [r["predicted_time_ms"] for r in timed] == sorted(r["predicted_time_ms"] for r in timed)
    assert all(r["objective"] == "time" for r in timed)


def test_all_tiles_ranks_every_shipped_tile_shape():
    rows = _json("recommend", *PROBLEM, "--hardware", "b200", "--all-tiles", "-d", "128")
    shipped = load_profile("b200").kernel().tile_shapes(2, 128)
    assert {(r["q_tile"], r["kv_tile"]) for r in rows} == \
        {("x".join(map(str, q)), "x".join(map(str, kv))) for q, kv in shipped}
    assert rows[0]["predicted_total_ms"] == min(r["predicted_total_ms"] for r in rows)


def test_time_objectives_need_a_profile_one_line_exit_2():
    for goal in ("time", "time-with-permute"):
        res = run("recommend", *PROBLEM, "--hardware", "none", "--q-tile", "8", "8",
                  "--kv-tile", "8", "8", "--objective", goal)
        assert res.exit_code == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "needs a hardware profile" in lines[0]
    # without a profile the default is the bound objective
    rows = _json("recommend", *PROBLEM, "--hardware", "none", "--q-tile", "8", "8",
                 "--kv-tile", "8", "8")
    assert rows and "predicted_time_ms" not in rows[0]
    assert default_objective(None) == "bound" and default_objective("h100") == "time-with-permute"
    with pytest.raises(ConfigError):
        check_objective("speed", "h100")


def test_table_shows_the_fastest_rows_in_80_columns():
    res = run("recommend", "--preset", "hunyuanvideo-720p", "--all-tiles", "--top", "4")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert sum(1 for line in lines if line.strip()[:2] in ("1 ", "2 ", "3 ", "4 ")) == 4
    assert "--objective bound" in res.output


def test_interval_keys_of_the_record_are_carried():
    assert is_time_column("predicted_time_ms_low") and is_time_column("predicted_speedup_high")
    assert is_time_column("e2e_predicted_speedup") and not is_time_column("tile_speedup")
