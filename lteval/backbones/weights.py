"""Where pretrained weights live on disk, and the error when they are not there.

Nothing here downloads: lteval only looks in the local caches (the Hugging Face
hub cache for timm and open_clip, TORCH_HOME for torchvision and timm's older
URL weights) or in a file the user names.
"""

from __future__ import annotations

import enum
import functools
import os
from collections.abc import Iterable
from pathlib import Path

from lteval.atomic import file_sha256
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
    """The first of ``filenames`` cached for model repository ``repo_id``, else None.

    The revision is the one ``refs/main`` names, resolved by huggingface_hub's own
    ``try_to_load_from_cache`` (what its loaders read offline). A repository folder
    without ``refs/main`` (snapshots copied by hand) falls back to the snapshot that
    holds the file, the most recently written one when several do. Every place
    looked at is appended to ``searched``.
    """
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.file_download import repo_folder_name

    cache = hf_hub_cache()
    repo_dir = cache / repo_folder_name(repo_id=repo_id, repo_type="model")
    ref = repo_dir / "refs" / "main"
    main = ref.read_text().strip() if ref.is_file() else None
    for fn in filenames:
        if main is not None:
            searched.append(f"Hugging Face cache: {repo_dir}/snapshots/{main}/{fn} (refs/main)")
            hit = try_to_load_from_cache(repo_id, fn, cache_dir=cache)
            if isinstance(hit, str):  # not None, nor the "known not to exist" marker
                return Path(hit)
            continue
        searched.append(f"Hugging Face cache: {repo_dir}/snapshots/*/{fn} (no refs/main)")
        hits = [p for p in repo_dir.glob(f"snapshots/*/{fn}") if p.is_file()]
        if hits:
            return max(hits, key=lambda p: (p.parent.stat().st_mtime_ns, p.parent.name))
    return None


def find_url_checkpoint(
    url: str | None, searched: list[str], extra_dirs: Iterable[str | Path] = ()
) -> Path | None:
    """The basename of ``url`` in TORCH_HOME's checkpoints (or ``extra_dirs``), else None."""
    if not url:
        return None
    for d in [torch_hub_checkpoints(), *map(Path, extra_dirs)]:
        p = d / os.path.basename(url.split("?")[0])
        searched.append(f"file: {p}")
        if p.is_file():
            return p
    return None


@functools.lru_cache(maxsize=64)
def _content_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def checkpoint_sha256(path: str | Path) -> str:
    """``lteval.atomic.file_sha256`` of a checkpoint, memoised per path, size and
    mtime (a checkpoint of hundreds of MB is hashed once per run, not per use)."""
    st = Path(path).stat()
    return _content_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def weights_id(path: str | Path) -> str:
    """The first 16 hex digits of the checkpoint's sha256: what names the weights in
    the feature cache key (the same bytes anywhere on disk give the same id)."""
    return checkpoint_sha256(path)[:16]


class WeightsKind(enum.StrEnum):
    """Which weights a backbone ran with, in one vocabulary for the results files
    (column ``weights_kind``: the first three) and the report (``label``).
    PRECOMPUTED is never written: ``lteval.rank.Row.kind`` derives it for features
    read from h5 files, which carry ``precomputed`` instead."""

    PRETRAINED = "pretrained"
    CONTROL = "control"  # a random: control, random on purpose
    RANDOM = "RANDOM"  # pretrained weights missing: random weights instead
    PRECOMPUTED = "precomputed"  # features read from h5 files

    @property
    def label(self) -> str:
        """How the report names it."""
        return "random-init control" if self is WeightsKind.CONTROL else self.value
