"""The bad-input corpus: every command and file kind, each case a whole ``python -m gnasim`` run.

Every case must exit 2 with exactly one line on stderr that names the parameter or file (and the
rule), print no traceback, and leave no file behind. The cases run concurrently in a few processes
(one fixture), then each is checked on its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

P = ["predict", "-i", "30", "48", "80", "-w", "18", "24", "24"]   # a valid 3-D problem
P1 = ["predict", "-i", "1024", "-w", "64"]                          # a valid 1-D problem
SW = ["sweep", "-i", "64", "-w", "8", "-s", "all", "--no-progress"]
REC = ["recommend", "-i", "64", "64", "-w", "8", "8"]
TILES = ["tiles", "-i", "30", "48", "80"]
GOOD_PROFILE = (Path(__file__).parents[1] / "hardware_profiles" / "h100.toml").read_text()
MEASURED_HEADER = ("source,gpu,implementation,batch,heads,head_dim,dtype,layout,window,stride,"
                   "dilation,causal,q_tile,kv_tile,attention_ms,permute_ms,note\n")
MEASURED_ROW = ("me,H100-SXM,natten-hopper-fna,1,1,128,fp16,32768,2048,1,1,0,128,128,0.09,0,\n")


def _profile(**changes: str) -> str:
    """The H100 profile with some top-level keys replaced (raw TOML values)."""
    lines = GOOD_PROFILE.splitlines()
    for key, value in changes.items():
        for i, line in enumerate(lines):
            if line.split("=")[0].strip() == key:
                lines[i] = f"{key} = {value}"
                break
        else:
            raise KeyError(key)
    return "\n".join(lines) + "\n"


# Each case: (id, argv, files to create {name: text or bytes}, words the error line must contain)
CASES: list[tuple[str, list[str], dict, list[str]]] = []


def case(cid: str, argv: list[str], words: list[str], files: dict | None = None) -> None:
    CASES.append((cid, argv, files or {}, words))


# -- predict: the problem ------------------------------------------------------------------------
for v, w in [("0", "input_size"), ("-4", "input_size"), ("abc", "input_size"), ("1.5", "input_size"),
             ("30x0x80", "input_size"), (str(2 ** 64), "input_size"), ("30x48", "window_size")]:
    case(f"predict-i-{v}", ["predict", "-i", v, "-w", "18", "24", "24"], [w])
for v, w in [("1", "window_size"), ("0", "window_size"), ("-3", "window_size"),
             ("31 24 24", "window_size"), ("x", "window_size"), ("18 24", "window_size")]:
    case(f"predict-w-{v}", ["predict", "-i", "30", "48", "80", "-w", *v.split()], [w])
for v in ["0", "-1", "19 8 8", "a", "1 2"]:
    case(f"predict-s-{v}", P + ["-s", *v.split()], ["stride"])
for v in ["0", "2 2 2", "-1"]:
    case(f"predict-dilation-{v}", P + ["--dilation", *v.split()], ["dilation"])
for v in ["2", "1 0", "yes no maybe"]:
    case(f"predict-causal-{v}", P + ["-c", *v.split()], ["causal"])
for flag, v, w in [("--q-tile", "0 8 8", "q_tile"), ("--q-tile", "4 8", "q_tile"),
                   ("--kv-tile", "-2 8 8", "kv_tile"), ("--kv-tile", "a b c", "kv_tile"),
                   ("-b", "0", "batch"), ("-b", "-1", "batch"), ("-n", "0", "heads"),
                   ("-n", "6", "heads"), ("-d", "0", "head_dim"), ("-d", "-64", "head_dim"),
                   ("--dim-value", "0", "head_dim_v"), ("--dtype", "int8", "dtype"),
                   ("--dtype", "fp64", "dtype"), ("--format", "yaml", "format"),
                   ("--kv-tiling", "sideways", "kv_tiling"), ("--kernel", "nope", "kernel"),
                   ("--hardware", "nonexistent-gpu", "hardware"),
                   ("--attention-fraction", "1.5", "attention_fraction"),
                   ("--attention-fraction", "-0.1", "attention_fraction"),
                   ("--attention-fraction", "nan", "attention_fraction"),
                   ("--full-attention-steps", "5", "attention_fraction"),
                   ("--bwd-q-tile", "4 8", "bwd")]:
    argv = P + [flag, *v.split()]
    if flag == "-n" and v == "6":
        argv += ["--heads-kv", "4"]
        w = "heads_kv"
    if flag == "--bwd-q-tile":
        argv += ["--backward", "--bwd-kv-tile", "2", "8", "8"]
    case(f"predict{flag}-{v}", argv, [w])
case("predict-total-steps", P + ["--attention-fraction", "0.5", "--full-attention-steps", "60",
                                 "--total-steps", "50"], ["steps"])
case("predict-unknown-flag", P + ["--bogus"], ["bogus"])
case("predict-w-no-value", ["predict", "-i", "30", "48", "80", "-w"], ["-w"])
case("predict-missing-i", ["predict", "-w", "8"], ["input"])
case("predict-20000-axes", ["predict", "-i", "x".join(["2"] * 20000), "-w", "2"], ["input_size"])
case("predict-int64-counts", ["predict", "-i", str(2 ** 64), "-w", "2", "--q-tile", "100",
                              "--kv-tile", "128", "--hardware", "none"], ["input_size"])
case("predict-tile-span", ["predict", "-i", str(2 ** 40), "-w", "2", "--dilation", str(2 ** 30),
                           "--q-tile", str(2 ** 33), "--kv-tile", "8", "--hardware", "none"],
     ["q_tile"])
case("predict-no-tiles-no-profile", ["predict", "-i", "64", "-w", "8", "--hardware", "none"],
     ["q_tile"])

# -- predict: the hardware profile file -----------------------------------------------------------
for cid, text, words in [
    ("nan-tensor", _profile().replace("fp16 = ", "fp16 = nan # ", 1), ["tensor_tflops"]),
    ("inf-clock", _profile(clock_ghz="inf"), ["clock_ghz"]),
    ("tiny-clock", _profile(clock_ghz="1e-308"), ["clock_ghz"]),
    ("nan-bandwidth", _profile(memory_bandwidth_gbs="nan"), ["memory_bandwidth_gbs"]),
    ("huge-sm", _profile(sm_count=str(2 ** 63)), ["sm_count"]),
    ("zero-sm", _profile(sm_count="0"), ["sm_count"]),
    ("long-name", _profile(name='"' + "x" * 100_000 + '"'), ["name"]),
    ("bad-toml", "name = [\n", ["bad.toml"]),
    ("empty", "", ["bad.toml"]),
    ("not-a-table", "kernels = 3\n", ["bad.toml"]),
    ("unknown-default-kernel", _profile(default_kernel='"nope"'), ["default_kernel"]),
]:
    case(f"profile-{cid}", P + ["--hardware", "bad.toml"], words, {"bad.toml": text})
case("profile-non-utf8", P + ["--hardware", "bad.toml"], ["bad.toml"],
     {"bad.toml": b"name = \"\xff\xfe\"\n"})
case("profile-directory", P + ["--hardware", "adir.toml"], ["adir.toml"], {"adir.toml/x": ""})
case("profile-missing-file", P + ["--hardware", "missing.toml"], ["missing.toml"])

# -- tiles --------------------------------------------------------------------------------------
for cid, argv, words in [
    ("layout-0", ["tiles", "-i", "0"], ["input_size"]),
    ("layout-neg", ["tiles", "-i", "-4"], ["input_size"]),
    ("dim-0", TILES + ["-d", "0"], ["dim"]),
    ("dim-neg", TILES + ["-d", "-8"], ["dim"]),
    ("rank-4", ["tiles", "-i", "4", "4", "4", "4"], ["input", "axes"]),
    ("dtype", TILES + ["--dtype", "int4"], ["dtype"]),
    ("hardware", TILES + ["--hardware", "nope"], ["hardware"]),
    ("kernel", TILES + ["--kernel", "nope"], ["kernel"]),
    ("format", TILES + ["--format", "xml"], ["format"]),
]:
    case(f"tiles-{cid}", argv, words)

# -- sweep --------------------------------------------------------------------------------------
for cid, argv, words, files in [
    ("out-dir", SW + ["-o", "adir"], ["adir"], {"adir/x": ""}),
    ("out-missing-dir", SW + ["-o", "nowhere/x.csv"], ["nowhere"], None),
    ("out-ext", SW + ["-o", "x.txt"], ["x.txt"], None),
    ("no-out", SW, ["out"], None),
    ("w-range", ["sweep", "-i", "64", "-w", "a:b", "-o", "x.csv"], ["window_size"], None),
    ("w-reversed", ["sweep", "-i", "64", "-w", "9:3", "-o", "x.csv"], ["window_size"], None),
    ("w-step0", ["sweep", "-i", "64", "-w", "2:9:0", "-o", "x.csv"], ["window_size"], None),
    ("s-zero", ["sweep", "-i", "64", "-w", "8", "-s", "0", "-o", "x.csv"], ["stride"], None),
    ("i-zero", ["sweep", "-i", "0", "-w", "8", "-o", "x.csv"], ["input_size"], None),
    ("i-huge-range", ["sweep", "-i", "1:1000000000", "-w", "2", "-o", "x.csv"], ["input_size"], None),
    ("d-zero", SW + ["-d", "0", "-o", "x.csv"], ["dim"], None),
    ("hardware", SW + ["--hardware", "nope", "-o", "x.csv"], ["hardware"], None),
    ("tiles", SW + ["--tiles", "4x4/", "-o", "x.csv"], ["tiles"], None),
    ("chunk", SW + ["--chunk-size", "0", "-o", "x.csv"], ["chunk"], None),
    ("jobs", SW + ["-j", "0", "-o", "x.csv"], ["jobs"], None),
    ("fraction", SW + ["--attention-fraction", "2", "-o", "x.csv"], ["attention_fraction"], None),
    ("dtype", SW + ["--dtype", "int8", "-o", "x.csv"], ["dtype"], None),
    ("spec-missing", ["sweep", "--spec", "nope.toml", "-o", "x.csv"], ["nope.toml"], None),
    ("spec-ext", ["sweep", "--spec", "s.json", "-o", "x.csv"], ["s.json"], {"s.json": "{}"}),
    ("spec-bad-toml", ["sweep", "--spec", "s.toml", "-o", "x.csv"], ["s.toml"], {"s.toml": "a = [\n"}),
    ("spec-bad-yaml", ["sweep", "--spec", "s.yaml", "-o", "x.csv"], ["s.yaml"],
     {"s.yaml": "a: [1, 2\n"}),
    ("spec-non-utf8", ["sweep", "--spec", "s.toml", "-o", "x.csv"], ["s.toml"],
     {"s.toml": b"input_size = \"\xff\"\n"}),
    ("spec-unknown-key", ["sweep", "--spec", "s.toml", "-o", "x.csv"], ["colour"],
     {"s.toml": 'input_size = "64"\nwindow_size = "8"\ncolour = "red"\n'}),
    ("spec-batch-float", ["sweep", "--spec", "s.yaml", "-o", "x.csv"], ["batch"],
     {"s.yaml": "input_size: '64'\nwindow_size: '8'\nbatch: 1.5\n"}),
    ("spec-list-top", ["sweep", "--spec", "s.yaml", "-o", "x.csv"], ["s.yaml"],
     {"s.yaml": "- 1\n- 2\n"}),
    ("spec-huge-range", ["sweep", "--spec", "s.toml", "-o", "x.csv"], ["input_size"],
     {"s.toml": 'input_size = "1:1000000000"\nwindow_size = "2"\n'}),
    ("spec-heads-neg", ["sweep", "--spec", "s.toml", "-o", "x.csv"], ["heads"],
     {"s.toml": 'input_size = "64"\nwindow_size = "8"\nheads = -2\n'}),
]:
    case(f"sweep-{cid}", argv, words, files)

# -- recommend ----------------------------------------------------------------------------------
for cid, argv, words in [
    ("w-too-big", ["recommend", "-i", "64", "64", "-w", "80", "80"], ["window_size"]),
    ("i-zero", ["recommend", "-i", "0", "-w", "8"], ["input_size"]),
    ("no-window", ["recommend", "-i", "64", "64"], ["window"]),
    ("sparsity-high", ["recommend", "-i", "64", "64", "--target-sparsity", "1.5"], ["sparsity"]),
    ("sparsity-neg", ["recommend", "-i", "64", "64", "--target-sparsity", "-1"], ["sparsity"]),
    ("windows-0", ["recommend", "-i", "64", "64", "--target-sparsity", "0.9", "--windows", "0"],
     ["windows"]),
    ("hardware", REC + ["--hardware", "nope"], ["hardware"]),
    ("kernel", REC + ["--kernel", "nope"], ["kernel"]),
    ("dim", REC + ["-d", "0"], ["dim"]),
    ("fraction", REC + ["--attention-fraction", "3"], ["attention_fraction"]),
    ("dilation", REC + ["--dilation", "9"], ["dilation"]),
    ("q-tile", REC + ["--q-tile", "0", "8"], ["q_tile"]),
    ("format", REC + ["--format", "csv"], ["format"]),
]:
    case(f"recommend-{cid}", argv, words)

# -- plot ---------------------------------------------------------------------------------------
TM = ["plot", "tile-map", "-i", "64", "64", "-w", "8", "8"]
for cid, argv, words, files in [
    ("kind", ["plot", "pie", "-i", "64", "-w", "8", "-o", "p.html"], ["pie"], None),
    ("out-dir", TM + ["-o", "adir"], ["adir"], {"adir/x": ""}),
    ("out-missing-dir", TM + ["-o", "nowhere/p.html"], ["nowhere"], None),
    ("q-index", TM + ["--q-index", "99", "0", "-o", "p.html"], ["q_index"], None),
    ("axes", TM + ["--axes", "0", "5", "-o", "p.html"], ["axes"], None),
    ("group", TM + ["--group", "3", "0", "-o", "p.html"], ["group"], None),
    ("w-too-big", ["plot", "tile-map", "-i", "64", "-w", "80", "-o", "p.html"], ["window_size"], None),
    ("sparsity-huge", ["plot", "sparsity", "-i", "4611686018427387904", "-o", "p.html"],
     ["input_size"], None),
    ("points-0", ["plot", "sparsity", "-i", "64", "64", "--points", "0", "-o", "p.html"],
     ["points"], None),
    ("hardware", TM + ["--hardware", "nope", "-o", "p.html"], ["hardware"], None),
    ("heatmap-w", ["plot", "stride-heatmap", "-i", "64", "64", "-w", "1", "1", "-o", "p.html"],
     ["window_size"], None),
]:
    case(f"plot-{cid}", argv, words, files)

# -- compare and calibrate: measurement CSV files -------------------------------------------------
BAD_CSVS = {
    "missing-column": MEASURED_HEADER.replace("attention_ms,", "") + MEASURED_ROW,
    "bad-number": MEASURED_HEADER + MEASURED_ROW.replace("0.09", "fast"),
    "negative-time": MEASURED_HEADER + MEASURED_ROW.replace("0.09", "-1"),
    "bad-layout": MEASURED_HEADER + MEASURED_ROW.replace("32768,2048", "0,2048"),
    "huge-field": MEASURED_HEADER + MEASURED_ROW.replace("me,", "m" * 200_000 + ",", 1),
    "line-separator": MEASURED_HEADER + MEASURED_ROW.replace("0.09", "0.\u202809"),
    "empty": "",
    "header-only": MEASURED_HEADER,
    "bad-dtype": MEASURED_HEADER + MEASURED_ROW.replace("fp16", "int3"),
    "bad-causal": MEASURED_HEADER + MEASURED_ROW.replace(",0,128,128", ",7,128,128"),
}
for cid, text in BAD_CSVS.items():
    case(f"compare-csv-{cid}", ["compare", "m.csv"], ["m.csv"], {"m.csv": text})
case("compare-csv-non-utf8", ["compare", "m.csv"], ["m.csv"],
     {"m.csv": MEASURED_HEADER.encode() + b"\xff\xfe,,\n"})
case("compare-missing", ["compare", "nope.csv"], ["nope.csv"])
case("compare-directory", ["compare", "adir"], ["adir"], {"adir/x": ""})
case("compare-out-dir", ["compare", "m.csv", "--out", "adir"], ["adir"],
     {"m.csv": MEASURED_HEADER + MEASURED_ROW, "adir/x": ""})
case("compare-out-missing-dir", ["compare", "m.csv", "--out", "nowhere/c.csv"], ["nowhere"],
     {"m.csv": MEASURED_HEADER + MEASURED_ROW})
case("compare-plot-dir", ["compare", "m.csv", "--plot", "adir"], ["adir"],
     {"m.csv": MEASURED_HEADER + MEASURED_ROW, "adir/x": ""})
case("compare-hardware", ["compare", "m.csv", "-H", "nope"], ["nope"],
     {"m.csv": MEASURED_HEADER + MEASURED_ROW})
case("compare-prior-neg", ["compare", "m.csv", "--prior-weight", "-1"], ["prior"],
     {"m.csv": MEASURED_HEADER + MEASURED_ROW})
for v in ["inf", "nan"]:
    case(f"calibrate-prior-{v}", ["calibrate", "--prior-weight", v, "--dry-run"], ["prior"])
    case(f"compare-prior-{v}", ["compare", "m.csv", "--prior-weight", v, "--loo"], ["prior"],
         {"m.csv": MEASURED_HEADER + MEASURED_ROW})
case("calibrate-out-dir-missing", ["calibrate", "-H", "h100", "--out", "nowhere/x.toml"],
     ["nowhere"])
case("calibrate-out-exists", ["calibrate", "-H", "h100", "--out", "x.toml"], ["x.toml"],
     {"x.toml": "keep me\n"})
case("calibrate-hardware", ["calibrate", "-H", "nope", "--dry-run"], ["nope"])
case("calibrate-nan-profile", ["calibrate", "-H", "bad.toml", "--dry-run"], ["clock_ghz"],
     {"bad.toml": _profile(clock_ghz="nan")})
case("calibrate-csv", ["calibrate", "m.csv", "--dry-run"], ["m.csv"],
     {"m.csv": BAD_CSVS["bad-number"]})
case("calibrate-format", ["calibrate", "--format", "yaml", "--dry-run"], ["format"])

# -- validate and the rest ------------------------------------------------------------------------
case("validate-suite", ["validate", "run", "--suite", "nope", "--out", "v.csv"], ["suite"])
case("validate-spec-missing", ["validate", "run", "--spec", "nope.json", "--out", "v.csv"],
     ["nope.json"])
case("validate-no-gpu", ["validate", "run", "--suite", "smoke", "--out", "v.csv"], ["validate"])
case("unknown-command", ["frobnicate"], ["frobnicate"])
case("profiles-format", ["profiles", "--format", "yaml"], ["format"])


def _run(case_: tuple, root: Path) -> tuple[int, str, str, set[str], set[str]]:
    cid, argv, files, _ = case_
    work = root / cid.replace("/", "_")
    work.mkdir()
    for name, text in files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
    before = {str(p.relative_to(work)) for p in work.rglob("*")}
    env = dict(os.environ, COLUMNS="100", PYTHONPATH=os.pathsep.join(
        [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]))
    try:
        proc = subprocess.run([sys.executable, "-m", "gnasim", *argv], cwd=work, env=env,
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        code, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired:
        code, out, err = -1, "", "timed out after 60 s"
    after = {str(p.relative_to(work)) for p in work.rglob("*")}
    return code, out, err, before, after


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("bad")
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = pool.map(lambda c: _run(c, root), CASES)
        return {c[0]: r for c, r in zip(CASES, done)}


def test_corpus_is_large_and_ids_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 150


@pytest.mark.parametrize("case_", CASES, ids=[c[0] for c in CASES])
def test_bad_input_one_line_exit_2(case_, results):
    cid, argv, _, words = case_
    code, out, err, before, after = results[cid]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err + out, err[-2000:]
    assert code == 2, f"exit {code}: {err[-600:]}"
    assert len(lines) == 1, f"{len(lines)} lines on stderr:\n{err[:1200]}"
    low = lines[0].lower()
    missing = [w for w in words if w.lower() not in low
               and w.lower().replace("_", "-") not in low and w.lower().replace("_", " ") not in low]
    assert not missing, f"{lines[0]!r} does not name {missing}"
    assert after == before, f"left behind: {sorted(after - before)}"
