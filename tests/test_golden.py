"""Predictions equal the golden records written before the one-engine redesign (rel 1e-12).

``tests/golden/golden.jsonl.gz`` holds 5,224 ``simulate(...).to_dict()`` records from 0cbab4a:
every published case and random ranks 1-3, strides, dilation, causal axes, both KV tilings,
backward plans, every shipped profile and kernel (errors included). A fixed sample runs here;
``python tests/golden/make_golden.py --check`` replays all of them.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "golden"))
import make_golden  # noqa: E402

CASES = make_golden.load()
SAMPLE = [CASES[i] for i in range(30)] + random.Random(8).sample(CASES[30:], 570)


@pytest.mark.parametrize("chunk", range(6))
def test_golden_sample_unchanged(chunk):
    bad = []
    for case in SAMPLE[chunk::6]:
        diff = make_golden.differences(case["expected"], make_golden.run_case(case))
        if diff:
            bad.append(f"{case['config']} {case['options']}: {diff[:3]}")
    assert not bad, bad[:5]
