"""On-disk feature cache: one folder per cache key, written atomically.

Layout: ``$LTEVAL_CACHE/<key>/`` (default ``~/.cache/lteval``) holding, per split,
``<split>_features.npy`` (N x D, float32 or float16), ``<split>_labels.npy`` (N int64)
and ``<split>_index.npy`` (N int64, positions in the dataset), plus ``manifest.json``
with shapes, dtypes and a sha256 of every array file.

- Atomic: an entry is assembled in a hidden temporary folder and renamed into place
  only when complete; a crash or error never leaves a half-written entry.
- Resumable: extraction writes finished chunks to ``.partial-<key>/``; a rerun after
  an interrupt reuses them (see ``lteval.features.job``).
- Checked on read: shapes, lengths and checksums; a bad entry is deleted and
  recomputed, never loaded.
- Safe under concurrency: ``entry_lock`` serialises runs that hit the same key.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from lteval.atomic import file_sha256, writing
from lteval.errors import CacheError, arg, render

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 2
Arrays = dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]


def cache_root() -> Path:
    """``$LTEVAL_CACHE`` if set, else ``~/.cache/lteval``."""
    return Path(os.environ.get("LTEVAL_CACHE") or Path.home() / ".cache" / "lteval")


DISK_ERRORS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}
"""errno values that mean "this folder cannot take our files" (not a bug of lteval)."""


def unwritable(path: Path, error: OSError) -> CacheError:
    """The one-line error for a cache folder that refused a write."""
    full = error.errno in (errno.ENOSPC, errno.EDQUOT)
    return CacheError(
        f"feature cache {path} {'is full' if full else 'is not writable'} "
        f"({error.strerror or error}); {'free space there, or ' if full else ''}set "
        "LTEVAL_CACHE to a writable folder with room for the features"
    )


def check_writable(root: Path | None = None) -> None:
    """CacheError naming the folder unless a file can be created in the cache root."""
    root = root or cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as e:
        raise unwritable(root, e) from None


def cache_key(identity: dict) -> str:
    """sha256 (first 20 hex digits) of the JSON of ``identity`` plus the format version."""
    blob = json.dumps({**identity, "cache_format": CACHE_FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _check(entry: Path, verify: bool) -> tuple[Arrays, dict] | None:
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        if manifest.get("cache_format") != CACHE_FORMAT_VERSION:
            return None
        if verify:
            for name, digest in manifest["checksums"].items():
                if file_sha256(entry / name) != digest:
                    return None
        out = {}
        for split, info in manifest["splits"].items():
            X = np.load(entry / f"{split}_features.npy", mmap_mode="r")
            y = np.load(entry / f"{split}_labels.npy")
            idx = np.load(entry / f"{split}_index.npy")
            if X.shape != tuple(info["shape"]) or not len(y) == len(idx) == X.shape[0]:
                return None
            out[split] = (X, y, idx)
        return out, manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_entry(
    key: str, root: Path | None = None, verify: bool = True
) -> tuple[Arrays, dict] | None:
    """``({split: (X memory-mapped, y, dataset index)}, manifest)`` of ``key``, or None.

    A present but inconsistent entry (bad shapes, lengths or checksums) is deleted
    so that it gets recomputed.
    """
    entry = (root or cache_root()) / key
    if not entry.is_dir():
        return None
    got = _check(entry, verify)
    if got is None:
        shutil.rmtree(entry, ignore_errors=True)
    return got


def write_entry(
    key: str,
    compute: Callable[[], Arrays],
    manifest: dict,
    root: Path | None = None,
    dtype: str = "float32",
) -> Path:
    """Run ``compute`` and store its splits under ``key``, atomically.

    ``compute`` returns ``{split: (X (N, D), y (N,), index (N,))}``; X is stored as
    ``dtype``. If it raises, nothing is left in the cache. If another run finished
    the same key first, its (valid) entry is kept and ours discarded.
    """
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    try:
        splits, sums = {}, {}
        for split, (X, y, idx) in compute().items():
            files = {
                f"{split}_features.npy": np.ascontiguousarray(X, dtype=dtype),
                f"{split}_labels.npy": np.asarray(y, dtype=np.int64),
                f"{split}_index.npy": np.asarray(idx, dtype=np.int64),
            }
            for name, arr in files.items():
                np.save(tmp / name, arr)
                sums[name] = file_sha256(tmp / name)
            splits[split] = {"shape": list(np.shape(X)), "dtype": dtype}
        full = {
            **manifest,
            "key": key,
            "cache_format": CACHE_FORMAT_VERSION,
            "splits": splits,
            "checksums": sums,
        }
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True))
        final = root / key
        try:
            os.rename(tmp, final)
        except OSError:  # someone else completed the same key: keep theirs if valid
            if _check(final, verify=True) is None:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def partial_dir(key: str, root: Path | None = None) -> Path:
    """Where finished chunks of an unfinished entry wait (kept across interrupts)."""
    return (root or cache_root()) / f".partial-{key}"


def save_chunk(path: Path, **arrays: np.ndarray) -> None:
    """Write one finished chunk atomically (temporary file, then rename)."""
    with writing(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_chunk(path: Path) -> dict[str, np.ndarray] | None:
    """A chunk written by ``save_chunk``, or None when absent or unreadable."""
    try:
        with np.load(path) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None


def _holder(owner: Path) -> str:
    try:
        return owner.read_text().strip() or "another process"
    except OSError:
        return "another process"


@contextlib.contextmanager
def entry_lock(key: str, root: Path | None = None, timeout: float = 3600.0) -> Iterator[None]:
    """Exclusive lock on ``key`` across processes: an OS file lock (``filelock``) on
    ``.locks/<key>.lock`` in the cache, released by the OS when the holder dies, so a
    crash never leaves a lock behind and the file's content never matters.

    While another run holds it, one "waiting for lock ... held by ..." line is logged
    (the holder's pid, host and command, from ``.locks/<key>.owner``); after
    ``timeout`` seconds (``--lock-timeout``; negative = wait for ever) a CacheError
    names the lock and its holder.
    """
    from filelock import FileLock, Timeout

    locks = (root or cache_root()) / ".locks"  # hidden: the cache lists only entries
    locks.mkdir(parents=True, exist_ok=True)
    path, owner = locks / f"{key}.lock", locks / f"{key}.owner"
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning(
            render(f"waiting for lock %s held by %s (giving up after %s; {arg('lock_timeout')})"),
            path,
            _holder(owner),
            f"{timeout:g} s" if timeout >= 0 else "never",
        )
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise CacheError(
                f"gave up after {timeout:g} s waiting for lock {path}, held by "
                f"{_holder(owner)}; wait for that run, or raise {arg('lock_timeout')}"
            ) from None
    try:
        owner.write_text(f"pid {os.getpid()} on {socket.gethostname()}: {' '.join(sys.argv)}")
        yield
    finally:
        owner.unlink(missing_ok=True)
        lock.release()


def load_or_build(
    key: str, build: Callable[[], None], *, timeout: float = 3600.0, lock: bool = True
) -> tuple[Arrays, dict]:
    """Cache entry ``key`` (``load_entry``'s (arrays, manifest)), built first by
    ``build()`` (which writes it with ``write_entry``) when missing. The build runs
    under the entry's lock (``lock=False``: the caller coordinates, as torchrun ranks
    do), and the entry is looked up again once the lock is held, so that concurrent
    runs of one key build it once. A read-only, full or forbidden cache is a
    ``CacheError`` naming the folder."""
    got = load_entry(key)
    if got is not None:
        return got
    try:
        with entry_lock(key, timeout=timeout) if lock else contextlib.nullcontext():
            got = load_entry(key)
            if got is None:
                build()
                got = load_entry(key)
    except OSError as e:  # read-only, no permission or full: name the folder
        if e.errno in DISK_ERRORS:
            raise unwritable(cache_root(), e) from None
        raise
    if got is None:  # pragma: no cover - the entry just written is unreadable
        raise OSError(f"feature cache entry {cache_root() / key} could not be read")
    return got
