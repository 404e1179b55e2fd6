"""The calibration corpus: built-in datasets, their provenance, uncertainties and row filters."""

from __future__ import annotations

import csv
import math
import re
import time
from pathlib import Path

import pytest

from gnasim.calibration.corpus import (DATASETS, corpus, dataset_names, forward_rows, get_dataset,
                                       gpu_profiles, load_corpus, load_dataset, model_scope,
                                       select, unmatched_gpus)
from gnasim.calibration.measurements import DATA_DIR, UNCERTAINTY_FLOOR, load_measurements
from gnasim.errors import MeasurementError
from gnasim.hardware.profile import load_profiles

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"natten_published": 14, "cudnn_frontend_sdpa": 406, "flash_attention_charts": 233,
          "gnasim_h100_suite": 50, "gnasim_h100_holdout": 43, "gnasim_h200_suite": 33}


def test_every_dataset_ships_inside_the_package_and_is_documented():
    readme = (DATA_DIR / "README.md").read_text()
    headings = " ".join(ln for ln in readme.splitlines() if ln.startswith("## "))
    assert set(dataset_names()) == set(COUNTS)
    for d in DATASETS:
        assert d.path.is_file() and d.path.parent == DATA_DIR
        assert f"`{d.name}`" in headings, d.name
        assert d.file in readme
        assert "../" not in d.provenance and "shared" not in d.provenance
    assert "../shared" not in readme and "/work/" not in readme
    on_disk = {p.name for p in DATA_DIR.glob("*.csv")}
    assert on_disk == {d.file for d in DATASETS}          # no unregistered data file


def test_every_row_of_every_dataset_loads():
    for s in corpus():
        assert s.rows == COUNTS[s.dataset.name], s.dataset.name
        ms = load_dataset(s.dataset.name)
        assert not ms.errors and not ms.warnings and len(ms) == s.rows
        assert all(m.dataset == s.dataset.name for m in ms.rows)
        assert sum(s.gpus.values()) == sum(s.passes.values()) == s.rows


def test_loading_the_whole_corpus_is_fast():
    load_corpus()                                         # warm imports and profiles
    best = math.inf
    for _ in range(3):             # best of 3, in CPU time: the machine's cores may be shared
        t = time.process_time()
        rows = load_corpus()
        best = min(best, time.process_time() - t)
    assert best < 0.5, best
    assert len(rows) == sum(COUNTS.values())


def test_public_datasets_keep_every_row_with_its_source():
    rows = load_dataset("cudnn_frontend_sdpa").rows
    assert all(re.fullmatch(r"NVIDIA/cudnn-frontend@3929da2:benchmark/sdpa_benchmark_training/"
                            r"results/\S+\.csv", m.source) for m in rows)
    assert {m.gpu for m in rows} == {"GB200", "H200"}
    assert {m.pass_ for m in rows} == {"fwd", "bwd"}
    assert {m.dtype for m in rows} == {"bf16", "fp8", "mxfp8"}
    assert sum(m.deterministic is True for m in rows) == 118
    assert all(m.deterministic is not True for m in rows if m.pass_ == "fwd")
    for m in rows:   # library versions match the note the source's version columns became
        backend = re.search(r"cuDNN backend (\d+), frontend ([\d.]+)", m.note)
        b = int(backend.group(1))
        assert m.versions == {"cudnn": f"{b // 10000}.{b // 100 % 100}.{b % 100}",
                              "cudnn-frontend": backend.group(2)}
    charts = load_dataset("flash_attention_charts").rows
    assert {m.source.split("@")[0].split(" ")[0] for m in charts} == {
        "Dao-AILab/flash-attention", "pytorch/benchmark"}
    assert {m.pass_ for m in charts} == {"fwd", "fwd+bwd"}


def _flops(m) -> float:
    """The charts' convention: 4 S^2 d H B, halved if causal, x3.5 for fwd+bwd."""
    c = m.config
    s = c.input_size[0]
    f = 4.0 * s * s * c.head_dim * c.heads * c.batch * (0.5 if any(c.causal) else 1.0)
    return f * (3.5 if m.pass_ == "fwd+bwd" else 1.0)


def test_chart_rows_reproduce_their_chart_value_and_carry_its_reading_uncertainty():
    for m in load_dataset("flash_attention_charts").rows:
        chart = float(re.search(r"chart value ([\d.]+)", m.note).group(1))
        assert _flops(m) / (m.attention_ms * 1e-3) / 1e12 == pytest.approx(chart, rel=2e-5)
        if "read off the chart" in m.note:
            # +/-1 % reading error, combined with the label's rounding to an integer
            assert m.uncertainty == pytest.approx(math.hypot(0.01, 0.5 / chart), abs=6e-5)
            assert 0.01 <= m.uncertainty <= 0.02
        else:
            assert m.uncertainty == UNCERTAINTY_FLOOR       # tritonbench logs are exact


def test_exact_rows_carry_the_precision_of_their_printed_time():
    path = get_dataset("cudnn_frontend_sdpa").path
    with path.open(newline="") as fh:
        raw = list(csv.DictReader(fh))
    for row, m in zip(raw, load_dataset("cudnn_frontend_sdpa").rows):
        decimals = len(row["attention_ms"].partition(".")[2])
        expected = max(UNCERTAINTY_FLOOR, 0.5 * 10 ** -decimals / m.attention_ms)
        assert m.uncertainty == pytest.approx(expected, abs=6e-5)
        assert m.uncertainty < 0.01                         # exact rows outweigh chart reads


def test_own_runs_are_copies_of_validate_data():
    src = ROOT / "validate" / "data"
    if not src.is_dir():
        pytest.skip("not a source checkout")
    for stem in ("h100_suite", "h100_holdout", "h200_suite"):
        assert (DATA_DIR / f"gnasim_{stem}.csv").read_bytes() == (src / f"{stem}.csv").read_bytes()
    assert get_dataset("gnasim_h100_holdout").role == "holdout"
    assert {d.role for d in DATASETS if d.name != "gnasim_h100_holdout"} == {"fit"}


def _without_gb200() -> list:
    return [p for p in load_profiles() if p.name != "gb200"]


def test_gpus_without_a_profile_are_reported_not_fatal():
    summaries = {s.dataset.name: s for s in corpus()}
    assert summaries["cudnn_frontend_sdpa"].profiles == {"GB200": "gb200", "H200": "h200"}
    assert summaries["flash_attention_charts"].profiles == {"H100-SXM": "h100",
                                                             "A100-SXM": "a100"}
    rows = load_corpus()
    assert unmatched_gpus(rows) == {}
    assert unmatched_gpus(rows, _without_gb200()) == {"GB200": 350}
    assert gpu_profiles(["h100 sxm", "GB300", "RTX 4090", "B300", "L40"]) == {
        "h100 sxm": "h100", "GB300": "gb300", "RTX 4090": "rtx4090", "B300": "b300", "L40": None}


def test_model_scope_leaves_out_what_the_model_cannot_predict_with_a_reason():
    rows = load_corpus()
    scope = model_scope(rows, _without_gb200())
    assert len(scope.rows) + len(scope.left_out) == len(rows)
    assert all(not m.block_scaled and m.gpu != "GB200" for m in scope.rows)
    assert {m.pass_ for m in scope.rows} == {"fwd", "bwd", "fwd+bwd"}   # both passes are modelled
    reasons = scope.reasons()
    assert reasons["gpu GB200: no hardware profile"] == 350
    assert not any(why.startswith("pass") for _, why in scope.left_out)
    assert all(why.startswith("dtype mxfp8") for m, why in scope.left_out if m.block_scaled
               and m.gpu != "GB200")
    msg = scope.message()
    assert msg.startswith(f"left out {len(scope.left_out)} rows") and "\n" not in msg
    assert model_scope(load_dataset("natten_published").rows).left_out == []


def test_select_and_forward_rows():
    rows = load_corpus(["cudnn_frontend_sdpa", "flash_attention_charts"])
    fwd = forward_rows(rows)
    assert len(fwd) == 148 + 162 and all(m.pass_ == "fwd" for m in fwd)
    wan = select(rows, gpus=["gb200"], passes=["fwd"], dtypes=["BF16"])
    assert wan and all(m.gpu == "GB200" and m.dtype == "bf16" for m in wan)
    assert len(select(rows, datasets=["flash_attention_charts"], implementations=["fa3"])) == 48
    assert select(rows, passes=["bwd"], datasets=["flash_attention_charts"]) == []
    assert len(load_corpus(roles=("holdout",))) == 43


def test_unknown_dataset_is_one_line():
    with pytest.raises(MeasurementError, match=r"^dataset: 'nope' is not one of \['natten_pub"):
        load_dataset("nope")


def test_default_measurements_are_unchanged():
    """compare / calibrate still read only the published NATTEN rows by default."""
    ms = load_measurements()
    assert len(ms) == 14 and {m.dataset for m in ms.rows} == {""}
    assert all(m.pass_ == "fwd" and m.uncertainty == UNCERTAINTY_FLOOR for m in ms.rows)


def test_corpus_stats_flops_reproduce_the_cudnn_tflops_column():
    """benchmarks/corpus_stats.py counts FLOPs as cuDNN's benchmark does (exact masked pairs,
    backward 2.5x): its TFLOP/s match the source files' own column (kept out of the dataset)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("corpus_stats",
                                                  ROOT / "benchmarks" / "corpus_stats.py")
    stats = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stats)
    rows = load_dataset("cudnn_frontend_sdpa").rows

    def rate(model: str, tokens: int, pass_: str, det: bool) -> float:
        m, = [r for r in rows if f"model {model}" in r.note and r.config.input_size == (tokens,)
              and r.pass_ == pass_ and bool(r.deterministic) == det and r.dtype == "bf16"
              and r.gpu == "GB200"]
        return stats.tflops(m)
    # wan22 and gpt_oss results files on GB200 (TFLOPS column, rounded to whole TFLOP/s there)
    for model, tokens, pass_, det, source in [("wan22_a14b", 7800, "fwd", False, 1552),
                                               ("wan22_a14b", 7800, "bwd", False, 1393),
                                               ("wan22_a14b", 75600, "bwd", True, 1017),
                                               ("gpt_oss", 32768, "fwd", False, 104),
                                               ("gpt_oss", 16384, "bwd", False, 188),
                                               ("gpt_oss", 2048, "bwd", True, 134)]:
        assert rate(model, tokens, pass_, det) == pytest.approx(source, abs=0.6), (model, tokens)
