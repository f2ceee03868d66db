"""Where pretrained weights live on disk, and the error when they are not there.

Nothing here downloads: lteval only looks in the local caches (the Hugging Face
hub cache for timm and open_clip, TORCH_HOME for torchvision and timm's older
URL weights) or in a file the user names.
"""

from __future__ import annotations

import os
from pathlib import Path


class BackboneError(ValueError):
    """A backbone name cannot be resolved (unknown family or architecture)."""


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights for a backbone are in none of the places searched."""

    def __init__(self, name: str, searched: list[str], fetch_hint: str):
        self.name, self.searched = name, searched
        lines = "\n".join(f"  - {s}" for s in searched)
        super().__init__(
            f"pretrained weights for backbone {name!r} were not found locally. Searched:\n"
            f"{lines}\n"
            f"To fix: on a connected machine run\n    {fetch_hint}\n"
            f"and copy the cache here (or set HF_HOME / TORCH_HOME to it); or pass "
            f"--weights '{name}=/path/to/checkpoint'; or pass --allow-random-init to run "
            f"with random weights (the ranking then only exercises the pipeline)."
        )


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
