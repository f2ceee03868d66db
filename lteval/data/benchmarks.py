"""The standard long-tailed benchmarks, read from their usual on-disk layouts.

Nothing is downloaded: each loader names the file it misses and the layout it
expects under ``--data-root``.

- ``cifar10-lt`` / ``cifar100-lt``: the CIFAR python archives as torchvision
  unpacks them (``cifar-10-batches-py/data_batch_1..5, test_batch, batches.meta``;
  ``cifar-100-python/train, test, meta``). Train is subsampled to the exponential
  profile (n_max 5000 / 500, class 0 the head as in the standard protocol), the
  official balanced test set is the eval split, validation is carved from train.
- ``imagenet-lt`` / ``places-lt``: an image root plus the standard split lists
  (``<relative path> <label>`` per line) for train, val and test.
- ``inat2018``: ``train2018.json`` and ``val2018.json`` (COCO-style ``images`` and
  ``annotations``); val serves as the eval split, validation is carved from train.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lteval.atomic import file_sha256
from lteval.data.profiles import Splits, carve_validation, long_tailed_train_split
from lteval.data.safe_pickle import RefusedGlobal, load_data_pickle
from lteval.errors import DatasetError, arg, read_user_json, read_user_text, short
from lteval.seeds import derived_rng

CIFAR = {
    "cifar10-lt": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        b"labels",
        "batches.meta",
        b"label_names",
        5000,
    ),
    "cifar100-lt": (
        "cifar-100-python",
        ["train"],
        ["test"],
        b"fine_labels",
        "meta",
        b"fine_label_names",
        500,
    ),
}

LIST_FILES = {
    "imagenet-lt": ("ImageNet_LT", ("train", "val", "test")),
    "places-lt": ("Places_LT", ("train", "val", "test")),
}


def _need(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{path} not found. Expected layout under {arg('data_root')}: {layout}")
    return path


def _unpickle(path: Path) -> dict:
    """A CIFAR python archive's dict, read without running code (``safe_pickle``)."""
    try:
        data = load_data_pickle(path.read_bytes(), encoding="bytes")
    except RefusedGlobal as e:
        raise DatasetError(
            f"{path} is not a CIFAR python batch: its pickle asks to run {e.qualname}, "
            "which lteval never does; replace it with the official archive "
            "(cifar-10-python.tar.gz / cifar-100-python.tar.gz, unpacked)"
        ) from None
    except OSError as e:
        raise DatasetError(f"{path} cannot be read ({e.strerror or e})") from None
    except Exception as e:  # a damaged pickle raises many kinds
        raise DatasetError(
            f"{path} is not a readable CIFAR python batch ({type(e).__name__}: "
            f"{str(e)[:100]}); replace it with the official archive, unpacked"
        ) from None
    if not isinstance(data, dict):
        raise DatasetError(
            f"{path} holds a {type(data).__name__}, not a CIFAR batch's dict; replace it "
            "with the official archive, unpacked"
        )
    return data


def _batch(path: Path, key: bytes, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 3072) uint8, labels (n,) int64) of one CIFAR batch, checked."""
    d = _unpickle(path)
    images, labels = d.get(b"data"), d.get(key)
    fix = "replace it with the official archive, unpacked"
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 2:
        raise DatasetError(f"{path}: b'data' is not an (n, 3072) uint8 array; {fix}")
    if images.shape[1] != 3 * 32 * 32:
        raise DatasetError(f"{path}: b'data' rows hold {images.shape[1]} values, not 3072; {fix}")
    # checked before any conversion: a pickle can nest one shared list in itself, and
    # np.asarray would then walk an exponentially large tree
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and labels.dtype.kind in "iu" and len(labels) == len(images)
    else:
        ok = (
            isinstance(labels, list)
            and len(labels) == len(images)
            and all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in labels)
        )
    if not ok:
        raise DatasetError(f"{path}: {key!r} is not one integer label per image; {fix}")
    try:
        y = np.asarray(labels, dtype=np.int64)
    except OverflowError:
        raise DatasetError(f"{path}: {key!r} holds a label beyond int64; {fix}") from None
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise DatasetError(
            f"{path}: {key!r} holds {int(y.min())}..{int(y.max())}, outside the "
            f"{num_classes} classes 0..{num_classes - 1}; {fix}"
        )
    return images, y


def _names(path: Path, key: bytes, num_classes: int) -> list[str]:
    names = _unpickle(path).get(key)
    if (
        not isinstance(names, list)
        or len(names) != num_classes
        or not all(isinstance(n, bytes | str) for n in names)
    ):
        raise DatasetError(
            f"{path}: {key!r} is not a list of {num_classes} class names; replace it with "
            "the official archive, unpacked"
        )
    return [n.decode(errors="replace") if isinstance(n, bytes) else n for n in names]


def load_cifar(
    name: str,
    root: Path,
    *,
    seed: int,
    imbalance_factor: float | None,
    n_max: int | None,
    val_fraction: float,
    **_,
):
    """(images (N, 32, 32, 3) uint8, labels, class names, source, Splits) for CIFAR-LT."""
    folder, train_files, test_files, key, meta, names_key, default_max = CIFAR[name]
    layout = f"{folder}/{{{','.join(train_files + test_files)},{meta}}} (the python archive)"
    num_classes = 10 if name == "cifar10-lt" else 100
    paths = [_need(root / folder / f, layout) for f in train_files + test_files]
    parts = [_batch(p, key, num_classes) for p in paths]
    images = np.concatenate([im for im, _ in parts]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([y for _, y in parts])
    n_train = sum(len(y) for _, y in parts[: len(train_files)])
    meta_path = root / folder / meta
    names = (
        _names(meta_path, names_key, num_classes)
        if meta_path.is_file()
        else [str(c) for c in range(num_classes)]
    )
    splits = long_tailed_train_split(
        labels,
        np.arange(n_train),
        np.arange(n_train, len(labels)),
        imbalance_factor=100.0 if imbalance_factor is None else imbalance_factor,
        n_max=default_max if n_max is None else n_max,
        val_fraction=val_fraction,
        seed=seed,
        class_order="natural",
    )
    return images.transpose(0, 2, 3, 1), labels, names, f"cifar:{(root / folder).resolve()}", splits


def _read_list(path: Path, root: Path) -> tuple[list[Path], list[int]]:
    paths, labels = [], []
    for n, line in enumerate(read_user_text(path, "the list", DatasetError).splitlines(), 1):
        if not line.strip():
            continue
        rel, _, lab = line.strip().rpartition(" ")
        if not rel or not re.fullmatch(r"-?[0-9]{1,12}", lab):
            raise DatasetError(f"{path}:{n}: expected '<relative path> <label>', got {short(line)}")
        paths.append(root / rel)
        labels.append(check_class_id(int(lab), f"{path}:{n}"))
    return paths, labels


MAX_CLASS_ID = 1_000_000
"""The largest class id a benchmark list or annotation file may hold (the largest
standard benchmarks have about 22,000 classes): every id up to the largest gets a
name, so a stray 2,000,000,000 would build billions of them."""


def check_class_id(label: int, where: str) -> int:
    """``label`` when it is a class id in 0..``MAX_CLASS_ID``; DatasetError naming
    ``where`` otherwise."""
    if not 0 <= label <= MAX_CLASS_ID:
        raise DatasetError(
            f"{where}: label {label} is not a class id in 0..{MAX_CLASS_ID:,}; number the "
            "classes 0, 1, 2, ..."
        )
    return label


def load_split_lists(name: str, root: Path, *, seed: int, **_):
    """ImageNet-LT / Places-LT from ``<Prefix>_{train,val,test}.txt`` in root or root/<Prefix>."""
    prefix, split_names = LIST_FILES[name]
    found = {}
    for split in split_names:
        cands = [root / f"{prefix}_{split}.txt", root / prefix / f"{prefix}_{split}.txt"]
        hit = next((c for c in cands if c.is_file()), None)
        if hit is None:
            raise DatasetError(
                f"{cands[0]} not found (nor {cands[1]}). Expected the standard split lists "
                f"{prefix}_train.txt, {prefix}_val.txt, {prefix}_test.txt, one "
                f"'<path relative to {arg('data_root')}> <label>' per line"
            )
        found[split] = (*_read_list(hit, root), file_sha256(hit)[:16])
    paths, labels, idx, start = [], [], {}, 0
    for split in split_names:
        p, y, _ = found[split]
        paths += p
        labels += y
        idx[split] = np.arange(start, start + len(p))
        start += len(p)
    y = np.asarray(labels, np.int64)
    config = {"list_sha256": {s: found[s][2] for s in split_names}, "seed": seed}
    splits = Splits(idx["train"], idx["val"], idx["test"], np.unique(y), config)
    names = [str(c) for c in range(int(y.max()) + 1)]
    return paths, y, names, f"{name}:{root.resolve()}", splits


def load_inat(name: str, root: Path, *, seed: int, val_fraction: float, **_):
    """iNaturalist 2018 from the official json annotations; val is the eval split."""
    layout = "train2018.json and val2018.json (COCO-style 'images' and 'annotations')"
    parts = []
    for fn in ("train2018.json", "val2018.json"):
        d = read_user_json(_need(root / fn, layout), "the annotations", DatasetError)
        try:
            cat = {a["image_id"]: a["category_id"] for a in d["annotations"]}
            parts.append([(root / im["file_name"], cat[im["id"]]) for im in d["images"]])
        except (KeyError, TypeError) as e:
            raise DatasetError(f"{root / fn} lacks {short(str(e))} ({layout})") from None
        for _, c in parts[-1]:
            if isinstance(c, bool) or not isinstance(c, int):
                raise DatasetError(f"{root / fn}: category_id {short(c)} is not an integer")
            check_class_id(c, str(root / fn))
    paths = [p for part in parts for p, _ in part]
    y = np.asarray([c for part in parts for _, c in part], np.int64)
    n_train = len(parts[0])
    rng = derived_rng(seed)  # the dataset draw: the root stream of seed
    train, val = carve_validation(np.arange(n_train), y, val_fraction, rng)
    splits = Splits(
        train,
        val,
        np.arange(n_train, len(y)),
        np.unique(y[:n_train]),
        {"val_fraction": val_fraction, "seed": seed, "eval": "val2018"},
    )
    names = [str(c) for c in range(int(y.max()) + 1)]
    return paths, y, names, f"inat2018:{root.resolve()}", splits
