"""gnasim sweep: rows equal simulate().to_dict(), invalid combinations counted, interrupt + resume,
spec files and their errors, the CLI."""

from __future__ import annotations

import itertools
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from gnasim.config import GNAConfig
# not `from gnasim import simulate`: once another test imported the submodule gnasim.prediction,
# the package attribute is that module (gnasim/__init__.py loads names lazily)
from gnasim.prediction import simulate
from gnasim.errors import ConfigError
from gnasim.explore.keys import IDENTITY_KEYS
from gnasim.explore.columns import compute_chunk
from gnasim.explore.blocks import iter_chunks, plan_sweep
from gnasim.record import flatten_record
from gnasim.explore.grid import parse_axis_grid, spec_from_mapping
from gnasim.explore.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[1]
STRING_COLUMNS = ("hardware", "kernel", "input_size", "window_size", "stride", "dilation", "causal",
                  "q_tile", "kv_tile", "kv_tiling", "dtype", "notes", "bound", "dense_bound",
                  "baseline")


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def read_rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        # every string column as text: a 1-D stride "8" or causal "0" must stay a string
        with open(path) as fh:
            header = [h.strip('"') for h in fh.readline().strip().split(",")]
        types = {c: pa.string() for c in header if c in STRING_COLUMNS}
        return pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=types, strings_can_be_null=False)).to_pylist()
    return pq.read_table(path).to_pylist()


def expected_row(row: dict, spec_hw: str | None, csv: bool, **kw) -> dict:
    """simulate().to_dict() for the configuration named by a row's identity columns."""
    cfg = GNAConfig(input_size=row["input_size"], window_size=row["window_size"],
                    stride=row["stride"], dilation=row["dilation"],
                    causal=[int(v) for v in row["causal"].split("x")],
                    q_tile=row["q_tile"], kv_tile=row["kv_tile"], batch=row["batch"],
                    heads=row["heads"], heads_kv=row["heads_kv"], head_dim=row["head_dim"],
                    head_dim_v=row["head_dim_v"], dtype=row["dtype"])
    frac = row.get("attention_fraction")
    d = flatten_record(simulate(cfg, spec_hw, kernel=row["kernel"] or None,
                                kv_tiling=row["kv_tiling"], attention_fraction=frac,
                                **kw).to_dict())
    if csv:
        d["notes"] = "; ".join(d["notes"])
        if d["hardware"] is None:
            d["hardware"] = ""
            d["kernel"] = ""
    return d


def assert_rows_match(rows: list[dict], n: int, seed: int = 0, **kw) -> None:
    rng = random.Random(seed)
    for row in rng.sample(rows, min(n, len(rows))):
        csv = isinstance(row["notes"], str)
        want = expected_row(row, row["hardware"] or None, csv, **kw)
        assert set(row) == set(want), (set(row) ^ set(want))
        assert_same(row, want, csv)


def assert_same(row: dict, want: dict, csv: bool = False) -> None:
    """A sweep row equals a to_dict() record: exact but for floats (rel 1e-12: the same formula
    on numpy arrays and on Python floats)."""
    for key, value in want.items():
        if value is None and isinstance(row[key], float) and row[key] != row[key]:
            continue          # a float column without a value: None in a record, NaN in a table
        if isinstance(value, float) and not isinstance(row[key], bool):
            assert row[key] == pytest.approx(value, rel=1e-12), (key, row[key], value, row["stride"])
        else:
            assert row[key] == value, (key, row[key], value, row["stride"])
        if not csv:   # Parquet keeps types; a CSV reader may read 1.0 back as 1
            assert type(row[key]) is type(value), (key, row[key], value)


# -- the acceptance problem -----------------------------------------------------------------

def test_full_stride_sweep_csv_cli(tmp_path):
    out = tmp_path / "strides.csv"
    t0 = time.perf_counter()
    res = run_cli("sweep", "-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "all",
                  "--q-tile", "4", "8", "8", "--kv-tile", "2", "8", "8", "--hardware", "none",
                  "--out", str(out), "--format", "json")
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["rows"] == summary["written"] == 18 * 24 * 24
    assert summary["invalid_total"] == 0 and not summary["interrupted"]
    # the target is < 3 s on the 2-core box; twice that here so a busy CI box cannot flake
    assert wall < 6.0, f"the 10,368-stride sweep took {wall:.2f} s"
    rows = read_rows(out)
    assert len(rows) == 10368
    strides = [r["stride"] for r in rows]
    assert len(set(strides)) == 10368
    assert set(strides) == {f"{a}x{b}x{c}" for a in range(1, 19) for b in range(1, 25)
                            for c in range(1, 25)}
    assert_rows_match(rows, 120)
    by_stride = {r["stride"]: r for r in rows}
    for stride, bound in (("1x1x1", 3.273), ("2x8x8", 10.0), ("16x8x8", 11.111)):
        assert round(by_stride[stride]["tile_speedup"], 3) == bound


def test_grid_of_everything_parquet_equals_simulate(tmp_path):
    spec = spec_from_mapping({
        "input_size": ["12x10", "9x16"], "window_size": "3:6 all", "stride": "1,2 all",
        "dilation": "1:2 1", "causal": "all 0", "tiles": ["4x2/2x4", "3x3/3x3"],
        "hardware": "none", "head_dim": [64, 128], "attention_fraction": [0.5, 0.9],
        "kv_tiling": "dynamic", "batch": 2, "heads": 3, "heads_kv": 1})
    out = tmp_path / "grid.parquet"
    summary = run_sweep(spec, out)
    rows = read_rows(out)
    assert len(rows) == summary.rows and summary.invalid
    assert_rows_match(rows, 150, seed=1)
    # every valid combination is there exactly once
    keys = [tuple(r[k] for k in IDENTITY_KEYS) for r in rows]
    assert len(set(keys)) == len(keys)


def test_hardware_rows_include_runtime_columns(tmp_path):
    """With a profile, every to_dict() key is a column (nested ones flattened), values exact."""
    spec = spec_from_mapping({"input_size": "16x24x40", "window_size": "8 8 16", "stride": "1,8 1 1:16:5",
                              "hardware": ["h100", "b200"], "causal": "0 0 0,1"})
    out = tmp_path / "hw.csv"
    summary = run_sweep(spec, out, jobs=1)
    rows = read_rows(out)
    assert len(rows) == summary.rows == 2 * 2 * 4 * 2
    assert_rows_match(rows, len(rows), seed=2)


def test_full_stride_sweep_with_profile_is_vectorised_and_exact(tmp_path):
    """The acceptance sweep with the default profile (h100): runtime columns come from the
    batched runtime model, not simulate() per row, and sampled rows equal simulate()."""
    out = tmp_path / "strides_h100.csv"
    t0 = time.perf_counter()
    res = run_cli("sweep", "-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "all",
                  "--q-tile", "4", "8", "8", "--kv-tile", "2", "8", "8", "--out", str(out),
                  "--format", "json")
    wall = time.perf_counter() - t0
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["written"] == 10368
    assert wall < 6.0, f"the 10,368-stride sweep with h100 took {wall:.2f} s"
    rows = read_rows(out)
    assert len(rows) == 10368 and "predicted_speedup" in rows[0]
    assert_rows_match(rows, 200, seed=5)


@pytest.mark.parametrize("hardware,kernel", [("h100", "flex-fna"), ("a100", None), ("b200", None)])
def test_runtime_columns_of_mixed_grids_equal_simulate(tmp_path, hardware, kernel):
    """Causal patterns (two-axis causal: the baseline note), dilation, attention shares with
    full-attention steps, masking policies and KV tilings: random rows equal simulate()."""
    mapping = {"input_size": "24x32", "window_size": "6,12 8", "stride": "all",
               "dilation": "1,2 1:2", "causal": "all", "q_tile": "4 8", "kv_tile": "4 8",
               "hardware": hardware, "attention_fraction": [0.4, 0.8],
               "full_attention_steps": 3, "total_steps": 20, "batch": 2, "heads": 3,
               "heads_kv": 1}
    if kernel:
        mapping["kernel"] = kernel
    spec = spec_from_mapping(mapping)
    out = tmp_path / "mixed.parquet"
    summary = run_sweep(spec, out, jobs=1)
    rows = read_rows(out)
    assert len(rows) == summary.rows
    assert any(r["causal"] == "1x1" for r in rows) and any(r["causal"] == "0x0" for r in rows)
    assert_rows_match(rows, 150, seed=3, full_attention_steps=3, total_steps=20)
    for row in rows[:: max(1, len(rows) // 50)]:
        want = expected_row(row, hardware, False, full_attention_steps=3, total_steps=20)
        assert set(row) == set(want)
        assert_same(row, want)


def test_bounds_only_skips_runtime_columns(tmp_path):
    spec = spec_from_mapping({"input_size": "16x24x40", "window_size": "8 8 16", "stride": "1:8 1 8",
                              "hardware": "h100", "bounds_only": True})
    out = tmp_path / "b.csv"
    run_sweep(spec, out)
    rows = read_rows(out)
    for row in rows:
        want = expected_row(row, "h100", True)
        for key in row:
            if key != "notes":
                assert row[key] == want[key], key
        assert not any(k.startswith("predicted_") for k in row)


def test_a_new_column_is_one_entry_in_the_record(tmp_path, monkeypatch):
    """A column added to gnasim.record.COLUMNS appears in simulate().to_dict(), in every sweep
    row (computed on arrays) and in the Arrow schema, with the same values."""
    from gnasim import record

    extra = record.Column("extra_metric", "int", lambda r: r.vmax * 3 + r.vsum)
    monkeypatch.setattr(record, "COLUMNS", record.COLUMNS[:-1] + (extra, record.COLUMNS[-1]))
    monkeypatch.setitem(record.BY_NAME, "extra_metric", extra)
    spec = spec_from_mapping({"input_size": "20x20", "window_size": "7", "stride": "all",
                              "q_tile": "4", "kv_tile": "4", "hardware": "h100"})
    out = tmp_path / "extra.parquet"
    run_sweep(spec, out, jobs=1)
    rows = read_rows(out)
    assert len(rows) == 49 and list(rows[0])[-2:] == ["extra_metric", "notes"]
    assert_rows_match(rows, 49)


def test_huge_counts_stay_exact(tmp_path):
    """Products past 2**53 switch to exact Python integers (a 10^8-token axis)."""
    spec = spec_from_mapping({"input_size": "100000000", "window_size": "1001,4095",
                              "stride": "1,64,1000", "q_tile": "128", "kv_tile": "128",
                              "hardware": "none"})
    plan = plan_sweep(spec)
    assert any(not b.exact_int64 for b in plan.blocks)
    out = tmp_path / "huge.parquet"
    run_sweep(spec, out)
    rows = read_rows(out)
    assert len(rows) == 6
    assert_rows_match(rows, 6)


def test_int64_overflow_is_a_clear_error(tmp_path):
    res = run_cli("sweep", "-i", "4000000000", "-w", "3", "--q-tile", "128", "--kv-tile", "128",
                  "--hardware", "none", "-b", "1000000", "-n", "1000000", "--out",
                  str(tmp_path / "x.csv"))
    assert res.returncode == 2
    assert res.stderr.startswith("error: sweep: column flops_dense exceeds 64-bit integers")


# -- invalid combinations --------------------------------------------------------------------

def test_invalid_combinations_are_counted_exactly(tmp_path):
    layout, windows, strides, dilations = (10, 7), range(1, 9), range(1, 10), range(1, 4)
    grid = {"input_size": "10x7", "window_size": "1:8", "stride": "1:9", "dilation": "1:3",
            "q_tile": "2", "kv_tile": "3", "hardware": "none"}
    summary = run_sweep(spec_from_mapping(grid), tmp_path / "inv.csv")
    valid = invalid = 0
    for w in itertools.product(windows, repeat=2):
        for s in itertools.product(strides, repeat=2):
            for d in itertools.product(dilations, repeat=2):
                try:
                    GNAConfig(input_size=layout, window_size=w, stride=s, dilation=d)
                    valid += 1
                except ConfigError:
                    invalid += 1
    assert summary.rows == valid == len(read_rows(tmp_path / "inv.csv"))
    assert sum(summary.invalid.values()) == invalid
    assert summary.combinations == valid + invalid
    assert set(summary.invalid) == {"window < 2", "window > input_size", "stride > window",
                                    "window x dilation > input_size"}


def test_rank_mismatch_groups_are_skipped_not_fatal(tmp_path):
    res = run_cli("sweep", "-i", "16", "16", "-i", "8", "8", "8", "-w", "4", "-s", "1", "2",
                  "--q-tile", "2", "--kv-tile", "2", "--hardware", "none", "--out",
                  str(tmp_path / "r.csv"))
    assert res.returncode == 0, res.stderr
    assert "skipped: stride with 2 axes does not fit 3-D layout 8x8x8" in res.stdout
    rows = read_rows(tmp_path / "r.csv")
    assert [(r["input_size"], r["stride"]) for r in rows] == [("16x16", "1x2")]


def test_nothing_valid_is_an_error(tmp_path):
    res = run_cli("sweep", "-i", "8", "-w", "4", "-s", "5:6", "--q-tile", "2", "--kv-tile", "2",
                  "--hardware", "none", "--out", str(tmp_path / "n.csv"))
    assert res.returncode == 2
    assert res.stderr.strip() == ("error: sweep: no valid configuration in the grid "
                                  "(2 stride > window)")


# -- interrupt and resume -----------------------------------------------------------------------

GRID = {"input_size": "24x20", "window_size": "9 all", "stride": "1:9 1:3", "q_tile": "4x4",
        "kv_tile": "4x2", "hardware": "none", "attention_fraction": [0.3, 0.6]}


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_interrupted_sweep_keeps_file_and_resume_completes(tmp_path, suffix):
    """An interrupted run leaves FILE as it was (here: absent) and its rows in FILE.partial, a
    readable table; --resume completes it byte for byte."""
    spec = spec_from_mapping(GRID)
    full = tmp_path / f"full{suffix}"
    ref = run_sweep(spec, full, chunk_rows=97)
    out = tmp_path / f"part{suffix}"
    partial = Path(str(out) + ".partial")
    calls = []

    def stop_after_three(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    s1 = run_sweep(spec, out, chunk_rows=97, progress=stop_after_three)
    assert s1.interrupted and s1.written == 3 * 97 and s1.partial == str(partial)
    assert not out.exists()
    rows = read_rows(partial.rename(tmp_path / f"copy{suffix}"))   # a complete, readable table
    (tmp_path / f"copy{suffix}").rename(partial)
    assert len(rows) == 291
    assert rows == read_rows(full)[:291]
    s2 = run_sweep(spec, out, chunk_rows=97, resume=True)
    assert not s2.interrupted and not partial.exists()
    assert s2.resumed_rows == 291 and s2.written == ref.rows - 291
    assert out.read_bytes() == full.read_bytes()
    # resuming a complete file adds nothing and leaves it alone
    mtime = out.stat().st_mtime_ns
    s3 = run_sweep(spec, out, resume=True)
    assert s3.written == 0 and s3.resumed_rows == ref.rows and out.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([full.name, out.name])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_interrupted_rerun_never_replaces_a_complete_file(tmp_path, suffix):
    """Issue 9.4: a re-run without --resume that is interrupted leaves the earlier complete
    output in place; only a complete new table replaces it."""
    spec = spec_from_mapping(GRID)
    out = tmp_path / f"out{suffix}"
    run_sweep(spec, out, chunk_rows=97)
    before, rows = out.read_bytes(), read_rows(out)

    def stop(done, total):
        raise KeyboardInterrupt

    s = run_sweep(spec, out, chunk_rows=97, progress=stop)
    assert s.interrupted and s.written == 97
    assert out.read_bytes() == before
    assert Path(s.partial).exists()
    run_sweep(spec, out, chunk_rows=50)                 # complete: replaces it, partial gone
    assert not Path(s.partial).exists()
    assert read_rows(out) == rows


def test_unrelated_file_at_out_needs_force(tmp_path):
    """Issue 9.4: a file at --out that is not this sweep's table is refused in one line, and
    replaced only with --force; another sweep's columns count as unrelated."""
    notes = tmp_path / "notes.csv"
    notes.write_text("my,own\ndata,1\n")
    args = ["sweep", "-i", "16", "-w", "4", "-s", "all", "--hardware", "none", "--q-tile", "4",
            "--kv-tile", "4", "--bounds-only"]
    res = run_cli(*args, "--out", str(notes))
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"error: out: '{notes}' exists and is not a table of this sweep (other "
                          "columns, or not a table); pass --force to replace it, or choose "
                          "another file\n")
    assert notes.read_text() == "my,own\ndata,1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.csv"]
    res = run_cli(*args, "--out", str(notes), "--force")
    assert res.returncode == 0, res.stderr
    assert read_rows(notes)[0]["stride"] == "1"
    res = run_cli(*args, "--out", str(notes))             # now it is this sweep's table
    assert res.returncode == 0, res.stderr
    res = run_cli("sweep", "-i", "16", "-w", "4", "--out", str(notes))   # h100: more columns
    assert res.returncode == 2 and "pass --force" in res.stderr


def test_resume_after_hard_kill_uses_partial_file(tmp_path):
    """A torn last line in FILE.partial (killed mid-write) is dropped, then the sweep resumes."""
    spec = spec_from_mapping(GRID)
    full = tmp_path / "full.csv"
    run_sweep(spec, full)
    data = full.read_bytes()
    lines = data.split(b"\n")
    torn = b"\n".join(lines[:101]) + b"\n" + lines[101][:40]   # header + 100 rows + half a row
    out = tmp_path / "out.csv"
    Path(str(out) + ".partial").write_bytes(torn)
    s = run_sweep(spec, out, resume=True)
    assert s.resumed_rows == 100
    assert out.read_bytes() == data


def test_resume_refuses_another_sweeps_file(tmp_path):
    out = tmp_path / "other.csv"
    run_sweep(spec_from_mapping(GRID), out)
    other = dict(GRID, attention_fraction=[0.3, 0.7])     # same size, second row differs
    res = run_cli("sweep", "--spec", str(_write(tmp_path / "o.toml", _toml(other))), "--out",
                  str(out), "--resume")
    assert res.returncode == 2
    assert res.stderr == (f"error: resume: row 2 of {out} has attention_fraction = 0.6, but this "
                          "sweep's row has 0.7; run without --resume to overwrite it\n")
    bigger = dict(GRID, stride="1:9 1:2")                  # fewer rows than the file
    res = run_cli("sweep", "--spec", str(_write(tmp_path / "b.toml", _toml(bigger))), "--out",
                  str(out), "--resume")
    assert res.returncode == 2 and "rows but this sweep has only" in res.stderr


def test_resume_with_a_junk_line_is_one_line(tmp_path):
    """Issue 9.7: a junk line inside FILE.partial stops --resume with one line, exit 2."""
    spec = spec_from_mapping(GRID)
    full = tmp_path / "full.csv"
    run_sweep(spec, full)
    lines = full.read_bytes().split(b"\n")
    out = tmp_path / "out.csv"
    partial = Path(str(out) + ".partial")
    partial.write_bytes(b"\n".join(lines[:50] + [b"this is not a row"] + lines[50:80]) + b"\n")
    res = run_cli("sweep", "--spec", str(_write(tmp_path / "g.toml", _toml(GRID))), "--out",
                  str(out), "--resume")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"error: resume: {partial} holds something that is not a row "
                                 "of this sweep (")
    assert res.stderr.endswith("; run without --resume to start over\n")
    assert not out.exists() and partial.exists()


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("where", ["first", "last"])
def test_resume_checks_every_column_of_the_first_and_last_chunk(tmp_path, suffix, where):
    """Issue 9.9: --resume compared only the identity columns; a file whose other columns differ
    (another version or profile) is refused, naming the row and the column."""
    spec = spec_from_mapping(GRID)
    out = tmp_path / f"out{suffix}"
    s = run_sweep(spec, out, chunk_rows=97, progress=lambda d, t: d >= 291 and _raise())
    assert s.interrupted
    partial = Path(s.partial)
    row = 1 if where == "first" else 291
    if suffix == ".csv":
        lines = partial.read_bytes().split(b"\n")
        cells = lines[row].split(b",")
        col = [c.strip('"') for c in lines[0].decode().split(",")].index("tile_speedup")
        cells[col] = b"99.5"
        lines[row] = b",".join(cells)
        partial.write_bytes(b"\n".join(lines))
    else:
        table = pq.read_table(partial)
        values = table.column("tile_speedup").to_pylist()
        values[row - 1] = 99.5
        i = table.schema.get_field_index("tile_speedup")
        table = table.set_column(i, table.schema.field(i), pa.array(values, pa.float64()))
        pq.write_table(table, partial, row_group_size=97)
    with pytest.raises(ConfigError, match=rf"resume: row {row} of .* has tile_speedup = "
                                          r"'?99\.5'?, but this sweep computes"):
        run_sweep(spec, out, chunk_rows=97, resume=True)


def _raise() -> None:
    raise KeyboardInterrupt


def test_ctrl_c_on_the_cli_then_resume(tmp_path):
    """SIGINT to a running `gnasim sweep`: exit 130, no FILE yet, the rows in FILE.partial, then
    --resume completes it to exactly the file an uninterrupted sweep writes."""
    out = tmp_path / "sig.csv"
    grid = ["-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "all", "--q-tile", "4", "8", "8",
            "--kv-tile", "2", "8", "8", "--hardware", "none", "-d", "32", "64", "128",
            "--attention-fraction", *[str(f / 10) for f in range(10)]]
    total = 10368 * 3 * 10
    args = [sys.executable, str(ROOT / "cli.py"), "sweep", *grid, "--jobs", "1",
            "--chunk-size", "500", "--out", str(out), "--format", "json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    partial = Path(str(out) + ".partial")
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if partial.exists() and partial.stat().st_size > 2000 * 300:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the sweep finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] and summary["partial"] == str(partial)
    assert not out.exists()
    with open(partial, "rb") as fh:
        data = fh.read()
    assert data.endswith(b"\n")
    n_rows = data.count(b"\n") - 1
    assert n_rows == summary["written"] and n_rows % 500 == 0 and 0 < n_rows < total
    res = run_cli("sweep", *grid, "--out", str(out), "--resume", "--format", "json")
    assert res.returncode == 0, res.stderr
    done = json.loads(res.stdout)
    assert done["resumed_rows"] == n_rows and done["written"] == total - n_rows
    assert not partial.exists()
    fresh = tmp_path / "fresh.csv"
    res = run_cli("sweep", *grid, "--out", str(fresh))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == fresh.read_bytes()


def test_parallel_workers_write_the_same_file(tmp_path):
    spec = spec_from_mapping({"input_size": "30x48x80", "window_size": "18 24 24",
                              "stride": "all", "q_tile": "4x8x8", "kv_tile": "2x8x8",
                              "hardware": "none", "attention_fraction": [0.5, 0.607]})
    one, two = tmp_path / "one.csv", tmp_path / "two.csv"
    run_sweep(spec, one, jobs=1, chunk_rows=5000)
    s = run_sweep(spec, two, jobs=2, chunk_rows=5000)
    assert s.jobs == 2
    assert one.read_bytes() == two.read_bytes()


# -- spec files ---------------------------------------------------------------------------------

def _toml(mapping: dict) -> str:
    lines = []
    for k, v in mapping.items():
        lines.append(f"{k} = {json.dumps(v)}")
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_spec_file_toml_and_yaml_equal_cli(tmp_path):
    toml_spec = _write(tmp_path / "s.toml", "[sweep]\ninput_size = \"30x48x80\"\n"
                       "window = \"18 24 24\"\nstride = \"1:4 1 8\"\ntiles = [\"4x8x8/2x8x8\"]\n"
                       "hardware = \"none\"\nhead_dim = [64, 128]\n")
    yaml_spec = _write(tmp_path / "s.yaml", "input_size: 30x48x80\nwindow_size: [18, 24, 24]\n"
                       "stride: '1:4 1 8'\ntiles: [4x8x8/2x8x8]\nhardware: none\n"
                       "dim: [64, 128]\n")
    outs = []
    for i, spec in enumerate((toml_spec, yaml_spec)):
        out = tmp_path / f"o{i}.csv"
        res = run_cli("sweep", "--spec", str(spec), "--out", str(out))
        assert res.returncode == 0, res.stderr
        outs.append(out.read_bytes())
    out = tmp_path / "cli.csv"
    res = run_cli("sweep", "-i", "30x48x80", "-w", "18", "24", "24", "-s", "1:4", "1", "8",
                  "--tiles", "4x8x8/2x8x8", "--hardware", "none", "-d", "64", "128",
                  "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert outs[0] == outs[1] == out.read_bytes()
    assert len(read_rows(out)) == 8


@pytest.mark.parametrize("text,suffix,message", [
    ('input_size = "16x16"\nwindow_size = 4\nstrides_all = true\n', ".toml",
     "unknown key 'strides_all'"),
    ('input_size = "16x16"\nwindow_size = 4\nstride = 1.5\n', ".toml",
     "key 'stride': expected a string, an integer or a list"),
    ('input_size = "16x16"\nwindow_size = 4\nstride = "1:z"\n', ".toml",
     "key 'stride': '1:z' is not an integer"),
    ('input_size = "16x16"\nwindow_size = 4\nhead_dim = "abc"\n', ".toml",
     "key 'head_dim': expected integers"),
    ('input_size = "16x16"\nwindow_size = 4\nhardware = "tpu9"\n', ".toml",
     "key 'hardware': unknown profile 'tpu9'"),
    ('input_size = "16x16"\nwindow_size = 4\nattention_fraction = 1.5\n', ".toml",
     "key 'attention_fraction': must be in [0, 1]"),
    ('input_size = "16x16"\nwindow_size = 4\nbatch = 0\n', ".toml", "key 'batch': must be >= 1"),
    ('input_size = "16x16"\nwindow_size = 4\ndtype = "int4"\n', ".toml", "key 'dtype':"),
    ('input_size = "16x16"\n', ".toml", "key 'window_size': required"),
    ('input_size = "16x16\n', ".toml", "not valid TOML"),
    ("input_size: 16x16\nwindow_size: 4\ncausal: 2\n", ".yaml", "key 'causal': values must be 0 or 1"),
    ("input_size: [16, 16\n", ".yaml", "not valid YAML"),
    ("- 1\n- 2\n", ".yml", "expected a mapping of keys"),
])
def test_malformed_spec_names_the_key(tmp_path, text, suffix, message):
    spec = _write(tmp_path / f"bad{suffix}", text)
    res = run_cli("sweep", "--spec", str(spec), "--out", str(tmp_path / "x.csv"))
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: spec {spec}") or \
        lines[0].startswith("error: spec:"), lines
    assert message in lines[0], lines[0]
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("args,message", [
    (["-s", "0"], "error: --stride: values must be >= 1, got 0"),
    (["-s", "3:1"], "error: --stride: range '3:1' is empty"),
    (["-s", "1:"], "error: --stride: '1:' is not an integer, a range a:b[:step] or all"),
    (["--tiles", "4x4/4"], "error: --tiles: tile shape '4x4/4': Q and KV ranks differ"),
    (["--attention-fraction", "2"], "error: --attention-fraction: must be in [0, 1], got 2.0"),
    (["--kv-tiling", "diagonal"], "error: --kv-tiling: 'diagonal' is not one of"),
    (["-d", "0"], "error: --dim: must be >= 1, got 0"),
    (["--dtype", "int4"], "error: --dtype: 'int4' is not one of"),
    (["--tiles", "all", "--hardware", "none"], "tiles: 'all' needs a hardware profile"),
])
def test_bad_flags_one_line_exit_2(tmp_path, args, message):
    res = run_cli("sweep", "-i", "16", "16", "-w", "4", *args, "--out", str(tmp_path / "x.csv"))
    assert res.returncode == 2, res.stdout
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_output_suffix_is_checked(tmp_path):
    res = run_cli("sweep", "-i", "16", "-w", "4", "--out", str(tmp_path / "x.txt"))
    assert res.returncode == 2
    assert res.stderr.strip() == "error: out: 'x.txt' must end in .csv or .parquet"


def test_parse_axis_grid():
    assert parse_axis_grid("1:4 1 8", "stride") == ((1, 2, 3, 4), (1,), (8,))
    assert parse_axis_grid("all", "stride", allow_all=True) == (("all",),)
    assert parse_axis_grid("2,4x8x1:7:3", "window") == ((2, 4), (8,), (1, 4, 7))
    assert parse_axis_grid([1, "2:3"], "stride") == ((1,), (2, 3))
    assert parse_axis_grid("0 1,true", "causal", minimum=0) == ((0,), (1,))
    with pytest.raises(ConfigError, match="'all' is not allowed"):
        parse_axis_grid("all", "input_size")


def test_stride_all_follows_each_window():
    spec = spec_from_mapping({"input_size": "20", "window_size": "3,5", "stride": "all",
                              "q_tile": "4", "kv_tile": "4", "hardware": "none"})
    plan = plan_sweep(spec)
    strides = []
    for bi, lo, hi in iter_chunks(plan):
        t = compute_chunk(plan, bi, lo, hi, keys=["window_size", "stride"]).to_pylist()
        strides += [(r["window_size"], r["stride"]) for r in t]
    assert strides == [("3", "1"), ("3", "2"), ("3", "3"),
                       ("5", "1"), ("5", "2"), ("5", "3"), ("5", "4"), ("5", "5")]
    assert plan.combinations == 8 and not plan.invalid
