"""Extreme sizes: exact counts up to gnasim's limits, one-line refusals past them, never a wrap,
never an unbounded allocation."""

from __future__ import annotations

import pytest

from gnasim import ConfigError, GNAConfig, simulate
from gnasim.config import MAX_AXIS
from gnasim.explore.grid import MAX_GRID_VALUES, load_spec_file, parse_axis_grid, spec_from_mapping
from gnasim.plots import sparsity_curves


def _visited(length: int) -> int:
    cfg = GNAConfig(input_size=(length,), window_size=(2,), q_tile=(100,), kv_tile=(128,))
    return simulate(cfg).plan.tile_pairs_visited


@pytest.mark.parametrize("top", [MAX_AXIS, MAX_AXIS - 12_345, 2 ** 61 + 7])
def test_counts_exact_up_to_the_axis_limit(top):
    """Visited tile pairs grow by a fixed amount per period P = lcm(100, 128) of the layout, so the
    count at 2^62 tokens must equal the count at a small layout of the same residue plus that
    many periods (64-bit padding arithmetic wrapped there before the limit existed)."""
    period = 3200
    small = 10 ** 6 + (top - 10 ** 6) % period
    step = _visited(small) - _visited(small - period)
    assert _visited(top) == _visited(small) + (top - small) // period * step


@pytest.mark.parametrize("kwargs,words", [
    (dict(input_size=2 ** 63 - 1, window_size=2), ["input_size", "2^62"]),
    (dict(input_size=2 ** 64, window_size=2), ["input_size", "2^62"]),
    (dict(input_size=2 ** 40, window_size=2, dilation=2 ** 30, q_tile=2 ** 33, kv_tile=8),
     ["q_tile", "2^62"]),
])
def test_past_the_limit_is_one_line(kwargs, words):
    with pytest.raises(ConfigError) as err:
        GNAConfig(**kwargs)
    assert "\n" not in str(err.value) and all(w in str(err.value) for w in words)


def test_with_tiles_checks_the_span():
    cfg = GNAConfig(input_size=2 ** 40, window_size=2, dilation=2 ** 30)
    with pytest.raises(ConfigError, match="kv_tile"):
        cfg.with_tiles((1,), (2 ** 33,))


def test_sweep_grid_refuses_huge_ranges_before_listing_them():
    with pytest.raises(ConfigError, match="1,000,000,000 values"):
        parse_axis_grid("1:1000000000", "input_size")
    assert len(parse_axis_grid(f"1:{MAX_GRID_VALUES}", "input_size")[0]) == MAX_GRID_VALUES
    with pytest.raises(ConfigError, match="'all' lists"):
        _plan({"input_size": "2000000", "window_size": "all", "q_tile": "8", "kv_tile": "8",
               "hardware": "none"})


def _plan(mapping):
    from gnasim.explore.blocks import plan_sweep

    return plan_sweep(spec_from_mapping(mapping))


def test_spec_values_are_not_truncated(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("input_size: '64'\nwindow_size: '8'\nbatch: 1.5\n")
    with pytest.raises(ConfigError, match="batch.*1.5"):
        spec_from_mapping(load_spec_file(spec))
    bad = tmp_path / "u.toml"
    bad.write_bytes(b'input_size = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_spec_file(bad)


def test_sparsity_plot_refuses_windows_it_cannot_scan():
    cfg = GNAConfig(input_size=2 ** 62, window_size=2, q_tile=128, kv_tile=128)
    with pytest.raises(ConfigError, match="sparsity plot"):
        sparsity_curves(cfg)
