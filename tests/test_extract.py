"""Extraction into the cache: hits, resume, bad images, layers, concurrency, torchrun."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import folder_args

from lteval.backbones import load_backbone
from lteval.data import load_dataset
from lteval.errors import DatasetError, UsageError
from lteval.features import FeatureOptions, RunOptions, cache_root, get_features

TINY = "timm:test_resnet"


@pytest.fixture
def setup(image_folder):
    ds = load_dataset("folder", image_folder, eval_per_class=4, seed=0)
    return load_backbone(TINY, allow_random_init=True), ds


def test_second_run_does_no_forward_pass(setup):
    bb, ds = setup
    stats1, stats2 = {}, {}
    a, m = get_features(bb, ds, stats=stats1)
    b, _ = get_features(bb, ds, stats=stats2)
    assert stats1["images"] == len(ds) and stats2 == {}
    for split in a:
        np.testing.assert_array_equal(a[split][0], b[split][0])
        np.testing.assert_array_equal(a[split][1], ds.labels[getattr(ds.splits, split)])
    assert m["bad_images"]["count"] == 0 and m["dataset"]["split_hash"] == ds.splits.hash


class Interrupt(Exception):
    pass


def test_interrupted_extraction_resumes_from_finished_chunks(setup):
    bb, ds = setup
    run = RunOptions(batch_size=4, chunk_size=8)
    ref, _ = get_features(bb, ds, run=run, options=FeatureOptions(l2_normalize=True))
    shutil.rmtree(cache_root())

    def stop_in_val(split, done, total):
        if split == "val":
            raise Interrupt

    with pytest.raises(Interrupt):
        get_features(bb, ds, run=run, progress=stop_in_val)
    part = [p for p in cache_root().iterdir() if p.name.startswith(".partial-")]
    assert len(part) == 1 and len(list(part[0].glob("train-*.npz"))) == -(
        -len(ds.splits.train) // 8
    )
    assert not [p for p in cache_root().iterdir() if not p.name.startswith(".")]  # no entry yet
    stats = {}
    got, _ = get_features(bb, ds, run=run, stats=stats)
    assert stats["images"] == len(ds.splits.val) + len(ds.splits.eval)  # train was reused
    clean, _ = get_features(
        bb,
        ds,
        run=RunOptions(batch_size=4, chunk_size=1000),
        options=FeatureOptions(storage="float32"),
    )
    for split in got:
        np.testing.assert_allclose(got[split][0], clean[split][0], rtol=1e-5, atol=1e-6)
    assert not any(p.name.startswith(".partial-") for p in cache_root().iterdir())
    norms = np.linalg.norm(np.asarray(ref["eval"][0]), axis=1)
    np.testing.assert_allclose(norms, 1, rtol=1e-5)


def test_bad_image_stops_or_is_skipped_and_listed(setup):
    bb, ds = setup
    victim = ds.images[int(ds.splits.eval[1])]
    victim.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(DatasetError, match=f"cannot read image {victim}.*skip_bad_images=True"):
        get_features(bb, ds)
    assert not [p for p in cache_root().iterdir() if not p.name.startswith(".")]
    feats, m = get_features(bb, ds, run=RunOptions(skip_bad_images=True))
    assert m["bad_images"] == {"count": 1, "files": [str(victim)]}
    assert len(feats["eval"][0]) == len(ds.splits.eval) - 1 == len(feats["eval"][1])


def test_layer_option_and_unknown_layer(setup):
    bb, ds = setup
    default, _ = get_features(bb, ds)
    l1, m = get_features(bb, ds, options=FeatureOptions(layer="layer1"))
    assert l1["train"][0].shape[1] != default["train"][0].shape[1]
    assert m["identity"]["layer"] == "layer1"
    with pytest.raises(UsageError, match="close: \\['layer1'"):
        get_features(bb, ds, options=FeatureOptions(layer="layer_1"))


def test_layer_is_found_under_the_family_wrapper(image_folder):
    ds = load_dataset("folder", image_folder, eval_per_class=4, seed=0)
    from lteval.features.extract import feature_identity

    # torchvision models are wrapped (body.<module>); --layer takes torchvision's names
    bb = load_backbone("random:torchvision:mobilenet_v3_small", input_size=64)
    feats, m = get_features(bb, ds, options=FeatureOptions(layer="features.3"))
    assert feats["train"][0].shape[1] == 24  # features.3's channels, averaged over space
    assert m["identity"]["pooling"] == "mean over space / tokens"
    default = feature_identity(bb, ds, FeatureOptions())["pooling"]
    assert default.startswith("torchvision") and default != m["identity"]["pooling"]


def _hf_home(root, state, monkeypatch):
    """A Hugging Face cache at ``root`` holding test_resnet's checkpoint ``state``."""
    import huggingface_hub.constants as c
    from safetensors.torch import save_file

    repo = root / "hub" / "models--timm--test_resnet.r160_in1k"
    (repo / "snapshots" / "c0ffee").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee")
    save_file(state, repo / "snapshots" / "c0ffee" / "model.safetensors")
    monkeypatch.setenv("HF_HOME", str(root))
    monkeypatch.setenv("HF_HUB_CACHE", str(root / "hub"))
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(root / "hub"))


def test_moving_hf_home_keeps_the_cache_key(image_folder, tmp_path, monkeypatch):
    import timm
    import torch

    ds = load_dataset("folder", image_folder, eval_per_class=4, seed=0)
    state = timm.create_model("test_resnet").state_dict()
    _hf_home(tmp_path / "hf-old", state, monkeypatch)
    old = load_backbone(TINY)
    first, m_old = get_features(old, ds)
    _hf_home(tmp_path / "hf-new", state, monkeypatch)  # the same bytes, moved
    new, stats = load_backbone(TINY), {}
    again, m_new = get_features(new, ds, stats=stats)
    assert new.pretrained and new.weights != old.weights
    assert m_new["key"] == m_old["key"] and stats == {}  # a hit: no forward pass
    assert m_new["weights"] == old.weights and "weights" not in m_new["identity"]
    np.testing.assert_array_equal(again["train"][0], first["train"][0])
    _hf_home(tmp_path / "hf-other", {k: torch.zeros_like(v) for k, v in state.items()}, monkeypatch)
    _, m_other = get_features(load_backbone(TINY), ds, stats=stats)
    assert m_other["key"] != m_old["key"] and stats["images"] == len(ds)


def test_float16_storage_is_a_separate_entry(setup):
    bb, ds = setup
    a, ma = get_features(bb, ds)
    b, mb = get_features(bb, ds, options=FeatureOptions(storage="float16"))
    assert ma["key"] != mb["key"] and b["train"][0].dtype == np.float16
    np.testing.assert_allclose(b["train"][0], a["train"][0], rtol=1e-2, atol=1e-2)


def _worker(folder, q):
    ds = load_dataset("folder", folder, eval_per_class=4, seed=0)
    stats = {}
    get_features(load_backbone(TINY, allow_random_init=True), ds, stats=stats)
    q.put(stats.get("images", 0))


def test_concurrent_runs_of_one_key_extract_once(image_folder):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(image_folder, q)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    counts = sorted(q.get(timeout=5) for _ in range(2))
    n = len(load_dataset("folder", image_folder, eval_per_class=4, seed=0))
    assert counts == [0, n]
    entries = [p for p in cache_root().iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and not entries[0].name.endswith(".lock")


@pytest.mark.slow
def test_torchrun_two_ranks_equal_a_single_process(image_folder, tmp_path):
    args = [
        *folder_args(image_folder, TINY),
        "--device",
        "cpu",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "lteval.extract", *args], capture_output=True, text=True, env=env
    )
    assert single.returncode == 0, single.stderr
    env["LTEVAL_CACHE"] = str(tmp_path / "dist-cache")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--standalone",  # a free port: other test processes may run torchrun too
        "-m",
        "lteval.extract",
        *args,
    ]
    multi = subprocess.run(torchrun, capture_output=True, text=True, env=env)
    assert multi.returncode == 0, multi.stderr
    key = single.stdout.split()[1]
    assert multi.stdout.split()[1] == key  # same key: world size is not part of it
    from lteval.features.cache import load_entry

    one, _ = load_entry(key)
    two, manifest = load_entry(key, root=tmp_path / "dist-cache")
    assert manifest["world_size"] == 2
    for split in one:
        np.testing.assert_array_equal(one[split][2], two[split][2])  # same rows, same order
        np.testing.assert_array_equal(one[split][1], two[split][1])
        np.testing.assert_allclose(one[split][0], two[split][0], rtol=1e-5, atol=1e-5)


def test_corrupt_entry_is_re_extracted_not_loaded(setup):
    bb, ds = setup
    first, m = get_features(bb, ds)
    expected = np.array(first["val"][0])  # a copy: the memory map goes with the file
    (cache_root() / m["key"] / "val_features.npy").write_bytes(b"truncated")
    stats = {}
    again, _ = get_features(bb, ds, stats=stats)
    assert stats["images"] == len(ds)
    np.testing.assert_allclose(again["val"][0], expected, rtol=1e-6)


def test_hf_home_and_torch_home_are_honoured(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
    }
    env.update(HF_HOME=str(tmp_path / "hfhome"), TORCH_HOME=str(tmp_path / "torchhome"))
    code = (
        "from lteval.backbones import resolve_weights\n"
        "for n in ('timm:test_resnet', 'torchvision:resnet18'):\n"
        "    try: resolve_weights(n)\n"
        "    except FileNotFoundError as e: print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env
    ).stdout
    assert str(tmp_path / "hfhome" / "hub" / "models--timm--test_resnet.r160_in1k") in out
    assert str(tmp_path / "torchhome" / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in out
