"""gnasim plot: the figures' numbers, and the HTML rendered by a real headless browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from gnasim import GNAConfig
from gnasim.plots import (FULL, PARTIAL, SKIPPED, axis_view, kaleido_available, sparsity_curves,
                          tile_map_figure, write_figure)
from gnasim.explore.recommend import search_strides
from gnasim.reference import full_mask, reference_counts
from gnasim.plan.tiling import tile_plan

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def render(html: Path) -> tuple[str, list[str]]:
    """The DOM after the page ran, and every console message the page logged."""
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=10000", "--dump-dom", html.resolve().as_uri()],
            capture_output=True, text=True, timeout=180)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console


@needs_browser
def test_browser_check_catches_a_javascript_error(tmp_path):
    """The checker itself must fail on a broken page (so the plot tests can fail)."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><div>x</div><script>undefinedFunction();</script></body></html>")
    dom, console = render(bad)
    assert any("undefinedFunction is not defined" in line for line in console)
    assert 'class="main-svg"' not in dom


PLOTS = {
    "tile-map-3d": ("tile-map", ["-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "2", "8", "8",
                                 "--q-tile", "4", "8", "8", "--kv-tile", "2", "8", "8", "--q-index",
                                 "3", "2", "4", "--axes", "1", "2", "--hardware", "none"],
                    ["KV tiles visited", "the Q tile"], "layout 30x48x80, window 18x24x24"),
    "tile-map-1d": ("tile-map", ["-i", "64", "-w", "13", "-s", "4", "--dilation", "2", "-c", "1",
                                 "--q-tile", "8", "--kv-tile", "4", "--q-index", "1", "--group", "1",
                                 "--kv-tiling", "dynamic", "--hardware", "none"],
                    ["Q tile 1:", "dilation group 1"], "layout 64, window 13, stride 4, dilation 2"),
    "stride-heatmap": ("stride-heatmap", ["-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "2",
                                          "1", "1", "--q-tile", "4", "8", "8", "--kv-tile", "2",
                                          "8", "8", "--axes", "1", "2", "--hardware", "none"],
                       ["Tile speedup bound over strides", "Pareto stride"],
                       "tile bound 10.000 (900 \\u002f 90 KV tiles)"),
    "pareto": ("pareto", ["-i", "30", "48", "80", "-w", "18", "24", "24", "--hardware", "b200",
                          "--q-tile", "4", "8", "8", "--kv-tile", "2", "8", "8"],
               ["Pareto set (12 strides)", "GNA (smallest block-sparse stride): 16x8x8"],
               "stride 16x8x8 (size 1024)"),
    "sparsity": ("sparsity", ["-i", "30", "48", "80", "--q-tile", "4", "8", "8", "--kv-tile", "2",
                              "8", "8", "--points", "16", "--hardware", "none"],
                 ["Speedup bound vs sparsity", "GNA (best stride)"], "layout 30x48x80"),
}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every plot kind written by the CLI, then loaded by headless Chromium (in parallel)."""
    from concurrent.futures import ThreadPoolExecutor

    out = tmp_path_factory.mktemp("plots")

    def make(name):
        kind, args, _, _ = PLOTS[name]
        html = out / f"{name}.html"
        res = run_cli("plot", kind, *args, "--out", str(html))
        page = render(html) if res.returncode == 0 else ("", [])
        return name, res, html, page

    with ThreadPoolExecutor(3) as pool:
        return {name: rest for name, *rest in pool.map(make, PLOTS)}


@needs_browser
@pytest.mark.parametrize("name", list(PLOTS))
def test_plot_renders_in_a_browser(rendered, name):
    res, html, (dom, console) = rendered[name]
    _, _, texts, hover = PLOTS[name]
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f"plot: wrote {html}")
    text = html.read_text()
    # plotly.js is inlined (the page works offline): no external script, ~4 MB of it
    assert "<script src=" not in text and len(text) > 3_000_000
    assert hover in text, "the hover texts carry the configuration"
    assert console == [], f"the page logged: {console}"
    assert 'class="main-svg"' in dom, "plotly drew no SVG"
    assert 'class="plot-container plotly"' in dom
    assert re.search(r'class="(scatterlayer|heatmaplayer)', dom)
    for t in texts:
        assert t in dom, t


def test_tile_map_2d_matches_the_token_mask():
    """Key shading = queries of the Q tile attending each key (brute-force N x N mask); tile
    statuses = full / partial / skipped from that mask; totals = the tile plan's."""
    cfg = GNAConfig(input_size=(20, 18), window_size=(7, 5), stride=(3, 2), causal=(False, True),
                    q_tile=(4, 4), kv_tile=(4, 2))
    mask = full_mask(cfg).reshape(20, 18, 20, 18)
    ref = reference_counts(cfg, "static")
    plan = tile_plan(cfg, "static")
    nq1 = plan.axes[1].q_tiles_per_group
    for qi in ((0, 0), (2, 3), (4, 4)):
        views = [axis_view(cfg.input_size[d], cfg.window_size[d], cfg.stride[d], 1,
                           cfg.causal[d], cfg.q_tile[d], cfg.kv_tile[d], "static", qi[d], 0, d)
                 for d in range(2)]
        q0 = slice(qi[0] * 4, min(qi[0] * 4 + 4, 20))
        q1 = slice(qi[1] * 4, min(qi[1] * 4 + 4, 18))
        attended = mask[q0, q1].sum(axis=(0, 1))
        cover = np.outer(views[0].coverage, views[1].coverage)[:20, :18]
        assert (cover == attended).all()
        n_q = mask[q0, q1].shape[0] * mask[q0, q1].shape[1]
        full = partial = 0
        for a0, b0, s0 in views[0].tiles:
            for a1, b1, s1 in views[1].tiles:
                status = SKIPPED if SKIPPED in (s0, s1) else FULL if s0 == s1 == FULL else PARTIAL
                block = attended[a0:min(b0, 20), a1:min(b1, 18)]
                inside = b0 <= 20 and b1 <= 18
                if status == FULL:
                    assert inside and (block == n_q).all()
                    full += 1
                elif status == PARTIAL:
                    partial += 1
                else:
                    assert (block == 0).all()
        k = qi[0] * nq1 + qi[1]
        assert full == ref.full[k] and full + partial == ref.visited[k]
    fig = tile_map_figure(cfg, q_index=(2, 3))
    assert f"{ref.full[2 * nq1 + 3]} full" in fig.layout.title.text


def test_tile_map_3d_slice_and_errors():
    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(2, 8, 8),
                    q_tile=(4, 8, 8), kv_tile=(2, 8, 8))
    fig = tile_map_figure(cfg, q_index=(3, 2, 4), axes=(1, 2), slice_key=(12, 0, 0))
    assert "slice axis 0 = key 12" in fig.layout.title.text
    with pytest.raises(Exception, match=r"q_index \(axis 0\): must be in 0..7"):
        tile_map_figure(cfg, q_index=(8, 0, 0))
    with pytest.raises(Exception, match="axes: give one or two distinct axes"):
        tile_map_figure(cfg, axes=(1, 1))


def test_sparsity_curves_are_consistent_with_the_stride_search():
    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(2, 2, 2), q_tile=(4, 8, 8),
                    kv_tile=(2, 8, 8))
    rows = sparsity_curves(cfg, points=8)
    assert [r["sparsity"] for r in rows] == sorted(r["sparsity"] for r in rows)
    for r in rows[1:4]:
        s = search_strides(cfg.replace(window_size=r["window"]))
        assert r["na"] == s.tile_speedup((1, 1, 1))
        assert r["blocked"] == s.tile_speedup(r["window"])
        assert r["gna"] == s.tile_speedup(s.best_stride()) == s.dense_vmax / s.vmax.min()
        assert r["flop_speedup"] == s.flop_speedup((1, 1, 1))
        assert all(k % t == 0 for k, t in zip(r["window"], (2, 8, 8)))


def test_png_needs_kaleido(tmp_path):
    res = run_cli("plot", "pareto", "-i", "16", "16", "-w", "5", "5", "--q-tile", "4", "4",
                  "--kv-tile", "4", "4", "--hardware", "none", "--out", str(tmp_path / "p.html"),
                  "--png", str(tmp_path / "p.png"))
    if kaleido_available():
        assert res.returncode == 0, res.stderr
        assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert res.returncode == 2
        assert res.stderr.strip() == ("error: png: writing PNG needs the kaleido package "
                                      "(pip install kaleido); nothing was written")
        assert not (tmp_path / "p.html").exists()


@pytest.mark.parametrize("args,message", [
    (["tile-map", "-i", "16", "16", "--q-tile", "4", "4", "--kv-tile", "4", "4"],
     "error: window_size: required for the tile-map plot"),
    (["stride-heatmap", "-i", "64", "-w", "9", "--q-tile", "4", "--kv-tile", "4"],
     "error: axes: the stride heatmap needs a layout with at least two axes"),
    (["tile-map", "-i", "16", "16", "-w", "5", "5", "--q-tile", "4", "4", "--kv-tile", "4", "4",
      "--q-index", "9", "0"], "error: q_index (axis 0): must be in 0..3"),
    (["pareto", "-i", "16", "16", "-w", "5", "5", "--q-tile", "4", "4", "--kv-tile", "4", "4",
      "--out-of-range"], "No such option"),
])
def test_plot_errors(tmp_path, args, message):
    res = run_cli("plot", *args, "--hardware", "none", "--out", str(tmp_path / "x.html"))
    assert res.returncode == 2
    assert message in res.stderr


def test_html_is_written_atomically(tmp_path):
    cfg = GNAConfig(input_size=(16, 16), window_size=(5, 5), q_tile=(4, 4), kv_tile=(4, 4))
    out = tmp_path / "m.html"
    write_figure(tile_map_figure(cfg), out)
    assert out.stat().st_size > 1_000_000          # plotly.js inlined
    assert [p.name for p in tmp_path.iterdir()] == ["m.html"]
    data = json.dumps(tile_map_figure(cfg).to_plotly_json()["data"], default=str)
    assert "layout 16x16, window 5x5" in data      # hover text carries the configuration
