"""Fashion-MNIST from its idx files, as Debian's ``dataset-fashion-mnist`` installs them.

Looked for in ``--data-root`` (the folder itself, ``fashion-mnist/`` or torchvision's
``FashionMNIST/raw/`` under it), else in ``/usr/share/datasets/fashion-mnist/``.
The official train set is subsampled to the seeded exponential profile (class
order drawn from the seed), validation is carved from it, and a balanced eval split
of ``eval_per_class`` images per class is drawn (seeded) from the official test set.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from lteval.data.profiles import long_tailed_train_split
from lteval.errors import DatasetError, arg
from lteval.seeds import derived_rng

SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip


def read_idx(path: Path) -> np.ndarray:
    """An idx file (optionally gzip-compressed) of unsigned bytes as an array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an idx file of unsigned bytes")
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: {data.size} bytes for shape {shape}")
    return data.reshape(shape)


def _find(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def locate(root: Path | None) -> dict[str, Path]:
    """The four idx files, from ``root`` (or its usual sub-folders) or the system folder."""
    if root is not None:
        folders = [root, root / "fashion-mnist", root / "FashionMNIST" / "raw"]
    else:
        folders = [SYSTEM_DIR]
    for folder in folders:
        found = {k: _find(folder, stem) for k, stem in FILES.items()}
        if all(found.values()):
            return found
    where = arg("data_root", str(root)) if root is not None else str(SYSTEM_DIR)
    raise DatasetError(
        f"fashion-mnist-lt: the Fashion-MNIST idx files ({', '.join(FILES.values())}, "
        f"optionally .gz) are not in {where}; install them with "
        f"`sudo apt-get install dataset-fashion-mnist` (Debian) or pass {arg('data_root')}"
    )


def load_fashion(
    name: str,
    root: Path | None,
    *,
    seed: int,
    imbalance_factor: float | None,
    eval_per_class: int,
    n_max: int | None,
    val_fraction: float,
    **_,
):
    """(images (N, 28, 28) uint8, labels, class names, source, Splits) for fashion-mnist-lt.

    Images hold the official train set then the official test set.
    """
    files = locate(root)
    train_x, train_y = read_idx(files["train_images"]), read_idx(files["train_labels"])
    test_x, test_y = read_idx(files["test_images"]), read_idx(files["test_labels"])
    if len(train_x) != len(train_y) or len(test_x) != len(test_y):
        raise DatasetError(f"Fashion-MNIST image and label files differ in length in {files}")
    images = np.concatenate([train_x, test_x])
    labels = np.concatenate([train_y, test_y]).astype(np.int64)
    n_train = len(train_y)
    rng = derived_rng(seed, "fashion-eval")  # independent of the profile's draw
    test_idx = np.arange(n_train, len(labels))
    evals = []
    for c in np.unique(test_y):
        pool = test_idx[labels[test_idx] == c]
        if len(pool) < eval_per_class:
            raise DatasetError(
                f"{arg('eval_per_class', eval_per_class)} exceeds the {len(pool)} test images of "
                f"Fashion-MNIST class {c}"
            )
        evals.append(rng.permutation(pool)[:eval_per_class])
    try:
        splits = long_tailed_train_split(
            labels,
            np.arange(n_train),
            np.concatenate(evals),
            imbalance_factor=imbalance_factor,
            n_max=n_max,
            val_fraction=val_fraction,
            seed=seed,
            class_order="seeded",
        )
    except ValueError as e:
        raise DatasetError(f"fashion-mnist-lt: {e}") from None
    splits.config["eval_per_class"] = eval_per_class
    source = f"Fashion-MNIST idx files in {files['train_images'].parent}"
    return images, labels, list(CLASSES), source, splits
