"""Sweep output files: CSV and Parquet sinks, the partial file, resume verification.

The file rules (the caller holds :func:`gnasim.files.exclusive_lock` for ``FILE`` throughout):

* Rows stream into ``FILE.partial`` (CSV: whole chunks appended with one ``write`` each;
  Parquet: one row group per chunk into ``FILE.partial.tmp``, which becomes ``FILE.partial``,
  footer and all, when a run stops). ``FILE`` is replaced, with one ``rename``, only by a
  complete table: an interrupted or failed run leaves ``FILE`` as it was and its rows in
  ``FILE.partial``.
* An existing ``FILE`` is replaced without ``force`` only if it is a table with this sweep's
  columns (a previous run of the same kind of sweep); anything else at that name is refused.
* Resuming takes the rows of ``FILE.partial`` (a torn last CSV line dropped; a Parquet partial
  without its footer ignored), else of ``FILE``, after checking them: the identity columns of
  every row, and every column of the first and the last chunk, against this sweep's rows.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, Sequence

from gnasim.errors import ConfigError
from gnasim.explore.blocks import SweepPlan, iter_chunks
from gnasim.explore.columns import arrow_modules, column_type, compute_chunk
from gnasim.explore.keys import IDENTITY_KEYS
from gnasim.files import os_errors


def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ConfigError(f"out: '{path.name}' must end in .csv or .parquet")


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class CsvSink:
    """CSV rows appended to ``FILE.partial``, renamed over ``FILE`` when complete."""

    fmt = "csv"

    def __init__(self, out: Path, header: bytes):
        self.out, self.partial, self.header = out, partial_path(out), header
        self.fd: int | None = None

    def is_ours(self, path: Path) -> bool:
        """Whether ``path`` is a CSV with this sweep's header line."""
        with open(path, "rb") as fh:
            return fh.readline() == self.header

    def existing(self, use_out: bool) -> tuple[Path | None, int]:
        """The file to resume from and its complete data rows (a torn last line is dropped)."""
        if self.partial.is_file():
            with open(self.partial, "rb") as fh:
                first = fh.readline()
            if first == self.header:
                with os_errors("resume", self.partial):
                    _truncate_torn_tail(self.partial)
                return self.partial, _count_complete_rows(self.partial)
            if first.endswith(b"\n") or not self.header.startswith(first):
                raise ConfigError(f"resume: {self.partial} has other columns than this sweep; "
                                  "run without --resume to start over")
            # killed before its header was complete: nothing to keep
        if use_out and self.out.is_file():
            return self.out, _count_complete_rows(self.out)
        return None, 0

    def open(self, src: Path | None, rows: int) -> None:
        """Start ``FILE.partial``: empty, the partial itself, or a copy of ``FILE`` (kept)."""
        with os_errors("out", self.partial):
            if src is not None and rows and src == self.out:
                shutil.copyfile(self.out, self.partial)
            if src is not None and rows:
                self.fd = os.open(self.partial, os.O_WRONLY | os.O_APPEND)
            else:
                self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                self.write(self.header)

    def write(self, payload: bytes) -> None:
        # one write() of whole lines: a regular-file write is not torn by Ctrl-C
        view = memoryview(payload)
        while view:
            view = view[os.write(self.fd, view):]

    def _close(self) -> None:
        if self.fd is not None:
            fd, self.fd = self.fd, None
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def stop(self) -> None:
        """Keep the rows written so far in ``FILE.partial``."""
        self._close()

    def publish(self) -> None:
        self._close()
        os.replace(self.partial, self.out)

    def abandon(self) -> None:
        """After a failed write: keep the complete lines in ``FILE.partial`` for --resume."""
        try:
            self._close()
        except OSError:
            pass

    def publish_existing(self, src: Path) -> None:
        """A resumed file that already holds every row becomes ``FILE`` as it is."""
        if src != self.out:
            os.replace(src, self.out)

    def descriptors(self) -> list[int]:
        return [] if self.fd is None else [self.fd]


class ParquetSink:
    """Parquet row groups written to ``FILE.partial.tmp``; on a stop it becomes ``FILE.partial``
    (a readable file with a footer), when complete it becomes ``FILE``."""

    fmt = "parquet"

    def __init__(self, out: Path, schema):
        self.out, self.partial, self.schema = out, partial_path(out), schema
        self.work = self.partial.with_name(self.partial.name + ".tmp")
        self.writer = None

    def _names(self, path: Path) -> list[str] | None:
        import pyarrow.parquet as pq
        try:
            return pq.ParquetFile(path).schema_arrow.names
        except Exception:      # not Parquet, or a hard-killed file without its footer
            return None

    def is_ours(self, path: Path) -> bool:
        return self._names(path) == self.schema.names

    def existing(self, use_out: bool) -> tuple[Path | None, int]:
        import pyarrow.parquet as pq
        if self.partial.is_file():
            names = self._names(self.partial)
            if names is not None and names != self.schema.names:
                raise ConfigError(f"resume: {self.partial} has other columns than this sweep; "
                                  "run without --resume to start over")
            if names is not None:
                return self.partial, pq.ParquetFile(self.partial).metadata.num_rows
        if use_out and self.out.is_file():
            return self.out, pq.ParquetFile(self.out).metadata.num_rows
        return None, 0

    def open(self, src: Path | None, rows: int) -> None:
        import pyarrow.parquet as pq
        with os_errors("out", self.work):
            self.writer = pq.ParquetWriter(self.work, self.schema)
            if src is not None and rows:
                old = pq.ParquetFile(src)
                for i in range(old.num_row_groups):      # row group by row group: flat memory
                    self.writer.write_table(old.read_row_group(i).cast(self.schema))

    def write(self, table) -> None:
        self.writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)

    def _close(self) -> bool:
        """Write the footer; False (and the work file removed) if that fails."""
        writer, self.writer = self.writer, None
        if writer is None:
            return False
        try:
            writer.close()
            return True
        except BaseException:
            _remove(self.work)
            raise

    def stop(self) -> None:
        """Keep the rows written so far in ``FILE.partial`` (replacing an older partial)."""
        if self._close():
            os.replace(self.work, self.partial)

    def publish(self) -> None:
        self._close()
        os.replace(self.work, self.out)
        _remove(self.partial)

    def publish_existing(self, src: Path) -> None:
        if src != self.out:
            os.replace(src, self.out)
        _remove(self.work)                  # a killed run's unfinished work file

    def abandon(self) -> None:
        """After a failed write: drop the unfinished work file, keep any older partial."""
        writer, self.writer = self.writer, None
        if writer is not None:
            try:
                writer.close()
            except BaseException:
                pass
        _remove(self.work)

    def descriptors(self) -> list[int]:
        return []


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def make_sink(out: Path, fmt: str, plan: SweepPlan) -> Any:
    if fmt == "csv":
        return CsvSink(out, csv_header(plan.columns))
    return ParquetSink(out, table_schema(plan, fmt))


def _count_complete_rows(path: Path) -> int:
    lines = 0
    with open(path, "rb") as fh:
        while True:
            buf = fh.read(1 << 24)
            if not buf:
                break
            lines += buf.count(b"\n")
    return max(lines - 1, 0)


def _truncate_torn_tail(path: Path) -> None:
    size = path.stat().st_size
    if size == 0:
        return
    with open(path, "rb+") as fh:
        pos = size
        while pos > 0:
            step = min(pos, 1 << 16)
            fh.seek(pos - step)
            buf = fh.read(step)
            nl = buf.rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                if keep != size:
                    fh.truncate(keep)
                return
            pos -= step
        fh.truncate(0)


def _tail_lines(path: Path, k: int) -> bytes:
    """The last ``k`` lines of a file that ends with a newline."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        pos = fh.tell()
        data = b""
        while pos > 0 and data.count(b"\n") <= k:
            step = min(pos, 1 << 20)
            pos -= step
            fh.seek(pos)
            data = fh.read(step) + data
    lines = data.split(b"\n")[:-1]
    return b"".join(line + b"\n" for line in lines[-k:])


def _head_lines(path: Path, skip: int, k: int) -> bytes:
    with open(path, "rb") as fh:
        for _ in range(skip):
            fh.readline()
        return b"".join(fh.readline() for _ in range(k))


def csv_header(columns: Sequence[str]) -> bytes:
    """The header line pyarrow's CSV writer puts above these columns."""
    return (",".join('"' + c.replace('"', '""') + '"' for c in columns) + "\n").encode()


def csv_bytes(table, header: bool = False) -> bytes:
    import pyarrow.csv as pacsv
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=header))
    return buf.getvalue()


def table_schema(plan: SweepPlan, fmt: str):
    pa, _ = arrow_modules()
    fields = []
    for key in plan.columns:
        t = column_type(key, fmt)
        if t is None:    # a column only simulate() knows: type of its first value
            t = compute_chunk(plan, 0, 0, 1, fmt, [key]).schema.field(key).type
            if t == pa.null():
                t = pa.string()
        fields.append(pa.field(key, t))
    return pa.schema(fields)


# -- resume verification ------------------------------------------------------------------------

def _existing_batches(src: Path, fmt: str, keys: list[str], chunk_rows: int) -> Iterator:
    """Identity columns of an existing output, streamed batch by batch."""
    pa, _ = arrow_modules()
    if fmt == "csv":
        import pyarrow.csv as pacsv
        types = {k: column_type(k, "csv") for k in keys}
        reader = pacsv.open_csv(src, convert_options=pacsv.ConvertOptions(
            include_columns=keys, column_types=types, strings_can_be_null=False))
        for batch in reader:
            yield pa.Table.from_batches([batch])
    else:
        import pyarrow.parquet as pq
        for batch in pq.ParquetFile(src).iter_batches(batch_size=chunk_rows, columns=keys):
            yield pa.Table.from_batches([batch])


def verify_prefix(plan: SweepPlan, src: Path, fmt: str, n_rows: int, chunk_rows: int) -> None:
    """The rows already in ``src`` must be this sweep's first rows: the identity columns of every
    row, and every column of the first and the last chunk, are compared with this sweep's."""
    if n_rows > plan.rows:
        raise ConfigError(f"resume: {src} has {n_rows:,} rows but this sweep has only "
                          f"{plan.rows:,} (run without --resume to overwrite it)")
    pa, _ = arrow_modules()
    try:
        chunks = _verify_identity(plan, src, fmt, n_rows, chunk_rows)
        for pos, bi, lo, hi in {chunks[0], chunks[-1]} if chunks else ():
            _verify_all_columns(plan, src, fmt, n_rows, pos, bi, lo, hi)
    except (pa.ArrowException, UnicodeDecodeError) as err:
        why = " ".join(str(err).split())
        why = why if len(why) <= 160 else why[:157] + "..."
        raise ConfigError(f"resume: {src} holds something that is not a row of this sweep "
                          f"({why}); run without --resume to start over") from None


def _redo(src: Path) -> str:
    return "start over" if src.name.endswith(".partial") else "overwrite it"


def _verify_identity(plan: SweepPlan, src: Path, fmt: str, n_rows: int,
                     chunk_rows: int) -> list[tuple[int, int, int, int]]:
    """Identity columns row by row; returns the chunks (global start, block, lo, hi) compared."""
    pa, pc = arrow_modules(compute=True)
    keys = [k for k in IDENTITY_KEYS if k in plan.columns]
    stream = _existing_batches(src, fmt, keys, chunk_rows)
    buffer = None
    pos = 0
    done: list[tuple[int, int, int, int]] = []
    for bi, lo, hi in iter_chunks(plan, chunk_rows):
        if pos >= n_rows:
            break
        hi = min(hi, lo + (n_rows - pos))
        while buffer is None or buffer.num_rows < hi - lo:
            nxt = next(stream, None)
            if nxt is None:
                raise ConfigError(f"resume: {src} ended early; run without --resume to "
                                  f"{_redo(src)}")
            buffer = nxt if buffer is None else pa.concat_tables([buffer, nxt])
        have, buffer = buffer.slice(0, hi - lo), buffer.slice(hi - lo)
        want = compute_chunk(plan, bi, lo, hi, fmt, keys)
        for k in keys:
            a, b = want.column(k), have.column(k).cast(want.schema.field(k).type)
            if a.type == pa.string():
                a, b = pc.fill_null(a, ""), pc.fill_null(b, "")
            if not a.equals(b):
                first = pc.index(pc.not_equal(a, b), True).as_py()
                raise ConfigError(
                    f"resume: row {pos + first + 1:,} of {src} has {k} = {b[first].as_py()!r}, "
                    f"but this sweep's row has {a[first].as_py()!r}; run without --resume "
                    f"to {_redo(src)}")
        done.append((pos, bi, lo, hi))
        pos += hi - lo
    return done


def _verify_all_columns(plan: SweepPlan, src: Path, fmt: str, n_rows: int, pos: int, bi: int,
                        lo: int, hi: int) -> None:
    """Rows ``pos .. pos + hi - lo`` of ``src`` must equal this sweep's rows in every column."""
    want = compute_chunk(plan, bi, lo, hi, fmt)
    if fmt == "csv":
        have_b = (_tail_lines(src, hi - lo) if pos and pos + hi - lo == n_rows else
                  _head_lines(src, 1 + pos, hi - lo))
        want_b = csv_bytes(want)
        if have_b == want_b:
            return
        have_l, want_l = have_b.split(b"\n"), want_b.split(b"\n")
        i = next((j for j, (x, y) in enumerate(zip(have_l, want_l)) if x != y), 0)
        hv = next(csv.reader([have_l[i].decode("utf-8", "replace")]), [])
        wv = next(csv.reader([want_l[i].decode()]), [])
        c = next((j for j, (x, y) in enumerate(zip(hv, wv)) if x != y), min(len(hv), len(wv)))
        key = plan.columns[c] if c < len(plan.columns) else "the number of columns"
        got = hv[c] if c < len(hv) else "nothing"
        exp = wv[c] if c < len(wv) else "nothing"
        _mismatch(src, pos + i + 1, key, got, exp)
    import pyarrow.parquet as pq
    pa, pc = arrow_modules(compute=True)
    meta = pq.ParquetFile(src)
    groups, start, first = [], 0, None
    for g in range(meta.num_row_groups):
        size = meta.metadata.row_group(g).num_rows
        if start + size > pos and start < pos + hi - lo:
            groups.append(g)
            first = start if first is None else first
        start += size
    have = meta.read_row_groups(groups).slice(pos - (first or 0), hi - lo)
    for k in plan.columns:
        a = want.column(k)
        b = have.column(k).cast(a.type)
        if not a.equals(b):
            neq = pc.fill_null(pc.not_equal(a, b), True) if a.type != pa.list_(pa.string()) \
                else pa.array([x != y for x, y in zip(a.to_pylist(), b.to_pylist())])
            r = pc.index(neq, True).as_py()
            _mismatch(src, pos + r + 1, k, b[r].as_py(), a[r].as_py())


def _mismatch(src: Path, row: int, key: str, got: Any, want: Any) -> None:
    raise ConfigError(f"resume: row {row:,} of {src} has {key} = {got!r}, but this sweep computes "
                      f"{want!r} (written by another version or profile?); run without --resume "
                      f"to {_redo(src)}")
