"""Writing outputs all or nothing: into a temporary sibling, then renamed over the target.

Why: writing in place means a full disk, a crash or Ctrl-C leaves a truncated file where a good
one was.  A sibling (same directory, so the same file system) renamed with ``os.replace`` is
atomic on POSIX: readers see the old file or the new one, never half of either.  A directory
cannot be swapped in one step, so :func:`replace_dir` moves the old one aside, renames the new
one in and only then deletes the old: at every moment a complete tree exists under one of the
two names.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _sibling(target: Path, kind: str) -> str:
    return f".{target.name}.{kind}-{os.getpid()}-"


def _default_mode(base: int) -> int:
    """``base`` less the process umask: what a plain ``open``/``mkdir`` would have given
    (mkstemp and mkdtemp make private 0600/0700 entries, which a rename would keep)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return base & ~mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; on success it replaces ``path`` in one rename.

    On any exception (KeyboardInterrupt included) the temporary file is removed and ``path`` is
    left as it was.
    """
    target = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=_sibling(target, "tmp"), dir=target.parent if str(target.parent) else ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, target.stat().st_mode & 0o7777 if target.exists() else _default_mode(0o666))
    except OSError:
        pass
    try:
        yield tmp
        with open(tmp, "rb+") as f:  # on disk before the rename, so a crash cannot leave it empty
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a new empty directory beside ``path``; on success it takes the place of ``path``.

    An existing ``path`` is moved aside first and deleted only after the new one is in place.
    On any exception the new directory is removed and ``path`` is left as it was.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_sibling(target, "tmp"), dir=parent))
    try:
        os.chmod(tmp, _default_mode(0o777))
        yield tmp
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(new: Path, target: Path) -> None:
    """Put directory ``new`` at ``target`` (same file system), deleting what was there after."""
    if not target.exists() and not target.is_symlink():
        os.rename(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=_sibling(target, "old"), dir=target.parent))
    old.rmdir()
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)  # put the old one back
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


__all__ = ["atomic_dir", "atomic_path", "replace_dir"]
