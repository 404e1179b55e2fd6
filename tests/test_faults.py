"""Fault injection on every file gnasim writes (issue 9, items 2, 3, 4 and 7).

Sweeps (CSV and Parquet, one process and two) are stopped at random moments with SIGINT, SIGTERM
and SIGKILL; two runs aim at one path; disks fill up; directories are read-only. Whatever
happens, the published file is the previous complete file or the new complete file, a resumed
file is byte-identical to an uninterrupted run's, no worker outlives its parent, and every
failure is one line on stderr with exit code 2. Seeds are fixed; ``GNASIM_FAULT_SEED`` changes
them.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gnasim.errors import OutputError
from gnasim.explore.grid import spec_from_mapping
from gnasim.explore.sweep import run_sweep
from gnasim.files import atomic_write, exclusive_lock, lock_path

ROOT = Path(__file__).resolve().parents[1]
SEED = int(os.environ.get("GNASIM_FAULT_SEED", "9"))
# 41,472 rows written in chunks of 400: long enough (about 1-2 s) to be stopped in the middle
GRID = {"input_size": "30x48x80", "window_size": "18 24 24", "stride": "all", "q_tile": "4x8x8",
        "kv_tile": "2x8x8", "hardware": "none", "head_dim": "64 128",
        "attention_fraction": [0.5, 0.6]}
FLAGS = ["-i", "30", "48", "80", "-w", "18", "24", "24", "-s", "all", "--q-tile", "4", "8", "8",
         "--kv-tile", "2", "8", "8", "--hardware", "none", "-d", "64", "128",
         "--attention-fraction", "0.5", "0.6", "--chunk-size", "400", "--no-progress"]
# the "previous" output: the first half of the rows (so --resume may also continue from it)
OLD_GRID = dict(GRID, head_dim="64")
CHUNK = 400


def cli(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "cli.py"), *args]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cli(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def one_line_error(res: subprocess.CompletedProcess, *needles: str) -> None:
    assert res.returncode == 2, (res.returncode, res.stderr)
    assert res.stderr.startswith("error: ") and res.stderr.count("\n") == 1, res.stderr
    assert "Traceback" not in res.stderr
    for n in needles:
        assert n in res.stderr, res.stderr


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[str, tuple[bytes, bytes]]:
    """(previous complete file, new complete file) bytes per suffix, written in-process."""
    d = tmp_path_factory.mktemp("reference")
    refs = {}
    for suffix in (".csv", ".parquet"):
        run_sweep(spec_from_mapping(OLD_GRID), d / f"old{suffix}", chunk_rows=CHUNK)
        run_sweep(spec_from_mapping(GRID), d / f"new{suffix}", chunk_rows=CHUNK)
        refs[suffix] = ((d / f"old{suffix}").read_bytes(), (d / f"new{suffix}").read_bytes())
    return refs


def children(pid: int) -> set[int]:
    """Child process ids of ``pid`` (Linux /proc)."""
    out: set[int] = set()
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                out.update(int(x) for x in fh.read().split())
    except OSError:
        pass
    return out


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(predicate, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def started_writing(out: Path) -> bool:
    return any(Path(str(out) + s).exists() for s in (".partial", ".partial.tmp"))


# -- random-moment signals ------------------------------------------------------------------------

CASES = [(suffix, jobs, sig) for suffix in (".csv", ".parquet") for jobs in (1, 2)
         for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("suffix,jobs,sig", CASES,
                         ids=[f"{s[1:]}-j{j}-{g.name}" for s, j, g in CASES])
def test_signal_at_a_random_moment(tmp_path, reference, suffix, jobs, sig):
    old, new = reference[suffix]
    rng = random.Random(f"{SEED}{suffix}{jobs}{sig.name}")
    out = tmp_path / f"out{suffix}"
    out.write_bytes(old)                                 # a previous complete output
    proc = subprocess.Popen(cli("sweep", *FLAGS, "--jobs", str(jobs), "--out", str(out),
                                "--format", "json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: started_writing(out) or proc.poll() is not None, 60)
        time.sleep(rng.uniform(0, 0.4))
        workers = children(proc.pid)
        proc.send_signal(sig)
        # every holder of the pipes is gone: communicate() returns
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_for(lambda: not any(alive(w) for w in workers), 5), "a worker outlived its parent"
    assert "Traceback" not in stderr, stderr
    published = out.read_bytes()
    assert published in (old, new)                           # never a part of either
    if proc.returncode == 0:
        assert published == new
    elif sig != signal.SIGKILL:
        assert proc.returncode in (130, -sig), stderr        # -sig: after the sweep had ended
        if stdout:
            summary = json.loads(stdout)
            if summary["interrupted"]:
                assert Path(summary["partial"]).exists() and published == old
            else:                                            # the signal came after the rename
                assert published == new
    assert not lock_path(out).exists() or sig == signal.SIGKILL
    s = run_sweep(spec_from_mapping(GRID), out, resume=True, chunk_rows=CHUNK)
    assert out.read_bytes() == new                           # byte-identical after resume
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name] or sig == signal.SIGKILL
    print(f"{suffix} jobs={jobs} {sig.name}: exit {proc.returncode}, "
          f"resumed {s.resumed_rows:,} rows, wrote {s.written:,}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_parent_and_obey_sigterm(tmp_path):
    """Issue 9.3: workers inherited the parent's SIGTERM handler (so ignored SIGTERM) and
    outlived a SIGKILLed parent while holding its stdout and stderr."""
    out = tmp_path / "w.csv"
    # long enough (about 800,000 rows) that the pool is still busy when the worker is killed; the
    # sweep stops within a chunk of the kill either way
    longer = FLAGS + ["-d", "32", "64", "128", "256",
                      "--attention-fraction", *[str(f / 20) for f in range(1, 20)]]
    proc = subprocess.Popen(cli("sweep", *longer, "--jobs", "2", "--out", str(out)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert wait_for(lambda: len(children(proc.pid)) >= 2 or proc.poll() is not None, 60)
        workers = sorted(children(proc.pid))
        assert proc.poll() is None and len(workers) >= 2
        os.kill(workers[0], signal.SIGTERM)                  # a worker obeys SIGTERM
        assert wait_for(lambda: not alive(workers[0]), 5), "a worker ignored SIGTERM"
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    res = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    one_line_error(res, "a worker process died")
    assert not out.exists() and not lock_path(out).exists()
    assert wait_for(lambda: not any(alive(w) for w in workers), 5)


# -- two runs, one path ---------------------------------------------------------------------------

def test_second_writer_refuses_while_the_first_runs(tmp_path):
    """Issue 9.2: both runs truncated FILE.partial; the second wrote into the published file.
    The first run holds the lock from before its partial file appears until it publishes, so a
    second run that starts and ends meanwhile must refuse in one line; either way the published
    file is the complete table."""
    out = tmp_path / "c.parquet"
    fractions = [f / 10 for f in range(1, 10)]
    flags = FLAGS + ["--attention-fraction", *map(str, fractions), "--jobs", "1", "--out", str(out)]
    first = subprocess.Popen(cli("sweep", *flags), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert wait_for(lambda: started_writing(out) or first.poll() is not None, 60)
        second = run_cli("sweep", *flags)
        overlapped = first.poll() is None
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
    if overlapped:
        one_line_error(second, "another run is writing", str(out), f"process {first.pid}")
    else:                                   # the first ended before the second started
        assert second.returncode in (0, 2), second.stderr
    import pyarrow.parquet as pq

    table = pq.read_table(out)                           # a valid, complete table
    assert table.num_rows == 20736 * len(fractions)
    assert sorted(set(table.column("attention_fraction").to_pylist())) == fractions
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.parquet"]
    print(f"second writer overlapped the first: {overlapped}, exit {second.returncode}")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_lock_is_checked_before_anything_is_written(tmp_path, suffix):
    out = tmp_path / f"x{suffix}"
    with exclusive_lock(out):
        with pytest.raises(OutputError, match=f"another run is writing '{out}' "
                                              rf"\(process {os.getpid()}\)"):
            run_sweep(spec_from_mapping(OLD_GRID), out, chunk_rows=CHUNK)
        assert sorted(p.name for p in tmp_path.iterdir()) == [lock_path(out).name]
    assert list(tmp_path.iterdir()) == []                    # the lock file goes with the lock
    run_sweep(spec_from_mapping(OLD_GRID), out)              # and a killed holder's is reused
    lock_path(out).write_text("12345\n")
    run_sweep(spec_from_mapping(OLD_GRID), out)
    assert not lock_path(out).exists()


# -- full disk -------------------------------------------------------------------------------------

def tmpfs(path: Path, options: str, why_skip: str):
    """Mount a tmpfs with ``options`` on ``path`` for a fixture's lifetime (skip if impossible)."""
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                         capture_output=True)
    if res.returncode != 0:
        pytest.skip(why_skip)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (needs root and mount); skipped elsewhere (the ENOSPC tests below that
    inject the error run everywhere)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    yield from tmpfs(mnt, "size=256k", "cannot mount a small tmpfs here")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_full_disk_sweep_is_one_line_and_keeps_the_old_file(small_disk, suffix):
    out = small_disk / f"s{suffix}"
    small = dict(OLD_GRID, head_dim="64", stride="1:2 1:2 1:4")
    run_sweep(spec_from_mapping(small), out)
    before = out.read_bytes()
    with pytest.raises(OutputError, match=r"no space left on device") as err:   # 1.2 / 13 MB
        run_sweep(spec_from_mapping(GRID), out, chunk_rows=CHUNK, force=True)
    assert "\n" not in str(err.value) and f"'{out}' is unchanged" in str(err.value)
    assert out.read_bytes() == before
    assert not lock_path(out).exists() and not Path(str(out) + ".partial.tmp").exists()


def test_full_disk_plot_and_atomic_write(small_disk):
    from gnasim.config import GNAConfig
    from gnasim.plots import tile_map_figure, write_figure

    page = small_disk / "p.html"
    page.write_text("previous")
    fig = tile_map_figure(GNAConfig(input_size=(64,), window_size=(17,), q_tile=(8,),
                                    kv_tile=(8,)))
    with pytest.raises(OutputError, match=rf"out: cannot write '{page}': no space left on device"):
        write_figure(fig, page)                              # plotly.js alone is > 3 MB
    assert page.read_text() == "previous"
    assert sorted(p.name for p in small_disk.iterdir()) == ["p.html"]


def test_enospc_mid_sweep_is_one_line_and_resumable(tmp_path, monkeypatch, reference):
    """The same without a tmpfs: the CSV sink's write raises ENOSPC after a few chunks."""
    from gnasim.explore import sinks

    out = tmp_path / "e.csv"
    out.write_bytes(reference[".csv"][0])
    real, calls = sinks.CsvSink.write, []

    def write(self, payload):
        calls.append(1)
        if len(calls) == 6:
            real(self, payload[: len(payload) // 2])        # a torn chunk, then a full disk
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self, payload)

    monkeypatch.setattr(sinks.CsvSink, "write", write)
    with pytest.raises(OutputError, match=r"^out: cannot write '.*e\.csv\.partial': no space "
                                          r"left on device; '.*e\.csv' is unchanged"):
        run_sweep(spec_from_mapping(GRID), out, chunk_rows=CHUNK)
    assert out.read_bytes() == reference[".csv"][0]
    monkeypatch.setattr(sinks.CsvSink, "write", real)
    s = run_sweep(spec_from_mapping(GRID), out, chunk_rows=CHUNK, resume=True)
    assert 4 * CHUNK < s.resumed_rows < 5 * CHUNK            # the torn last line is dropped
    assert out.read_bytes() == reference[".csv"][1]


# -- read-only directories and directories in the way ---------------------------------------------

@pytest.fixture
def read_only_dir(tmp_path):
    """A directory nobody may write in: chmod for ordinary users, a read-only tmpfs for root."""
    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    yield from tmpfs(d, "ro,size=64k",
                     "root without mount: permissions cannot make a directory read-only")


def test_read_only_directory_every_writer(read_only_dir):
    from gnasim.hardware.write import write_profile
    from gnasim.config import GNAConfig
    from gnasim.hardware.profile import load_profile
    from gnasim.plots import tile_map_figure, write_figure

    d = read_only_dir
    for suffix in (".csv", ".parquet"):
        with pytest.raises(OutputError, match=rf"out: cannot write '{d}/s{suffix}\.lock': "):
            run_sweep(spec_from_mapping(OLD_GRID), d / f"s{suffix}")
    fig = tile_map_figure(GNAConfig(input_size=(64,), window_size=(17,), q_tile=(8,),
                                    kv_tile=(8,)))
    with pytest.raises(OutputError, match=rf"out: cannot write '{d}/p\.html': "):
        write_figure(fig, d / "p.html")
    with pytest.raises(OutputError, match=rf"out: cannot write '{d}/c\.csv': "):
        atomic_write(d / "c.csv", "a,b\n")
    hw = load_profile("h100")
    with pytest.raises(OutputError, match=rf"out: cannot write '{d}/h100-x\.toml': "):
        write_profile(hw, hw.model, d / "h100-x.toml")
    assert list(d.iterdir()) == []


def test_read_only_directory_cli(read_only_dir):
    d = read_only_dir
    res = run_cli("sweep", "-i", "16", "-w", "4", "--hardware", "none", "--q-tile", "4",
                  "--kv-tile", "4", "--out", str(d / "s.csv"))
    one_line_error(res, f"out: cannot write '{d}/s.csv.lock'")
    assert list(d.iterdir()) == []


def test_directory_in_the_way_is_one_line(tmp_path):
    """Issue 9.7: a directory at the output path gave a traceback (the sweep also left its
    .partial behind)."""
    from gnasim.hardware.write import write_profile
    from gnasim.config import GNAConfig
    from gnasim.hardware.profile import load_profile
    from gnasim.plots import tile_map_figure, write_figure

    for name in ("s.csv", "s.parquet", "p.html", "c.csv", "h100-x.toml"):
        (tmp_path / name).mkdir()
    for name in ("s.csv", "s.parquet"):
        with pytest.raises(OutputError, match=rf"out: '{tmp_path}/{name}' is a directory"):
            run_sweep(spec_from_mapping(OLD_GRID), tmp_path / name)
    fig = tile_map_figure(GNAConfig(input_size=(64,), window_size=(17,), q_tile=(8,),
                                    kv_tile=(8,)))
    with pytest.raises(OutputError, match="is a directory"):
        write_figure(fig, tmp_path / "p.html")
    with pytest.raises(OutputError, match="is a directory"):
        atomic_write(tmp_path / "c.csv", "a,b\n")
    hw = load_profile("h100")
    with pytest.raises(OutputError, match="is a directory"):
        write_profile(hw, hw.model, tmp_path / "h100-x.toml", force=True)
    res = run_cli("sweep", "-i", "16", "-w", "4", "--hardware", "none", "--q-tile", "4",
                  "--kv-tile", "4", "--out", str(tmp_path / "s.csv"))
    one_line_error(res, f"out: '{tmp_path}/s.csv' is a directory")
    res = run_cli("compare", "--out", str(tmp_path / "c.csv"))
    one_line_error(res, f"out: '{tmp_path}/c.csv' is a directory")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s.csv", "s.parquet", "p.html", "c.csv", "h100-x.toml"])
    assert all(not any(p.iterdir()) for p in tmp_path.iterdir())


def test_atomic_write_never_shows_a_torn_file(tmp_path):
    """A writer that fails half-way leaves the previous file and no temporary file."""
    out = tmp_path / "f.txt"
    out.write_text("previous")

    def half(tmp: Path) -> None:
        tmp.write_text("new, but not fini")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputError, match="no space left on device"):
        atomic_write(out, half)
    assert out.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    with pytest.raises(OutputError, match="already exists; choose another name or pass --force"):
        atomic_write(out, "x", replace=False)
    atomic_write(out, "new")
    assert out.read_text() == "new" and oct(out.stat().st_mode & 0o777) != "0o600"
