"""The standard benchmarks, read from small fakes in their real on-disk layouts."""

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from lteval.data import DatasetError, load_dataset, long_tailed_counts


def fake_cifar(root, hundred=False, per_class_train=60, per_class_test=10, C=None):
    C = C or (100 if hundred else 10)
    rng = np.random.default_rng(0)
    folder = root / ("cifar-100-python" if hundred else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    key = b"fine_labels" if hundred else b"labels"

    def dump(name, per_class):
        y = np.repeat(np.arange(C), per_class).tolist()
        data = rng.integers(0, 256, (len(y), 3072), dtype=np.uint8)
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, key: y}, fh)

    if hundred:
        dump("train", per_class_train)
        dump("test", per_class_test)
        meta = {b"fine_label_names": [f"c{i}".encode() for i in range(C)]}
        pickle.dump(meta, open(folder / "meta", "wb"))
    else:
        for i in range(1, 6):
            dump(f"data_batch_{i}", per_class_train // 5)
        dump("test_batch", per_class_test)
        meta = {b"label_names": [f"c{i}".encode() for i in range(C)]}
        pickle.dump(meta, open(folder / "batches.meta", "wb"))
    return root


def test_cifar10_lt_profile_and_official_test(tmp_path):
    ds = load_dataset("cifar10-lt", fake_cifar(tmp_path), imbalance_factor=10, n_max=50)
    assert ds.images.shape == (60 * 10 + 10 * 10, 32, 32, 3)
    tv = np.concatenate([ds.splits.train, ds.splits.val])
    np.testing.assert_array_equal(np.bincount(ds.labels[tv]), long_tailed_counts(50, 10, 10))
    assert np.bincount(ds.labels[ds.splits.eval]).tolist() == [10] * 10
    assert ds.splits.eval.min() == 600  # the official test batch, untouched
    assert ds.class_names[3] == "c3" and ds.splits.config["class_order"] == "natural"


def test_cifar100_lt_layout(tmp_path):
    ds = load_dataset(
        "cifar100-lt",
        fake_cifar(tmp_path, hundred=True, per_class_train=10),
        imbalance_factor=5,
        n_max=10,
    )
    tv = np.concatenate([ds.splits.train, ds.splits.val])
    assert np.bincount(ds.labels[tv])[0] == 10 and np.bincount(ds.labels[tv])[-1] == 2
    assert len(ds.class_names) == 100


def test_cifar_missing_archive_names_file_and_layout(tmp_path):
    with pytest.raises(DatasetError, match="cifar-10-batches-py/data_batch_1 not found.*layout"):
        load_dataset("cifar10-lt", tmp_path)


class _RunsShell:
    """A pickle payload that would run a shell command when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("target", ["data_batch_1", "batches.meta"])
def test_a_crafted_cifar_pickle_runs_no_code(tmp_path, target):
    root = fake_cifar(tmp_path / "data")
    marker = tmp_path / "ran"
    with open(root / "cifar-10-batches-py" / target, "wb") as fh:
        pickle.dump({b"data": _RunsShell(marker), b"labels": [0]}, fh, protocol=2)
    with pytest.raises(DatasetError, match=rf"{target} is not a CIFAR python batch: .*system"):
        load_dataset("cifar10-lt", root)
    assert not marker.exists()


def test_every_cifar_file_is_found_before_any_is_read(tmp_path, monkeypatch):
    root = fake_cifar(tmp_path)
    (root / "cifar-10-batches-py" / "test_batch").unlink()
    import lteval.data.benchmarks as bm

    monkeypatch.setattr(bm, "load_data_pickle", lambda *a, **k: pytest.fail("read first"))
    with pytest.raises(DatasetError, match="test_batch not found"):
        load_dataset("cifar10-lt", root)


@pytest.mark.parametrize(
    "payload, match",
    [
        ([1, 2], "holds a list, not a CIFAR batch"),
        ({b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}, "not 3072"),
        ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "uint8"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, "one integer label"),
        ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, "outside the 10"),
    ],
)
def test_a_malformed_cifar_batch_is_named(tmp_path, payload, match):
    root = fake_cifar(tmp_path)
    with open(root / "cifar-10-batches-py" / "data_batch_3", "wb") as fh:
        pickle.dump(payload, fh, protocol=2)
    with pytest.raises(DatasetError, match=f"data_batch_3.*{match}"):
        load_dataset("cifar10-lt", root)


def test_a_truncated_cifar_pickle_is_named(tmp_path):
    root = fake_cifar(tmp_path)
    path = root / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DatasetError, match="data_batch_2 is not a readable CIFAR python batch"):
        load_dataset("cifar10-lt", root)


def _images(root, rel_paths):
    for rel in rel_paths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / rel)


@pytest.mark.parametrize(
    "name, prefix", [("imagenet-lt", "ImageNet_LT"), ("places-lt", "Places_LT")]
)
def test_split_list_benchmarks(tmp_path, name, prefix):
    sizes = {"train": [9, 4, 1], "val": [2, 2, 2], "test": [3, 3, 3]}
    for split, per in sizes.items():
        lines = []
        for c, n in enumerate(per):
            for i in range(n):
                lines.append(f"{split}/c{c}/{i}.jpg {c}")
        _images(tmp_path, [ln.split()[0] for ln in lines])
        (tmp_path / f"{prefix}_{split}.txt").write_text("\n".join(lines) + "\n")
    ds = load_dataset(name, tmp_path)
    assert np.bincount(ds.labels[ds.splits.train]).tolist() == [9, 4, 1]
    assert np.bincount(ds.labels[ds.splits.val]).tolist() == [2, 2, 2]
    assert np.bincount(ds.labels[ds.splits.eval]).tolist() == [3, 3, 3]
    assert ds.image(int(ds.splits.eval[0])).size == (8, 8)
    (tmp_path / f"{prefix}_test.txt").write_text("test/c0/0.jpg 0\n")
    assert load_dataset(name, tmp_path).splits.hash != ds.splits.hash
    (tmp_path / f"{prefix}_val.txt").unlink()
    with pytest.raises(DatasetError, match=f"{prefix}_val.txt not found"):
        load_dataset(name, tmp_path)


def test_split_list_bad_line(tmp_path):
    for split in ("train", "val", "test"):
        (tmp_path / f"ImageNet_LT_{split}.txt").write_text("a.jpg 0\nno-label-here\n")
    with pytest.raises(DatasetError, match="ImageNet_LT_train.txt:2: expected"):
        load_dataset("imagenet-lt", tmp_path)


def test_inat2018_json(tmp_path):
    def write(fn, per_class, start):
        images, anns, k = [], [], start
        for c, n in enumerate(per_class):
            for _ in range(n):
                images.append({"id": k, "file_name": f"imgs/{k}.jpg"})
                anns.append({"image_id": k, "category_id": c})
                k += 1
        _images(tmp_path, [im["file_name"] for im in images])
        (tmp_path / fn).write_text(json.dumps({"images": images, "annotations": anns}))

    write("train2018.json", [20, 10, 5], 0)
    write("val2018.json", [3, 3, 3], 100)
    ds = load_dataset("inat2018", tmp_path, val_fraction=0.2)
    assert np.bincount(ds.labels[ds.splits.val]).tolist() == [4, 2, 1]
    assert np.bincount(ds.labels[ds.splits.eval]).tolist() == [3, 3, 3]
    (tmp_path / "val2018.json").unlink()
    with pytest.raises(DatasetError, match="val2018.json not found"):
        load_dataset("inat2018", tmp_path)


def _python2_pickle(obj) -> bytes:
    """``obj`` pickled as Python 2 wrote the CIFAR archives: protocol 2, bytes as
    BINSTRING (a Python 2 ``str``), numpy under ``numpy.core.multiarray``."""
    import io
    import struct

    class Py2(pickle._Pickler):
        dispatch = dict(pickle._Pickler.dispatch)

        def save_bytes(self, b):
            self.write(pickle.BINSTRING + struct.pack("<i", len(b)) + b)
            self.memoize(b)

        dispatch[bytes] = save_bytes

        def save_global(self, obj, name=None):
            if getattr(obj, "__module__", "").startswith("numpy._core"):
                module = obj.__module__.replace("numpy._core", "numpy.core")
                self.write(pickle.GLOBAL + f"{module}\n{name or obj.__name__}\n".encode())
                self.memoize(obj)
            else:
                super().save_global(obj, name)

        dispatch[type] = save_global

    buf = io.BytesIO()
    Py2(buf, protocol=2).dump(obj)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["python2", "protocol5"])
def test_genuine_and_re_saved_cifar_batches_load(tmp_path, fmt):
    root = fake_cifar(tmp_path)
    folder = root / "cifar-10-batches-py"
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        with open(folder / name, "rb") as fh:
            d = pickle.load(fh)
        data = _python2_pickle(d) if fmt == "python2" else pickle.dumps(d, protocol=5)
        if fmt == "python2":
            assert b"_codecs" not in data
            assert (b"numpy.core.multiarray\n_reconstruct" in data) == (b"data" in d)
        (folder / name).write_bytes(data)
    ds = load_dataset("cifar10-lt", root, imbalance_factor=10, n_max=50)
    assert ds.class_names[3] == "c3" and ds.images.shape[1:] == (32, 32, 3)


def test_a_self_nested_label_list_is_refused_without_walking_it(tmp_path):
    root = fake_cifar(tmp_path)
    x = [0]
    for _ in range(40):  # 2**40 leaves if walked; a few hundred bytes pickled
        x = [x, x]
    with open(root / "cifar-10-batches-py" / "data_batch_1", "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": x}, fh, protocol=2)
    with pytest.raises(DatasetError, match="data_batch_1: b'labels' is not one integer label"):
        load_dataset("cifar10-lt", root)


@pytest.mark.parametrize("label", ["\u00b2", "9" * 5000, "1e3"])
def test_a_list_label_that_is_not_a_plain_integer_is_one_line(tmp_path, label):
    (tmp_path / "ImageNet_LT_train.txt").write_text(f"a.png {label}\n")
    with pytest.raises(DatasetError, match="ImageNet_LT_train.txt:1: expected '<relative path>"):
        load_dataset("imagenet-lt", tmp_path)
