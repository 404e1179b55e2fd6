"""NATTEN profiler command lines pasted into ``gnasim predict``: accepted, and the flags that
change the problem or the kernel change the prediction (flags from ``src/natten/profiler.py`` and
the command lines of ``docs/profiler.md``, SHI-Labs/NATTEN)."""

import json
import shlex

import pytest
from typer.testing import CliRunner

from gnasim import GNAConfig, simulate
from gnasim.cli import app, join_multi_values

runner = CliRunner()
HUNYUAN = "--backprop -b 1 -n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8"


def run(line: str):
    return runner.invoke(app, join_multi_values(["predict", *shlex.split(line)]),
                         env={"COLUMNS": "80"})


def record(line: str) -> dict:
    res = run(f"{line} --hardware h100 --format json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# the command lines of NATTEN's profiler docs (after `python -m natten.profiler`), then variations
# over every flag
NATTEN_LINES = [
    "-i 8 16 24 -d 128",
    "-i 8 16 24 -d 128 -w 2 4 3",
    "--dry-run --dtype bf16 -i 16 16 16 -d 128",
    HUNYUAN,
    HUNYUAN + " --optimize",
    "--backend cudnn -d 128 -i 32768",
    "--backend hopper-fna -d 128 -i 32768 -w 2048",
    "--backend hopper-fna -d 128 -i 32768 -w 2048 -s 256",
    "--backend hopper-fna -d 128 -i 32768 -w 2048 -s 2048",
    "--backend cudnn -n 24 -d 128 -i 256 256",
    "--backend hopper-fna --q-tile 16 8 --kv-tile 16 8 -n 24 -d 128 -i 256 256 -w 80 80",
    "--backend hopper-fna --q-tile 16 8 --kv-tile 16 8 -n 24 -d 128 -i 256 256 -w 80 80 -s 16 16",
    "--backend cutlass-fna -n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8",
    "--backend flex-fna --compile --warmup-steps 3 -i 30 48 80 -w 18 24 24",
    "--backend fav2 -i 4096",
    "--backend xformers --dtype fp32 -i 64 64",
    "--fmha-backend hopper-fmha --add-kv 77 -i 30 48 80 -w 18 24 24",
    "--fmha-backend flex-fmha -i 64 64 -w 16 16",
    "--backend hopper-fna --schedule pp -i 64 64 -w 16 16 -d 128",
    "--backend hopper-fna --schedule non -i 64 64 -w 16 16",
    "--persistent -i 64 64 -w 16 16",
    "--dtype e4m3 -i 1024 -w 64",
    "--dtype e5m2 -i 1024 -w 64 --backend flex-fna",
    "--backprop --backward-q-tile 4 4 4 --backward-kv-tile 4 4 8 -d 128 -i 30 48 80 -w 18 24 24",
    "-c 1 0 0 -i 16 32 32 -w 8 8 8",
    "-c True False -i 64 64 -w 8 8",
    "--dilation 2 2 -i 64 64 -w 8 8",
    "--heads-kv 4 -n 24 -i 64 64 -w 16 16",
    "--dim-value 32 -d 64 -i 64 64 -w 16 16",
    "--add-kv 16 --try-fuse-add-kv -i 32 32 32 -w 8 8 8",
    "--optimize --optimize-warmup-steps 1 --max-configs 3 -i 30 48 80 -w 18 24 24 -s 16 8 8",
    "--dry-run --max-configs 0 --backprop -i 30 48 80 -w 18 24 24",
    "--dry-run --backend flex-fna -i 30 48 80 -w 18 24 24",
]


@pytest.mark.parametrize("line", NATTEN_LINES)
def test_natten_profiler_lines_are_accepted(line):
    res = run(f"{line} --hardware h100 --format json")
    assert res.exit_code == 0, res.output
    assert res.stderr == ""
    out = json.loads(res.stdout)
    assert out  # a record, or the dry run's list of configurations


def test_dash_h_and_defaults_are_natten_s():
    res = run("-h")
    assert res.exit_code == 0 and "--backprop" in res.stdout and "--optimize" in res.stdout
    d = record("-i 64 64")
    assert d["head_dim"] == 64 and d["window_size"] == "64x64" and d["batch"] == 1
    assert d["heads"] == 1 and d["dtype"] == "fp16" and d["stride"] == "1x1"
    assert record("-i 64 64 -d 128")["head_dim"] == 128


def test_backprop_adds_the_backward_pass_only():
    fwd = record("-n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8")
    both = record(HUNYUAN)
    assert not any(k.startswith("bwd_") for k in fwd)
    assert both["bwd_q_tile"] == "4x4x4" and both["bwd_kv_tile"] == "4x4x8"   # h100 d128 first
    assert both["predicted_time_ms"] == fwd["predicted_time_ms"]
    tiled = record(HUNYUAN + " --backward-q-tile 2 4 8 --backward-kv-tile 2 8 8")
    assert tiled["bwd_q_tile"] == "2x4x8"
    assert tiled["bwd_tile_pairs_visited"] != both["bwd_tile_pairs_visited"]
    assert tiled["flops_computed"] == both["flops_computed"]


def test_backend_changes_kernel_and_time():
    base = "-n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8"
    times = {}
    for backend in ("hopper-fna", "flex-fna", "cutlass-fna"):
        d = record(f"{base} --backend {backend}")
        assert d["kernel"] == backend
        times[backend] = d["predicted_time_ms"]
    assert len(set(times.values())) == 3
    assert record(f"{base} --backend cutlass-fna")["kv_tiling"] == "dynamic"
    bad = run(f"{base} --backend blackwell-fna --hardware h100")
    assert bad.exit_code == 2 and "blackwell-fna" in bad.stderr


def test_fmha_and_sdpa_backends_are_the_dense_baseline():
    base = "-n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8"
    plain = record(base)
    flex = record(f"{base} --fmha-backend flex-fmha")
    hopper = record(f"{base} --fmha-backend hopper-fmha")
    assert plain["baseline"] == "cudnn-sdpa"
    assert flex["baseline"] == "flex-fna" and flex["fmha_backend"] == "flex-fmha"
    for d in (flex, hopper):
        assert d["predicted_time_ms"] == plain["predicted_time_ms"]      # the GNA kernel is kept
        assert d["predicted_dense_time_ms"] != plain["predicted_dense_time_ms"]
        assert d["predicted_speedup"] == pytest.approx(
            d["predicted_dense_time_ms"] / d["predicted_time_ms"])
    assert any("hopper-fmha" in n for n in hopper["notes"])
    assert not any("cannot run this causal pattern" in n for n in hopper["notes"])
    for sdpa in ("cudnn", "fav2", "xformers"):
        d = record(f"{base} --backend {sdpa}")
        assert d["backend"] == sdpa and any(f"--backend {sdpa} runs self attention" in n
                                            for n in d["notes"])
        assert d["predicted_dense_time_ms"] == plain["predicted_dense_time_ms"]


def test_tiles_change_the_answer():
    base = "-n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8"
    default = record(base)
    other = record(f"{base} --q-tile 2 8 8 --kv-tile 2 8 8")
    assert (default["q_tile"], other["q_tile"]) == ("4x4x8", "2x8x8")
    assert other["fully_block_sparse"] and not default["fully_block_sparse"]
    assert other["predicted_time_ms"] < default["predicted_time_ms"]
    assert other["tile_speedup"] == pytest.approx(10 / 0.9)   # = the FLOP bound, 115200/10368


def test_add_kv_counts_the_extra_flops_exactly():
    d = record("-b 2 -n 3 -d 64 --dim-value 32 -i 16 16 -w 4 4 --add-kv 10")
    tokens = 16 * 16
    assert d["add_kv"] == 10
    assert d["add_kv_flops"] == 2 * 3 * tokens * 10 * 2 * (64 + 32)
    assert any("--add-kv 10" in n for n in d["notes"])
    plain = record("-b 2 -n 3 -d 64 --dim-value 32 -i 16 16 -w 4 4")
    assert plain["flops_useful"] == d["flops_useful"] and "add_kv" not in plain


def test_measuring_flags_change_nothing_but_a_note():
    base = "-i 30 48 80 -w 18 24 24 -s 16 8 8"
    plain = record(base)
    noted = record(f"{base} --warmup-steps 3 --compile --optimize-warmup-steps 2")
    assert len(noted["notes"]) == len(plain["notes"]) + 1
    assert "nothing is timed" in noted["notes"][-1]
    assert {k: v for k, v in noted.items() if k != "notes"} == \
        {k: v for k, v in plain.items() if k != "notes"}


def test_schedule_and_persistent_notes():
    d = record("--backend hopper-fna --schedule pp -d 128 -i 64 64 -w 16 16")
    assert any("--schedule pp" in n and "not modelled" in n for n in d["notes"])
    d = record("--backend hopper-fna --schedule coop -d 128 -i 64 64 -w 16 16")
    assert not any("--schedule" in n for n in d["notes"])     # the tile config's own schedule
    d = record("--persistent -i 64 64 -w 16 16")
    assert any("--persistent applies to blackwell-fna only" in n for n in d["notes"])


def test_dry_run_lists_configs_with_padding_and_bound():
    rows = record("--dry-run -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8 --backend hopper-fna")
    assert [(r["q_tile"], r["kv_tile"]) for r in rows] == [("4x4x8", "4x4x8"), ("2x8x8", "2x8x8")]
    first = rows[0]
    assert first["default"] and first["pass"] == "forward"
    assert first["q_padding_tokens"] == 32 * 48 * 80 - 30 * 48 * 80   # 30 -> 32 on axis 0
    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8),
                    q_tile=(4, 4, 8), kv_tile=(4, 4, 8))
    assert first["tile_speedup"] == simulate(cfg).tile_speedup
    both = record("--dry-run --backprop -d 128 -i 30 48 80 -w 18 24 24 --backend hopper-fna")
    assert {r["pass"] for r in both} == {"forward", "backward"}
    assert sum(r["pass"] == "backward" for r in both) == 4
    a100 = json.loads(runner.invoke(app, join_multi_values(
        ["predict", "--dry-run", "-i", "30", "48", "80", "-w", "18", "24", "24", "--max-configs",
         "2", "--hardware", "a100", "--backend", "cutlass-fna", "--format", "json"])).stdout)
    assert len(a100) == 3 and a100[-1]["default"] and a100[-1]["q_tile"] == "4x4x4"  # 2 + default


def test_optimize_ranks_every_dry_run_config():
    line = "-n 24 -d 128 -i 30 48 80 -w 18 24 24 -s 16 8 8 --max-configs 0"
    d = record(f"{line} --optimize")
    dry = [r for r in record(f"{line} --dry-run") if r["pass"] == "forward"]
    ranked = d["optimize"]
    assert len(ranked) == len(dry)
    times = [r["predicted_time_ms"] for r in ranked]
    assert times == sorted(times)
    assert {"q_tile", "kv_tile", "predicted_time_ms"} <= ranked[0].keys()
    assert (d["kernel"], d["q_tile"], d["kv_tile"]) == \
        (ranked[0]["kernel"], ranked[0]["q_tile"], ranked[0]["kv_tile"])
    assert d["predicted_time_ms"] == ranked[0]["predicted_time_ms"]
    assert any(n.startswith("not calibrated on h100: cutlass-fna (datasheet-only);")
               for n in d["notes"])   # hopper-fna and flex-fna have h100 rows in the corpus
    for r in ranked:
        assert r["predicted_time_ms_low"] < r["predicted_time_ms"] < r["predicted_time_ms_high"]
    one = record(f"{line} --optimize --backend hopper-fna")
    assert {r["kernel"] for r in one["optimize"]} == {"hopper-fna"}
    assert not any("calibrated" in n for n in one["notes"])
    table = run(f"{line} --optimize --hardware h100")
    assert table.exit_code == 0 and "fastest first" in table.stdout and "default" in table.stdout
    bwd = record(f"{line} --optimize --backprop")["optimize_backward"]
    times = [r["predicted_bwd_time_ms"] for r in bwd]
    assert times == sorted(times) and all(r["bwd_calibration_status"] for r in bwd)
    assert len(bwd) == 4 + 100 + 225   # hopper-fna d128, cutlass-fna 64x64 + 128x128 (3-D)


def test_optimize_is_fast():
    """Every shipped 3-D config of the a100 profile (79) ranked in well under a second."""
    import time

    from gnasim.cli.predict import optimize
    from gnasim.hardware.profile import load_profile

    cfg = GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8),
                    heads=24, head_dim=128)
    prof = load_profile("a100")
    t = time.perf_counter()
    fwd, _, _ = optimize(cfg, prof, None, None, False, 0)
    assert len(fwd) == 79 and time.perf_counter() - t < 1.5
