"""Writing output files safely: one atomic writer and one per-output lock.

Every command that writes a file goes through :func:`atomic_write`: the content goes to a
temporary file in the target's directory, is flushed to disk, and only then takes the target's
name with one ``rename``. A reader therefore sees the previous complete file or the new complete
file, never a torn one, whatever happens to the writer (Ctrl-C, SIGKILL, a full disk).

Long runs that stream into a file of their own (the sweep's ``FILE.partial``) hold
:func:`exclusive_lock` for ``FILE`` while they write, so a second run aimed at the same output
refuses with one line instead of writing into the first one's file.

Operating-system failures (a directory in the way, no permission, a read-only file system, no
space) become :class:`~gnasim.errors.OutputError` with one line naming the file and the reason.
This module is the bottom layer: it imports only :mod:`gnasim.errors` and the standard library.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Union

from gnasim.errors import OutputError

Content = Union[str, bytes, Callable[[Path], None]]


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give (temporary files are created 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def os_reason(err: OSError) -> str:
    """A short reason for an operating-system error ("no space left on device")."""
    code = err.errno
    if code is None:                    # pyarrow: "... Detail: [errno 28] No space left ..."
        found = re.search(r"\[errno (\d+)\]", str(err), re.IGNORECASE)
        code = int(found.group(1)) if found else None
    if code is not None and code in errno.errorcode:
        return os.strerror(code).lower()
    text = " ".join(str(err).split())
    return text[:160] if text else type(err).__name__


@contextmanager
def os_errors(label: str, path: str | os.PathLike, note: str = "") -> Iterator[None]:
    """Turn an ``OSError`` raised inside the block into one :class:`OutputError` line."""
    try:
        yield
    except OutputError:
        raise
    except OSError as err:
        raise OutputError(f"{label}: cannot write '{path}': {os_reason(err)}{note}") from None


def check_output_path(path: str | os.PathLike, label: str = "out") -> Path:
    """``path`` as a Path whose directory exists and which is not itself a directory."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{label}: '{p}' is a directory; give a file name")
    if not p.parent.is_dir():
        raise OutputError(f"{label}: directory '{p.parent}' does not exist")
    return p


def atomic_write(path: str | os.PathLike, content: Content, *, label: str = "out",
                 replace: bool = True, validate: Callable[[Path], None] | None = None) -> Path:
    """Write ``content`` to ``path`` atomically and return the path.

    ``content`` is text (UTF-8), bytes, or a function that writes the file whose path it is given
    (a temporary name in the same directory). ``validate`` may read the finished temporary file
    and raise before it takes the name. With ``replace=False`` an existing ``path`` is an error,
    also when it appears while this call writes. Nothing is left behind on failure.
    """
    p = check_output_path(path, label)
    if not replace and p.exists():
        raise OutputError(f"{label}: '{p}' already exists; choose another name or pass --force")
    tmp: Path | None = None
    try:
        with os_errors(label, p):
            fd, name = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
            tmp = Path(name)
            if callable(content):
                os.close(fd)
                content(tmp)
                fd = os.open(tmp, os.O_RDONLY)
            else:
                data = content.encode("utf-8") if isinstance(content, str) else content
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
            os.close(fd)
            os.chmod(tmp, file_mode())
        if validate is not None:
            validate(tmp)
        with os_errors(label, p):
            if replace:
                os.replace(tmp, p)
            else:
                _link_new(tmp, p, label)
        tmp = None
        return p
    finally:
        if tmp is not None:
            try:
                tmp.unlink()
            except OSError:
                pass


def _link_new(tmp: Path, target: Path, label: str) -> None:
    """Give ``tmp`` the name ``target`` only if nothing has that name (atomic where links work)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputError(f"{label}: '{target}' already exists; choose another name or pass "
                          "--force") from None
    except OSError:                     # a file system without hard links
        if target.exists():
            raise OutputError(f"{label}: '{target}' already exists; choose another name or pass "
                              "--force") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


def lock_path(out: str | os.PathLike) -> Path:
    """The lock file that guards ``out`` while a run writes it."""
    out = Path(out)
    return out.with_name(out.name + ".lock")


@contextmanager
def exclusive_lock(out: str | os.PathLike, label: str = "out") -> Iterator[int]:
    """Hold the lock of ``out`` for the block, or refuse at once if another process holds it.

    The lock is an advisory ``flock`` on ``OUT.lock`` (which records the holder's process id and
    is removed on release); the kernel drops it when the holder dies, so a killed run never blocks
    the next one. Yields the lock file's descriptor (child processes should close their copy).
    Where ``fcntl`` does not exist (Windows) the block runs unlocked.
    """
    try:
        import fcntl
    except ImportError:                 # pragma: no cover - not on POSIX
        yield -1
        return
    path = lock_path(out)
    while True:
        with os_errors(label, path):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            who = f" (process {holder})" if holder.isdigit() else ""
            raise OutputError(f"{label}: another run is writing '{out}'{who}; wait for it to "
                              "finish or choose another file") from None
        except BaseException:
            os.close(fd)
            raise
        try:                            # the holder before us may have removed the file
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield fd
    finally:
        try:
            path.unlink()
        except OSError:
            pass
        os.close(fd)
