"""Write the golden prediction records: ``simulate(...).to_dict()`` of random configurations.

The golden file was written from main at 0cbab4a, before the one-engine redesign, so that the
redesign can be checked value by value (``tests/test_golden.py`` replays a sample each run;
``python tests/golden/make_golden.py --check`` replays every case). Since the runtime model was
rewritten (shared family parameters, intervals), only the plan and bound keys are compared.

Each case holds the call (``config`` keyword arguments plus ``simulate`` options) and either the
record or the one-line error it raised. Usage::

    python tests/golden/make_golden.py            # write tests/golden/golden.jsonl.gz
    python tests/golden/make_golden.py --check    # compare the current code with every case
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import random
import sys
from pathlib import Path

HERE = Path(__file__).parent
GOLDEN = HERE / "golden.jsonl.gz"
PUBLISHED = HERE.parent.parent / "gnasim" / "data" / "published_measurements.csv"
PROFILES = ("a100", "h100", "h200", "b200", "b300")


def _axis(rng: random.Random) -> dict:
    L = rng.choice([rng.randint(2, 40), rng.randint(2, 300), rng.randint(100, 5000)])
    D = rng.choice([1, 1, 1, 2, 3]) if L >= 4 else 1
    D = min(D, L // 2) or 1
    K = rng.randint(2, max(2, L // D))
    S = rng.choice([1, 1, rng.randint(1, K)])
    return dict(L=L, K=K, S=S, D=D, C=rng.random() < 0.2)


def random_case(rng: random.Random, profiles: dict) -> dict:
    rank = rng.choice([1, 2, 3])
    axes = [_axis(rng) for _ in range(rank)]
    if rank == 3:  # keep 3-D layouts small enough for thousands of cases
        for a in axes:
            a["L"] = min(a["L"], rng.randint(4, 120))
            a["D"] = min(a["D"], max(1, a["L"] // 2))
            a["K"] = min(a["K"], a["L"] // a["D"]) if a["L"] // a["D"] >= 2 else 2
            a["K"] = max(a["K"], 2)
            if a["K"] * a["D"] > a["L"]:
                a["D"] = 1
            a["S"] = min(a["S"], a["K"])
    config = dict(input_size=[a["L"] for a in axes], window_size=[a["K"] for a in axes],
                  stride=[a["S"] for a in axes], dilation=[a["D"] for a in axes],
                  causal=[a["C"] for a in axes],
                  batch=rng.choice([1, 1, 2, 4]), heads=rng.choice([1, 8, 24, 40]),
                  head_dim=rng.choice([32, 64, 128, 128, 256]),
                  dtype=rng.choice(["fp16", "fp16", "bf16", "fp32", "fp8"]))
    if rng.random() < 0.2:
        config["heads_kv"] = rng.choice([1, 2, config["heads"]])
    if rng.random() < 0.1:
        config["head_dim_v"] = rng.choice([32, 64, 128])
    hw = rng.choice((None,) + PROFILES + PROFILES)
    opts: dict = {"hardware": hw}
    explicit = hw is None or rng.random() < 0.4
    if explicit:
        config["q_tile"] = [rng.choice([1, 2, 4, 8, 16, 32, 64, 128, rng.randint(1, 20)])
                            for _ in range(rank)]
        config["kv_tile"] = [rng.choice([1, 2, 4, 8, 16, 32, 64, 128, rng.randint(1, 20)])
                             for _ in range(rank)]
    if hw is not None:
        kernels = profiles[hw]
        opts["kernel"] = rng.choice([None] + kernels)
    if hw is None or rng.random() < 0.3:
        opts["kv_tiling"] = rng.choice(["static", "dynamic"])
    if rng.random() < 0.2:
        opts["attention_fraction"] = round(rng.uniform(0.1, 0.9), 3)
        if rng.random() < 0.5:
            opts["total_steps"] = 50
            opts["full_attention_steps"] = rng.randint(0, 20)
    if rng.random() < 0.25:
        opts["backward"] = True
        if hw is None or rng.random() < 0.5:
            opts["bwd_q_tile"] = [rng.choice([1, 2, 4, 8, 16, 64, 128]) for _ in range(rank)]
            opts["bwd_kv_tile"] = [rng.choice([1, 2, 4, 8, 16, 64, 128]) for _ in range(rank)]
    return {"config": config, "options": opts}


def published_cases() -> list[dict]:
    """Every row of the shipped published measurements, as a call on its GPU's profile."""
    gpu_profile = {"H100-SXM": "h100", "B200": "b200"}
    cases = []
    with open(PUBLISHED, newline="") as fh:
        for row in csv.DictReader(fh):
            ints = lambda s: [int(v) for v in s.split("x")] if s else None  # noqa: E731
            config = dict(input_size=ints(row["layout"]), window_size=ints(row["window"]),
                          stride=ints(row["stride"]), dilation=ints(row["dilation"]),
                          causal=[bool(int(v)) for v in row["causal"].split("x")],
                          batch=int(row["batch"]), heads=int(row["heads"]),
                          head_dim=int(row["head_dim"]), dtype=row["dtype"])
            if row["q_tile"]:
                config["q_tile"], config["kv_tile"] = ints(row["q_tile"]), ints(row["kv_tile"])
            hw = next((p for g, p in gpu_profile.items() if row["gpu"].startswith(g)), "h100")
            cases.append({"config": config, "options": {"hardware": hw},
                          "published": row["implementation"]})
    # the published bounds of the GNA paper
    for stride in [(1, 1, 1), (2, 1, 1), (1, 1, 8), (2, 1, 8), (1, 8, 8), (2, 8, 8), (16, 8, 8)]:
        cases.append({"config": dict(input_size=[30, 48, 80], window_size=[18, 24, 24],
                                     stride=list(stride), q_tile=[4, 8, 8], kv_tile=[2, 8, 8]),
                      "options": {"attention_fraction": 0.607, "backward": True,
                                  "bwd_q_tile": [4, 8, 8], "bwd_kv_tile": [2, 8, 8]}})
    for stride in [(1, 1), (16, 1), (16, 16)]:
        cases.append({"config": dict(input_size=[256, 256], window_size=[80, 80],
                                     stride=list(stride), q_tile=[16, 16], kv_tile=[16, 8]),
                      "options": {}})
    return cases


def _fresh_caches() -> None:
    """0cbab4a's axis-plan cache could drop keys it was about to read once full (a KeyError
    after thousands of calls); the golden file was written with an empty cache per case."""
    import gnasim.plan.tiling as tiling

    clear = getattr(tiling, "clear_plan_cache", None)
    if clear is not None:
        clear()


def run_case(case: dict) -> dict:
    from gnasim import GNAConfig, GnasimError, simulate

    opts = dict(case["options"])
    _fresh_caches()
    for key in ("bwd_q_tile", "bwd_kv_tile"):
        if key in opts:
            opts[key] = tuple(opts[key])
    try:
        return {"record": simulate(GNAConfig(**case["config"]), **opts).to_dict()}
    except GnasimError as err:
        return {"error": str(err)}


def same(a, b, rel: float) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            return False
        if math.isnan(a) and math.isnan(b):
            return True
        return math.isclose(a, b, rel_tol=rel, abs_tol=0.0) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b))
    return a == b


def model_keys() -> set[str]:
    """Top-level record keys that come from the runtime model (rewritten on purpose after the
    golden file was written: the transferable model of issue 10) and the notes."""
    from gnasim import record

    parts = {"runtime", "runtime_fraction", "backward_runtime", "notes"}
    return {c.name.split(".", 1)[0] for c in record.COLUMNS if c.part in parts} | {
        "bound", "dense_bound", "baseline", "predicted_waves", "predicted_ctas",
        "predicted_clock_fraction", "tile_time_us", "masked_tile_time_us", "mask_cost_factor",
        "masked_tile_pairs", "masks_every_tile", "time_components_ms", "speedup_factors"}


def differences(expected: dict, got: dict, rel: float = 1e-12) -> list[str]:
    """Keys of the tile plan and bounds whose values differ (or that one side lacks), as short
    strings; runtime-model keys are not compared (:func:`model_keys`)."""
    if "error" in expected or "error" in got:
        return [] if expected == got else [f"expected {expected}, got {got}"]
    skip = model_keys()
    e = {k: v for k, v in expected["record"].items() if k not in skip}
    g = {k: v for k, v in got["record"].items() if k not in skip}
    out = [f"missing {k}" for k in e if k not in g] + [f"extra {k}" for k in g if k not in e]
    out += [f"{k}: {e[k]!r} != {g[k]!r}" for k in e if k in g and not same(e[k], g[k], rel)]
    return out


def load() -> list[dict]:
    with gzip.open(GOLDEN, "rt") as fh:
        return [json.loads(line) for line in fh]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare every case with the current code")
    ap.add_argument("-n", type=int, default=5200, help="random cases")
    ap.add_argument("--seed", type=int, default=20261203)
    args = ap.parse_args(argv)
    if args.check:
        bad = 0
        cases = load()
        for i, case in enumerate(cases):
            diff = differences(case["expected"], run_case(case))
            if diff:
                bad += 1
                if bad <= 20:
                    print(f"case {i}: {case['config']} {case['options']}: {diff[:4]}")
        print(f"{len(cases) - bad} of {len(cases)} cases equal at rel 1e-12")
        return 1 if bad else 0
    from gnasim import load_profile

    profiles = {p: [k.name for k in load_profile(p).kernels] for p in PROFILES}
    rng = random.Random(args.seed)
    cases = published_cases() + [random_case(rng, profiles) for _ in range(args.n)]
    errors = 0
    with gzip.open(GOLDEN, "wt") as fh:
        for case in cases:
            case["expected"] = run_case(case)
            errors += "error" in case["expected"]
            fh.write(json.dumps(case, sort_keys=True) + "\n")
    print(f"wrote {len(cases)} cases ({errors} raise a GnasimError) to {GOLDEN}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
