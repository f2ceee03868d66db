"""On-disk feature cache: one folder per cache key, written atomically.

Layout: ``$LTEVAL_CACHE/<key>/`` (default ``~/.cache/lteval``) holding one
``<split>_features.npy`` (N x D float32) and ``<split>_labels.npy`` (N int64) per
split and a ``manifest.json``. An entry is built in a hidden temporary folder
next to it and renamed into place only when complete, so a crash or an error
never leaves a half-written entry; an entry that fails its checks on read is
discarded and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

CACHE_FORMAT_VERSION = 1


def cache_root() -> Path:
    """``$LTEVAL_CACHE`` if set, else ``~/.cache/lteval``."""
    return Path(os.environ.get("LTEVAL_CACHE") or Path.home() / ".cache" / "lteval")


def cache_key(identity: dict) -> str:
    """sha256 (first 20 hex digits) of the JSON of ``identity`` plus the format version."""
    blob = json.dumps({**identity, "cache_format": CACHE_FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _check(entry: Path) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        out = {}
        for split, info in manifest["splits"].items():
            X = np.load(entry / f"{split}_features.npy", mmap_mode="r")
            y = np.load(entry / f"{split}_labels.npy")
            if X.shape != tuple(info["shape"]) or len(y) != X.shape[0]:
                return None
            out[split] = (X, y)
        return out
    except (OSError, ValueError, KeyError):
        return None


def load_entry(
    key: str, root: Path | None = None
) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """The cached splits ``{split: (X, y)}`` of ``key`` (X memory-mapped), or None.

    A present but inconsistent entry is deleted so that it gets recomputed.
    """
    entry = (root or cache_root()) / key
    if not entry.is_dir():
        return None
    arrays = _check(entry)
    if arrays is None:
        shutil.rmtree(entry, ignore_errors=True)
    return arrays


def read_manifest(key: str, root: Path | None = None) -> dict:
    return json.loads(((root or cache_root()) / key / "manifest.json").read_text())


def write_entry(
    key: str,
    compute: Callable[[], dict[str, tuple[np.ndarray, np.ndarray]]],
    manifest: dict,
    root: Path | None = None,
) -> Path:
    """Run ``compute`` and store its splits under ``key``, atomically.

    ``compute`` returns ``{split: (X (N, D) float, y (N,) int)}``. If it raises,
    nothing is left in the cache. If another run finished the same key first,
    its entry is kept and ours discarded.
    """
    root = root or cache_root()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
    try:
        arrays = compute()
        splits = {}
        for split, (X, y) in arrays.items():
            X = np.ascontiguousarray(X, dtype=np.float32)
            y = np.asarray(y, dtype=np.int64)
            np.save(tmp / f"{split}_features.npy", X)
            np.save(tmp / f"{split}_labels.npy", y)
            splits[split] = {"shape": list(X.shape), "dtype": "float32"}
        full = {**manifest, "key": key, "cache_format": CACHE_FORMAT_VERSION, "splits": splits}
        (tmp / "manifest.json").write_text(json.dumps(full, indent=2, sort_keys=True))
        final = root / key
        try:
            os.rename(tmp, final)
        except OSError:  # someone else completed the same key: keep theirs
            if _check(final) is None:
                shutil.rmtree(final, ignore_errors=True)
                os.rename(tmp, final)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
