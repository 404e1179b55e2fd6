"""Sweep worker processes: ordered chunks from a process pool whose workers die with the parent.

Workers are forked after the parent has installed its Ctrl-C/SIGTERM handlers and opened the
output, so each one, when it starts:

* asks the kernel to SIGKILL it when the parent dies (Linux ``prctl(PR_SET_PDEATHSIG)``) and
  exits at once if the parent is already gone; where ``prctl`` does not exist, a watchdog thread
  polls the parent's process id instead;
* restores the default SIGTERM action (a worker must not inherit the parent's "finish the chunk"
  handler) and ignores SIGINT (Ctrl-C reaches the whole process group; the parent decides);
* closes the parent's lock and output descriptors and points stdin and stdout at ``/dev/null``,
  so nothing the parent owns is held open by a worker.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Iterator

from gnasim.explore.blocks import SweepPlan
from gnasim.explore.columns import compute_chunk
from gnasim.explore.sinks import csv_bytes

_PLAN: SweepPlan | None = None
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (its parent now) ends."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent_pid:          # the parent died before the line above
        os._exit(1)
    if not armed:
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(0.5)
            os._exit(1)
        threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _init(plan: SweepPlan, parent_pid: int, inherited: tuple[int, ...]) -> None:
    global _PLAN
    die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in inherited:
        try:
            os.close(fd)
        except OSError:
            pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)
    os.close(null)
    _PLAN = plan


def _chunk(bi: int, lo: int, hi: int, fmt: str):
    table = compute_chunk(_PLAN, bi, lo, hi, fmt)
    return csv_bytes(table) if fmt == "csv" else table


class ParallelChunks:
    """Ordered ``(rows, payload)`` results from a process pool, at most 2 x jobs chunks in flight.

    ``inherited`` lists the parent's descriptors that workers close at start.
    """

    Broken = BrokenProcessPool

    def __init__(self, plan: SweepPlan, chunks: Iterator, fmt: str, jobs: int,
                 inherited: list[int]):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("fork") if sys.platform != "win32" else None
        self.ex = ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init,
                                      initargs=(plan, os.getpid(),
                                                tuple(fd for fd in inherited if fd >= 0)))
        self.chunks, self.fmt, self.depth = chunks, fmt, 2 * jobs

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        pending: deque = deque()
        for bi, lo, hi in self.chunks:
            pending.append((hi - lo, self.ex.submit(_chunk, bi, lo, hi, self.fmt)))
            if len(pending) >= self.depth:
                n, fut = pending.popleft()
                yield n, fut.result()
        while pending:
            n, fut = pending.popleft()
            yield n, fut.result()

    def close(self) -> None:
        self.ex.shutdown(wait=True, cancel_futures=True)
