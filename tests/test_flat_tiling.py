"""Flat (1-D) tiling: the interval-arithmetic plan equals the brute-force N x N reference."""

import math
import time
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.plan import flat
from gnasim.plan.flat import flat_plan
from gnasim.reference import flat_reference_counts, flat_tile_reference, full_mask

from test_tiling_reference import mask_params


@st.composite
def cases(draw):
    rank = draw(st.integers(1, 3))
    max_len = {1: 40, 2: 14, 3: 7}[rank]
    axes = [draw(mask_params(max_len)) for _ in range(rank)]
    cols = list(zip(*axes))
    cfg = GNAConfig(input_size=cols[0], window_size=cols[1], stride=cols[2], dilation=cols[3],
                    causal=cols[4])
    n = cfg.tokens
    # small tiles (many full pairs), tiles around a row, tiles that do not divide the sequence,
    # and tiles longer than the whole sequence
    tile = st.one_of(st.integers(1, 8), st.integers(1, max(1, n)), st.integers(n, n + 9))
    return cfg, draw(tile), draw(tile)


def _check(cfg: GNAConfig, q_tile: int, kv_tile: int) -> None:
    ref = flat_reference_counts(cfg, q_tile, kv_tile)
    plan = flat_plan(cfg, q_tile, kv_tile)
    assert plan.q_tiles == ref.q_tiles
    assert plan.visited.tolist() == ref.visited
    assert plan.full.tolist() == ref.full
    assert plan.attended_pairs == ref.attended_pairs
    assert plan.tile_pairs_visited == sum(ref.visited)
    assert plan.tile_pairs_full == sum(ref.full)
    assert plan.kv_tiles_visited_max == max(ref.visited)
    assert plan.kv_tiles_visited_mean == pytest.approx(sum(ref.visited) / ref.q_tiles)
    assert plan.visited_histogram() == dict(Counter(ref.visited))
    fp = Counter((f, v - f) for v, f in zip(ref.visited, ref.full))
    assert plan.full_partial_histogram() == dict(fp)
    assert plan.fully_block_sparse == (sum(ref.visited) == sum(ref.full))


@settings(max_examples=1100, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_flat_plan_matches_the_brute_force(case):
    _check(*case)


@pytest.mark.parametrize("kw, q_tile, kv_tile", [
    ({"input_size": (6, 9, 10), "window_size": (3, 4, 5)}, 7, 13),
    ({"input_size": (6, 9, 10), "window_size": (3, 4, 5), "stride": (3, 4, 5)}, 20, 20),
    ({"input_size": (8, 12), "window_size": (8, 12)}, 16, 8),             # dense: all full
    ({"input_size": (8, 12), "window_size": (8, 12), "causal": (True, True)}, 5, 3),
    ({"input_size": (9, 12), "window_size": (3, 4), "dilation": (3, 2)}, 4, 6),
    ({"input_size": (10, 10), "window_size": (10, 4), "stride": (1, 4), "dilation": (1, 2)}, 12, 2),
    ({"input_size": (5, 6, 7), "window_size": (5, 6, 7), "causal": (False, True, True)}, 210, 1),
])
def test_named_cases(kw, q_tile, kv_tile):
    _check(GNAConfig(**kw), q_tile, kv_tile)


def test_full_pairs_appear_where_expected():
    """Blocked attention with tiles that are whole blocks is perfectly block-sparse."""
    cfg = GNAConfig(input_size=(8, 16), window_size=(4, 16), stride=(4, 16))
    plan = flat_plan(cfg, 64, 32)
    assert plan.fully_block_sparse and plan.tile_pairs_visited == 2 * 2   # 2 Q tiles, 2 KV each
    assert plan.kv_tiles_visited_max == 2


@pytest.mark.parametrize("stride", [(1, 1, 1), (16, 8, 8)])
def test_hunyuan_video_is_fast_and_matches_sampled_tiles(stride):
    """115,200 tokens, 128-token tiles: milliseconds, and sampled Q tiles agree with the
    per-query reference."""
    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=stride)
    flat_plan(cfg, 128, 128)
    t0 = time.perf_counter()
    plan = flat_plan(cfg, 128, 128)
    elapsed = time.perf_counter() - t0
    assert elapsed < 2.0, f"{elapsed:.3f} s"
    assert plan.q_tiles == plan.kv_tiles == 900
    rng = np.random.default_rng(11)
    for i in [0, 899, *rng.integers(0, 900, 4).tolist()]:
        assert flat_tile_reference(cfg, 128, 128, i) == (plan.visited[i], plan.full[i])
    dense = flat_plan(cfg.dense(), 128, 128)
    assert dense.kv_tiles_visited_max == 900 and dense.fully_block_sparse


def test_sampled_tiles_with_dilation_and_causal_axes():
    cfg = GNAConfig(input_size=(12, 20, 30), window_size=(5, 6, 7), stride=(2, 3, 1),
                    dilation=(2, 1, 3), causal=(True, False, False))
    plan = flat_plan(cfg, 96, 40)
    for i in range(0, plan.q_tiles, 9):
        assert flat_tile_reference(cfg, 96, 40, i) == (plan.visited[i], plan.full[i])


def test_chunked_enumeration_gives_the_same_counts(monkeypatch):
    cfg = GNAConfig(input_size=(9, 11, 13), window_size=(5, 4, 6), stride=(1, 2, 1),
                    dilation=(1, 2, 1))
    whole = flat_plan(cfg, 10, 7)
    monkeypatch.setattr(flat, "RUNS_PER_CHUNK", 37)
    chunked = flat_plan(cfg, 10, 7)
    assert chunked.visited.tolist() == whole.visited.tolist()
    assert chunked.full.tolist() == whole.full.tolist()


def test_plan_exposes_the_tile_plan_names():
    plan = flat_plan(GNAConfig(input_size=(10, 10), window_size=(3, 3)), 16, 8)
    assert plan.q_tile == (16,) and plan.kv_tile == (8,)
    assert plan.q_tile_size == 16 and plan.kv_tile_size == 8
    assert plan.q_tiles == 7 and plan.kv_tiles == 13
    assert plan.tile_pairs_partial == plan.tile_pairs_visited - plan.tile_pairs_full
    assert plan.mode == "flat" and plan.dilation_groups == 1


@pytest.mark.parametrize("q_tile, kv_tile, message", [
    (0, 8, "q_tile: must be >= 1"),
    (8, -1, "kv_tile: must be >= 1"),
    ((4, 4), 8, "q_tile: flat tiling takes one token count"),
    (8, 2.5, "kv_tile: flat tiling takes one token count"),
])
def test_bad_tiles(q_tile, kv_tile, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        flat_plan(GNAConfig(input_size=(10, 10), window_size=(3, 3)), q_tile, kv_tile)


def test_matches_flex_attention_block_mask():
    """torch's own block mask over the row-major sequence (no permutation) keeps the same
    blocks: ``kv_num_blocks`` are the partial pairs, ``full_kv_num_blocks`` the full ones."""
    torch = pytest.importorskip("torch")
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    cases = [
        (GNAConfig(input_size=(7, 9, 5), window_size=(3, 4, 3), stride=(1, 2, 1),
                   dilation=(2, 1, 1), causal=(False, True, False)), 16, 16),
        (GNAConfig(input_size=(12, 20), window_size=(12, 20), causal=(True, False)), 32, 16),
        (GNAConfig(input_size=(12, 20), window_size=(6, 20), stride=(6, 1)), 24, 8),
    ]
    for cfg, q_tile, kv_tile in cases:
        n = cfg.tokens
        table = torch.from_numpy(full_mask(cfg))

        def mask_mod(b, h, q, kv, n=n, table=table):
            inside = (q < n) & (kv < n)
            return table[q.clamp(max=n - 1), kv.clamp(max=n - 1)] & inside

        bm = flex.create_block_mask(mask_mod, None, None, n, n, device="cpu",
                                    BLOCK_SIZE=(q_tile, kv_tile))
        partial = bm.kv_num_blocks[0, 0].numpy()
        full = bm.full_kv_num_blocks[0, 0].numpy()
        plan = flat_plan(cfg, q_tile, kv_tile)
        assert (full == plan.full).all()
        assert (partial + full == plan.visited).all()


# -- the curse plot ---------------------------------------------------------------------------

def test_curse_points_agree_with_simulate():
    from gnasim.plots_flat import box_name, curse_points, flat_name
    from gnasim.prediction import simulate

    windows = [(3, 6, 6), (6, 8, 8)]
    points = curse_points((6, 16, 24), windows, stride=(1, 2, 2), flat_tiles=[(64, 32)],
                          box_tiles=[((2, 4, 8), (2, 4, 4))])
    assert [p.tiling for p in points] == [flat_name((64, 32))] * 2 + \
        [box_name(((2, 4, 8), (2, 4, 4)), "static")] * 2
    for p in points[2:]:
        cfg = GNAConfig(input_size=(6, 16, 24), window_size=p.window, stride=(1, 2, 2),
                        q_tile=(2, 4, 8), kv_tile=(2, 4, 4))
        r = simulate(cfg)
        assert p.tile_bound == pytest.approx(r.tile_speedup, rel=1e-12)
        assert p.tile_bound_mean == pytest.approx(r.tile_speedup_mean, rel=1e-12)
        assert p.flop_bound == pytest.approx(r.flop_speedup, rel=1e-12)
        assert p.wasted_share == pytest.approx(r.flops_wasted / r.flops_computed, rel=1e-12)
    for p in points[:2]:
        cfg = GNAConfig(input_size=(6, 16, 24), window_size=p.window, stride=(1, 2, 2))
        ref = flat_reference_counts(cfg, 64, 32)
        dense = flat_reference_counts(cfg.dense(), 64, 32)
        assert p.tile_bound == pytest.approx(max(dense.visited) / max(ref.visited), rel=1e-12)
        assert p.wasted_share == pytest.approx(
            1 - ref.attended_pairs / (sum(ref.visited) * 64 * 32), rel=1e-12)


def test_curse_html_is_written_with_every_trace(tmp_path):
    from gnasim.plots_flat import cube_windows, write_curse_html

    windows = cube_windows((8, 16, 16), [4, 8, 12])
    assert windows == [(4, 4, 4), (8, 8, 8), (8, 12, 12)]
    out = write_curse_html(tmp_path / "curse.html", (8, 16, 16), windows, stride="window",
                           flat_tiles=[(64, 64), (128, 64)],
                           box_tiles=[((2, 4, 8), (2, 4, 8))])
    html = out.read_text()
    assert html.lower().startswith("<!doctype html>") and "<script" in html
    assert "Plotly.newPlot" in html and '<script src="http' not in html   # plotly.js inlined
    for name in ["flat, Q 64 / KV 64 tokens", "flat, Q 128 / KV 64 tokens",
                 "box, Q 2x4x8 / KV 2x4x8 (static KV tiling)", "FLOP bound", "8x12x12",
                 "stride = window"]:
        assert name.replace("/", "\\u002f") in html, name   # plotly's JSON escapes "/"


@pytest.mark.parametrize("kwargs, message", [
    ({"windows": []}, "windows: give at least one window"),
    ({"windows": [(4, 4)], "flat_tiles": []}, "tiles: give at least one"),
    ({"windows": [(4, 4)], "kv_tiling": "sideways"}, "kv_tiling: 'sideways'"),
    ({"windows": [(2, 2)], "stride": 4}, "stride \\(axis 0\\): 4 is larger than window_size 2"),
])
def test_curse_errors(kwargs, message):
    from gnasim.plots_flat import curse_points

    with pytest.raises(ConfigError, match=message):
        curse_points((8, 8), **kwargs)


def test_plan_arrays_are_read_only():
    plan = flat_plan(GNAConfig(input_size=(10, 10), window_size=(3, 3)), 16, 8)
    with pytest.raises(ValueError):
        plan.visited[0] = 0
    with pytest.raises(ValueError):
        plan.full[0] = 1


def test_simulate_and_predict_take_flat_tiling():
    """simulate(tiling="flat") and `predict --tiling flat` report the flat plan's exact counts."""
    import json

    from typer.testing import CliRunner

    from gnasim import simulate
    from gnasim.cli import app, join_multi_values

    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8))
    res = simulate(cfg, "h100", tiling="flat", flat_tiles=(128, 128))
    ref = flat_plan(cfg, 128, 128)
    d = res.to_dict()
    assert (d["q_tile"], d["kv_tile"], d["kv_tiling"]) == ("128", "128", "flat")
    assert d["tile_pairs_visited"] == int(ref.visited.sum()) == 243_000
    assert d["tile_speedup"] == 900 / 270 and d["natten_fast_path"] is False
    assert d["kernel"] == "flex-flat" and math.isfinite(d["predicted_time_ms"])
    # a box kernel named: bounds only, and its box tiles' token counts (h100 3-D: 4x4x8 = 128)
    box = simulate(cfg, "h100", kernel="hopper-fna", tiling="flat")
    assert box.plan.q_tile == (128,) and box.runtime is None
    assert any("tiles boxes" in n for n in box.notes)

    def run(*args):
        return CliRunner().invoke(app, join_multi_values(["predict", "-i", "30", "48", "80", "-w",
                                                          "18", "24", "24", "-s", "16", "8", "8",
                                                          "--tiling", "flat", *args]))
    out = run("--q-tile", "128", "--kv-tile", "128", "--format", "json")
    assert out.exit_code == 0 and json.loads(out.stdout)["tile_pairs_visited"] == 243_000
    for bad, word in ((["--q-tile", "4", "8", "8", "--kv-tile", "128"], "one token count"),
                      (["--backprop"], "backward"), (["--optimize"], "tiling")):
        res = run(*bad)
        assert res.exit_code == 2 and word in res.stderr, res.stderr
    with pytest.raises(ConfigError, match="tiling"):
        simulate(cfg, "h100", tiling="diagonal")
