"""Bad input: a typed API error whose one-line message names the parameter and the rule."""

import pytest

from gnasim import ConfigError, GNAConfig, HardwareProfileError, load_profile, simulate


@pytest.mark.parametrize("kwargs,words", [
    (dict(input_size=10, window_size=11), ["window_size", "axis 0", "larger than input_size"]),
    (dict(input_size=10, window_size=4, stride=5), ["stride", "larger than window_size"]),
    (dict(input_size=10, window_size=4, dilation=3), ["dilation", "window_size x dilation"]),
    (dict(input_size=(10, 10), window_size=(3, 3, 3)), ["window_size", "3 values", "2 axes"]),
    (dict(input_size=(10, 0), window_size=2), ["input_size", "axis 1", ">= 1"]),
    (dict(input_size=10, window_size=1), ["window_size", ">= 2"]),
    (dict(input_size=10, window_size=4, stride=0), ["stride", ">= 1"]),
    (dict(input_size=10, window_size=-4), ["window_size", ">= 2"]),
    (dict(input_size=10, window_size=4, q_tile=(2, 2)), ["q_tile", "2 values"]),
    (dict(input_size=10, window_size=4, q_tile=0), ["q_tile", ">= 1"]),
    (dict(input_size=10, window_size=4, batch=0), ["batch", ">= 1"]),
    (dict(input_size=10, window_size=4, heads=6, heads_kv=4), ["heads_kv", "multiple"]),
    (dict(input_size=10, window_size=4, dtype="int8"), ["dtype", "int8"]),
    (dict(input_size=10, window_size=4, causal=2), ["causal"]),
    (dict(input_size="ten", window_size=4), ["input_size", "not a list of integers"]),
])
def test_config_errors_name_parameter_and_rule(kwargs, words):
    with pytest.raises(ConfigError) as err:
        GNAConfig(**kwargs)
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_scalars_broadcast_and_strings_parse():
    c = GNAConfig(input_size="30x48x80", window_size=8, stride="1,2,4", causal="1 0 0")
    assert c.window_size == (8, 8, 8) and c.stride == (1, 2, 4) and c.causal == (True, False, False)


def test_unknown_hardware_and_bad_tile_rank():
    cfg = GNAConfig(input_size=(16, 16), window_size=4)
    with pytest.raises(HardwareProfileError, match="unknown profile 'z100'"):
        simulate(cfg, "z100")
    with pytest.raises(ConfigError, match="q_tile: 3 values"):
        cfg.with_tiles((4, 4, 4), (4, 4))
    with pytest.raises(ConfigError, match="kv_tile"):
        GNAConfig(input_size=(16, 16), window_size=4, q_tile=(4, 4), kv_tile=(4, 4, 4))


def test_missing_tiles_without_hardware():
    with pytest.raises(ConfigError, match="tile shapes"):
        simulate(GNAConfig(input_size=16, window_size=4))


def test_malformed_profile_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nsm_count = "many"\n')
    with pytest.raises(HardwareProfileError) as err:
        load_profile(str(bad))
    assert "bad.toml" in str(err.value) and "\n" not in str(err.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed\n")
    with pytest.raises(HardwareProfileError, match="not valid TOML"):
        load_profile(str(broken))


def test_attention_fraction_range():
    cfg = GNAConfig(input_size=16, window_size=4, q_tile=4, kv_tile=4)
    with pytest.raises(ConfigError, match="attention_fraction"):
        simulate(cfg, attention_fraction=1.5)
    with pytest.raises(ConfigError, match="full_attention_steps"):
        simulate(cfg, attention_fraction=0.5, full_attention_steps=60, total_steps=50)


# -- hardware profiles: every number in a physical range, every failure one line -----------------
def _profile_with(tmp_path, edit, name="h100"):
    import tomllib

    from gnasim.hardware.profile import profile_dirs
    from gnasim.hardware.write import to_toml

    src = next(d for d in profile_dirs() if (d / f"{name}.toml").is_file())
    data = tomllib.loads((src / f"{name}.toml").read_text())
    edit(data)
    path = tmp_path / "bad.toml"
    text = to_toml(data)                      # the writer refuses inf and NaN: spell them here
    path.write_text(text.replace('"@nan@"', "nan").replace('"@inf@"', "inf"))
    return path


def _set(path, value):
    def edit(data):
        d = data
        for k in path[:-1]:
            d = d.setdefault(k, {})       # shipped GPU files have no [model] of their own
        d[path[-1]] = _spelled(value)
    return edit


def _spelled(value):
    if isinstance(value, float) and value != value:
        return "@nan@"
    if value == INF:
        return "@inf@"
    return {k: _spelled(v) for k, v in value.items()} if isinstance(value, dict) else value


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("key,value,words", [
    ("clock_ghz", NAN, ["clock_ghz", "nan", "[0.1, 5] GHz"]),
    ("clock_ghz", INF, ["clock_ghz", "inf", "[0.1, 5] GHz"]),
    ("clock_ghz", 1e-308, ["clock_ghz", "1e-308", "[0.1, 5] GHz"]),
    ("memory_bandwidth_gbs", INF, ["memory_bandwidth_gbs", "[10, 100000] GB/s"]),
    ("memory_bandwidth_gbs", 0.0, ["memory_bandwidth_gbs", "[10, 100000] GB/s"]),
    ("tensor_tflops.fp16", NAN, ["tensor_tflops.fp16", "[0.1, 100000] TFLOPS"]),
    ("tensor_tflops.bf16", -1.0, ["tensor_tflops.bf16", "TFLOPS"]),
    ("exp2_per_clk_per_sm", INF, ["exp2_per_clk_per_sm", "[1, 1024] per clock per SM"]),
    ("sm_count", 2**63, ["sm_count", "[1, 1024] SMs"]),
    ("sm_count", 0, ["sm_count", "[1, 1024] SMs"]),
    ("fp32_tflops", NAN, ["fp32_tflops", "TFLOPS"]),
    ("memory_gb", 1e9, ["memory_gb", "GB"]),
    ("l2_mb", -50.0, ["l2_mb", "MB"]),
    ("smem_per_sm_kb", INF, ["smem_per_sm_kb", "KB"]),
    ("smem_per_cta_kb", 229.0, ["smem_per_cta_kb", "more than smem_per_sm_kb"]),
    ("boost_clock_ghz", 1.0, ["boost_clock_ghz", "below clock_ghz"]),
    ("name", "x" * 100_000, ["name"]),
    ("display_name", "y" * 100_000, ["display_name", "100,000 characters"]),
    ("model.launch_latency_us", NAN, ["model.launch_latency_us", "[0, 1000] us"]),
    ("model.clock_time_constant_ms", 0.0, ["model.clock_time_constant_ms", "(0, 100000] ms"]),
    ("model.kernels.hopper-fna.tensor_efficiency", INF, ["tensor_efficiency", "(0, 1]"]),
    ("model.kernels.hopper-fna.cta_overhead_us", -1.0, ["cta_overhead_us", "[0, 100] us"]),
    ("model.calibration", {"rows": NAN}, ["calibration", "finite"]),
])
def test_profile_numbers_have_physical_ranges(tmp_path, key, value, words):
    path = _profile_with(tmp_path, _set(key.split("."), value))
    with pytest.raises(HardwareProfileError) as err:
        load_profile(str(path))
    msg = str(err.value)
    assert "\n" not in msg and "bad.toml" in msg and len(msg) < 400, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("edit,words", [
    (lambda d: d.update(kernels=[{**_kernel("hopper"), "forward": [
        {"head_dims": [-64], "gemm": [64, 128], "rank1": ["64/128"]}]}]),
     ["kernels.0.forward.0.head_dims.0", "[1, 1024]"]),
    (lambda d: d.update(kernels=[{**_kernel("hopper"), "forward": [
        {"head_dims": [64], "gemm": [64, 128], "rank1": ["99999/128"]}]}]),
     ["kernels.0.forward.0", "more than 4096 tokens"]),
    (lambda d: d.update(kernels=[{**_kernel("hopper"), "forward": [
        {"gemm": [64, 128], "rank1": ["64/128"]}]}]),
     ["kernels.0", "needs head_dims"]),
    (lambda d: d.update(kernels=[{**_kernel("ampere"), "forward": [
        {"gemm": [48, 48], "generate": "equal"}]}], default_kernel="cutlass-fna"),
     ["kernels.0.forward.0", "power-of-two gemm"]),
])
def test_profile_kernel_tables_are_checked(tmp_path, edit, words):
    path = _profile_with(tmp_path, edit)
    with pytest.raises(HardwareProfileError) as err:
        load_profile(str(path))
    msg = str(err.value)
    assert "\n" not in msg and "bad.toml" in msg, msg
    for w in words:
        assert w in msg, msg


def _kernel(table: str) -> dict:
    import tomllib

    from gnasim.hardware.profile import profile_dirs

    d = next(d for d in profile_dirs() if (d / "kernels" / f"{table}.toml").is_file())
    return tomllib.loads((d / "kernels" / f"{table}.toml").read_text())["kernels"][0]


def test_unreadable_profile_files_are_one_line(tmp_path):
    cases = []
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'name = "caf\xe9"\n')
    cases.append((str(latin), "not UTF-8 text"))
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1 << 20) + "\n")
    cases.append((str(big), "more than 1,048,576"))
    deep = tmp_path / "deep.toml"
    deep.write_text("a = " + "[" * 100_000 + "]" * 100_000 + "\n")
    cases.append((str(deep), "too deeply"))
    long_key = tmp_path / "long_key.toml"
    long_key.write_text("k" * 100_000 + " = 1\n" + _profile_with(tmp_path, lambda d: None).read_text())
    cases.append((str(long_key), "(100,000 characters)"))
    cases.append(("z" * 100_000, "unknown profile"))
    cases.append(("/" + "z" * 100_000 + ".toml", "does not exist"))
    for text, words in cases:
        with pytest.raises(HardwareProfileError) as err:
            load_profile(text)
        msg = str(err.value)
        assert "\n" not in msg and words in msg and len(msg) < 400, msg[:200]


def test_cli_refuses_a_nonsense_profile_in_one_line(tmp_path):
    import json

    from typer.testing import CliRunner

    from gnasim.cli import app

    path = _profile_with(tmp_path, _set(["clock_ghz"], 1e-308))
    runner = CliRunner()
    for args in (["predict", "-i", "64", "-w", "8", "--hardware", str(path), "--format", "json"],
                 ["tiles", "-i", "64", "--hardware", str(path)]):
        res = runner.invoke(app, args)
        assert res.exit_code == 2, res.output
        assert "clock_ghz" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    good = runner.invoke(app, ["predict", "-i", "64", "-w", "8", "--hardware", "h100",
                               "--format", "json"])
    assert good.exit_code == 0 and "NaN" not in good.stdout and "Infinity" not in good.stdout
    json.loads(good.stdout)
