"""Backbones spread over ``torchrun`` ranks: which rank scores which backbone, and
the merge of every rank's scores on rank 0.

Under ``torchrun --nproc_per_node=N -m lteval rank ...`` (one node or many), rank r
extracts and scores the backbones at positions r, r + N, r + 2N, ... of the list
(each extraction whole, on its own device). Rank 0 gathers every score and ranks
them in list order, so its results files are those of a one-process run of the
same seed at the same threads per process (torchrun sets OMP_NUM_THREADS=1 per
rank unless told otherwise; CPU float sums can differ between thread counts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lteval.rank.scoring import BackboneScore


@dataclass(frozen=True)
class Share:
    """This process's place among the ranks: ``rank`` of ``world``."""

    rank: int = 0
    world: int = 1

    @classmethod
    def current(cls) -> Share:
        """The running process group's rank and size (0 of 1 outside torchrun)."""
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size())
        return cls()

    @property
    def root(self) -> bool:
        """True on the rank that merges, ranks and writes (rank 0)."""
        return self.rank == 0

    def mine(self, index: int) -> bool:
        """Whether this rank extracts and scores the backbone at ``index`` (0-based)."""
        return index % self.world == self.rank

    def gather(self, n: int, score: Callable[[int], BackboneScore]) -> list[BackboneScore]:
        """``score(i)`` for this rank's indices of 0..n-1; every score, in order, on
        rank 0 ([] on the others). An error ends this rank's loop and goes through
        ``merge``, so that no rank waits for it."""
        got: dict[int, BackboneScore] = {}
        try:
            for i in range(n):
                if self.mine(i):
                    got[i] = score(i)
        except Exception as e:
            return self.merge(got, n, e)
        return self.merge(got, n)

    def merge(
        self, got: dict[int, BackboneScore], n: int, error: BaseException | None = None
    ) -> list[BackboneScore]:
        """Every rank's scores, by index 0..n-1, on rank 0 ([] on the others).

        ``got``: this rank's scores by index; ``error``: what ended its loop, if
        anything. Every rank reaches the gather even after an error, so that none
        waits for a rank that is gone; then a rank with an error raises it, and rank 0
        raises the first rank's error when any rank had one.
        """
        if self.world == 1:
            if error is not None:
                raise error
            return [got[i] for i in range(n)]
        parts: list | None = [None] * self.world if self.root else None
        torch.distributed.gather_object((got, _portable(error)), parts, dst=0)
        if error is not None:
            raise error
        if not self.root:
            return []
        errors = [e for _, e in parts if e is not None]
        if errors:
            raise errors[0]
        merged = {i: s for scores, _ in parts for i, s in scores.items()}
        missing = [i for i in range(n) if i not in merged]
        if missing:  # pragma: no cover - every index is some rank's
            raise RuntimeError(f"no rank scored the backbones at positions {missing}")
        return [merged[i] for i in range(n)]


def _portable(error: BaseException | None) -> BaseException | None:
    """``error`` if it pickles (to travel to rank 0), else a RuntimeError with its text."""
    if error is None:
        return None
    import pickle

    try:
        pickle.dumps(error)
        return error
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
