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
per-axis counts (:mod:`gnasim.plan`). A *block* fixes everything that is not per-axis (hardware,
kernel, head dim, layout, tile shape); inside a block each axis has a list of options
``(window, stride, dilation, causal)`` whose per-axis statistics are computed once
(:func:`gnasim.plan.stats.axis_stats_many`). A row is one option per axis (plus an attention
share), and its columns are products of the per-axis statistics, gathered and multiplied with numpy for a chunk of
rows at a time. Invalid options (stride > window, ...) are filtered per axis, so the number of
invalid combinations is exact without enumerating them.

Every column is declared once in :mod:`gnasim.record`, and a chunk's columns are the record's
formulas evaluated on numpy arrays (:mod:`gnasim.explore.columns`): the numbers are those of
:meth:`gnasim.prediction.SimulationResult.to_dict` (to about 1e-15 relative). With a hardware
profile, the runtime-model columns come from the same runtime model (:mod:`gnasim.model`), fed
with per-row launch structure built from per-axis facts.

Output is streamed in chunks to ``FILE.partial`` (CSV: whole chunks appended; Parquet: one row
group per chunk) and renamed over ``FILE`` only when the table is complete, so ``FILE`` is always
the previous complete table or the new one, never a part. A run that stops early (Ctrl-C,
SIGTERM, a full disk, a kill) leaves ``FILE`` as it was and its rows in ``FILE.partial``;
``resume=True`` keeps those rows (after checking that they are this sweep's first rows) and
computes the rest, and a run without it starts over. An existing ``FILE`` that is not a table
with this sweep's columns is replaced only with ``force``; while a run writes ``FILE`` it holds
``FILE.lock``, so a second run aimed at the same file refuses in one line (:mod:`gnasim.files`,
:mod:`gnasim.explore.sinks`). Worker processes die with the parent
(:mod:`gnasim.explore.workers`).
"""

from __future__ import annotations


import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


from gnasim.errors import ConfigError, OutputError, require_extra
from gnasim.explore.columns import arrow_modules, column_type, compute_chunk
from gnasim.explore.keys import DEFAULT_CHUNK_ROWS, PARALLEL_MIN_ROWS
from gnasim.explore.blocks import SweepPlan, iter_chunks, plan_sweep
from gnasim.explore.grid import SweepSpec, spec_from_mapping
from gnasim.explore.sinks import csv_bytes, make_sink, output_format, verify_prefix
from gnasim.explore.workers import ParallelChunks
from gnasim.files import check_output_path, exclusive_lock, os_reason



def sweep_table(spec: SweepSpec, fmt: str = "parquet"):
    """The whole sweep as one pyarrow Table (in memory: for small sweeps and notebooks)."""
    pa, _ = arrow_modules()
    plan = plan_sweep(spec)
    tables = [compute_chunk(plan, bi, lo, hi, fmt) for bi, lo, hi in iter_chunks(plan)]
    if not tables:
        return pa.table({c: pa.array([], column_type(c, fmt) or pa.string()) for c in plan.columns})
    return pa.concat_tables(tables)


def sweep_frame(spec: SweepSpec | dict[str, Any]):
    """The whole sweep as a pandas DataFrame (``notes`` as lists, like ``to_dict()``)."""
    require_extra("pandas", "notebook", "sweep_frame")
    if isinstance(spec, dict):
        spec = spec_from_mapping(spec)
    return sweep_table(spec).to_pandas()


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
    partial: str | None = None      # where the rows of an interrupted run wait for --resume

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
              show_progress: bool = False, force: bool = False) -> SweepSummary:
    """Run a sweep into ``out`` (.csv or .parquet).

    ``out`` is only ever replaced, in one rename, by a complete table: rows go to
    ``out.partial`` in whole chunks, and a run that stops early (Ctrl-C, SIGTERM, ``progress``
    raising KeyboardInterrupt, a full disk, a kill) leaves ``out`` as it was and its rows in
    ``out.partial`` (``summary.partial``). ``resume=True`` keeps those rows (else the rows of
    ``out``) after checking that they are this sweep's first rows, and computes the rest;
    without it a run starts over. An existing ``out`` that is not a table with this sweep's
    columns is refused unless ``force``. A second run aimed at the same ``out`` while one is
    writing it is refused (:func:`gnasim.files.exclusive_lock`). Worker processes die with the
    process that started them.
    """
    t0 = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    arrow_modules()                      # pyarrow (the sweep extra) before any file is touched
    if chunk_rows < 1:
        raise ConfigError(f"chunk_size: must be >= 1, got {chunk_rows}")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"jobs: must be >= 1, got {jobs}")
    check_output_path(out)
    plan = plan_sweep(spec)
    total = plan.rows
    if total == 0:
        why = ", ".join(f"{n:,} {r}" for r, n in plan.invalid.most_common()) or \
            "; ".join(plan.skipped) or "the grid is empty"
        raise ConfigError(f"sweep: no valid configuration in the grid ({why})")
    sink = make_sink(out, fmt, plan)
    with exclusive_lock(out) as lock_fd:
        related = out.is_file() and sink.is_ours(out)
        if out.exists() and not related and not force:
            raise OutputError(f"out: '{out}' exists and is not a table of this sweep (other "
                              "columns, or not a table); pass --force to replace it, or choose "
                              "another file")
        src, done = sink.existing(use_out=related) if resume else (None, 0)
        if src is not None and done:
            verify_prefix(plan, src, fmt, done, chunk_rows)
        resumed = done
        if jobs is None:
            jobs = min(os.cpu_count() or 1, 8) if total - done >= PARALLEL_MIN_ROWS else 1
        interrupted = False
        if done == total:
            sink.publish_existing(src)
        else:
            interrupted, done = _write_rows(plan, sink, src, done, fmt, jobs, chunk_rows,
                                            progress, show_progress, [lock_fd])
    return SweepSummary(
        out=str(out), format=fmt, combinations=plan.combinations, rows=total,
        invalid=dict(plan.invalid.most_common()), skipped_groups=plan.skipped,
        written=done - resumed, resumed_rows=resumed, seconds=time.perf_counter() - t0,
        jobs=jobs, interrupted=interrupted,
        partial=str(sink.partial) if interrupted else None)


def _write_rows(plan: SweepPlan, sink: Any, src: Path | None, done: int, fmt: str, jobs: int,
                chunk_rows: int, progress: Callable[[int, int], None] | None,
                show_progress: bool, inherited: list[int]) -> tuple[bool, int]:
    """Stream the rows after ``done`` into the sink; (interrupted, rows in the file)."""
    total = plan.rows
    interrupted = False
    pool = None
    bar = None
    published = False
    try:
        with _StopFlag() as flag:
            sink.open(src, done)
            bar = _progress_bar(show_progress, total, done)
            chunks = iter_chunks(plan, chunk_rows, start=done)
            if jobs > 1:
                pool = ParallelChunks(plan, chunks, fmt, jobs, inherited + sink.descriptors())
                results: Any = pool
            else:
                results = ((hi - lo, _chunk_payload(plan, bi, lo, hi, fmt))
                           for bi, lo, hi in chunks)
            try:
                for n, payload in (() if flag.stop else results):
                    sink.write(payload)
                    done += n
                    if bar is not None:
                        bar[0].update(bar[1], completed=done)
                    if progress is not None:
                        progress(done, total)
                    if flag.stop:
                        break
                interrupted = done < total
            except KeyboardInterrupt:
                interrupted = True
            except ParallelChunks.Broken as err:
                if not flag.stop:
                    raise OutputError(f"sweep: a worker process died ({err}); "
                                      f"{_kept(sink)}") from None
                interrupted = True
            finally:
                if pool is not None:
                    pool.close()
            if interrupted:
                sink.stop()
            else:
                sink.publish()
            published = True
    except OSError as err:
        raise OutputError(f"out: cannot write '{sink.partial}': {os_reason(err)}; "
                          f"{_kept(sink)}") from None
    finally:
        if bar is not None:
            bar[0].stop()
        if not published:
            _abandon(sink)
    return interrupted, done


def _abandon(sink: Any) -> None:
    """After an error: keep what can be resumed, never touch ``out``."""
    try:
        sink.abandon()
    except Exception:
        pass


def _kept(sink: Any) -> str:
    where = f"'{sink.out}' is unchanged"
    if sink.fmt == "csv":
        return f"{where}, and {sink.partial} keeps the rows written so far (--resume continues)"
    return f"{where} (--resume continues from the last stop, if any)"


def _chunk_payload(plan: SweepPlan, bi: int, lo: int, hi: int, fmt: str):
    table = compute_chunk(plan, bi, lo, hi, fmt)
    return csv_bytes(table) if fmt == "csv" else table


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
