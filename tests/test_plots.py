"""gnasim plot: the figures' numbers, and the HTML rendered by a real headless browser."""

from __future__ import annotations

import json
import math
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
        res = run_cli("plot", kind, *args, "--out", str(html), "--plotly-js", "inline")
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


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_tile_map_3d_title_counts_the_whole_pass(mode):
    """The title counts every KV tile the Q tile visits on all axes (brute-force mask), the same
    whichever slice is drawn; the legend counts the drawn slice."""
    cfg = GNAConfig(input_size=(10, 12, 14), window_size=(5, 7, 6), stride=(2, 3, 2),
                    causal=(False, True, False), q_tile=(2, 4, 4), kv_tile=(2, 4, 2))
    ref = reference_counts(cfg, mode)
    plan = tile_plan(cfg, mode)
    shape = [a.q_tiles_per_group for a in plan.axes]
    total = math.prod(a.kv_tiles_per_group for a in plan.axes)
    for qi in ((0, 0, 0), (2, 1, 3), (4, 2, 1)):
        k = int(np.ravel_multi_index(qi, shape))
        v, f = ref.visited[k], ref.full[k]
        titles = set()
        for slice_key in (None, (1, 0, 0), (0, 0, 5)):
            fig = tile_map_figure(cfg, mode, q_index=qi, axes=(1, 2), slice_key=slice_key)
            title = fig.layout.title.text.split("<br>")[0]
            titles.add(title)
            assert title == (f"Q tile {'x'.join(map(str, qi))}: {v} KV tiles visited ({f} full, "
                             f"{v - f} partial), {total - v} skipped of {total}")
            shown = sum(int(re.search(r"\((\d+) in this slice\)", t.name).group(1))
                        for t in fig.data if t.name and "in this slice" in t.name)
            assert shown == plan.axes[1].kv_tiles_per_group * plan.axes[2].kv_tiles_per_group \
                or mode == "dynamic"
        assert len(titles) == 1


def test_pareto_points_are_labelled_with_their_strides():
    s = search_strides(GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24),
                                 q_tile=(4, 8, 8), kv_tile=(2, 8, 8)))
    from gnasim.plots import pareto_figure

    fig = pareto_figure(s)
    front = next(t for t in fig.data if t.name.startswith("Pareto set"))
    strides = s.pareto_strides()
    assert "text" in front.mode
    assert list(front.text) == ["x".join(map(str, st)) for st in strides]
    assert list(front.x) == [math.prod(st) for st in strides]
    assert list(front.y) == [s.tile_speedup(st) for st in strides]
    assert "16x8x8" in front.text and "1x1x1" in front.text


def test_stride_sweep_subtitles_name_the_swept_strides():
    """No single stride applies to a stride sweep: the subtitle names the swept ranges (it said
    'stride 1x1x1'), and every hover text names only its own stride."""
    from gnasim.plots import pareto_figure, stride_heatmap_figure

    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(2, 5, 7),
                    q_tile=(4, 8, 8), kv_tile=(2, 8, 8))
    heat = stride_heatmap_figure(cfg, axes=(1, 2))
    sub = heat.layout.title.text.split("<sup>")[1]
    assert "stride 2x[1..24]x[1..24]," in sub and "5x7" not in sub and "stride 1x1x1" not in sub
    for row in heat.data[0].text:
        for cell in row:
            assert cell.count("stride") == 1 and cell.startswith("stride 2x")
    par = pareto_figure(search_strides(cfg))
    sub = par.layout.title.text.split("<sup>")[1]
    assert "stride [1..18]x[1..24]x[1..24]," in sub and "2x5x7" not in sub
    for t in par.data:
        for h in t.hovertext or ():
            assert h.count("stride") <= 1 + h.count("stride(s)")


def test_plotly_js_cdn_is_the_default_and_inline_embeds(tmp_path):
    args = ["plot", "tile-map", "-i", "16", "16", "-w", "5", "5", "--q-tile", "4", "4",
            "--kv-tile", "4", "4", "--hardware", "none"]
    res = run_cli(*args, "--out", str(tmp_path / "c.html"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.rstrip().endswith("static KV tiling, plotly.js from its CDN)")
    cdn = (tmp_path / "c.html").read_text()
    assert re.search(r'<script [^>]*src="https://cdn\.plot\.ly/plotly-[0-9.]+\.min\.js"', cdn)
    assert len(cdn) < 200_000
    res = run_cli(*args, "--out", str(tmp_path / "i.html"), "--plotly-js", "inline")
    inline = (tmp_path / "i.html").read_text()
    assert res.returncode == 0 and "<script src=" not in inline and len(inline) > 3_000_000
    assert res.stdout.rstrip().endswith("static KV tiling, plotly.js inline)")
    res = run_cli(*args, "--out", str(tmp_path / "x.html"), "--plotly-js", "web")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "--plotly-js" in res.stderr and not (tmp_path / "x.html").exists()
    with pytest.raises(Exception, match=r"plotly_js: 'web' is not one of \['inline', 'cdn'\]"):
        write_figure(tile_map_figure(GNAConfig(input_size=(16,), window_size=(5,), q_tile=(4,),
                                               kv_tile=(4,))), tmp_path / "y.html", plotly_js="web")


@pytest.mark.parametrize("args", [
    ["plot", "pareto", "-i", "16", "16", "-w", "5", "5", "--q-tile", "4", "4", "--kv-tile", "4",
     "4", "--hardware", "none", "--out", "{tmp}/p.html"],
    ["compare", "--plot", "{tmp}/c.html"],
])
def test_without_plotly_the_command_names_the_extra(tmp_path, args):
    """plotly comes with the plot extra: without it, one line naming the pip command, exit 2."""
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code = ("import sys; sys.modules['plotly'] = None; sys.argv = ['gnasim'] + sys.argv[1:]; "
            "from gnasim.console import main; main()")
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    what = "plot" if args[0] == "plot" else "compare --plot"
    assert res.returncode == 2
    assert res.stderr == (f"error: {what}: needs plotly, which the core install leaves out: "
                          "pip install 'gnasim[plot]'\n")
    assert list(tmp_path.iterdir()) == []


def test_curse_html_plotly_js(tmp_path):
    from gnasim.plots_flat import write_curse_html

    kw = dict(flat_tiles=[(64, 64)], box_tiles=[((2, 4, 8), (2, 4, 8))])
    cdn = write_curse_html(tmp_path / "c.html", (8, 16, 16), [(4, 4, 4)], plotly_js="cdn", **kw)
    inline = write_curse_html(tmp_path / "i.html", (8, 16, 16), [(4, 4, 4)], **kw)
    assert 'src="https://cdn.plot.ly/plotly-' in cdn.read_text() and cdn.stat().st_size < 100_000
    assert '<script src="http' not in inline.read_text() and inline.stat().st_size > 3_000_000
    with pytest.raises(Exception, match=r"plotly_js: 'x' is not one of \['inline', 'cdn'\]"):
        write_curse_html(tmp_path / "x.html", (8, 16, 16), [(4, 4, 4)], plotly_js="x", **kw)
