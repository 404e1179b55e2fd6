"""Every plot kind rendered by headless Chromium into a PNG screenshot, kept as a test artifact.

Each figure is written as HTML with plotly.js inlined (no network here or on CI), Chromium takes a
screenshot of the page, and the PNG (decoded here with zlib alone) must show what plotly draws:
many colours, most of the page not blank, and the figure's own marker and line colours. The PNGs
stay in ``$GNASIM_ARTIFACTS/screenshots`` (default ``tests/artifacts/screenshots``, git-ignored)
for people to look at.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("plotly", reason="the plots need the plot extra: pip install 'gnasim[plot]'")

from gnasim import GNAConfig  # noqa: E402
from gnasim.plots import (pareto_figure, sparsity_figure, stride_heatmap_figure,  # noqa: E402
                          tile_map_figure, write_figure)
from gnasim.explore.recommend import search_strides  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("GNASIM_ARTIFACTS") or ROOT / "tests" / "artifacts") / "screenshots"
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")

# plotly's colours of each figure (RGB); a few pixels of each must be on the screenshot
GREEN, ORANGE, CRIMSON = (44, 160, 44), (255, 127, 14), (220, 20, 60)
RED, BLUE, PURPLE = (214, 39, 40), (31, 119, 180), (148, 103, 189)


def _paper(**kw) -> GNAConfig:
    """The GNA paper's 30x48x80 example with its Q 4x8x8 / KV 2x8x8 tiles."""
    return GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), q_tile=(4, 8, 8),
                     kv_tile=(2, 8, 8), **kw)


def _compare():
    from gnasim.calibration.compare import compare, plot_html
    from gnasim.calibration.measurements import load_measurements

    return plot_html(compare(load_measurements(None), None))


def _flat_vs_box():
    from gnasim.plots_flat import cube_windows, curse_figure

    return curse_figure((30, 48, 80), cube_windows((30, 48, 80), [8, 16, 24, 32]),
                        flat_tiles=[(128, 128)], box_tiles=[((4, 8, 8), (2, 8, 8))])


# name -> (figure or HTML text, window size, colours that must show)
PLOTS = {
    "tile-map-3d": (lambda: tile_map_figure(_paper(stride=(2, 8, 8)), q_index=(3, 2, 4),
                                            axes=(1, 2)), (950, 780), [GREEN, ORANGE, CRIMSON]),
    "tile-map-1d": (lambda: tile_map_figure(
        GNAConfig(input_size=64, window_size=13, stride=4, dilation=2, causal=True, q_tile=8,
                  kv_tile=4), "dynamic", q_index=(1,), group=(1,)), (950, 780),
        [GREEN, ORANGE, CRIMSON]),
    "stride-heatmap": (lambda: stride_heatmap_figure(_paper(stride=(2, 1, 1)), axes=(1, 2)),
                       (900, 800), [CRIMSON, (68, 1, 84), (253, 231, 37)]),
    "pareto": (lambda: pareto_figure(search_strides(_paper())), (1000, 700),
               [RED, BLUE, GREEN, PURPLE]),
    "sparsity": (lambda: sparsity_figure(_paper(), points=12), (950, 650), [RED, GREEN, PURPLE]),
    "flat-vs-box": (_flat_vs_box, (1000, 480), [(99, 110, 250), (239, 85, 59)]),
    "compare": (_compare, (1250, 620), [(99, 110, 250), (239, 85, 59)]),
}


def read_png(data: bytes) -> np.ndarray:
    """An 8-bit RGB or RGBA PNG as an (height, width, channels) array (zlib and the PNG filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, head = 8, [], None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", data[pos + 8:pos + 21])
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + n])
        pos += 12 + n
    w, h, depth, colour, _, _, interlace = head
    assert depth == 8 and colour in (2, 6) and interlace == 0, f"unsupported PNG {head}"
    bpp = 3 if colour == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    out = np.zeros((h, stride), dtype=np.int64)
    prior = np.zeros(stride, dtype=np.int64)
    for r in range(h):
        f, at = raw[r * (stride + 1)], r * (stride + 1) + 1
        line = np.frombuffer(raw, np.uint8, stride, at).astype(np.int64)
        if f == 0:
            cur = line
        elif f == 1:                                   # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, bpp), axis=0).reshape(-1) % 256
        elif f == 2:                                   # Up
            cur = (line + prior) % 256
        else:                                          # Average, Paeth: byte by byte
            rec, up, fl = [0] * stride, prior.tolist(), line.tolist()
            for i in range(stride):
                a = rec[i - bpp] if i >= bpp else 0
                b = up[i]
                if f == 3:
                    v = (a + b) >> 1
                else:
                    c = up[i - bpp] if i >= bpp else 0
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    v = a if pa <= pb and pa <= pc else b if pb <= pc else c
                rec[i] = (fl[i] + v) & 255
            cur = np.array(rec, dtype=np.int64)
        out[r] = prior = cur
    return out.reshape(h, w, bpp)


def screenshot(html: Path, png: Path, size: tuple[int, int]) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--virtual-time-budget=5000",
             f"--window-size={size[0]},{size[1]}", f"--screenshot={png}", html.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    """Every plot kind as inline HTML, then screenshots (three Chromiums at a time)."""
    html_dir = tmp_path_factory.mktemp("screenshots")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    pages = {}
    for name, (make, size, _) in PLOTS.items():
        html = html_dir / f"{name}.html"
        fig = make()
        if isinstance(fig, str):
            html.write_text(fig)
        else:
            write_figure(fig, html, plotly_js="inline")
        pages[name] = html

    def shoot(name):
        png = ARTIFACTS / f"{name}.png"
        png.unlink(missing_ok=True)
        return name, screenshot(pages[name], png, PLOTS[name][1]), png

    with ThreadPoolExecutor(3) as pool:
        return {name: (proc, png) for name, proc, png in pool.map(shoot, PLOTS)}


@pytest.mark.parametrize("name", list(PLOTS))
def test_screenshot_shows_the_plot(shots, name):
    proc, png = shots[name]
    assert png.exists(), f"chromium wrote no screenshot: {proc.stderr[-2000:]}"
    img = read_png(png.read_bytes())[:, :, :3]
    w, h = PLOTS[name][1]
    assert img.shape[:2] == (h, w)
    pixels = img.reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 100, "the page is (nearly) one colour"
    drawn = (pixels != 255).any(axis=1).mean()
    assert drawn > 0.03, f"only {drawn:.1%} of the page is not white"
    for colour in PLOTS[name][2]:
        near = (np.abs(pixels - np.array(colour)).max(axis=1) <= 6).sum()
        assert near >= 20, f"{name}: colour {colour} is on {near} pixels only"


def test_png_reader_sees_a_blank_page(tmp_path):
    """The checks above can fail: a blank page's screenshot is one colour."""
    html = tmp_path / "blank.html"
    html.write_text("<html><body style='background:#fff'></body></html>")
    png = tmp_path / "blank.png"
    screenshot(html, png, (320, 200))
    img = read_png(png.read_bytes())
    assert img.shape[:2] == (200, 320)
    assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) == 1
