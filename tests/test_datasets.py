import numpy as np
import pytest

from lteval.data import DatasetError, load_dataset


def test_mnist5k_is_real_mnist_shipped_in_a_package():
    ds = load_dataset("mnist5k-lt", seed=0)
    assert len(ds) == 5000 and ds.images.shape == (5000, 28, 28)
    assert np.bincount(ds.labels).tolist() == [500] * 10
    # digits are bright strokes on a dark background
    assert ds.images.mean() < 60 and ds.images.max() == 255
    counts = np.bincount(ds.labels[np.concatenate([ds.splits.train, ds.splits.val])])
    assert counts.max() / counts.min() == pytest.approx(50, rel=0.01)
    assert ds.image(0).mode == "RGB" and ds.image(0).size == (28, 28)


def test_digits_and_split_manifest():
    ds = load_dataset("digits-lt", seed=1)
    m = ds.manifest()
    assert m["split_hash"] == ds.splits.hash and m["split"]["eval"] == 300
    assert load_dataset("digits-lt", seed=2).splits.hash != ds.splits.hash


def test_folder_dataset(image_folder):
    ds = load_dataset("folder", image_folder, eval_per_class=4, seed=0)
    assert ds.class_names == ["class_0", "class_1", "class_2"]
    assert np.bincount(ds.labels[ds.splits.eval]).tolist() == [4, 4, 4]
    assert ds.image(int(ds.splits.train[0])).size == (16, 16)


def test_folder_long_tailed_profile(image_folder):
    ds = load_dataset("folder", image_folder, eval_per_class=4, imbalance_factor=5, seed=0)
    tv = np.concatenate([ds.splits.train, ds.splits.val])
    assert sorted(np.bincount(ds.labels[tv]).tolist()) == [
        2,
        4,
        10,
    ]  # n_max = smallest remainder (10), IF 5


@pytest.mark.parametrize(
    "name, root, match",
    [
        ("folder", None, "needs data_root"),
        ("folder", "/nonexistent/dir", "does not exist"),
        ("imagenet-xx", None, "unknown dataset"),
    ],
)
def test_bad_dataset_input(name, root, match):
    with pytest.raises(DatasetError, match=match):
        load_dataset(name, root)


def test_folder_needs_class_subfolders(tmp_path):
    (tmp_path / "only").mkdir()
    with pytest.raises(DatasetError, match="one sub-folder of images per class"):
        load_dataset("folder", tmp_path)
