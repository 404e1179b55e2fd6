"""Property tests: the factorised KV-stationary (backward) plan equals a brute force read off the
N x N mask of :mod:`gnasim.reference` (transposed: per KV tile, the Q tiles attending it)."""

from collections import Counter
from itertools import product

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnasim.config import GNAConfig
from gnasim.errors import ConfigError
from gnasim.reference import _tile_slots, axis_mask, full_mask
from gnasim.prediction import simulate
from gnasim.plan.backward import backward_flops, backward_plan, inverse_window_bounds

from test_tiling_reference import axis_params, configs


def _doc_inverse(j: int, L: int, K: int, S: int, causal: bool) -> tuple[int, int]:
    """NATTEN @ 8c8729f get_bwd_win_start/end, transcribed literally (used for KV tiles with no real key)."""
    left, right, off = K // 2, K // 2 + K % 2 - 1, S - S // 2 - 1
    if causal:
        return j, min(((j + K) // S + (1 if j + K >= L else 0)) * S, L)
    start = ((j - right + off) if j >= K else 0) // S * S
    end = L if j >= L - K else (j + left + off + 1) // S * S
    return start, end


def _padded_kv_visits(cfg, kt) -> int:
    """A KV tile with no real key: the kernel's box from its first and last slot."""
    count = 1
    for d in range(cfg.rank):
        L, K, S, D, c = (cfg.input_size[d], cfg.window_size[d], cfg.stride[d],
                         cfg.dilation[d], cfg.causal[d])
        g, r = kt[d][0], kt[d][1]
        Lg = -(-(L - g) // D)
        qt, kvt = cfg.q_tile[d], cfg.kv_tile[d]
        lo = _doc_inverse(r * kvt, Lg, K, S, c)[0] // qt
        hi = -(-_doc_inverse(r * kvt + kvt - 1, Lg, K, S, c)[1] // qt)
        count *= max(hi - lo, 0)
    return count


def reference_backward(cfg):
    """Per KV tile: (Q tiles visited, fully dense Q tiles), straight off the full mask."""
    mask = full_mask(cfg)
    sizes = cfg.input_size
    flat = lambda coords: int(np.ravel_multi_index(tuple(np.array(coords).T), sizes))
    q_axes = [_tile_slots(sizes[d], cfg.q_tile[d], cfg.dilation[d]) for d in range(cfg.rank)]
    kv_axes = [_tile_slots(sizes[d], cfg.kv_tile[d], cfg.dilation[d]) for d in range(cfg.rank)]
    # every Q tile: per-axis (group, index), its real query slots, whether it holds padding
    q_tiles = []
    for qt in product(*q_axes):
        real = all(x is not None for t in qt for x in t[2])
        slots = [flat(c) for c in product(*[[x for x in t[2] if x is not None] for t in qt])]
        q_tiles.append((tuple(t[0] for t in qt), tuple(t[1] for t in qt), slots, real))
    # per query token: its Q tile index per axis
    tile_of = np.zeros((mask.shape[0], cfg.rank), np.int64)
    for d in range(cfg.rank):
        D, t = cfg.dilation[d], cfg.q_tile[d]
        coord = np.unravel_index(np.arange(mask.shape[0]), sizes)[d]
        tile_of[:, d] = (coord // D) // t
    visited, full = [], []
    for kt in product(*kv_axes):
        groups = tuple(t[0] for t in kt)
        keys = [flat(c) for c in product(*[[x for x in t[2] if x is not None] for t in kt])]
        if not keys:
            visited.append(_padded_kv_visits(cfg, kt))
            full.append(0)
            continue
        attending = np.nonzero(mask[:, keys].any(axis=1))[0]
        t = tile_of[attending]
        visited.append(int(np.prod(t.max(axis=0) - t.min(axis=0) + 1)))
        by_all = mask[:, keys].all(axis=1)
        full.append(sum(1 for g, _, slots, real in q_tiles
                        if g == groups and real and by_all[slots].all()))
    return visited, full


def _check(cfg):
    vis, full = reference_backward(cfg)
    plan = backward_plan(cfg, cfg.q_tile, cfg.kv_tile)
    assert plan.kv_tiles == len(vis)
    assert plan.tile_pairs_visited == sum(vis)
    assert plan.tile_pairs_full == sum(full)
    assert plan.tile_pairs_partial == sum(vis) - sum(full)
    assert plan.q_tiles_visited_max == max(vis)
    assert plan.visited_histogram() == dict(Counter(vis))
    assert plan.fully_block_sparse == (sum(vis) == sum(full))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_backward_plan_matches_reference(cfg):
    _check(cfg)


@settings(max_examples=300, deadline=None)
@given(axis_params(60))
def test_inverse_windows_are_exact(params):
    """Closed forms == min/max attending query of every real key, in every dilation group."""
    L, K, S, D, causal, _, _ = params
    m = axis_mask(L, K, S, D, causal)
    for g in range(D):
        Lg = -(-(L - g) // D)
        sub = m[g::D, g::D]          # group-local queries x keys
        qs, qe = inverse_window_bounds(np.arange(Lg), Lg, K, S, causal)
        for j in range(Lg):
            q = np.nonzero(sub[:, j])[0]
            assert (qs[j], qe[j]) == (q.min(), q.max() + 1)
            assert (qs[j], qe[j]) == _doc_inverse(j, Lg, K, S, causal)


@pytest.mark.parametrize("kw", [
    dict(input_size=(9,), window_size=(3,), dilation=(2,), q_tile=(3,), kv_tile=(4,)),   # empty KV tile
    dict(input_size=(17, 3), window_size=(7, 3), dilation=(2, 1), q_tile=(1, 2), kv_tile=(4, 2)),
    dict(input_size=(16,), window_size=(5,), q_tile=(1,), kv_tile=(1,)),
    dict(input_size=(7, 5), window_size=(4, 5), stride=(2, 5), causal=(True, False),
         q_tile=(2, 1), kv_tile=(3, 2)),
    dict(input_size=(6, 4, 5), window_size=(3, 2, 5), stride=(3, 1, 2), dilation=(2, 1, 1),
         causal=(False, True, False), q_tile=(1, 2, 4), kv_tile=(2, 1, 3)),
])
def test_edge_cases(kw):
    _check(GNAConfig(**kw))


def test_fully_block_sparse_when_windows_align():
    """Non-causal, stride = window = tile: every key's inverse window is its own tile."""
    cfg = GNAConfig(input_size=(32, 32), window_size=(8, 8), stride=(8, 8), q_tile=(8, 8),
                    kv_tile=(8, 8))
    plan = backward_plan(cfg, cfg.q_tile, cfg.kv_tile)
    assert plan.fully_block_sparse and plan.q_tiles_visited_max == 1
    _check(cfg)


def test_simulate_backward_keys():
    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8),
                    heads=24, head_dim=128)
    plain = simulate(cfg, "h100").to_dict()
    res = simulate(cfg, "h100", backward=True)
    d = res.to_dict()
    # opt-in: the forward keys are unchanged, the bwd_ and predicted_*bwd* keys are added
    assert {k: v for k, v in d.items() if "bwd" not in k} == plain
    assert d["predicted_bwd_time_ms_low"] < d["predicted_bwd_time_ms"] < d["predicted_bwd_time_ms_high"]
    assert d["predicted_bwd_speedup"] == pytest.approx(
        d["predicted_dense_bwd_time_ms"] / d["predicted_bwd_time_ms"], rel=1e-12)
    assert d["bwd_q_tile"] == "4x4x4" and d["bwd_kv_tile"] == "4x4x8"  # h100, head dim 128
    bp = res.backward.plan
    dense = backward_plan(cfg.dense(), bp.q_tile, bp.kv_tile)
    assert d["bwd_tile_speedup"] == dense.q_tiles_visited_max / bp.q_tiles_visited_max
    assert d["bwd_tile_speedup_mean"] == dense.tile_pairs_visited / bp.tile_pairs_visited
    assert d["bwd_tile_pairs_visited"] == d["bwd_tile_pairs_full"] + d["bwd_tile_pairs_partial"]
    assert d["bwd_flops_useful"] == backward_flops(d["attended_pairs"], 1, 24, 128, 128)
    assert d["bwd_flops_useful"] * 2 == d["flops_useful"] * 5
    assert d["bwd_flops_dense"] > d["bwd_flops_computed"] > d["bwd_flops_useful"]
    explicit = simulate(cfg, "h100", backward=True, bwd_q_tile=(2, 4, 8),
                        bwd_kv_tile=(2, 8, 8)).to_dict()
    assert explicit["bwd_q_tile"] == "2x4x8" and explicit["bwd_kv_tile"] == "2x8x8"


def test_backward_tiles_required_without_profile():
    cfg = GNAConfig(input_size=(16,), window_size=(5,), q_tile=(4,), kv_tile=(4,))
    with pytest.raises(ConfigError, match="bwd_q_tile"):
        simulate(cfg, backward=True)
    d = simulate(cfg, backward=True, bwd_q_tile=(4,), bwd_kv_tile=(8,)).to_dict()
    assert d["bwd_q_tiles_visited_max"] >= 1


def test_cli_backward():
    import json

    from typer.testing import CliRunner

    from gnasim.cli import app, join_multi_values

    def run(*args):
        return CliRunner().invoke(app, join_multi_values(list(args)), env={"COLUMNS": "200"})

    base = ["predict", "-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "16", "8", "8",
            "-n", "24", "--hardware", "h100"]
    plain = json.loads(run(*base, "--format", "json").stdout)
    assert not any(k.startswith("bwd_") for k in plain)
    res = run(*base, "--backward", "--bwd-q-tile", "2", "4", "8", "--bwd-kv-tile", "2", "8", "8",
              "--histogram", "--format", "json")
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["bwd_q_tile"] == "2x4x8" and d["bwd_kv_tile"] == "2x8x8"
    assert sum(d["bwd_q_tiles_visited_histogram"].values()) == \
        simulate(GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8)),
                 "h100", backward=True, bwd_q_tile=(2, 4, 8),
                 bwd_kv_tile=(2, 8, 8)).backward.plan.kv_tiles
    table = run(*base, "--backward")
    assert table.exit_code == 0 and "backward tile speedup bound" in table.stdout
    bad = run(*base, "--backward", "--bwd-q-tile", "2", "4", "--format", "json")
    assert bad.exit_code == 2 and "bwd_q_tile" in bad.output
