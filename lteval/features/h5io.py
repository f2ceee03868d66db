"""The DLSA reference's feature files: ``feature_train.h5`` / ``feature_test.h5``.

Each file holds two datasets: ``features`` (N x D float) and ``labels`` (N): integer
class ids, or class names as (byte) strings, UTF-8.
``--features DIR`` expects one sub-folder per backbone holding both files.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from lteval.atomic import writing
from lteval.errors import FeatureFileError, arg, first_line, short

H5_FILES = ("feature_train.h5", "feature_test.h5")


def read_h5(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate one h5 file: returns (X (N, D) float32, y (N,)): int64 class
    ids, or str class names when ``labels`` holds (byte) strings."""
    path = Path(path)
    if not path.is_file():
        raise FeatureFileError(f"{path} does not exist (expected {H5_FILES[0]} and {H5_FILES[1]})")
    try:
        with h5py.File(path, "r") as f:
            missing = {"features", "labels"} - set(f.keys())
            if missing:
                raise FeatureFileError(
                    f"{path} lacks dataset(s) {sorted(missing)}; it has {sorted(f.keys())}. "
                    "Write 'features' (N x D float) and 'labels' (N int ids or class names)."
                )
            for key in ("features", "labels"):
                _check_stored(f, key, path)
            X, y = np.asarray(f["features"]), np.asarray(f["labels"])
    except (OSError, KeyError, ValueError, TypeError) as e:  # h5py raises all of them
        if isinstance(e, FeatureFileError):
            raise
        raise FeatureFileError(f"{path} is not a readable HDF5 file: {first_line(e)}") from None
    for key, a in (("features", X), ("labels", y)):
        if a.dtype.names:
            raise FeatureFileError(
                f"{path}: {key!r} has a compound dtype (fields {', '.join(a.dtype.names)}); "
                "write a plain array"
            )
    if X.dtype.kind == "c":
        raise FeatureFileError(
            f"{path}: 'features' are complex numbers; write real ones (e.g. magnitudes, or "
            "real and imaginary parts as separate columns)"
        )
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise FeatureFileError(
            f"{path}: 'features' must be a 2-D numeric array, got shape {X.shape} of {X.dtype}"
        )
    y = y.reshape(-1) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or len(y) != len(X):
        raise FeatureFileError(
            f"{path}: 'labels' has shape {y.shape} but 'features' has {len(X)} rows; "
            "they must have one label per row"
        )
    with np.errstate(over="ignore", invalid="ignore"):
        X32 = X.astype(np.float32)
    if not np.all(np.isfinite(X32)):
        bad = int((~np.isfinite(X32)).any(axis=1).sum())
        what = "NaN or inf" if not np.all(np.isfinite(X)) else "values beyond float32's range"
        raise FeatureFileError(
            f"{path}: 'features' holds {what} in {bad} rows; clean or rescale them first"
        )
    if y.dtype.kind in "SUO":
        return X32, _names(y, path)
    if y.dtype.kind not in "biuf":
        raise FeatureFileError(
            f"{path}: 'labels' has dtype {y.dtype}; write integer class ids or class names"
        )
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0):
            raise FeatureFileError(f"{path}: 'labels' must be integers")
    if len(y) and y.min() < 0:
        raise FeatureFileError(f"{path}: 'labels' must be non-negative class ids")
    if len(y) and y.max() > 2**53:  # beyond it float64 ids merge, and int64 ids overflow
        raise FeatureFileError(
            f"{path}: 'labels' go up to {y.max():.4g}; class ids must be below 2**53 "
            "(renumber them, or write class names)"
        )
    return X32, y.astype(np.int64)


def memory_budget() -> int:
    """Bytes one feature file may take once read: half of this machine's physical
    memory (``LTEVAL_H5_MAX_BYTES`` overrides it)."""
    env = os.environ.get("LTEVAL_H5_MAX_BYTES")
    if env:
        if not env.strip().isdigit():
            raise FeatureFileError(
                f"LTEVAL_H5_MAX_BYTES={short(env)} is not a whole number of bytes; set it "
                "to one (e.g. 8000000000), or unset it"
            )
        return int(env)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX: 8 GiB
        return 8 << 30


def _check_stored(f: h5py.File, key: str, path: Path) -> None:
    """FeatureFileError, before anything is read, unless ``f[key]`` is a dataset kept in
    this file (no external link, external raw storage or virtual mapping: those read
    other files), whose stored bytes can hold what it declares, and whose size fits
    ``memory_budget``. A file of a few kB can declare a 10M x 10k dataset that reads
    as 373 GiB of fill values."""
    link = f.get(key, getlink=True)
    if isinstance(link, h5py.ExternalLink | h5py.SoftLink):
        raise FeatureFileError(
            f"{path}: {key!r} is a link to {link.path!r}"
            + (f" in {link.filename}" if isinstance(link, h5py.ExternalLink) else "")
            + "; write the array itself into this file"
        )
    ds = f[key]
    if not isinstance(ds, h5py.Dataset):
        raise FeatureFileError(
            f"{path}: {key!r} is a {type(ds).__name__}, not a dataset; write it as one array"
        )
    if ds.external or ds.is_virtual:
        raise FeatureFileError(
            f"{path}: {key!r} keeps its data in other files "
            f"({'virtual' if ds.is_virtual else 'external'} storage); write the array "
            "itself into this file"
        )
    if ds.shape is None:  # an empty dataspace: nothing to read
        return
    n = int(np.prod(ds.shape, dtype=np.float64))
    if ds.dtype.kind == "O":  # variable-length strings: their size is not declared
        nbytes, raw = n * 64, 0  # a generous guess for the budget; nothing to compare
    else:  # fixed-length strings too: b'x' * 2,000,000 per label is 2 MB each
        raw = n * ds.dtype.itemsize
        nbytes = n * max(ds.dtype.itemsize, 4)  # numbers are read as float32 / int64
    if raw and not _stored_whole(ds):
        raise FeatureFileError(
            f"{path}: {key!r} declares shape {ds.shape} ({_gib(raw)}) but the file stores "
            f"{ds.id.get_storage_size():,} bytes of it; the file is truncated or not "
            "written whole: write it again"
        )
    budget = memory_budget()
    if nbytes > budget:
        raise FeatureFileError(
            f"{path}: {key!r} declares shape {ds.shape}, {_gib(nbytes)} once read, over the "
            f"memory budget of {_gib(budget)} (half this machine's memory; "
            "LTEVAL_H5_MAX_BYTES sets it); give fewer rows or dimensions"
        )


def _stored_whole(ds: h5py.Dataset) -> bool:
    """True when every byte ``ds`` declares is stored in the file: all of a
    contiguous dataset's bytes, every chunk of a chunked one (whatever its filters
    compress them to). Unwritten parts would read as fill values."""
    if ds.chunks is None:
        return ds.id.get_storage_size() >= ds.size * ds.dtype.itemsize
    expected = 1
    for side, chunk in zip(ds.shape, ds.chunks, strict=True):
        expected *= -(-side // chunk)
    return ds.id.get_num_chunks() >= expected


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def _names(y: np.ndarray, path: Path) -> np.ndarray:
    """String class labels (bytes decoded as UTF-8) as a str array."""
    out = []
    for v in y.tolist():
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise FeatureFileError(
                    f"{path}: 'labels' holds bytes that are not UTF-8 text ({v[:20]!r}); "
                    "write integer class ids or UTF-8 class names"
                ) from None
        if not isinstance(v, str):
            raise FeatureFileError(
                f"{path}: 'labels' mixes names with {type(v).__name__} values; write "
                "integer class ids or class names, not both"
            )
        out.append(v)
    return np.asarray(out, dtype=str)


def write_h5(path: str | Path, X: np.ndarray, y: np.ndarray) -> None:
    """Write (X, y) in the reference format, via a temporary file renamed into place."""
    with writing(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=np.asarray(X, dtype=np.float32))
        f.create_dataset("labels", data=np.asarray(y, dtype=np.int64))


def read_feature_dir(root: str | Path) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``{backbone: {"train": (X, y), "test": (X, y)}}`` from ``root/<backbone>/*.h5``."""
    root = Path(root)
    if not root.is_dir():
        raise FeatureFileError(f"{arg('feature_dir', str(root))} is not a directory")
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subdirs:
        raise FeatureFileError(
            f"{arg('feature_dir', str(root))} holds no sub-folders; expected one per backbone, "
            f"each with {H5_FILES[0]} and {H5_FILES[1]}"
        )
    out = {}
    for d in subdirs:
        train, test = (read_h5(d / f) for f in H5_FILES)
        if train[0].shape[1] != test[0].shape[1]:
            raise FeatureFileError(
                f"{d}: train features are {train[0].shape[1]}-d but test are {test[0].shape[1]}-d"
            )
        if (train[1].dtype.kind == "U") != (test[1].dtype.kind == "U"):
            raise FeatureFileError(
                f"{d}: one file's 'labels' are class names and the other's are integer "
                "ids; write the same kind in both"
            )
        unseen = np.setdiff1d(test[1], train[1]).tolist()
        if unseen:
            raise FeatureFileError(f"{d}: test labels {unseen[:10]} never occur in train")
        out[d.name] = {"train": train, "test": test}
    return out
