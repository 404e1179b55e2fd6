"""What the GPU harness times: :class:`Case` (one GNA problem), the built-in suites, spec files."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable


def x_join(values) -> str:
    return "x".join(str(int(v)) for v in values)


@dataclass(frozen=True)
class Case:
    """One GNA problem to time (per-axis tuples)."""

    layout: tuple[int, ...]
    window: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    causal: tuple[bool, ...]
    q_tile: tuple[int, ...]
    kv_tile: tuple[int, ...]
    batch: int = 1
    heads: int = 8
    head_dim: int = 128
    dtype: str = "fp16"
    note: str = ""
    flex: bool = True
    bwd_q_tile: tuple[int, ...] | None = None     # backward tiles (``--backprop``); default: q_tile
    bwd_kv_tile: tuple[int, ...] | None = None

    @classmethod
    def make(cls, layout, window, stride=1, dilation=1, causal=False, q_tile=None, kv_tile=None,
             bwd_q_tile=None, bwd_kv_tile=None, **kw) -> Case:
        from gnasim.config import GNAConfig, parse_ints

        if bwd_q_tile is not None or bwd_kv_tile is not None:
            b = cls.make(layout, window, stride, dilation, causal, bwd_q_tile or q_tile,
                         bwd_kv_tile or kv_tile)
            kw.update(bwd_q_tile=b.q_tile, bwd_kv_tile=b.kv_tile)
        lay = parse_ints(layout, "layout")
        if isinstance(causal, str):                   # the schema writes causal as 0x1x0
            causal = tuple(bool(c) for c in parse_ints(causal, "causal"))
        cfg = GNAConfig(input_size=lay, window_size=window, stride=stride, dilation=dilation,
                        causal=causal, q_tile=q_tile, kv_tile=kv_tile)
        if cfg.q_tile is None or cfg.kv_tile is None:
            raise ValueError("every case needs q_tile and kv_tile")
        return cls(cfg.input_size, cfg.window_size, cfg.stride, cfg.dilation, cfg.causal,
                   cfg.q_tile, cfg.kv_tile, **kw)

    def config(self):
        from gnasim.config import GNAConfig

        return GNAConfig(input_size=self.layout, window_size=self.window, stride=self.stride,
                         dilation=self.dilation, causal=self.causal, q_tile=self.q_tile,
                         kv_tile=self.kv_tile, batch=self.batch, heads=self.heads,
                         head_dim=self.head_dim, dtype=self.dtype)

    def dense(self) -> Case:
        return replace(self, window=self.layout, stride=(1,) * len(self.layout),
                       dilation=(1,) * len(self.layout), note="")

    @property
    def is_dense(self) -> bool:
        return self.window == self.layout and not any(d > 1 for d in self.dilation)

    def label(self) -> str:
        bwd = ""
        if self.bwd_q_tile or self.bwd_kv_tile:
            bq, bkv = self.bwd_q_tile or self.q_tile, self.bwd_kv_tile or self.kv_tile
            bwd = f" bwd q{x_join(bq)} kv{x_join(bkv)}"
        return (f"{x_join(self.layout)} w{x_join(self.window)} s{x_join(self.stride)}"
                f" d{x_join(self.dilation)} c{x_join(self.causal)} q{x_join(self.q_tile)}"
                f" kv{x_join(self.kv_tile)}{bwd}"
                f" b{self.batch} h{self.heads} e{self.head_dim} {self.dtype}")


def _suite_smoke() -> list[Case]:
    kw = dict(heads=4, head_dim=128)
    return [
        Case.make(4096, 512, 1, q_tile=128, kv_tile=64, **kw),
        Case.make(4096, 512, 512, q_tile=128, kv_tile=64, **kw),
        Case.make("64x64", "32x32", "16x16", q_tile="16x8", kv_tile="8x8", **kw),
        Case.make("8x16x32", "4x8x8", "1x1x1", dilation="1x1x2", q_tile="2x8x8", kv_tile="2x4x8", **kw),
        Case.make(2048, 256, 1, causal=True, q_tile=128, kv_tile=64, **kw),
    ]


def _suite_h100() -> list[Case]:
    """1-D / 2-D / 3-D, NA / GNA / blocked, perfectly and partially block-sparse, realistic sizes."""
    one = dict(heads=8, q_tile=128, kv_tile=64)
    two = dict(heads=16, q_tile="16x8", kv_tile="8x8")
    flux = dict(heads=8, q_tile="16x8", kv_tile="8x8")
    three = dict(heads=8, q_tile="2x8x8", kv_tile="2x4x8")
    return [
        # 1-D 32768, window 2048: NA, strided, blocked (the NATTEN docs case)
        Case.make(32768, 2048, 1, note="1-D NA", **one),
        Case.make(32768, 2048, 256, note="1-D GNA, perfectly block-sparse", **one),
        Case.make(32768, 2048, 2048, note="1-D blocked", **one),
        Case.make(32768, 2048, 1, causal=True, note="1-D causal NA", **one),
        # 2-D 128x128, window 64x64
        Case.make("128x128", "64x64", "1x1", note="2-D NA", **two),
        Case.make("128x128", "64x64", "16x16", note="2-D GNA, perfectly block-sparse", **two),
        Case.make("128x128", "64x64", "8x8", note="2-D GNA, partially block-sparse", **two),
        Case.make("128x128", "64x64", "64x64", note="2-D blocked", **two),
        Case.make("128x128", "32x32", "1x1", dilation="2x2", note="2-D dilated NA", **two),
        # 2-D 256x256, window 80x80 (FLUX 4K)
        Case.make("256x256", "80x80", "1x1", note="2-D NA (FLUX 4K)", **flux),
        Case.make("256x256", "80x80", "16x16", note="2-D GNA (FLUX 4K)", **flux),
        # 3-D 30x48x80, window 18x24x24 (HunyuanVideo 720p)
        Case.make("30x48x80", "18x24x24", "1x1x1", note="3-D NA (Hunyuan)", **three),
        Case.make("30x48x80", "18x24x24", "16x8x8", note="3-D GNA (Hunyuan), perfectly block-sparse",
                  **three),
        Case.make("30x48x80", "18x24x24", "1x1x1", causal="1x0x0", note="3-D NA, causal in time",
                  flex=False, **three),
    ]


def _suite_bwd_smoke() -> list[Case]:
    """Small 1-3-D cases, with NATTEN's Hopper backward tiles where they differ from the forward's."""
    kw = dict(heads=4, head_dim=128)
    return [
        Case.make(4096, 512, 1, q_tile=128, kv_tile=64, bwd_q_tile=64, bwd_kv_tile=128, **kw),
        Case.make(4096, 512, 512, q_tile=128, kv_tile=64, **kw),
        Case.make(2048, 256, 1, causal=True, q_tile=128, kv_tile=64, **kw),
        Case.make("64x64", "32x32", "16x16", q_tile="16x8", kv_tile="8x8", bwd_q_tile="8x8",
                  bwd_kv_tile="16x8", **kw),
        Case.make("8x16x32", "4x8x8", "1x1x1", dilation="1x1x2", q_tile="2x8x8", kv_tile="2x4x8",
                  head_dim=64, heads=4),
        Case.make("16x32x32", "8x16x16", "4x8x8", causal="1x0x0", q_tile="4x4x8",
                  kv_tile="4x4x4", bwd_q_tile="4x4x4", bwd_kv_tile="4x4x8", flex=False, **kw),
    ]


SUITES: dict[str, Callable[[], list[Case]]] = {"smoke": _suite_smoke, "h100": _suite_h100,
                                               "bwd-smoke": _suite_bwd_smoke}


def load_spec(path: Path) -> list[Case]:
    """Cases from a JSON list of objects or a CSV with the schema's problem columns.

    Fields: layout, window, stride, dilation, causal, q_tile, kv_tile (``30x48x80`` strings or
    lists), batch, heads, head_dim, dtype, note, and optionally the backward tiles bwd_q_tile,
    bwd_kv_tile (for ``--backprop``).
    """
    text = Path(path).read_text()
    if Path(path).suffix.lower() == ".json":
        rows = json.loads(text)
        if isinstance(rows, dict):
            rows = rows.get("cases", [])
    else:
        rows = list(csv.DictReader(text.splitlines()))
    cases = []
    for i, r in enumerate(rows):
        try:
            kw = {k: r[k] for k in ("batch", "heads", "head_dim") if r.get(k) not in (None, "")}
            kw = {k: int(v) for k, v in kw.items()}
            if r.get("dtype"):
                kw["dtype"] = str(r["dtype"])
            if r.get("note"):
                kw["note"] = str(r["note"])
            for k in ("bwd_q_tile", "bwd_kv_tile"):
                if r.get(k):
                    kw[k] = r[k]
            cases.append(Case.make(r["layout"], r["window"], r.get("stride") or 1,
                                   r.get("dilation") or 1, r.get("causal") or 0,
                                   r.get("q_tile"), r.get("kv_tile"), **kw))
        except Exception as err:           # one line per bad row
            raise ValueError(f"{path}: case {i + 1}: {err}") from None
    return cases


def resolve_cases(suite: str | None, spec: Path | None) -> list[Case]:
    if (suite is None) == (spec is None):
        raise ValueError("give exactly one of --suite NAME or --spec FILE")
    if suite is not None:
        if suite not in SUITES:
            raise ValueError(f"unknown suite '{suite}' (known: {', '.join(sorted(SUITES))})")
        return SUITES[suite]()
    return load_spec(spec)
