"""CLI conventions: one-line usage errors (exit 2, no traceback), -h everywhere, --version,
``python -m gnasim``, help without type noise, 80-column tables, one multi-value grammar."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from gnasim.cli import MULTI_VALUE_FLAGS, app, join_multi_values

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
COMMANDS = ["predict", "tiles", "profiles", "sweep", "recommend", "plot", "calibrate", "compare",
            "validate", "validate run", "validate suites"]


def run(line: str):
    return runner.invoke(app, join_multi_values(shlex.split(line)), env={"COLUMNS": "80"})


USAGE_ERRORS = [
    ("predict -w 4", "Missing option '-i'"),
    ("predict -i 30 48 80 -w 18 24 24 --format yaml", "'yaml' is not one of"),
    ("predict -i 30,48,80 -w 4", "a comma lists alternatives"),
    ("predict -i 10 -w 4 --bogus", "No such option: --bogus"),
    ("predict -i 10 -w 4 --schedule fast", "'fast' is not one of 'non', 'coop', 'pp'"),
    ("predict -i 10 -w 4 -b two", "-b"),
    ("predict -i 10 -w 4 --full-attention-steps 3", "give --attention-fraction too"),
    ("predict -i 10 -w 4 --total-steps 50", "give --attention-fraction too"),
    ("predict -i 10 -w 4 --q-tile 4", "give the Q and the KV tile together"),
    ("predict -i 10 -w 4 --backward-kv-tile 4", "give the Q and the KV tile together"),
    ("predict -i 10 -w 4 --dry-run --optimize", "cannot be run together"),
    ("predict -i 10 -w 4 --backend blackwell-fna", "not a kernel of profile 'h100'"),
    ("predict -i 10 -w 4 --fmha-backend blackwell-fmha", "does not run on h100"),
    ("predict -i 10 -w 4 --fmha-backend sdpa", "fmha_backend: 'sdpa' is not one of"),
    ("predict -i 10 -w 4 --add-kv -1", "add_kv: must be >= 0"),
    ("predict -i 10 -w 4 --dry-run --max-configs -1", "max_configs: must be >= 0"),
    ("predict -i 10 -w 4 --hardware none --backend cudnn", "needs a hardware profile"),
    ("predict -i 10 -w 4 --hardware none --optimize --q-tile 4 --kv-tile 4", "needs a hardware"),
    ("predict -i 4 4 4 4 -w 2", "NATTEN runs 1, 2 or 3 axes, got 4"),
    ("tiles -i 0", "input_size (axis 0): must be >= 1, got 0"),
    ("tiles -i -4", "input_size (axis 0): must be >= 1, got -4"),
    ("tiles -i 10 -d 0", "head_dim: must be >= 1, got 0"),
    ("tiles -i 10 -d -64", "head_dim: must be >= 1"),
    ("tiles -i 4 4 4 4", "NATTEN runs 1, 2 or 3 axes, got 4"),
    ("tiles -i 10 --dtype int3", "dtype: 'int3' is not one of"),
    ("tiles -i 10 -w 12", "window_size (axis 0): 12 is larger than input_size 10"),
    ("tiles -i 10 --hardware z100", "unknown profile 'z100'"),
    ("sweep -i 10 -w 4", "out: give an output file"),
    ("recommend -i 16 -w 4 --full-attention-steps 2", "give --attention-fraction too"),
    ("recommend -i 16,32 -w 4", "a comma lists alternatives"),
    ("plot cube -i 16 -w 4 --out x.html", "'cube' is not one of"),
    ("compare --bogus", "No such option"),
    ("validate run", "Missing option '--out'"),
    ("validate run --suite nope --out x.csv", "unknown suite"),
]


@pytest.mark.parametrize("line,words", USAGE_ERRORS)
def test_usage_errors_are_one_line_and_exit_2(line, words):
    res = run(line)
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error: ") and words in lines[0]
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_usage_error_through_the_console_script():
    for args in (["predict"], ["predict", "-i", "8", "--format", "yaml"], ["tiles", "-i", "0"]):
        proc = subprocess.run([sys.executable, "-m", "gnasim", *args], capture_output=True,
                              text=True, cwd=ROOT)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ")


def test_version_and_python_dash_m():
    from gnasim import __version__

    res = run("--version")
    assert res.exit_code == 0 and res.stdout.strip() == f"gnasim {__version__}"
    proc = subprocess.run([sys.executable, "-m", "gnasim", "predict", "-i", "32768", "-w", "2048",
                           "-s", "256", "-d", "128", "--format", "json"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["fully_block_sparse"] is True


@pytest.mark.parametrize("command", COMMANDS)
def test_dash_h_everywhere_without_type_noise(command):
    short, long = run(f"{command} -h"), run(f"{command} --help")
    assert short.exit_code == 0 and short.stdout == long.stdout
    assert short.stdout.startswith("Usage: ")
    assert not re.search(r"<(bool|str|int|float|list\[str\])>", short.stdout)
    assert max(len(line) for line in short.stdout.splitlines()) <= 80


def test_completion_is_offered_and_completes():
    assert "--install-completion" in run("-h").stdout
    proc = subprocess.run([sys.executable, "-m", "gnasim"], capture_output=True, text=True,
                          cwd=ROOT, env={**__import__("os").environ,
                                         "_GNASIM_COMPLETE": "complete_bash",
                                         "COMP_WORDS": "gnasim predict --back", "COMP_CWORD": "2"})
    assert proc.returncode == 0 and "--backprop" in proc.stdout.split()


def test_multi_value_flags_come_from_the_declarations():
    flags: set[str] = set()

    def walk(cmd) -> None:
        for p in cmd.params:
            if getattr(p, "metavar", None) in ("AXES", "GRID", "DIMS"):
                flags.update(o for o in p.opts if o.startswith("-"))
        for sub in (getattr(cmd, "commands", None) or {}).values():
            walk(sub)

    walk(typer.main.get_command(app))
    assert {"-i", "--window-size", "--q-tile", "--backward-q-tile", "--q-index"} <= flags
    assert flags <= MULTI_VALUE_FLAGS
    assert {"--tiles", "-d", "--attention-fraction", "--hardware"} <= MULTI_VALUE_FLAGS
    assert "--format" not in MULTI_VALUE_FLAGS and "--out" not in MULTI_VALUE_FLAGS


def test_one_grammar_for_axes():
    spaced = json.loads(run("predict -i 30 48 80 -w 18 24 24 --format json").stdout)
    crossed = json.loads(run("predict -i 30x48x80 -w 18x24x24 --format json").stdout)
    assert spaced == crossed and spaced["input_size"] == "30x48x80"


def test_sweep_reads_commas_as_alternatives(tmp_path):
    out = tmp_path / "s.csv"
    res = run(f"sweep -i 30,48 -w 8 --q-tile 4 --kv-tile 4 --hardware none --bounds-only "
              f"--out {out} --format json --no-progress")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rows"] == 2      # two 1-D problems, as predict refuses


@pytest.mark.parametrize("line", [
    "predict -i 30 48 80 -w 18 24 24 -s 16 8 8 -n 24 -d 128 --backprop --histogram --add-kv 8",
    "predict -i 30 48 80 -w 18 24 24 -s 16 8 8 --dry-run --backprop --max-configs 0",
    "predict -i 30 48 80 -w 18 24 24 -s 16 8 8 --optimize --backprop",
    "tiles -i 30 48 80 --hardware a100",
    "profiles",
])
def test_tables_fit_80_columns(line):
    res = run(line)
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.stdout.splitlines()) <= 80


def test_table_prints_exact_flop_totals():
    line = "predict -i 30 48 80 -w 18 24 24 -s 16 8 8 -n 24 -d 128"
    d = json.loads(run(f"{line} --format json").stdout)
    table = run(line).stdout
    for key in ("flops_dense", "flops_useful", "flops_computed"):
        assert f"{d[key]:,}" in table
    assert "TFLOP" not in table and "PFLOP" not in table


def test_tiles_takes_window_and_stride():
    rows = json.loads(run("tiles -i 30 48 80 -w 18 24 24 -s 16 8 8 -d 128 --backend hopper-fna "
                          "--format json").stdout)
    bounds = {(r["q_tile"], r["kv_tile"]): r["tile_speedup"] for r in rows}
    assert bounds[("2x8x8", "2x8x8")] == pytest.approx(115200 / 10368)
    assert all(r["fully_block_sparse"] == (r["q_tile"] == "2x8x8") for r in rows)
    dense = json.loads(run("tiles -i 30 48 80 -d 128 --format json").stdout)
    assert all(r["tile_speedup"] == 1.0 for r in dense)


def test_sweep_flag_labels_come_from_the_declarations():
    from gnasim.cli.explore import flag_labels, sweep

    labels = flag_labels(sweep)
    assert labels["head_dim"] == "--dim" and labels["batch"] == "--batch-size"
    assert labels["kernel"] == "--kernel" and labels["input_size"] == "--input-size"
    assert not {"out", "spec", "jobs", "fmt"} & labels.keys()
    res = run("sweep -i 30 -w 8 -d 0 --out x.csv")
    assert res.exit_code == 2 and res.stderr.startswith("error: --dim: must be >= 1")
