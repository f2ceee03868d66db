"""Shared fixtures: isolated caches and a tiny generated ImageFolder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path, monkeypatch):
    """Every test gets empty lteval, Hugging Face and torch caches of its own."""
    monkeypatch.setenv("LTEVAL_CACHE", str(tmp_path / "lteval-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    return tmp_path


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
