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
