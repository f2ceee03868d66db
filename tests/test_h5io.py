import h5py
import numpy as np
import pytest

from lteval.features import FeatureFileError, read_feature_dir, read_h5, write_h5


def test_round_trip(tmp_path):
    X, y = np.random.default_rng(0).normal(size=(6, 4)), np.array([0, 1, 2, 0, 1, 2])
    write_h5(tmp_path / "f.h5", X, y)
    X2, y2 = read_h5(tmp_path / "f.h5")
    np.testing.assert_allclose(X2, X.astype(np.float32))
    np.testing.assert_array_equal(y2, y)
    assert [p.name for p in tmp_path.iterdir()] == ["f.h5"]


def _raw(path, **datasets):
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f.create_dataset(k, data=v)
    return path


@pytest.mark.parametrize(
    "datasets, match",
    [
        (
            {"feats": np.ones((3, 2)), "labels": np.arange(3)},
            "lacks dataset\\(s\\) \\['features'\\]",
        ),
        ({"features": np.array([[1.0, np.nan], [0, 0]]), "labels": [0, 1]}, "NaN or inf in 1 rows"),
        ({"features": np.ones((3, 2)), "labels": np.arange(4)}, "one label per row"),
        ({"features": np.ones(3), "labels": np.arange(3)}, "2-D numeric"),
        ({"features": np.ones((2, 2)), "labels": [-1, 0]}, "non-negative"),
    ],
)
def test_bad_files(tmp_path, datasets, match):
    with pytest.raises(FeatureFileError, match=match):
        read_h5(_raw(tmp_path / "bad.h5", **datasets))


def test_not_hdf5(tmp_path):
    (tmp_path / "x.h5").write_text("hello")
    with pytest.raises(FeatureFileError, match="not a readable HDF5"):
        read_h5(tmp_path / "x.h5")


def test_feature_dir_checks(tmp_path):
    with pytest.raises(FeatureFileError, match="no sub-folders"):
        read_feature_dir(tmp_path)
    d = tmp_path / "bb"
    write_h5(d / "feature_train.h5", np.ones((4, 3)), [0, 0, 1, 1])
    with pytest.raises(FeatureFileError, match="feature_test.h5 does not exist"):
        read_feature_dir(tmp_path)
    write_h5(d / "feature_test.h5", np.ones((2, 3)), [0, 5])
    with pytest.raises(FeatureFileError, match="test labels \\[5\\] never occur in train"):
        read_feature_dir(tmp_path)
    write_h5(d / "feature_test.h5", np.ones((2, 2)), [0, 1])
    with pytest.raises(FeatureFileError, match="3-d but test are 2-d"):
        read_feature_dir(tmp_path)
