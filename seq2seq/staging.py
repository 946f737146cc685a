"""Folders written whole or not at all, and the writes inside them.

`build_folder` writes a folder's content into a temporary folder beside it, under a lock, and
renames it into place once complete: a reader that finds the folder finds it complete. A killed
or failed build leaves only a hidden temporary folder, which the next build removes. Every write
goes through `write_bytes`, so that a failing disk fails in one place.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def build_folder(out: Path, write: Callable[[Path], None], done: Callable[[], bool]) -> bool:
    """Build ``out`` by ``write(temporary_folder)``, then rename it into place, replacing an old
    ``out``; on any failure remove the temporary folder and leave ``out`` as it was.

    Builders of one folder take turns (the kernel's ``flock``, which a killed builder never
    leaves held); one that finds ``done()`` once its turn comes builds nothing.

    Returns:
        Whether this call built the folder.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(out.parent / f".{out.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if done():  # another process built it while this one waited
            return False
        for leftover in out.parent.glob(f".{out.name}.*.tmp"):  # of killed builders
            shutil.rmtree(leftover, ignore_errors=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
        try:
            write(temporary)
            _swap_into_place(temporary, out)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return True
    finally:
        os.close(fd)


def _swap_into_place(temporary: Path, out: Path) -> None:
    """Rename the finished folder to ``out``; an old ``out`` is moved aside first (a folder
    cannot be renamed over one that is not empty) and removed."""
    _fsync_dir(temporary)
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old.tmp"
        os.replace(out, old)
    os.replace(temporary, out)
    _fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(f: BinaryIO, content: bytes) -> None:
    """Every write of a staged folder goes through here."""
    f.write(content)


def sync(f: BinaryIO) -> None:
    """Flush ``f`` to the disk, before the folder that holds it is renamed into place."""
    f.flush()
    os.fsync(f.fileno())


def write_file(path: Path, content: bytes) -> None:
    with path.open("wb") as f:
        write_bytes(f, content)
        sync(f)
