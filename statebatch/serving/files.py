"""Atomic, locked file writes: a file is replaced whole or not at all, one writer at a time.

- *crash*: a save writes a temporary file of its own (``.<name>.<pid>.<random>.tmp``, unique per
  save, so threads never share one), ``fsync``s it and moves it into place with ``os.replace``; a
  process killed at any point leaves either the previous file or the new one, whole. A temporary
  file left by a writer that died is removed by the next save or load of that path (its pid is gone);
- *concurrency*: saves to one path, from threads or processes, take an advisory lock
  (``fcntl.flock`` on a sidecar ``.<name>.lock``, removed after each save) and so run one at a
  time (last writer wins). Local filesystems only: the lock and the dead-writer test (by pid) mean
  nothing across machines sharing a network disk.

Only the standard library: a saving subprocess (the tests kill such writers) starts without numpy or Keras.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from types import ModuleType
from typing import Iterator

fcntl: ModuleType | None
try:  # POSIX advisory locks; elsewhere saves are not serialised between processes (documented)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

__all__ = ["write_atomic", "save_lock", "remove_stale_temps"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it exists, owned by someone else
        return True
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[str]:
    """Remove the temporary files ``.<name>.<pid>[.<random>].tmp`` of writers of ``path`` whose process is
    gone (killed while saving); returns their names. A live writer's file (its pid exists) is kept.

    Examples
    --------
    >>> import os, subprocess, sys, tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
    ...                       text=True).stdout.strip()  # a pid whose process has exited
    >>> _ = (folder / f".s.npz.{dead}.ab12.tmp").write_bytes(b"half a save")
    >>> _ = (folder / f".s.npz.{os.getpid()}.cd34.tmp").write_bytes(b"this process' own save")
    >>> remove_stale_temps(folder / "s.npz") == [f".s.npz.{dead}.ab12.tmp"]
    True
    >>> [p.name.endswith(".cd34.tmp") for p in folder.iterdir()]  # the live writer's file is kept
    [True]
    """
    path = Path(path)
    prefix = f".{path.name}."
    try:
        entries = os.listdir(path.parent)
    except OSError:
        return []
    removed = []
    for entry in entries:
        if not (entry.startswith(prefix) and entry.endswith(".tmp")):
            continue
        pid = entry[len(prefix):-len(".tmp")].split(".")[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _pid_alive(int(pid)):
            continue
        try:
            os.unlink(path.parent / entry)
            removed.append(entry)
        except OSError:  # removed by someone else meanwhile, or not ours to remove
            pass
    return removed


@contextlib.contextmanager
def save_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold the advisory save lock of ``path``: ``fcntl.flock`` on the sidecar ``.<name>.lock``.

    The holder removes the sidecar before releasing it, so none is left behind; a waiter that then
    gets the lock on the removed file sees that its inode is no longer the path's and tries again
    (the usual lock-file protocol). ``flock`` locks belong to open file descriptions, so threads of
    one process exclude each other too.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
    >>> with save_lock(path):
    ...     print(sorted(os.listdir(path.parent)))  # the sidecar lock file, while the lock is held
    ['.s.npz.lock']
    >>> os.listdir(path.parent)  # removed on release
    []
    """
    if fcntl is None:  # pragma: no cover - no POSIX locks: documented last-writer-wins without ordering
        yield
        return
    lock = Path(path).with_name(f".{Path(path).name}.lock")
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            mine = os.fstat(fd)
            try:
                now = os.stat(lock)
                current = (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(lock)
        except OSError:
            pass
        os.close(fd)


def write_atomic(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write ``data`` to ``path`` whole or not at all, under the save lock.

    A temporary file unique to this save (pid and a random part: threads of one process never share
    one) is written and ``fsync``ed next to ``path``, then moved into place with ``os.replace``;
    the directory is ``fsync``ed so the rename survives a power cut. Raises ``OSError``.

    Examples
    --------
    >>> import os, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.npz"
    >>> write_atomic(path, b"first")
    >>> write_atomic(path, b"second")
    >>> path.read_bytes(), os.listdir(path.parent)  # the last save, whole; no temporary or lock file left
    (b'second', ['s.npz'])
    """
    path = Path(path)
    with save_lock(path):
        remove_stale_temps(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise
        try:
            dfd = os.open(path.parent, os.O_RDONLY)
        except OSError:  # pragma: no cover - directories that cannot be opened (not POSIX)
            return
        try:
            os.fsync(dfd)
        except OSError:  # pragma: no cover - some filesystems refuse fsync on a directory
            pass
        finally:
            os.close(dfd)
