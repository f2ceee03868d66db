"""A cache entry's features: from the cache, or extracted as an ``ExtractionJob``
(chunked, resumable, and shared by ``torchrun`` ranks), then written atomically."""

from __future__ import annotations

import datetime
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lteval.backbones import Backbone
from lteval.data import ImageDataset
from lteval.features import cache
from lteval.features.extract import (
    SPLITS,
    FeatureOptions,
    RunOptions,
    extract,
    feature_identity,
    versions,
)


def _dist(run: RunOptions) -> tuple[int, int]:
    """(rank, world) among the ranks that share this extraction."""
    if not run.shard_images:
        return 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def get_features(
    backbone: Backbone,
    dataset: ImageDataset,
    *,
    run: RunOptions | None = None,
    options: FeatureOptions | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    stats: dict | None = None,
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict]:
    """Cached features of every split: ``({split: (X, y)}, manifest)``.

    A hit does no forward pass. A miss extracts (resuming finished chunks), under a
    lock so that concurrent runs of the same key extract once. Under ``torchrun``
    every rank calls this; each extracts ``positions[rank::world]`` and rank 0 merges.
    """
    run, options = run or RunOptions(), options or FeatureOptions()
    identity = feature_identity(backbone, dataset, options)
    key = cache.cache_key(identity)
    rank, world = _dist(run)

    def extract() -> None:
        job = ExtractionJob(key, identity, backbone, dataset, run, options, rank, world)
        job.execute(progress, stats)

    got = cache.load_or_build(key, extract, timeout=run.lock_timeout, lock=world == 1)
    arrays, manifest = got
    return {s: (X, y) for s, (X, y, _) in arrays.items()}, manifest


class _Tick:
    """Turns per-batch counts into cumulative ``progress(split, done, total)`` calls."""

    def __init__(self, progress, split: str, total: int):
        self.progress, self.split, self.total, self.done = progress, split, total, 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.split, self.done, self.total)


@dataclass(frozen=True)
class ExtractionJob:
    """One cache entry's extraction, as rank ``rank`` of ``world`` does it: each rank
    extracts ``positions[rank::world]`` of every split chunk by chunk (a chunk
    finished by an earlier, interrupted run is reused), then rank 0 merges every
    rank's chunks into the entry and removes them."""

    key: str
    identity: dict
    backbone: Backbone
    dataset: ImageDataset
    run: RunOptions
    options: FeatureOptions
    rank: int = 0
    world: int = 1

    def positions(self, split: str, rank: int) -> np.ndarray:
        """Dataset positions of ``split`` that rank ``rank`` extracts."""
        return getattr(self.dataset.splits, split)[rank :: self.world]

    def chunk_path(self, split: str, rank: int, chunk: int) -> Path:
        """Where rank ``rank`` keeps chunk ``chunk`` of ``split`` until the merge."""
        return cache.partial_dir(self.key) / f"{split}-r{rank}of{self.world}-{chunk:05d}.npz"

    def chunks(self, split: str, rank: int) -> int:
        return -(-len(self.positions(split, rank)) // self.run.chunk_size)

    def execute(self, progress=None, stats: dict | None = None) -> None:
        """This rank's share, then (rank 0) the merged entry; ranks meet at barriers."""
        t0 = time.perf_counter()
        seconds = {}
        for split in SPLITS:
            s0 = time.perf_counter()
            self._extract_split(
                split, _Tick(progress, split, len(self.positions(split, self.rank))), stats
            )
            seconds[split] = time.perf_counter() - s0
        if self.world > 1:
            torch.distributed.barrier()
        if self.rank == 0:
            manifest = {
                "identity": self.identity,
                "weights": self.backbone.weights,  # the file this run read; the key holds its hash
                "dataset": self.dataset.manifest(),
                "num_params": self.backbone.num_params,
                "pretrained": self.backbone.pretrained,
                "device": str(self.run.device),
                "world_size": self.world,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
                "versions": versions(),
                "extract_seconds": time.perf_counter() - t0,
                "extract_seconds_per_split": seconds,
            }
            cache.write_entry(
                self.key, lambda: self._merge(manifest), manifest, dtype=self.options.storage
            )
            shutil.rmtree(cache.partial_dir(self.key), ignore_errors=True)
        if self.world > 1:
            torch.distributed.barrier()

    def _extract_split(self, split: str, progress, stats) -> None:
        want_all = self.positions(split, self.rank)
        for c in range(self.chunks(split, self.rank)):
            want = want_all[c * self.run.chunk_size : (c + 1) * self.run.chunk_size]
            path = self.chunk_path(split, self.rank, c)
            chunk = cache.load_chunk(path)
            if chunk is None or not np.array_equal(chunk["requested"], want):
                X, kept, bad = extract(
                    self.backbone,
                    self.dataset,
                    want,
                    run=self.run,
                    options=self.options,
                    progress=progress,
                    stats=stats,
                )
                cache.save_chunk(path, X=X, index=kept, bad=bad, requested=want)
            elif progress:
                progress(len(want))

    def _merge(self, manifest: dict) -> dict:
        """{split: (X, y, index)} from every rank's chunks, in dataset order; the
        unreadable images left out go into ``manifest["bad_images"]``."""
        out, bad = {}, []
        for split in SPLITS:
            chunks = [
                cache.load_chunk(self.chunk_path(split, r, c))
                for r in range(self.world)
                for c in range(self.chunks(split, r))
            ]
            idx = np.concatenate([ch["index"] for ch in chunks])
            X = [ch["X"] for ch in chunks if len(ch["X"])]
            X = np.concatenate(X) if X else np.zeros((0, 0), np.float32)
            order = np.argsort(idx, kind="stable")
            bad.extend(int(b) for ch in chunks for b in ch["bad"])
            out[split] = (X[order], self.dataset.labels[idx[order]], idx[order])
        manifest["bad_images"] = {
            "count": len(bad),
            "files": [self.dataset.describe(b) for b in sorted(bad)],
        }
        return out
