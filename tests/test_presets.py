"""Presets: every one is a valid problem with a public source; --preset fills the flags, explicit
flags override it; `gnasim presets` lists them in 80 columns and as JSON."""

from __future__ import annotations

import json
import math
import re

import pytest
from typer.testing import CliRunner

from gnasim.cli import app, join_multi_values
from gnasim.config import format_tile
from gnasim.errors import ConfigError
from gnasim.presets import FIELDS, apply_preset, get_preset, load_presets, parse_presets

PRESETS = load_presets()
SOURCE = re.compile(r"(@[0-9a-f]{7,40}\b|arXiv \d{4}\.\d{4,5})")


def run(*args: str, columns: int = 80):
    return CliRunner().invoke(app, join_multi_values(list(args)), env={"COLUMNS": str(columns)})


def test_every_preset_is_valid_and_cites_a_repository_commit_or_paper():
    assert len(PRESETS) >= 8
    names = {p.name for p in PRESETS}
    assert {"hunyuanvideo-720p", "flux-4k"} <= names
    assert any(n.startswith("cosmos-predict2") for n in names)
    assert any(n.startswith("wan") for n in names) and any(n.startswith("ltx") for n in names)
    for p in PRESETS:
        cfg = p.config()            # NATTEN's rules: K*D <= L, S <= K, ...
        assert cfg.rank == len(p.input_size) and p.heads >= 1 and p.head_dim % 8 == 0
        assert SOURCE.search(p.source), (p.name, p.source)


def test_published_presets_match_natten_docs():
    h = get_preset("hunyuanvideo-720p")
    assert (h.input_size, h.window_size, h.stride, h.heads, h.head_dim) == (
        (30, 48, 80), (18, 24, 24), (16, 8, 8), 24, 128)
    f = get_preset("FLUX-4K")       # case-insensitive
    assert (f.input_size, f.window_size, f.stride) == ((256, 256), (80, 80), (16, 16))
    # the docs' sparsities: ~90% for both
    for p in (h, f):
        assert 1 - math.prod(p.window_size) / math.prod(p.input_size) == pytest.approx(0.9, abs=0.011)
    assert not h.window_suggested and not f.window_suggested


def test_apply_preset_fills_only_unset_values():
    filled = apply_preset("flux-4k", input_size=None, window_size="40x40", stride=None,
                          dilation=None, heads=None, head_dim=64)
    assert filled == {"input_size": (256, 256), "window_size": "40x40", "stride": (16, 16),
                      "dilation": (1, 1), "heads": 24, "head_dim": 64}
    assert apply_preset(None, heads=None, stride="2") == {"heads": None, "stride": "2"}


@pytest.mark.parametrize("text,words", [
    ('[x]\nmodel = "m"\nsource = "s"\ninput_size = [8]\nwindow_size = [16]\nstride = [1]\n'
     'dilation = [1]\nheads = 1\nhead_dim = 64\n', "window_size"),
    ('[x]\nmodel = "m"\ninput_size = [8]\n', "missing keys"),
    ('[x]\nmodel = "m"\nsource = ""\ninput_size = [8]\nwindow_size = [4]\nstride = [1]\n'
     'dilation = [1]\nheads = 1\nhead_dim = 64\n', "source"),
    ('[x]\nwindoww = 3\n', "unknown keys"),
])
def test_bad_preset_files_are_one_line_errors(text, words):
    with pytest.raises(ConfigError) as err:
        parse_presets(text)
    assert words in str(err.value) and "\n" not in str(err.value)


def test_presets_command_table_fits_80_columns_and_json_lists_all():
    res = run("presets")
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for p in PRESETS:
        assert any(line.lstrip().startswith(p.name + " ") for line in lines), p.name
    assert "github.com/SHI-Labs/NATTEN@8c8729f" in res.output
    res = run("presets", "--format", "json")
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == [p.name for p in PRESETS]
    assert set(rows[0]) >= {"name", "input_size", "window_size", "stride", "dilation", "heads",
                            "head_dim", "source", "window_suggested"}
    assert rows[0]["input_size"] == format_tile(PRESETS[0].input_size)


def test_preset_fills_predict_and_flags_override_it():
    res = run("predict", "--preset", "hunyuanvideo-720p", "--hardware", "h100", "--format", "json")
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert (rec["input_size"], rec["window_size"], rec["stride"], rec["heads"], rec["head_dim"]) \
        == ("30x48x80", "18x24x24", "16x8x8", 24, 128)
    same = run("predict", "-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "16", "8", "8",
               "-n", "24", "-d", "128", "--hardware", "h100", "--format", "json")
    assert json.loads(same.stdout) == rec
    res = run("predict", "--preset", "hunyuanvideo-720p", "-s", "1", "-d", "64", "-n", "2",
              "--format", "json")
    rec = json.loads(res.stdout)
    assert (rec["stride"], rec["head_dim"], rec["heads"], rec["window_size"]) == \
        ("1x1x1", 64, 2, "18x24x24")


def test_preset_on_sweep_recommend_and_tiles(tmp_path):
    out = tmp_path / "s.csv"
    res = run("sweep", "--preset", "flux-4k", "-s", "1", "16", "--hardware", "none", "--q-tile",
              "16", "8", "--kv-tile", "16", "8", "--out", str(out), "--format", "json",
              "--no-progress")
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "256x256" in text and "80x80" in text and "1x16" in text and ",24," in text
    res = run("recommend", "--preset", "flux-4k", "--objective", "bound", "--format", "json")
    assert res.exit_code == 0, res.output
    assert {r["window_size"] for r in json.loads(res.stdout)} == {"80x80"}
    res = run("tiles", "--preset", "flux-4k", "--format", "json")
    assert res.exit_code == 0, res.output


def test_unknown_preset_is_one_line_listing_names_exit_2():
    for cmd in (["predict"], ["recommend"], ["tiles"]):
        res = run(*cmd, "--preset", "sd3")
        assert res.exit_code == 2
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "unknown preset 'sd3'" in lines[0]
        assert all(p.name in lines[0] for p in PRESETS)


def test_fields_cover_what_a_preset_fills():
    assert set(FIELDS) == set(PRESETS[0].values())
