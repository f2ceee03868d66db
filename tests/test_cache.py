import json
import multiprocessing as mp
import time

import numpy as np
import pytest

from lteval.features import cache


def _arrays():
    rng = np.random.default_rng(0)
    return {
        "train": (rng.normal(size=(5, 3)), np.arange(5), np.arange(10, 15)),
        "eval": (np.ones((2, 3)), [0, 1], [20, 21]),
    }


def test_key_is_stable_and_sensitive():
    a = cache.cache_key({"backbone": "x", "split_hash": "1"})
    assert a == cache.cache_key({"split_hash": "1", "backbone": "x"})
    assert a != cache.cache_key({"backbone": "x", "split_hash": "2"})


def test_round_trip_with_manifest_and_checksums(tmp_path):
    cache.write_entry("k1", _arrays, {"note": "hi"}, root=tmp_path)
    arrays, m = cache.load_entry("k1", root=tmp_path)
    X, y, idx = arrays["train"]
    np.testing.assert_allclose(X, _arrays()["train"][0].astype(np.float32))
    assert isinstance(X, np.memmap) and idx.tolist() == list(range(10, 15))
    assert m["note"] == "hi" and m["splits"]["train"]["shape"] == [5, 3] and m["key"] == "k1"
    assert len(m["checksums"]) == 6
    assert [p.name for p in tmp_path.iterdir()] == ["k1"]


def test_float16_storage(tmp_path):
    cache.write_entry("k16", _arrays, {}, root=tmp_path, dtype="float16")
    arrays, m = cache.load_entry("k16", root=tmp_path)
    assert arrays["train"][0].dtype == np.float16 and m["splits"]["train"]["dtype"] == "float16"


def test_failed_compute_leaves_nothing(tmp_path):
    def boom():
        raise RuntimeError("forward failed")

    with pytest.raises(RuntimeError, match="forward failed"):
        cache.write_entry("k2", boom, {}, root=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corrupt_or_truncated_entries_are_detected_and_removed(tmp_path):
    entry = cache.write_entry("k3", _arrays, {}, root=tmp_path)
    m = json.loads((entry / "manifest.json").read_text())
    m["splits"]["train"]["shape"] = [6, 3]
    (entry / "manifest.json").write_text(json.dumps(m))
    assert cache.load_entry("k3", root=tmp_path) is None and not entry.exists()
    entry = cache.write_entry("k4", _arrays, {}, root=tmp_path)
    raw = bytearray((entry / "train_features.npy").read_bytes())
    raw[-1] ^= 0xFF  # one flipped byte: shapes still fine, checksum not
    (entry / "train_features.npy").write_bytes(bytes(raw))
    assert cache.load_entry("k4", root=tmp_path) is None and not entry.exists()
    entry = cache.write_entry("k5", _arrays, {}, root=tmp_path)
    data = (entry / "eval_labels.npy").read_bytes()
    (entry / "eval_labels.npy").write_bytes(data[: len(data) // 2])  # truncated
    assert cache.load_entry("k5", root=tmp_path) is None


def test_second_writer_of_a_key_keeps_the_first(tmp_path):
    cache.write_entry("k6", _arrays, {"who": "first"}, root=tmp_path)
    cache.write_entry("k6", _arrays, {"who": "second"}, root=tmp_path)
    assert cache.load_entry("k6", root=tmp_path)[1]["who"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["k6"]


def _hold(root, key, q):
    with cache.entry_lock(key, root=root):
        q.put(("in", time.monotonic()))
        time.sleep(0.5)
        q.put(("out", time.monotonic()))


def test_lock_serialises_processes(tmp_path):
    q = mp.get_context("fork").Queue()
    procs = [
        mp.get_context("fork").Process(target=_hold, args=(tmp_path, "k", q)) for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    events = sorted(q.get(timeout=10) for _ in range(4))
    events.sort(key=lambda e: e[1])
    assert [e[0] for e in events] == ["in", "out", "in", "out"]  # never both inside


def test_chunks_round_trip_and_reject_garbage(tmp_path):
    cache.save_chunk(tmp_path / "c.npz", X=np.ones((2, 2)), index=np.arange(2))
    assert cache.load_chunk(tmp_path / "c.npz")["index"].tolist() == [0, 1]
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04truncated")
    assert cache.load_chunk(tmp_path / "bad.npz") is None
    assert cache.load_chunk(tmp_path / "missing.npz") is None


def test_load_or_build_builds_a_missing_entry_once_under_its_lock(tmp_path, monkeypatch):
    """The one load-or-build of a cache entry (extraction and the study's small CNNs)."""
    monkeypatch.setenv("LTEVAL_CACHE", str(tmp_path / "c"))
    held, built = [], []

    def build():
        held.append((tmp_path / "c" / ".locks" / "k1.lock").exists())
        built.append(1)
        arrays = {"train": (np.ones((2, 3), np.float32), np.arange(2), np.arange(2))}
        cache.write_entry("k1", lambda: arrays, {"identity": {}})

    first = cache.load_or_build("k1", build)
    second = cache.load_or_build("k1", build)
    assert built == [1] and held == [True]  # built once, with the lock held
    assert first[0]["train"][0].tolist() == second[0]["train"][0].tolist()
