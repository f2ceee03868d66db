"""Where pretrained weights live on disk, and the error when they are not there.

Nothing here downloads: lteval only looks in the local caches (the Hugging Face
hub cache for timm and open_clip, TORCH_HOME for torchvision and timm's older
URL weights) or in a file the user names.
"""

from __future__ import annotations

import os
from pathlib import Path

from lteval.errors import BackboneError, WeightsNotFoundError  # noqa: F401 (re-exported)


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache in force (honours HF_HUB_CACHE and HF_HOME)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def torch_hub_checkpoints() -> Path:
    """TORCH_HOME's checkpoint folder, where torchvision and torch.hub keep weights."""
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints"


def find_in_hf_cache(repo_id: str, filenames: list[str], searched: list[str]) -> Path | None:
    """First of ``filenames`` cached for ``repo_id`` (any revision), else None."""
    repo_dir = hf_hub_cache() / ("models--" + repo_id.replace("/", "--"))
    for fn in filenames:
        searched.append(f"Hugging Face cache: {repo_dir}/snapshots/*/{fn}")
        hits = sorted(repo_dir.glob(f"snapshots/*/{fn}"))
        if hits:
            return hits[-1]
    return None


def find_url_checkpoint(url: str | None, searched: list[str], extra_dirs=()) -> Path | None:
    """The basename of ``url`` in TORCH_HOME's checkpoints (or ``extra_dirs``), else None."""
    if not url:
        return None
    for d in [torch_hub_checkpoints(), *map(Path, extra_dirs)]:
        p = d / os.path.basename(url.split("?")[0])
        searched.append(f"file: {p}")
        if p.is_file():
            return p
    return None
