"""Files that hold secrets, private (mode 0600) from their first byte.

Writing a file and then chmod-ing it leaves a moment, and after a crash a
file, that others can read. Here the bytes go to a file made 0600 by
``mkstemp``, which then takes the real name in one step: ``os.replace``
to update, ``os.link`` to create once (it fails when the name exists, so
of two processes starting together exactly one key is written, and both
read that one).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

PRIVATE = 0o600


def _staged(path: Path, text: str) -> str:
    """A private temporary file beside ``path`` holding ``text``; returns its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        os.unlink(staged)
        raise
    return staged


def write_private(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, atomically, readable by this user only."""
    staged = _staged(path, text)
    try:
        os.replace(staged, path)
    except BaseException:
        os.unlink(staged)
        raise


def create_private_once(path: Path, make: Callable[[], str]) -> str:
    """The text of ``path``; the first caller anywhere writes it with ``make()``."""
    if not path.exists():
        staged = _staged(path, make())
        try:
            os.link(staged, path)
        except FileExistsError:
            pass  # another process created it first: its text is the one
        finally:
            os.unlink(staged)
    tighten(path)
    return path.read_text().strip()


def touch_private(path: Path) -> None:
    """Create ``path`` empty and private unless it exists (SQLite gives its WAL the same mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE))
    tighten(path)


def tighten(path: Path) -> None:
    """A file an older version left readable to others becomes private (when it is ours)."""
    with contextlib.suppress(OSError):
        info = path.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(PRIVATE)
