"""Atomic writes: a reader sees the old file (or folder) or the new one, never half.

Every file lteval writes goes through ``write_text`` / ``writing``; every folder it
writes as one result (a rank report, the validation study) through ``folder``. The
temporary names come from ``tempfile`` next to the target, so two writers never
share one, and the final step is a rename on the same filesystem.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def writing(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error it
    replaces ``path``, otherwise it is removed. ``suffix`` keeps writers that look at
    the extension happy (``.png`` for matplotlib, ``.npz`` for numpy)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with writing(path) as tmp:
        tmp.write_text(text)


@contextlib.contextmanager
def folder(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; when the block ends without
    error it takes ``target``'s place (an existing ``target`` is removed only after
    the new folder is in), otherwise it is removed and ``target`` is untouched.

    The swap is two renames; if it is interrupted between them the old folder is
    renamed back.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    old = None
    try:
        yield tmp
        try:
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
                os.replace(target, old)  # the empty placeholder is replaced
            os.replace(tmp, target)
        except BaseException:
            if old is not None and not target.exists():
                os.replace(old, target)  # put the old folder back
                old = None
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
