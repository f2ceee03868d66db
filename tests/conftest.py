"""Shared fixtures: isolated caches and a tiny generated ImageFolder."""

from __future__ import annotations

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
