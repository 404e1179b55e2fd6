"""Flat against box tiling on published problems: tile bound, wasted FLOPs, predicted time.

For each problem and GPU, the box row is the GPU's default NATTEN kernel with its default tiles
(token-permuted box tiles) and the flat row is ``flex-flat`` (FlexAttention's default path,
128-token blocks, no permutation). Every number is computed by ``gnasim.simulate``; predicted
times come from the runtime model of the shipped profiles and change when it does.

Run: python benchmarks/flat_vs_box.py                 (prints the markdown table)
     python benchmarks/flat_vs_box.py --update-docs   (rewrites the table in docs/flat-tiling.md)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from gnasim import GNAConfig, simulate
from gnasim.config import format_tile

DOC = Path(__file__).resolve().parents[1] / "docs" / "flat-tiling.md"
START, END = "<!-- flat-vs-box:start -->", "<!-- flat-vs-box:end -->"
GPUS = ("h100", "b200")


@dataclass(frozen=True)
class Problem:
    name: str
    config: GNAConfig


PROBLEMS = (
    # GNA paper (arXiv 2504.16922): HunyuanVideo 720p, 30x48x80 tokens, window 18x24x24
    Problem("HunyuanVideo", GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24),
                                      heads=24, head_dim=128)),
    Problem("HunyuanVideo, stride 16x8x8",
            GNAConfig(input_size=(30, 48, 80), window_size=(18, 24, 24), stride=(16, 8, 8),
                      heads=24, head_dim=128)),
    # nvidia-cosmos/cosmos-predict2 @ 661da47: configs/base/config_natten.py (2B layers 3, 4,
    # 6-9, 27: window (-1, 12, 24), stride (1, 4, 8), base size (-1, 44, 80)), config_video2world.py
    # (720p 16 fps: state_t = 24 latent frames; 2B: 16 heads of 128 channels)
    Problem("Cosmos-Predict2 2B 720p", GNAConfig(input_size=(24, 44, 80),
                                                 window_size=(24, 12, 24), stride=(1, 4, 8),
                                                 heads=16, head_dim=128)),
    # GNA paper: FLUX 4K, 256x256 tokens, window 80x80
    Problem("FLUX 4K", GNAConfig(input_size=(256, 256), window_size=(80, 80), heads=24,
                                 head_dim=128)),
    Problem("FLUX 4K, stride 16x16", GNAConfig(input_size=(256, 256), window_size=(80, 80),
                                               stride=(16, 16), heads=24, head_dim=128)),
)


def rows() -> list[list[str]]:
    out = []
    for prob in PROBLEMS:
        for gpu in GPUS:
            for tiling in ("multi-dim", "flat"):
                res = simulate(prob.config, gpu, tiling=tiling)
                rec = res.to_dict()
                tiles = f"{rec['q_tile']} / {rec['kv_tile']}"
                rt = res.runtime
                out.append([
                    prob.name, gpu.upper(), f"{tiling} ({res.kernel}, {tiles})",
                    f"{rec['tile_speedup']:.3f}",
                    f"{100 * rec['flops_wasted'] / rec['flops_computed']:.1f}%",
                    f"{rec['flops_computed'] / rec['flops_useful']:.2f}",
                    f"{rt.time_ms:.3f}" if rt is not None else "n/a",
                    f"{rt.speedup_with_permute:.2f}x" if rt is not None else "n/a",
                ])
    return out


HEADER = ["problem", "GPU", "tiling (kernel, Q / KV tile)", "tile bound", "wasted FLOPs",
          "computed / useful", "predicted time (ms)", "predicted speedup"]


def table() -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(r) + " |" for r in rows()]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    text = table()
    if "--update-docs" not in argv:
        print(text)
        return
    doc = DOC.read_text(encoding="utf-8")
    if START not in doc or END not in doc:
        sys.exit(f"{DOC}: markers {START} / {END} not found")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    DOC.write_text(f"{head}{START}\n{text}\n{END}{tail}", encoding="utf-8")
    print(f"wrote the table into {DOC}")


if __name__ == "__main__":
    main(sys.argv[1:])
