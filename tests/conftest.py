"""Shared fixtures and CLI helpers: isolated caches, a tiny generated ImageFolder, an
h5 feature folder, and running a program as a user does."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lteval.packaged import assets_root

# Where `make install` (python -m lteval.backbones install-packaged) put the packaged
# weights and images, read before any test points the caches elsewhere.
INSTALLED_ASSETS = assets_root()
INSTALLED_TORCH_CHECKPOINTS = Path(torch.hub.get_dir()) / "checkpoints"


@pytest.fixture
def two_threads(monkeypatch):
    """torch at 2 threads here and in the programs a test starts: ``make test`` runs
    each process at 1 thread, where a thread-order race could not show."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Every test gets empty lteval, Hugging Face and torch caches of its own, and no
    packaged assets (the ``packaged_assets`` fixture brings the installed ones)."""
    monkeypatch.setenv("LTEVAL_CACHE", str(tmp_path / "lteval-cache"))
    monkeypatch.setenv("LTEVAL_ASSETS", str(tmp_path / "lteval-assets"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path


@pytest.fixture
def packaged_assets(isolated_caches, monkeypatch):
    """The packaged weights and images that `make install` installed, read-only: the
    assets folder as it is, and the torchvision checkpoints linked into this test's
    TORCH_HOME (nothing else of the real caches is visible)."""
    from lteval.backbones import packaged
    from lteval.data.packaged import animal_npz, foolbox_dir

    monkeypatch.setenv("LTEVAL_ASSETS", str(INSTALLED_ASSETS))
    ckpt = isolated_caches / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    for pw in packaged.PACKAGED:
        if pw.kind == "torchvision":
            src = INSTALLED_TORCH_CHECKPOINTS / Path(pw.member.path).name
            if src.is_file():
                (ckpt / src.name).symlink_to(src)
    missing = [pw.backbone for pw in packaged.PACKAGED if not packaged.is_installed(pw)]
    missing += [str(p) for p in (animal_npz(), foolbox_dir()) if not p.exists()]
    if missing:
        pytest.fail(
            f"packaged assets not installed: {missing}; run `make install` "
            "(or `python -m lteval.backbones install-packaged`)"
        )
    return INSTALLED_ASSETS


def make_image_folder(root, sizes=(30, 20, 14), side=16, seed=0):
    """Classes of coloured noise, distinguishable by mean colour: root/<class>/<i>.png."""
    rng = np.random.default_rng(seed)
    palette = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [200, 200, 40]])
    for c, n in enumerate(sizes):
        d = root / f"class_{c}"
        d.mkdir(parents=True)
        for i in range(n):
            img = np.clip(palette[c] + rng.normal(0, 40, (side, side, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i:03d}.png")
    return root


@pytest.fixture
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "images")


def folder_args(root, backbones: str) -> list[str]:
    """CLI options for the generated ImageFolder: 4 eval images per class, random init."""
    return [
        "--dataset",
        "folder",
        "--data-root",
        str(root),
        "--eval-per-class",
        "4",
        "--backbones",
        backbones,
        "--allow-random-init",
    ]


CHEAP = ["--heads", "ncm", "--bootstrap", "40"]
"""Rank options that keep an end-to-end run cheap: one baseline head, 40 replicates."""


def run_cli(*args: str, module: str = "lteval.rank") -> subprocess.CompletedProcess:
    """Run ``python -m MODULE ARGS`` in a child process, as a user does."""
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, env=os.environ
    )


def call(capsys, *args: str, program: str = "rank") -> tuple[int, str, str]:
    """Run ``lteval PROGRAM ARGS`` in this process, as its ``main`` is called from the
    command line: (exit status, stdout, stderr). For tests whose subject is what the
    program does, not how ``python -m`` starts it (that costs a torch import each)."""
    code = importlib.import_module(f"lteval.cli.{program}").main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cache_entries() -> list[str]:
    """The feature cache's entries (hidden lock folders left out)."""
    root = Path(os.environ["LTEVAL_CACHE"])
    return (
        sorted(p.name for p in root.iterdir() if not p.name.startswith("."))
        if root.exists()
        else []
    )


def short_config(tmp_path) -> Path:
    """A --config file with a 1-stage, 2-epoch DLSA (for runs that test plumbing)."""
    path = tmp_path / "short.yaml"
    path.write_text("dlsa: {flow_epochs: 2, num_stages: 1}\n")
    return path


def write_h5_dir(root: Path, names=("bb_a", "bb_b"), seed: int = 0) -> Path:
    """A --features folder: per name, long-tailed train (120..6 per class, 5 classes) and
    balanced test features (20 per class) around shared class centres, noisier for
    later names."""
    from lteval.features import write_h5

    rng = np.random.default_rng(seed)
    counts = [120, 60, 25, 12, 6]
    centers = rng.normal(size=(5, 12)) * 2
    for k, name in enumerate(names):
        y = np.repeat(np.arange(5), counts)
        yt = np.repeat(np.arange(5), 20)
        write_h5(
            root / name / "feature_train.h5",
            centers[y] + rng.normal(size=(len(y), 12)) * (1 + k),
            y,
        )
        write_h5(
            root / name / "feature_test.h5", centers[yt] + rng.normal(size=(100, 12)) * (1 + k), yt
        )
    return root


def with_classes(run_dir: Path, classes: int) -> dict:
    """Rewrite a run folder's per-class rows as ``classes`` classes per backbone, from
    1,285 down to about 5 train images (an ImageNet-LT-like profile) with seeded
    accuracies, and record the file as lteval's; returns the results dict."""
    import json

    from lteval import atomic

    res = json.loads((run_dir / "results.json").read_text())
    template, rng = res["per_class"][0], np.random.default_rng(0)
    res["per_class"] = [
        {**template, "backbone": b["backbone"], "class": c, "class_name": f"c{c}",
         "lt_count": int(1280 * 0.994**c) + 5, "dlsa_accuracy": float(rng.random())}
        for b in res["backbones"] for c in range(classes)
    ]  # fmt: skip
    (run_dir / "results.json").write_text(json.dumps(res))
    atomic.write_manifest(run_dir)
    return res
