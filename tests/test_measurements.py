"""Measurements as data: the built-in published set, the schema, and row-numbered errors."""

import csv
import io
from pathlib import Path

import pytest

import gnasim
from gnasim.errors import MeasurementError
from gnasim.hardware.profile import load_profiles
from gnasim.calibration.measurements import (BASE_COLUMNS, COLUMNS, REQUIRED, load_measurements,
                                 published_path)

HEADER = ",".join(BASE_COLUMNS)
GOOD = ("test,H100-SXM,natten-hopper-fna,1,24,128,fp16,256x256,80x80,16x16,1x1,0x0,16x8,16x8,"
        "7.914,2.687,")
DENSE = "test,H100-SXM,cudnn-sdpa,1,24,128,fp16,256x256,256x256,1x1,1x1,0x0,,,97.435,0,"


def write(tmp_path, *rows, header=HEADER, name="m.csv"):
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


def test_builtin_dataset_ships_inside_the_package():
    path = published_path()
    assert path.is_file()
    assert Path(gnasim.__file__).resolve().parent in path.resolve().parents
    assert (path.parent / "README.md").is_file()
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'packages = ["gnasim"' in pyproject          # hatchling ships everything under gnasim/


def test_builtin_dataset_loads_and_matches_profiles():
    ms = load_measurements()
    assert len(ms) == 14 and not ms.errors
    profs = load_profiles()
    for m in ms.rows:
        assert any(p.matches(m.gpu) for p in profs), m.gpu
        assert m.source == "natten-docs-profiler"
    dense = [m for m in ms.rows if m.is_dense]
    assert {m.implementation for m in dense} == {"cudnn-sdpa"} and len(dense) == 4
    perm = [m for m in ms.rows if m.permute_ms > 0]
    assert len(perm) == 4 and all(m.config.rank > 1 for m in perm)
    first = ms.rows[0]
    assert (first.row, first.line) == (1, 2)


@pytest.mark.parametrize("row, column", [
    (GOOD.replace("7.914", "fast"), "attention_ms"),
    (GOOD.replace("7.914", "-1"), "attention_ms"),
    (GOOD.replace("7.914", "nan"), "attention_ms"),
    (GOOD.replace(",2.687,", ",-0.5,"), "permute_ms"),
    (GOOD.replace("80x80", "300x80"), "window"),
    (GOOD.replace("80x80", "80x80x80"), "window"),
    (GOOD.replace(",16x16,", ",100x16,"), "stride"),
    (GOOD.replace("16x8,16x8", "16x8,"), "kv_tile"),
    (GOOD.replace("16x8,16x8", "16x8x2,16x8x2"), "q_tile"),
    (GOOD.replace(",0x0,", ",maybe,"), "causal"),
    (GOOD.replace(",24,128,", ",0,128,"), "heads"),
    (GOOD.replace(",24,128,", ",24,12.5,"), "head_dim"),
    (GOOD.replace("fp16", "int4"), "dtype"),
    (GOOD.replace("H100-SXM", ""), "gpu"),
    (GOOD.replace("256x256,80x80", "256xq,80x80"), "layout"),
    (GOOD + ",extra,fields", "(none)"),
])
def test_bad_rows_name_the_row_and_the_column(tmp_path, row, column):
    p = write(tmp_path, DENSE, row)
    with pytest.raises(MeasurementError) as err:
        load_measurements(p)
    msg = str(err.value)
    assert msg.startswith("m.csv row 2 (line 3), column " + column), msg
    assert "\n" not in msg


def test_optional_columns_are_checked(tmp_path):
    header = HEADER + ",baseline,masking,kv_tiling"
    p = write(tmp_path, GOOD + ",cudnn-sdpa,sometimes,static", header=header)
    with pytest.raises(MeasurementError, match=r"row 1 \(line 2\), column masking"):
        load_measurements(p)
    p = write(tmp_path, GOOD + ",cudnn-sdpa,partial,sideways", header=header)
    with pytest.raises(MeasurementError, match="column kv_tiling"):
        load_measurements(p)
    ok = load_measurements(write(tmp_path, GOOD + ",cudnn-sdpa,all,static", header=header))
    m = ok.rows[0]
    assert (m.baseline, m.masking, m.kv_tiling) == ("cudnn-sdpa", "all", "static")


def test_skip_bad_rows_keeps_the_rest(tmp_path):
    p = write(tmp_path, DENSE, GOOD.replace("7.914", "x"), GOOD, "", GOOD.replace("fp16", "fp7"))
    ms = load_measurements(p, skip_bad_rows=True)
    assert [m.row for m in ms.rows] == [1, 3]
    assert len(ms.errors) == 2
    assert ms.errors[0].startswith("m.csv row 2 (line 3), column attention_ms")
    assert ms.errors[1].startswith("m.csv row 4 (line 6), column dtype")   # blank line 5 skipped


def test_header_problems(tmp_path):
    with pytest.raises(MeasurementError, match="column attention_ms: missing"):
        load_measurements(write(tmp_path, "x", header=HEADER.replace("attention_ms", "time_ms")))
    with pytest.raises(MeasurementError, match="empty file"):
        load_measurements(write(tmp_path, header=""))
    with pytest.raises(MeasurementError, match="no data rows"):
        load_measurements(write(tmp_path))
    with pytest.raises(MeasurementError, match="does not exist"):
        load_measurements(tmp_path / "nope.csv")
    dup = write(tmp_path, GOOD + ",x", header=HEADER + ",note")
    with pytest.raises(MeasurementError, match="column note: given twice"):
        load_measurements(dup)
    extra = load_measurements(write(tmp_path, GOOD + ",1", header=HEADER + ",my_column"))
    assert extra.warnings and "my_column" in extra.warnings[0]
    assert extra.rows[0].extra == {"my_column": "1"}


def test_required_columns_are_the_contract():
    assert set(REQUIRED) <= set(BASE_COLUMNS)
    for col in ("baseline", "heads_kv", "head_dim_v", "kv_tiling", "masking", "device", "driver",
                "torch_version", "triton_version"):
        assert col in COLUMNS


def test_validation_harness_rows_load(tmp_path):
    harness = pytest.importorskip("gnasim_validate.harness")
    rows = []
    base = {c: "" for c in harness.COLUMNS}
    base.update(source="gnasim-validate", gpu="H100-SXM", batch="1", heads="8", head_dim="128",
                dtype="fp16", layout="4096", causal="0", permute_ms="0.000000", device="NVIDIA H100",
                driver="560", torch_version="2.5", triton_version="3.1")
    rows.append(dict(base, implementation="triton-gna-dense", window="4096", stride="1",
                     dilation="1", attention_ms="0.5", baseline="triton-gna-dense",
                     kv_tiling="static", masking="partial", speedup="1.0000"))
    rows.append(dict(base, implementation="triton-gna", window="512", stride="1", dilation="1",
                     q_tile="128", kv_tile="64", attention_ms="0.08", baseline="triton-gna-dense",
                     kv_tiling="static", masking="all", speedup="6.25", tile_bound="7.1",
                     kv_tiles_visited_max="10", fully_block_sparse="0"))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=harness.COLUMNS)
    w.writeheader()
    w.writerows(rows)
    p = tmp_path / "h.csv"
    p.write_text(buf.getvalue())
    ms = load_measurements(p)
    assert not ms.errors and len(ms) == 2
    # columns the harness adds later are tolerated (reported), never fatal
    assert all("ignored unknown columns" in w for w in ms.warnings)
    assert ms.rows[0].is_dense and not ms.rows[1].is_dense
    assert ms.rows[1].masking == "all" and ms.rows[1].baseline == "triton-gna-dense"
    assert ms.rows[1].extra["tile_bound"] == "7.1"


# -- the corpus columns: pass, deterministic, uncertainty, library_version, mxfp8 -----------------

CORPUS_HEADER = HEADER + ",pass,deterministic,uncertainty,library_version"


def test_corpus_columns_load(tmp_path):
    p = write(tmp_path, DENSE + ",bwd,1,0.02,cudnn=9.22.0 cudnn-frontend=1.21.1",
              DENSE.replace("fp16", "mxfp8") + ",fwd+bwd,,,", DENSE + ",,,,",
              header=CORPUS_HEADER)
    a, b, c = load_measurements(p).rows
    assert (a.pass_, a.deterministic, a.uncertainty) == ("bwd", True, 0.02)
    assert a.versions == {"cudnn": "9.22.0", "cudnn-frontend": "1.21.1"}
    assert b.block_scaled and b.dtype == "mxfp8" and b.config.dtype == "fp8"
    assert b.pass_ == "fwd+bwd" and b.deterministic is None
    assert c.pass_ == "fwd" and not c.block_scaled and c.dtype == "fp16"
    # a row is only another row's dense partner within the same pass and dtype
    assert len({a.problem, b.problem, c.problem}) == 3


def test_uncertainty_default_is_the_printed_precision(tmp_path):
    rows = [DENSE.replace("97.435", t) for t in ("0.061", "97.435", "7", "1e-3")]
    ms = load_measurements(write(tmp_path, *rows))
    got = [m.uncertainty for m in ms.rows]
    assert got[0] == pytest.approx(0.0005 / 0.061)
    assert got[1] == 0.001                       # the floor: 5e-6 is below it
    assert got[2] == pytest.approx(0.5 / 7)
    assert got[3] == 0.001


def test_versions_merge_torch_and_triton(tmp_path):
    header = HEADER + ",torch_version,triton_version,library_version"
    m = load_measurements(write(tmp_path, DENSE + ",2.11.0,3.6.0,natten=0.20",
                                header=header)).rows[0]
    assert m.versions == {"natten": "0.20", "torch": "2.11.0", "triton": "3.6.0"}


@pytest.mark.parametrize("tail, column", [
    (",backward,,,", "pass"),
    (",fwd,1,,", "deterministic"),
    (",bwd,yes,,", "deterministic"),
    (",fwd,,0,", "uncertainty"),
    (",fwd,,1.5,", "uncertainty"),
    (",fwd,,abc,", "uncertainty"),
    (",fwd,,,cudnn", "library_version"),
    (",fwd,,,a=1 a=2", "library_version"),
])
def test_bad_corpus_columns_name_the_column(tmp_path, tail, column):
    p = write(tmp_path, DENSE + ",,,,", DENSE + tail, header=CORPUS_HEADER)
    with pytest.raises(MeasurementError) as err:
        load_measurements(p)
    assert str(err.value).startswith(f"m.csv row 2 (line 3), column {column}:"), str(err.value)


# -- file-level hardening (issue 9): each of these failed or misreported on the old loader ---------

def one_line_error(path) -> str:
    with pytest.raises(MeasurementError) as err:
        load_measurements(path)
    msg = str(err.value)
    assert len(msg.splitlines()) == 1 and len(msg) < 500, msg
    return msg


def test_field_over_the_csv_limit_names_file_row_and_column(tmp_path):
    huge = "n" * 200_000
    row = GOOD.replace("7.914,2.687,", "7.914,2.687," + huge)
    msg = one_line_error(write(tmp_path, DENSE, row))
    assert msg == "m.csv row 2 (line 3), column note: 200000 characters (at most 131072)"
    import csv as _csv
    assert _csv.field_size_limit() == 131072            # the global limit is left as it was


def test_line_separator_inside_a_field_names_the_right_column(tmp_path):
    # U+2028 inside row 1's note must stay in that field: row 2's bad value is in attention_ms
    p = write(tmp_path, DENSE + "a\u2028b", GOOD.replace("7.914", "fast"))
    msg = one_line_error(p)
    assert msg.startswith("m.csv row 2 (line 3), column attention_ms: 'fast'"), msg
    assert load_measurements(write(tmp_path, DENSE + "a\u2028b")).rows[0].note == "a\u2028b"
    msg = one_line_error(write(tmp_path, GOOD.replace("7.914", "7.\u2028914")))
    assert msg.startswith("m.csv row 1 (line 2), column attention_ms: '7.\\u2028914'"), msg


@pytest.mark.parametrize("data, text", [
    (("\ufeff" + HEADER + "\n" + DENSE + "\n").encode("utf-16"),
     "not UTF-8 text (byte 0xff on line 1)"),
    ((HEADER + "\n" + DENSE.replace("test", "caf\xe9") + "\n").encode("latin-1"),
     "not UTF-8 text (byte 0xe9 on line 2)"),
    (b"", "empty file"),
    (b"\xef\xbb\xbf", "empty file"),
    (b"  \r\n\n", "empty file"),
    ((HEADER + "\n" + DENSE.replace("test", "t\x00") + "\n").encode(), "NUL byte on line 2"),
    (b",,,\n", "header, column 1: empty name"),
])
def test_unreadable_files_are_one_line_naming_the_file(tmp_path, data, text):
    p = tmp_path / "m.csv"
    p.write_bytes(data)
    msg = one_line_error(p)
    assert msg.startswith("m.csv") and text in msg, msg


def test_a_directory_is_one_line(tmp_path):
    (tmp_path / "d.csv").mkdir()
    assert "d.csv" in one_line_error(tmp_path / "d.csv")
