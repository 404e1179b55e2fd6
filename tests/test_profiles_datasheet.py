"""Datasheet facts of the shipped GPU profiles: power limits, datasheet-only profiles, and the
consistency of clock, SM count and tensor peak."""

import math
import sys

import pytest

from gnasim.errors import HardwareProfileError
from gnasim.hardware.profile import (list_profile_names, load_profile, load_profiles, profile_dirs,
                                     read_profile_file)
from gnasim.hardware.write import to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHIPPED = next(d for d in profile_dirs() if (d / "kernels").is_dir())
DATASHEET_ONLY = ("gb200", "gb300", "l40s", "rtx4090")


def test_every_shipped_profile_has_a_cited_power_limit():
    for prof in load_profiles():
        assert prof.power_w is not None and 10 <= prof.power_w <= 5000, prof.name
        assert any(s.startswith("power_w = ") for s in prof.sources), prof.name


def test_datasheet_only_profiles_load_without_a_model_section():
    for name in DATASHEET_ONLY:
        raw = tomllib.loads((SHIPPED / f"{name}.toml").read_text())
        assert "model" not in raw and "model_from" not in raw, name
        prof = load_profile(name)
        assert prof.model is None and prof.sources
        assert prof.kernel().name == prof.default_kernel


def test_gpu_names_in_measurements_find_their_own_profile():
    assert load_profile("GB200").name == "gb200"        # the cuDNN corpus rows say gpu = GB200
    assert load_profile("GB300").name == "gb300"
    assert load_profile("B300").name == "b300"
    assert load_profile("NVIDIA GeForce RTX 4090").name == "rtx4090"
    assert load_profile("L40S").name == "l40s"
    owners: dict[str, set[str]] = {}
    for p in load_profiles():
        for a in [p.name, *p.aliases]:
            owners.setdefault(a.lower(), set()).add(p.name)
    assert all(len(o) == 1 for o in owners.values())    # no name points at two profiles


def test_clock_sm_count_and_tensor_peak_agree():
    """The 16-bit dense peak is SMs x clock x a power-of-two FLOP/clk/SM (512 on GeForce Ada with
    FP32 accumulate, 1024 on Ada, 2048 on Ampere, 4096 on Hopper, 8192 on Blackwell)."""
    for prof in load_profiles():
        per_clk = prof.tensor_tflops["fp16"] * 1e12 / (prof.sm_count * prof.clock_ghz * 1e9)
        nearest = 2 ** round(math.log2(per_clk))
        assert per_clk == pytest.approx(nearest, rel=0.01), (prof.name, per_clk)
        assert prof.tensor_tflops["bf16"] == prof.tensor_tflops["fp16"]


@pytest.mark.parametrize("value", ["0.0", "5", "6000.0", "inf", "nan", "-350"])
def test_unphysical_power_is_one_line_naming_the_field(tmp_path, value):
    data = tomllib.loads((SHIPPED / "l40s.toml").read_text())
    data.update(name="l40sx", power_w=1.5)
    path = tmp_path / "l40sx.toml"
    path.write_text(to_toml(data).replace("power_w = 1.5", f"power_w = {value}"))
    with pytest.raises(HardwareProfileError) as err:
        read_profile_file(path)
    msg = str(err.value)
    assert "power_w" in msg and "\n" not in msg and "W" in msg


def test_names_listed_match_files():
    assert set(DATASHEET_ONLY) <= set(list_profile_names())
