"""Running design-space sweeps: a grid of GNA configurations, one ``predict`` record per row.

The grid is described by a :class:`SweepSpec` (from command-line flags or a TOML/YAML file). Every
per-axis field (``input_size``, ``window_size``, ``stride``, ``dilation``, ``causal``, ``q_tile``,
``kv_tile``) takes one or more *axis grids*; an axis grid gives a set of values per axis::

    "1:16 1 8"      axis 0: 1..16, axis 1: 1, axis 2: 8     (ranges are inclusive, a:b:step too)
    "all"           every value the rules allow (stride 1..K, dilation 1..L//K, causal 0 and 1)
    "2,4,8x8x8"     axis 0: 2, 4 or 8; axes 1 and 2: 8       (axes split on spaces or 'x')
    "8"             one value, broadcast to every axis (as ``predict`` does)

How it is fast
--------------
The GNA mask is an AND of per-axis masks, so every count in a ``predict`` record is a product of
per-axis counts (:mod:`gnasim.tiling`). A *block* fixes everything that is not per-axis (hardware,
kernel, head dim, layout, tile shape); inside a block each axis has a list of options
``(window, stride, dilation, causal)`` whose per-axis statistics are computed once with
:func:`gnasim.tiling.axis_plan`. A row is one option per axis (plus an attention share), and its
columns are products of the per-axis statistics, gathered and multiplied with numpy for a chunk of
rows at a time. Invalid options (stride > window, ...) are filtered per axis, so the number of
invalid combinations is exact without enumerating them.

Every column is declared once in :mod:`gnasim.record`, and a chunk's columns are the record's
formulas evaluated on numpy arrays (:mod:`gnasim.explore.columns`): the numbers are those of
:meth:`gnasim.simulate.SimulationResult.to_dict` (to about 1e-15 relative). With a hardware
profile, the runtime-model columns come from the same runtime model (:mod:`gnasim.model`), fed
with per-row launch structure built from per-axis facts.

Output is streamed in chunks to ``FILE.partial`` (CSV: whole chunks appended; Parquet: one row
group per chunk), then renamed over ``FILE`` when the sweep ends or is interrupted, so ``FILE`` is
always a complete, readable table; ``resume=True`` keeps the rows already written (after checking
that they are this sweep's first rows) and computes the rest.
"""

from __future__ import annotations


import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator


from gnasim.errors import ConfigError
from gnasim.explore.columns import _arrow, column_type, compute_chunk
from gnasim.explore.keys import DEFAULT_CHUNK_ROWS, PARALLEL_MIN_ROWS
from gnasim.explore.blocks import SweepPlan, iter_chunks, plan_sweep
from gnasim.explore.grid import SweepSpec, spec_from_mapping
from gnasim.explore.sinks import _CsvSink, _ParquetSink, _csv_bytes, _schema, _verify_prefix, csv_header, output_format



def sweep_table(spec: SweepSpec, fmt: str = "parquet"):
    """The whole sweep as one pyarrow Table (in memory: for small sweeps and notebooks)."""
    pa, _ = _arrow()
    plan = plan_sweep(spec)
    tables = [compute_chunk(plan, bi, lo, hi, fmt) for bi, lo, hi in iter_chunks(plan)]
    if not tables:
        return pa.table({c: pa.array([], column_type(c, fmt) or pa.string()) for c in plan.columns})
    return pa.concat_tables(tables)


def sweep_frame(spec: SweepSpec | dict[str, Any]):
    """The whole sweep as a pandas DataFrame (``notes`` as lists, like ``to_dict()``)."""
    if isinstance(spec, dict):
        spec = spec_from_mapping(spec)
    return sweep_table(spec).to_pandas()


# worker processes ------------------------------------------------------------------------------
_WORKER_PLAN: SweepPlan | None = None


def _worker_init(plan: SweepPlan) -> None:
    global _WORKER_PLAN
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the parent handles Ctrl-C
    _WORKER_PLAN = plan


def _worker_chunk(bi: int, lo: int, hi: int, fmt: str):
    table = compute_chunk(_WORKER_PLAN, bi, lo, hi, fmt)
    return _csv_bytes(table) if fmt == "csv" else table


@dataclass
class SweepSummary:
    out: str
    format: str
    combinations: int
    rows: int
    invalid: dict[str, int]
    skipped_groups: list[str]
    written: int
    resumed_rows: int
    seconds: float
    jobs: int
    interrupted: bool

    @property
    def rows_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["invalid_total"] = sum(self.invalid.values())
        d["rows_per_second"] = self.rows_per_second
        return d




class _StopFlag:
    """Ctrl-C / SIGTERM: finish the chunk being written, then stop (a second one stops at once)."""

    def __init__(self) -> None:
        self.stop = False
        self.saved: dict[int, Any] = {}

    def _handler(self, signum, frame):
        if self.stop:
            raise KeyboardInterrupt
        self.stop = True

    def __enter__(self) -> "_StopFlag":
        import threading
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.saved.items():
            signal.signal(sig, old)


def run_sweep(spec: SweepSpec, out: str | os.PathLike, resume: bool = False,
              jobs: int | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS,
              progress: Callable[[int, int], None] | None = None,
              show_progress: bool = False) -> SweepSummary:
    """Run a sweep into ``out`` (.csv or .parquet).

    Rows go to ``out.partial`` in whole chunks; the file is renamed over ``out`` when the sweep
    ends or is interrupted (Ctrl-C, SIGTERM, or ``progress(done, total)`` raising
    KeyboardInterrupt), so ``out`` is always a complete table. ``resume=True`` keeps the rows
    already written (``out.partial`` if a hard kill left one, else ``out``) after checking that
    they are this sweep's first rows.
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    if chunk_rows < 1:
        raise ConfigError(f"chunk_size: must be >= 1, got {chunk_rows}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs: must be >= 1, got {jobs}")
    if not out.parent.is_dir():
        raise ConfigError(f"out: directory '{out.parent}' does not exist")
    plan = plan_sweep(spec)
    total = plan.rows
    if total == 0:
        why = ", ".join(f"{n:,} {r}" for r, n in plan.invalid.most_common()) or \
            "; ".join(plan.skipped) or "the grid is empty"
        raise ConfigError(f"sweep: no valid configuration in the grid ({why})")
    schema = _schema(plan, fmt)
    if fmt == "csv":
        sink: Any = _CsvSink(out, csv_header(plan.columns))
    else:
        sink = _ParquetSink(out, schema)
    done = 0
    src = None
    if resume:
        src, done = sink.existing()
        if src is not None and done:
            _verify_prefix(plan, src, fmt, done, chunk_rows)
    resumed = done
    if jobs is None:
        jobs = min(os.cpu_count() or 1, 8) if total - done >= PARALLEL_MIN_ROWS else 1
    sink.open(src)
    interrupted = False
    bar = _progress_bar(show_progress, total, done)
    pool = None
    try:
        with _StopFlag() as flag:
            chunks = iter_chunks(plan, chunk_rows, start=done)
            if jobs > 1:
                pool = _parallel(plan, chunks, fmt, jobs)
                results: Any = pool
            else:
                results = ((hi - lo, _csv_bytes(compute_chunk(plan, bi, lo, hi, fmt))
                            if fmt == "csv" else compute_chunk(plan, bi, lo, hi, fmt))
                           for bi, lo, hi in chunks)
            for n, payload in results:
                sink.write(payload)
                done += n
                if bar is not None:
                    bar[0].update(bar[1], completed=done)
                if progress is not None:
                    progress(done, total)
                if flag.stop:
                    interrupted = True
                    break
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        # keep out.partial (complete chunks, resumable) and leave out untouched
        sink.close(publish=False)
        raise
    finally:
        if pool is not None:
            pool.close()
        if bar is not None:
            bar[0].stop()
    sink.close(publish=True)
    return SweepSummary(
        out=str(out), format=fmt, combinations=plan.combinations, rows=total,
        invalid=dict(plan.invalid.most_common()), skipped_groups=plan.skipped,
        written=done - resumed, resumed_rows=resumed, seconds=time.perf_counter() - t0,
        jobs=jobs, interrupted=interrupted)


class _parallel:
    """Ordered results from a process pool, with at most 2 x jobs chunks in flight."""

    def __init__(self, plan: SweepPlan, chunks: Iterator, fmt: str, jobs: int):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork") if sys.platform != "win32" else None
        self.ex = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_worker_init,
                                      initargs=(plan,))
        self.chunks, self.fmt, self.depth = chunks, fmt, 2 * jobs

    def __iter__(self):
        from collections import deque
        pending: deque = deque()
        for bi, lo, hi in self.chunks:
            pending.append((hi - lo, self.ex.submit(_worker_chunk, bi, lo, hi, self.fmt)))
            if len(pending) >= self.depth:
                n, fut = pending.popleft()
                yield n, fut.result()
        while pending:
            n, fut = pending.popleft()
            yield n, fut.result()

    def close(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)


def _progress_bar(show: bool, total: int, done: int):
    if not show:
        return None
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeRemainingColumn)
    console = Console(stderr=True)
    if not console.is_terminal:
        return None
    prog = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=console, transient=True)
    task = prog.add_task("sweep", total=total, completed=done)
    prog.start()
    return prog, task
