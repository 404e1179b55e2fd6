"""hardware_profiles/kernels/dense.toml: dense-kernel tile facts per implementation, architecture
and head dim (data only; nothing loads it yet)."""

import sys

import pytest

from gnasim.config import parse_tile_pair
from gnasim.hardware.profile import profile_dirs

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

SHIPPED = next(d for d in profile_dirs() if (d / "kernels").is_dir())
ARCHS = {"ampere", "ada", "hopper", "blackwell"}
MMA = {"mma.sync", "wgmma", "tcgen05"}
SCHEDULES = {"persistent", "non-persistent"}
TILE_TABLES = {"forward", "forward_causal", "forward_fp8", "backward", "backward_causal",
               "backward_dq"}
# the implementation names of the calibration corpus (gnasim/data/*.csv)
CORPUS = {"fa2", "fa3", "triton-fa2", "xformers", "thunderkittens", "cudnn-sdpa"}


@pytest.fixture(scope="module")
def dense() -> dict:
    return tomllib.loads((SHIPPED / "kernels" / "dense.toml").read_text())["dense"]


def test_every_corpus_implementation_is_described(dense):
    assert set(dense) == CORPUS
    for name, impl in dense.items():
        assert impl["description"] and impl["sources"], name
        assert all("@" in s for s in impl["sources"]), name       # repository@commit, then path
        assert set(impl["architectures"]) <= ARCHS, name
        mma = impl["mma"]
        if isinstance(mma, str):
            assert mma in MMA, name
        else:
            assert set(mma) == set(impl["architectures"]) and set(mma.values()) <= MMA, name
        for pas, per_arch in impl["schedule"].items():
            assert pas in ("forward", "backward"), name
            assert set(per_arch) <= set(impl["architectures"]), name
            assert set(per_arch.values()) <= SCHEDULES, name


def test_every_tile_parses_and_every_architecture_is_known(dense):
    count = 0
    for name, impl in dense.items():
        assert "forward" in impl and "backward" in impl, name
        for table in set(impl) & TILE_TABLES:
            for arch, by_dim in impl[table].items():
                assert arch in ARCHS and arch in impl["architectures"], (name, table, arch)
                for key, text in by_dim.items():
                    assert 16 <= int(key) <= 256, (name, table, arch, key)
                    q, kv = parse_tile_pair(text)
                    assert len(q) == 1 and q[0] % 16 == 0 and kv[0] % 16 == 0, (name, text)
                    count += 1
        for table in (t for t in impl if t.endswith("_warps")):
            assert table.removesuffix("_warps") in TILE_TABLES, (name, table)
            for arch, by_dim in impl[table].items():
                tiles = impl[table.removesuffix("_warps")][arch]
                assert set(by_dim) <= set(tiles), (name, table, arch)
                assert all(w in (4, 8, 12, 16) for w in by_dim.values()), (name, table, arch)
        for text in impl.get("forward_candidates", []):
            parse_tile_pair(text)
    assert count >= 80


def test_forward_covers_each_architecture_and_unverified_entries_exist(dense):
    for name, impl in dense.items():
        assert set(impl["forward"]) == set(impl["architectures"]), name
        for ref in impl.get("unverified", []):
            table, arch, *key = ref.split(".")
            if table == "schedule":
                assert arch in impl["schedule"] and key[0] in impl["schedule"][arch], ref
            else:
                assert key[0] in impl[table][arch], (name, ref)
