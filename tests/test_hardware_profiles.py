"""Hardware profiles as data: shared kernel tables, inherited runtime models, dense baselines."""

import sys
from itertools import product
from pathlib import Path

import pytest

from gnasim.errors import HardwareProfileError
from gnasim.hardware.kernels import TileSet
from gnasim.hardware.profile import (list_profile_names, load_profile, load_profiles,
                                     profile_dirs, read_profile_file)
from gnasim.hardware.write import to_toml, write_profile

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHIPPED = next(d for d in profile_dirs() if (d / "kernels").is_dir())


def _raw(name: str) -> dict:
    return tomllib.loads((SHIPPED / f"{name}.toml").read_text())


def test_gpu_files_name_their_kernel_tables_instead_of_copying_them():
    tables = {p.stem for p in (SHIPPED / "kernels").glob("*.toml")}
    for name in list_profile_names():
        raw = _raw(name)
        assert isinstance(raw["kernels"], list) and set(raw["kernels"]) <= tables, name
    # GPUs of one architecture share one table: the same kernel objects, not equal copies
    h100, h200 = load_profile("h100"), load_profile("h200")
    assert all(a is b for a, b in zip(h100.kernels, h200.kernels))
    # FlexAttention's table is stored once for every architecture
    assert len({id(p.kernel("flex-fna")) for p in load_profiles()}) == 1


def test_shipped_gpu_files_take_the_shared_family_model():
    """No shipped GPU file holds or inherits a [model]: the family model gives it one, with its
    own power-derived sustained clock."""
    from gnasim.model.kernel import runtime_model

    for name in list_profile_names():
        raw = _raw(name)
        assert "model" not in raw and "model_from" not in raw, name
    h100, h200 = runtime_model(load_profile("h100")), runtime_model(load_profile("h200"))
    assert h100.kernels["hopper-fna"] == h200.kernels["hopper-fna"]      # one family
    b200, gb200 = runtime_model(load_profile("b200")), runtime_model(load_profile("gb200"))
    # same architecture, same fitted energy per FLOP: the higher power limit clocks higher
    assert gb200.sustained_clock_fraction > b200.sustained_clock_fraction


MODEL = {"launch_latency_us": 2.0, "kernels": {"hopper-fna": {"tensor_efficiency": 0.7,
                                                              "mask_ops_per_element": 9.0}}}


def _copy(tmp_path: Path, name: str, edit) -> Path:
    data = _raw(name)
    edit(data)
    path = tmp_path / f"{data['name']}.toml"
    path.write_text(to_toml(data))
    return path


def test_model_from_merges_own_keys_over_the_inherited_ones(tmp_path):
    _copy(tmp_path, "h100", lambda d: d.update(name="h100", model=MODEL))
    def edit(d):
        d.update(name="h200x", model_from="h100",
                 model={"launch_latency_us": 3.0,
                        "kernels": {"hopper-fna": {"tensor_efficiency": 0.5}}})
    prof = read_profile_file(_copy(tmp_path, "h200", edit))
    base = read_profile_file(tmp_path / "h100.toml").model
    assert prof.model.launch_latency_us == 3.0
    assert prof.model.kernels["hopper-fna"].tensor_efficiency == 0.5
    assert prof.model.kernels["hopper-fna"].mask_ops_per_element == \
        base.kernels["hopper-fna"].mask_ops_per_element
    assert prof.model.sustained_clock_fraction == base.sustained_clock_fraction


def test_model_from_beside_the_file_wins_and_cycles_are_refused(tmp_path):
    _copy(tmp_path, "h100", lambda d: d.update(name="h100", model={**MODEL, "launch_latency_us": 1.0}))
    child = read_profile_file(_copy(tmp_path, "h200", lambda d: d.update(model_from="h100")))
    assert child.model.launch_latency_us == 1.0          # tmp_path/h100.toml, not the shipped one
    _copy(tmp_path, "h100", lambda d: d.update(name="aa", model_from="bb"))
    _copy(tmp_path, "h100", lambda d: d.update(name="bb", model_from="aa"))
    with pytest.raises(HardwareProfileError, match="model_from: .*inherits from itself") as err:
        read_profile_file(tmp_path / "aa.toml")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("edit,words", [
    (lambda d: d.update(kernels=["hopper", "nosuch"]), ["kernels", "kernels/nosuch.toml"]),
    (lambda d: d.update(kernels="../h100"), ["kernels", "not a data file name"]),
    (lambda d: d.update(model_from="nosuch"), ["model_from", "nosuch.toml"]),
])
def test_bad_references_are_one_line(tmp_path, edit, words):
    path = _copy(tmp_path, "h200", edit)
    with pytest.raises(HardwareProfileError) as err:
        read_profile_file(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg


def test_a_kernel_table_may_sit_beside_the_profile(tmp_path):
    (tmp_path / "kernels").mkdir()
    table = tomllib.loads((SHIPPED / "kernels" / "flex.toml").read_text())
    table["kernels"][0]["forward"][0]["rank1"] = ["32/32"]
    (tmp_path / "kernels" / "flex.toml").write_text(to_toml(table))
    prof = read_profile_file(_copy(tmp_path, "h100", lambda d: d.update(name="h100y")))
    assert prof.kernel("flex-fna").tile_shapes(1) == [((32,), (32,))]
    assert load_profile("h100").kernel("flex-fna").tile_shapes(1) == [((64,), (64,))]


def test_dense_baseline_agrees_with_each_calibrated_dense_entry():
    for prof in load_profiles():
        base = prof.dense_baseline
        assert base.dense_only and len(base.dense_rows()) == 2
        if prof.model is None:          # datasheet-only profile (gb200, l40s, ...): nothing to agree
            continue
        calibrated = prof.model.kernels.get(prof.model.baseline)
        assert calibrated is not None
        assert (calibrated.dense_tile, calibrated.schedule) == (base.dense_tile, base.schedule), prof.name
    h100 = load_profile("h100")
    ada = h100.model_copy(update={"architecture": "ada"})
    assert ada.dense_baseline == load_profile("a100").dense_baseline


def test_written_profile_is_self_contained(tmp_path):
    from gnasim.model.kernel import runtime_model

    h200 = load_profile("h200")
    h200 = h200.model_copy(update={"model": runtime_model(h200)})   # the family model, written out
    out = write_profile(h200, h200.model, tmp_path / "h200-copy.toml")
    raw = tomllib.loads(out.read_text())
    assert isinstance(raw["kernels"], list) and isinstance(raw["kernels"][0], dict)
    assert "model_from" not in raw and "model" in raw
    back = read_profile_file(out).model_dump()
    want = h200.model_dump()
    for d in (back, want):
        d.pop("name"), d.pop("display_name")
    assert back == want


# -- generated tile sets -------------------------------------------------------------------------
def _brute_force(ts: TileSet, rank: int) -> list:
    """The enumeration as first written: every exponent tuple, filtered by its sum."""
    def fact(total, r):
        if r == 1:
            return [(total,)]
        e = total.bit_length() - 1
        return [tuple(1 << x for x in xs) for xs in product(range(1, e + 1), repeat=r) if sum(xs) == e]
    qp, kvp = ts.gemm
    qs = fact(qp, rank)
    if ts.generate == "any":
        return [(q, kv) for q in qs for kv in fact(kvp, rank)]
    if ts.generate == "equal":
        return [(q, q) for q in qs]
    if ts.generate == "one-axis-doubled":
        return [(q, tuple(v * (2 if i == ax else 1) for i, v in enumerate(q)))
                for q in qs for ax in range(rank)]
    ratio = kvp // qp
    mults = [(ratio,)] if rank == 1 else [
        tuple(1 << e for e in exps) for exps in product(range(ratio.bit_length()), repeat=rank)
        if sum(exps) == ratio.bit_length() - 1]
    return [(q, tuple(a * b for a, b in zip(q, m))) for q in qs for m in mults]


@pytest.mark.parametrize("rule,gemm", [
    ("equal", (64, 64)), ("equal", (256, 256)), ("any", (64, 128)), ("any", (128, 16)),
    ("one-axis-doubled", (64, 128)), ("one-axis-doubled", (8, 16)),
    ("kv-pow2-multiple", (32, 128)), ("kv-pow2-multiple", (16, 512)), ("kv-pow2-multiple", (64, 64)),
])
def test_generated_shapes_match_the_brute_force_enumeration(rule, gemm):
    ts = TileSet(gemm=gemm, generate=rule)
    for rank in (1, 2, 3, 4):
        shapes = ts.shapes(rank)
        assert shapes == _brute_force(ts, rank)
        assert ts.shape_count(rank) == len(shapes)


@pytest.mark.parametrize("rule,gemm,words", [
    ("any", (96, 64), ["power-of-two gemm", "[96, 64]"]),
    ("equal", (64, 128), ["Q == KV"]),
    ("one-axis-doubled", (64, 64), ["KV == 2 x Q"]),
    ("kv-pow2-multiple", (128, 64), ["KV >= Q"]),
    ("any", (8192, 64), ["gemm.0", "[1, 4096] tokens"]),
])
def test_generated_tile_set_rules(tmp_path, rule, gemm, words):
    def edit(d):
        d.update(name="a100x", kernels=[{**tomllib.loads(
            (SHIPPED / "kernels" / "ampere.toml").read_text())["kernels"][0],
            "forward": [{"gemm": list(gemm), "generate": rule}]}])
    path = _copy(tmp_path, "a100", edit)
    with pytest.raises(HardwareProfileError) as err:
        read_profile_file(path)
    msg = str(err.value)
    assert "\n" not in msg and "kernels.0.forward.0" in msg
    for w in words:
        assert w in msg


def test_huge_generated_enumerations_are_refused_at_once():
    ts = TileSet(gemm=(4096, 4096), generate="any")
    assert len(ts.shapes(3)) == ts.shape_count(3) == 55 * 55
    assert ts.shape_count(6) == 462 ** 2
    with pytest.raises(HardwareProfileError, match="213,444 rank-6 shapes, more than 10,000"):
        ts.shapes(6)
