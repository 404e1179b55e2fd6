"""Property tests: the factorised tile plan equals the brute-force N x N reference."""

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnasim.config import GNAConfig
from gnasim.reference import full_mask, reference_counts
from gnasim.plan.tiling import tile_plan


@st.composite
def mask_params(draw, max_len):
    """One valid axis of the mask: (length, window, stride, dilation, causal)."""
    L = draw(st.integers(2, max_len))
    D = draw(st.integers(1, max(1, L // 2)))
    K = draw(st.integers(2, max(2, L // D)))
    S = draw(st.integers(1, K))
    return L, K, S, D, draw(st.booleans())


@st.composite
def axis_params(draw, max_len):
    L, K, S, D, causal = draw(mask_params(max_len))
    qt = draw(st.sampled_from([1, 2, 3, 4, 5, 8]))
    kvt = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
    return L, K, S, D, causal, qt, kvt


@st.composite
def configs(draw):
    rank = draw(st.integers(1, 3))
    max_len = {1: 40, 2: 12, 3: 6}[rank]
    axes = [draw(axis_params(max_len)) for _ in range(rank)]
    cols = list(zip(*axes))
    return GNAConfig(input_size=cols[0], window_size=cols[1], stride=cols[2], dilation=cols[3],
                     causal=cols[4], q_tile=cols[5], kv_tile=cols[6])


def _check(cfg: GNAConfig, mode: str) -> None:
    ref = reference_counts(cfg, mode)
    plan = tile_plan(cfg, mode)
    assert plan.q_tiles == ref.q_tiles
    assert plan.attended_pairs == ref.attended_pairs
    assert plan.tile_pairs_visited == sum(ref.visited)
    assert plan.tile_pairs_full == sum(ref.full)
    assert plan.kv_tiles_visited_max == max(ref.visited)
    assert plan.visited_histogram() == dict(Counter(ref.visited))
    fp = Counter((f, v - f) for v, f in zip(ref.visited, ref.full))
    assert plan.full_partial_histogram() == dict(fp)
    assert plan.fully_block_sparse == (sum(ref.visited) == sum(ref.full))


SETTINGS = settings(max_examples=1100, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(configs())
def test_static_plan_matches_reference(cfg):
    _check(cfg, "static")


@SETTINGS
@given(configs())
def test_dynamic_plan_matches_reference(cfg):
    _check(cfg, "dynamic")


def test_worked_examples_from_semantics_doc():
    """Key ranges of the NATTEN window rules (L=16, K=5), worked by hand."""
    def keys(i, **kw):
        cfg = GNAConfig(input_size=kw.pop("L", 16), window_size=5, **kw)
        row = full_mask(cfg)[i]
        return [k for k in range(len(row)) if row[k]]
    assert keys(0) == list(range(0, 5))
    assert keys(3) == list(range(1, 6))
    assert keys(15) == list(range(11, 16))
    assert keys(4, stride=2) == keys(5, stride=2) == list(range(3, 8))
    assert keys(14, stride=2) == list(range(11, 16))
    assert keys(15, stride=5) == list(range(11, 16))
    assert keys(12, stride=5) == list(range(10, 15))
    assert keys(8, stride=2, dilation=2) == [6, 8, 10, 12, 14]
    assert keys(4, stride=2, causal=True) == [1, 2, 3, 4]
    assert keys(5, stride=2, causal=True) == [1, 2, 3, 4, 5]
    assert keys(5, stride=5, causal=True) == [5]
    assert keys(13, L=15, stride=2, dilation=2) == [5, 7, 9, 11, 13]


def test_trip_counts_from_kernel_notes():
    """NATTEN kernels' KV tiling (L=16, K=5, qt=kvt=4): aligned vs unaligned KV starts."""
    def visits(mode, **kw):
        cfg = GNAConfig(input_size=16, q_tile=4, kv_tile=4, **kw)
        return tile_plan(cfg, mode).axes[0].visited.ravel().tolist()
    for s, static, dynamic in [(1, [2, 3, 3, 2], [2, 2, 2, 2]), (2, [2, 3, 3, 2], [2, 2, 2, 2]),
                               (4, [2, 2, 2, 2], [2, 2, 2, 2]), (5, [2, 3, 3, 2], [2, 3, 3, 2])]:
        assert visits("static", window_size=5, stride=s) == static
        assert visits("dynamic", window_size=5, stride=s) == dynamic
        assert visits("static", window_size=5, stride=s, causal=True) == [1, 2, 2, 2]
    assert visits("static", window_size=8, stride=1) == [2, 3, 3, 2]
    assert visits("static", window_size=8, stride=4) == [2, 3, 3, 2]
    assert visits("static", window_size=8, stride=8) == [2, 2, 2, 2]
    assert tile_plan(GNAConfig(input_size=16, window_size=8, stride=8, q_tile=4, kv_tile=4)).fully_block_sparse


@settings(max_examples=300, deadline=None)
@given(configs(), st.sampled_from(["static", "dynamic"]))
def test_compressed_runs_equal_explicit(cfg, mode):
    """The periodic compression of long axes gives exactly the explicit per-tile rows."""
    import gnasim.plan.axis as axis
    from gnasim.plan.tiling import clear_plan_cache

    explicit = tile_plan(cfg, mode)
    dense = tile_plan(cfg.dense(), mode)
    old = axis.PERIODIC_MIN_TILES
    axis.PERIODIC_MIN_TILES = 0
    clear_plan_cache()
    try:
        for plan_a, c in ((explicit, cfg), (dense, cfg.dense())):
            plan_b = tile_plan(c, mode)
            for a, b in zip(plan_a.axes, plan_b.axes):
                assert (a.visited == b.visited).all() and (a.full == b.full).all()
                assert (a.kv_first == b.kv_first).all() and (a.real_queries == b.real_queries).all()
                assert (a.full_first == b.full_first).all()
                assert (a.visited_sum, a.full_sum, a.visited_max) == (b.visited_sum, b.full_sum, b.visited_max)
            assert plan_a.full_partial_histogram() == plan_b.full_partial_histogram()
    finally:
        axis.PERIODIC_MIN_TILES = old
        clear_plan_cache()


@settings(max_examples=400, deadline=None)
@given(configs())
def test_natten_fast_path_has_no_false_positive_with_q_tiles_of_2(cfg):
    """The kernels' predicate never skips a needed mask when every Q tile extent is >= 2 and every
    extent is a power of two, as in every shipped tile (with Q extents of 1, or a KV extent of 3,
    it can: see the published-cases test). KV padding is masked separately by the kernels
    (a cheap padding mask), so only configs without KV padding are compared."""
    from gnasim.plan.fast_path import natten_fast_path

    no_kv_padding = all(L % (t * D) == 0 for L, t, D in zip(cfg.input_size, cfg.kv_tile, cfg.dilation))
    pow2 = all(t & (t - 1) == 0 for t in cfg.q_tile + cfg.kv_tile)   # the kernels' tiles
    if pow2 and min(cfg.q_tile) >= 2 and no_kv_padding and natten_fast_path(cfg):
        assert tile_plan(cfg).fully_block_sparse


def test_natten_fast_path_published_cases():
    from gnasim.plan.fast_path import natten_fast_path

    def fp(**kw):
        return natten_fast_path(GNAConfig(**kw))
    assert fp(input_size=32768, window_size=2048, stride=256, q_tile=128, kv_tile=128)
    assert not fp(input_size=32768, window_size=2048, stride=128, q_tile=128, kv_tile=128)
    assert fp(input_size=(256, 256), window_size=80, stride=16, q_tile=(16, 8), kv_tile=(16, 8))
    assert fp(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8),
              q_tile=(2, 8, 8), kv_tile=(2, 8, 8))
    assert not fp(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=1,
                  q_tile=(2, 8, 8), kv_tile=(2, 8, 8))
    # L=6, K=4, S=1, qt=1, kvt=2: the predicate says yes but the tiling is not dense
    cfg = GNAConfig(input_size=6, window_size=4, stride=1, q_tile=1, kv_tile=2)
    assert natten_fast_path(cfg) and not tile_plan(cfg).fully_block_sparse
    # L=9, K=3, S=2, qt=2, kvt=3: Q tile {2, 3} attends keys 2..4, across KV tiles 0 and 1
    cfg = GNAConfig(input_size=9, window_size=3, stride=2, q_tile=2, kv_tile=3)
    assert natten_fast_path(cfg) and not tile_plan(cfg).fully_block_sparse
