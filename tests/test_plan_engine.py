"""The per-axis plan engine: where the fully dense runs start (against the brute-force mask), the
periodic compression of both directions (against explicit rows), the bounded caches, and plans
of very long axes whose cost does not grow with the token count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnasim.plan import axis
from gnasim.plan.backward import backward_axis_plan, backward_axis_plans
from gnasim.plan.cache import BoundedCache
from gnasim.plan.stats import axis_stats_many
from gnasim.plan.tiling import axis_plan, axis_plans, clear_plan_cache
from gnasim.reference import axis_mask

from test_tiling_reference import axis_params


def _group_mask(L, K, S, D, causal, g):
    """Group-local queries x keys of dilation group ``g``, from the literal reference."""
    return axis_mask(L, K, S, D, causal)[g::D, g::D]


@settings(max_examples=300, deadline=None)
@given(axis_params(48), st.sampled_from(["static", "dynamic"]))
def test_forward_full_run_matches_mask(params, mode):
    """Per Q tile, the fully dense KV tiles read off the mask are [full_first, + full * t_kv)."""
    L, K, S, D, causal, qt, kvt = params
    plan = axis_plan(L, K, S, D, causal, qt, kvt, mode)
    for g in range(D):
        m = _group_mask(L, K, S, D, causal, g)
        Lg = m.shape[0]
        for t in range(plan.q_tiles_per_group):
            real = m[t * qt:min((t + 1) * qt, Lg)]
            first, n_vis = int(plan.kv_first[g, t]), int(plan.visited[g, t])
            full_run = []
            if len(real):
                e1 = int(np.nonzero(real.any(axis=0))[0].max()) + 1
                for j in range(n_vis):
                    a = first + j * kvt
                    b = a + kvt if mode == "static" else min(a + kvt, e1)
                    if b <= Lg and real[:, a:b].all():
                        full_run.append(a)
            n_full, ff = int(plan.full[g, t]), int(plan.full_first[g, t])
            assert len(full_run) == n_full
            if n_full:
                assert full_run == [ff + i * kvt for i in range(n_full)]
            else:
                assert ff == first


@settings(max_examples=300, deadline=None)
@given(axis_params(48))
def test_backward_full_run_matches_mask(params):
    """Per KV tile, the fully dense Q tiles read off the mask are [full_first, + full * t_q)."""
    L, K, S, D, causal, qt, kvt = params
    plan = backward_axis_plan(L, K, S, D, causal, qt, kvt)
    for g in range(D):
        m = _group_mask(L, K, S, D, causal, g)
        Lg = m.shape[0]
        for k in range(plan.kv_tiles_per_group):
            keys = m[:, k * kvt:min((k + 1) * kvt, Lg)]
            full_run = [i * qt for i in range(plan.q_tiles_per_group)
                        if keys.shape[1] and (i + 1) * qt <= Lg and keys[i * qt:(i + 1) * qt].all()]
            n_full, ff = int(plan.full[g, k]), int(plan.full_first[g, k])
            assert len(full_run) == n_full
            if n_full:
                assert full_run == [ff + i * qt for i in range(n_full)]
            else:
                assert ff == int(plan.q_first[g, k])


@st.composite
def long_axes(draw):
    """Axes long enough for several pieces and runs, with every window regime."""
    L = draw(st.integers(64, 900))
    D = draw(st.sampled_from([1, 1, 2, 3]))
    K = draw(st.one_of(st.integers(1, L // D), st.just(L // D), st.integers(1, 12)))
    S = draw(st.integers(1, K))
    return (L, K, S, D, draw(st.booleans()), draw(st.sampled_from([1, 2, 3, 4, 8])),
            draw(st.sampled_from([1, 2, 4, 6, 8])))


def _snapshot(plan):
    return (plan.rows.copy(), plan.visited_sum, plan.full_sum, plan.visited_max,
            [a.tolist() for a in plan.pair_counts()])


@settings(max_examples=250, deadline=None)
@given(long_axes(), st.sampled_from(["static", "dynamic", "backward"]))
def test_compressed_rows_equal_explicit_both_directions(params, mode):
    """Compressing every axis (threshold 0) changes no row, sum, maximum or distribution."""
    make = ((lambda: backward_axis_plan(*params)) if mode == "backward"
            else (lambda: axis_plan(*params, mode)))
    old = axis.PERIODIC_MIN_TILES
    try:
        axis.PERIODIC_MIN_TILES = 10 ** 9
        clear_plan_cache()
        explicit = _snapshot(make())
        axis.PERIODIC_MIN_TILES = 0
        clear_plan_cache()
        plan = make()
        compressed = _snapshot(plan)
    finally:
        axis.PERIODIC_MIN_TILES = old
        clear_plan_cache()
    assert (explicit[0] == compressed[0]).all()
    assert explicit[1:] == compressed[1:]
    for g in range(plan.dilation):
        tiles = np.arange(explicit[0].shape[2])
        assert (plan.rows_at(g, tiles) == explicit[0][:, g]).all()


def test_cache_lookup_larger_than_its_bound():
    """More distinct keys in one call than the cache holds, one of them cached before: the old
    cache cleared itself and then read the key it had just dropped (KeyError)."""
    first = (64, 5, 1, 1, False, 4, 4, "static")
    axis_plan(*first)
    small = [(L, K, S, 1, False, qt, kvt, "static") for L in range(8, 64) for K in range(1, 9)
             for S in (1, 2) for qt in (1, 2, 4, 8) for kvt in (1, 2, 4, 8) if S <= K]
    keys = [first] + small[:10_000]
    assert len(set(keys)) == 10_001
    plans = axis_plans(keys)
    assert [p.length for p in plans] == [k[0] for k in keys]
    assert plans[0].visited_sum == axis_plan(*first).visited_sum
    stats = axis_stats_many(keys)
    assert stats[0][0] == plans[0].visited_sum and len(stats) == len(keys)
    back = backward_axis_plans([k[:7] for k in keys])
    assert [p.length for p in back] == [k[0] for k in keys]


def test_bounded_cache_evicts_least_recent():
    cache = BoundedCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1          # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and "a" in cache and len(cache) == 2
    assert cache.get_many(["x", "a", "y", "x"], lambda ks: [k * 2 for k in ks]) == \
        ["xx", 1, "yy", "xx"]
    assert len(cache) == 2
    with pytest.raises(ValueError, match="maxsize"):
        BoundedCache(0)


def _segments(plan) -> int:
    return sum(len(g.segments) for g in plan.groups)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (16, 3)])
def test_long_axis_cost_does_not_grow_with_tokens(causal, stride, dilation):
    """2^30 and 2^40 tokens (window N / 1024 and a fixed one): the same few segments per group,
    so the plans are built from a handful of tiles, in both directions."""
    counts = {}
    for e in (30, 40):
        n = 2 ** e
        for window in (n // 1024, 4096):
            fwd = axis_plan(n, window, stride, dilation, causal, 128, 64)
            bwd = backward_axis_plan(n, window, stride, dilation, causal, 64, 128)
            counts.setdefault(e, []).append((_segments(fwd), _segments(bwd)))
            for p in (fwd, bwd):
                assert sum(s.block.shape[1] for g in p.groups for s in g.segments) < 64
            # totals agree with a direct count over the tiles of one group's rows: visited_sum
            # is the sum over groups of the per-group sums
            assert fwd.visited_sum == sum(w * g.row_sum(axis.VISITED)
                                          for g, w in zip(fwd.groups, fwd.weights))
    assert counts[30] == counts[40]


def test_tile_map_reads_the_plans_full_run():
    """Dynamic KV tiling, last KV tile cut short at the window end: it is fully dense (the plan
    counts it so); the tile map reads that from the plan instead of re-deriving it from slots."""
    from gnasim.plots import FULL, axis_view

    view = axis_view(16, 5, 5, 1, False, 5, 4, "dynamic", 0)
    assert [s for *_, s in view.tiles if s != "skipped"] == [FULL, FULL]
    assert int(axis_plan(16, 5, 5, 1, False, 5, 4, "dynamic").full[0, 0]) == 2


def _front_from_pairs(ap):
    """The launch front the slow way: every distinct (visited, full) pair of the axis."""
    pairs, counts = ap.pair_counts()
    vis, full = pairs[:, 0].tolist(), pairs[:, 1].tolist()
    nz = int(sum(c for v, c in zip(vis, counts.tolist()) if v > 0))
    front = []
    for f, m in sorted({(f, v - f) for v, f in zip(vis, full) if v > 0}, reverse=True):
        if not front or m > front[-1][1]:
            front.append((f, m))
    front = front or [(0, 0)]
    return nz, tuple(f for f, _ in front), tuple(f + m for f, m in front)


@settings(max_examples=600, deadline=None)
@given(st.integers(2, 40_000), st.data())
def test_front_without_expanding_equals_front_from_all_pairs(length, data):
    """AxisTiles.front() reads each stepping run at its ends; it must equal the front of every
    tile's (visited, full) pair, on long (compressed) and short axes, forward and backward."""
    from gnasim.plan.backward import backward_axis_plan

    dil = data.draw(st.integers(1, max(1, min(4, length // 2))))
    window = data.draw(st.integers(2, max(2, length // dil)))
    stride = data.draw(st.integers(1, window))
    causal = data.draw(st.booleans())
    qt, kvt = data.draw(st.sampled_from([1, 2, 3, 8, 64])), data.draw(st.sampled_from([1, 4, 5, 128]))
    mode = data.draw(st.sampled_from(["static", "dynamic"]))
    ap = axis_plan(length, window, stride, dil, causal, qt, kvt, mode)
    assert ap.front() == _front_from_pairs(ap)
    bp = backward_axis_plan(length, window, stride, dil, causal, qt, kvt)
    assert bp.front() == _front_from_pairs(bp)


def test_causal_front_of_a_huge_axis_is_cheap():
    ap = axis_plan(2 ** 40, 2 ** 40, 1, 1, True, 128, 128, "static")   # causal self attention
    nz, full, vis = ap.front()
    assert nz == 2 ** 33 and full == (2 ** 33 - 1,) and vis == (2 ** 33,)
