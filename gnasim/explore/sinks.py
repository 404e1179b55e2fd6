"""Sweep output files: CSV and Parquet sinks, the partial file, resume verification."""

from __future__ import annotations


import os
from pathlib import Path
from typing import Iterator, Sequence


from gnasim.errors import ConfigError
from gnasim.explore.columns import _arrow, column_type, compute_chunk
from gnasim.explore.keys import IDENTITY_KEYS
from gnasim.explore.blocks import SweepPlan, iter_chunks



# -- writing ------------------------------------------------------------------------------------

def output_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise ConfigError(f"out: '{path.name}' must end in .csv or .parquet")


def _partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


class _CsvSink:
    def __init__(self, out: Path, header: bytes):
        self.out, self.partial, self.header = out, _partial_path(out), header
        self.fd: int | None = None

    def existing(self) -> tuple[Path | None, int]:
        """The file to resume from and its complete data rows (a torn last line is dropped)."""
        for src in (self.partial, self.out):
            if src.is_file():
                with open(src, "rb") as fh:
                    first = fh.readline()
                if first and first != self.header:
                    raise ConfigError(f"resume: {src} has other columns than this sweep "
                                      "(run without --resume to overwrite it)")
                _truncate_torn_tail(src)
                return src, _count_complete_rows(src)
        return None, 0

    def open(self, resume_from: Path | None) -> None:
        if resume_from is not None:
            if resume_from != self.partial:
                os.replace(resume_from, self.partial)
            self.fd = os.open(self.partial, os.O_WRONLY | os.O_APPEND)
            if os.fstat(self.fd).st_size == 0:
                os.write(self.fd, self.header)
        else:
            self.fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self.fd, self.header)

    def write(self, payload: bytes) -> None:
        # one write() of whole lines: a regular-file write is not torn by Ctrl-C
        view = memoryview(payload)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def close(self, publish: bool) -> None:
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None
        if publish:
            os.replace(self.partial, self.out)


class _ParquetSink:
    def __init__(self, out: Path, schema):
        self.out, self.partial, self.schema = out, _partial_path(out), schema
        self.writer = None

    def existing(self) -> tuple[Path | None, int]:
        import pyarrow.parquet as pq
        for src in (self.partial, self.out):
            if src.is_file():
                try:
                    meta = pq.ParquetFile(src)
                except Exception:   # a hard-killed .partial has no footer: not resumable
                    continue
                if meta.schema_arrow.names != self.schema.names:
                    raise ConfigError(f"resume: {src} has other columns than this sweep "
                                      "(run without --resume to overwrite it)")
                return src, meta.metadata.num_rows
        return None, 0

    def open(self, resume_from: Path | None) -> None:
        import pyarrow.parquet as pq
        tmp = None
        if resume_from is not None and resume_from == self.partial:
            tmp = self.partial.with_name(self.partial.name + ".old")
            os.replace(self.partial, tmp)
            resume_from = tmp
        self.writer = pq.ParquetWriter(self.partial, self.schema)
        if resume_from is not None:
            src = pq.ParquetFile(resume_from)
            for i in range(src.num_row_groups):           # row group by row group: flat memory
                self.writer.write_table(src.read_row_group(i).cast(self.schema))
        if tmp is not None:
            tmp.unlink()

    def write(self, table) -> None:
        self.writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)

    def close(self, publish: bool) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if publish:
            os.replace(self.partial, self.out)


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


def csv_header(columns: Sequence[str]) -> bytes:
    """The header line pyarrow's CSV writer puts above these columns."""
    return (",".join('"' + c.replace('"', '""') + '"' for c in columns) + "\n").encode()


def _csv_bytes(table, header: bool = False) -> bytes:
    import io

    import pyarrow.csv as pacsv
    buf = io.BytesIO()
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=header))
    return buf.getvalue()


def _schema(plan: SweepPlan, fmt: str):
    pa, _ = _arrow()
    fields = []
    for key in plan.columns:
        t = column_type(key, fmt)
        if t is None:    # a column only simulate() knows: type of its first value
            t = compute_chunk(plan, 0, 0, 1, fmt, [key]).schema.field(key).type
            if t == pa.null():
                t = pa.string()
        fields.append(pa.field(key, t))
    return pa.schema(fields)



def _existing_batches(src: Path, fmt: str, keys: list[str], chunk_rows: int) -> Iterator:
    """Identity columns of an existing output, streamed batch by batch."""
    pa, _ = _arrow()
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


def _verify_prefix(plan: SweepPlan, src: Path, fmt: str, n_rows: int, chunk_rows: int) -> None:
    """The rows already in ``src`` must be this sweep's first rows (identity columns compared)."""
    pa, pc = _arrow(compute=True)
    keys = [k for k in IDENTITY_KEYS if k in plan.columns]
    if n_rows > plan.rows:
        raise ConfigError(f"resume: {src} has {n_rows:,} rows but this sweep has only "
                          f"{plan.rows:,} (run without --resume to overwrite it)")
    stream = _existing_batches(src, fmt, keys, chunk_rows)
    buffer = None
    pos = 0
    for bi, lo, hi in iter_chunks(plan, chunk_rows):
        if pos >= n_rows:
            break
        hi = min(hi, lo + (n_rows - pos))
        while buffer is None or buffer.num_rows < hi - lo:
            nxt = next(stream, None)
            if nxt is None:
                raise ConfigError(f"resume: {src} ended early; run without --resume")
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
                    "to overwrite it")
        pos += hi - lo

