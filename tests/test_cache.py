import json

import numpy as np
import pytest

from lteval.features import cache


def _arrays():
    rng = np.random.default_rng(0)
    return {"train": (rng.normal(size=(5, 3)), np.arange(5)), "eval": (np.ones((2, 3)), [0, 1])}


def test_key_is_stable_and_sensitive():
    a = cache.cache_key({"backbone": "x", "split_hash": "1"})
    assert a == cache.cache_key({"split_hash": "1", "backbone": "x"})
    assert a != cache.cache_key({"backbone": "x", "split_hash": "2"})


def test_round_trip_with_manifest(tmp_path):
    cache.write_entry("k1", _arrays, {"note": "hi"}, root=tmp_path)
    got = cache.load_entry("k1", root=tmp_path)
    np.testing.assert_allclose(got["train"][0], _arrays()["train"][0].astype(np.float32))
    assert isinstance(got["train"][0], np.memmap)
    m = cache.read_manifest("k1", root=tmp_path)
    assert m["note"] == "hi" and m["splits"]["train"]["shape"] == [5, 3] and m["key"] == "k1"
    assert [p.name for p in tmp_path.iterdir()] == ["k1"]


def test_failed_compute_leaves_nothing(tmp_path):
    def boom():
        raise RuntimeError("forward failed")

    with pytest.raises(RuntimeError):
        cache.write_entry("k2", boom, {}, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_entry_is_detected_and_removed(tmp_path):
    entry = cache.write_entry("k3", _arrays, {}, root=tmp_path)
    m = json.loads((entry / "manifest.json").read_text())
    m["splits"]["train"]["shape"] = [6, 3]
    (entry / "manifest.json").write_text(json.dumps(m))
    assert cache.load_entry("k3", root=tmp_path) is None
    assert not entry.exists()
    entry = cache.write_entry("k4", _arrays, {}, root=tmp_path)
    (entry / "eval_labels.npy").write_bytes(b"garbage")
    assert cache.load_entry("k4", root=tmp_path) is None


def test_second_writer_of_a_key_keeps_the_first(tmp_path):
    cache.write_entry("k5", _arrays, {"who": "first"}, root=tmp_path)
    cache.write_entry("k5", _arrays, {"who": "second"}, root=tmp_path)
    assert cache.read_manifest("k5", root=tmp_path)["who"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["k5"]
