"""The whole ranking as one library call, for each of its two real cases: backbones
on images (``run``: cached extraction, then scores) and precomputed h5 features
(``run_features``); then the ranking's bootstrap validity and the run record.

    import lteval.rank
    result = lteval.rank.run(["timm:resnet18", "random:timm:resnet18"], dataset="mnist5k-lt")
    result = lteval.rank.run_features("my_features/")
    result.table()          # one row per backbone, best first
    result.write("out/")    # results.json/.csv, stages.csv, per_class.csv, timings.csv

An argument a case would ignore is an error naming it. ``lteval rank`` parses its
options, calls one of them, records the command line and writes the report
(``lteval.report.render_report``); it adds nothing else.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lteval.atomic import check_overwrite, check_writable_dir, write_manifest
from lteval.constraints import check_params
from lteval.data import ImageDataset, load_dataset
from lteval.dlsa import DLSAConfig
from lteval.errors import UsageError, arg
from lteval.features import (
    FeatureOptions,
    RunOptions,
    resolve_device,
    versions,
)
from lteval.features.cache import check_writable
from lteval.rank.arguments import check_bootstrap, check_names, check_runtime, check_settings
from lteval.rank.bootstrap import validate_ranking
from lteval.rank.distributed import Share
from lteval.rank.images import from_backbones
from lteval.rank.precomputed import from_feature_dir
from lteval.rank.results import RESULT_FILES, result_rows, write_results
from lteval.rank.row import Row
from lteval.rank.scoring import (
    HEADS,
    BackboneScore,
    check_splits,
    guarded,
    score_features,
)

log = logging.getLogger(__name__)


@dataclass
class RankResult:
    """What ``run`` returns: the run record, one score per backbone (failed ones
    included, with their error), and the bootstrap validity of the ranking (None
    when every backbone failed)."""

    run: dict
    scores: list[BackboneScore]
    by: str
    validity: dict | None = None
    # True on a torchrun rank other than 0: it scored its share of the backbones and
    # sent them to rank 0, which ranks them and writes the results (lteval.rank.distributed)
    worker: bool = False

    @property
    def ok(self) -> list[BackboneScore]:
        """The scored backbones (failed ones left out)."""
        return [s for s in self.scores if s.ok]

    @property
    def rows(self) -> list[Row]:
        """The scored backbones' typed rows (``lteval.rank.row.Row``), best first by
        ``by``, with their intervals and ties: the rows results.json holds."""
        return result_rows(self.ok, self.by, self.validity)

    def table(self) -> pd.DataFrame:
        """``rows`` as a table (results.csv's columns, and the timings): schema
        columns only, since each row is a ``Row``."""
        return pd.DataFrame([r.to_dict() for r in self.rows])

    def write(self, folder: str | Path) -> None:
        """Write the results files (``RESULT_FILES``) into ``folder`` (see
        ``lteval.rank.results``) and record them in its manifest, as ``lteval rank``
        does. OutputError, before writing, when one of them there is not as lteval
        wrote it (a user's file of that name is never overwritten)."""
        if not self.ok:
            raise ValueError("every backbone failed: there are no results to write")
        if not isinstance(folder, str | PathLike):
            raise UsageError(f"{arg('folder')} must be a path, got {type(folder).__name__}")
        folder = Path(folder)
        check_writable_dir(folder, arg("folder"))
        check_overwrite(folder, RESULT_FILES, arg("folder"))
        write_results(folder, self.run, self.scores, self.by, self.validity)
        write_manifest(folder, RESULT_FILES)


def run(
    backbones: Sequence[str],
    *,
    dataset: ImageDataset | str = "mnist5k-lt",
    data_root: str | Path | None = None,
    imbalance_factor: float | None = None,
    eval_per_class: int | None = None,
    val_fraction: float | None = None,
    weights: Mapping[str, str | Path] | None = None,
    allow_random_init: bool = False,
    input_size: int | None = None,
    features: FeatureOptions | None = None,
    runtime: RunOptions | None = None,
    by: str = "separability",
    heads: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    dlsa: DLSAConfig | Mapping | None = None,
    progress: bool = True,
) -> RankResult:
    """Extract (cached) and score ``backbones`` (names, see ``lteval backbones``) on
    the images of ``dataset``, then rank them. (Precomputed h5 features:
    ``run_features``.)

    ``dataset``: a dataset name, loaded after every check with ``data_root``,
    ``imbalance_factor``, ``eval_per_class``, ``val_fraction`` and ``seed`` (None:
    the dataset's defaults; see ``lteval.data.load_dataset``); or a loaded
    ``ImageDataset``, which already fixed those: passing one of them too is an error.
    ``weights``: local checkpoints by backbone name. ``features`` / ``runtime``: what
    to extract and how (``runtime.device`` also trains the flows; default: CUDA when
    available). See ``run_features`` for ``by``, ``heads``, ``bootstrap``, ``seed``,
    ``dlsa`` and ``progress``. A backbone that fails is recorded with its error; the
    run goes on.
    """
    check_names(backbones=backbones, heads=heads)
    if not backbones:
        raise UsageError(
            f"give {arg('backbones')} (names); for precomputed h5 features call "
            "lteval.rank.run_features(feature_dir)"
        )
    if not isinstance(dataset, ImageDataset | str):
        raise UsageError(
            f"{arg('dataset')} must be a dataset name or a lteval.data.ImageDataset, got "
            f"{type(dataset).__name__}"
        )
    loading = dict(
        data_root=data_root,
        imbalance_factor=imbalance_factor,
        eval_per_class=eval_per_class,
        val_fraction=val_fraction,
    )
    given = [k for k, v in loading.items() if v is not None]
    if isinstance(dataset, ImageDataset) and given:
        raise UsageError(
            f"{arg(given[0])} is for loading a dataset by name; {arg('dataset')} is an "
            f"ImageDataset already loaded with its own: drop {arg(given[0])}"
        )
    heads, dlsa = _check_common(by, heads, dlsa, seed, bootstrap, val_fraction)
    check_params(
        eval_per_class=eval_per_class, imbalance_factor=imbalance_factor, input_size=input_size
    )
    if runtime is not None:
        check_runtime(runtime)
    seed, bootstrap = int(seed), int(bootstrap)  # numpy ints pass the checks; JSON needs int
    input_size, eval_per_class = (
        None if v is None else int(v) for v in (input_size, eval_per_class)
    )
    share = Share.current()  # under torchrun: this rank scores its share of the backbones
    progress = progress and share.root  # one bar: rank 0's
    runtime = runtime or RunOptions(device=resolve_device("auto"))
    score = _scorer(seed, str(runtime.device), heads, dlsa, progress)
    check_writable()  # a read-only cache fails here, not after the first extraction
    if isinstance(dataset, str):
        dataset = load_dataset(
            dataset,
            data_root,
            seed=seed,
            imbalance_factor=imbalance_factor,
            eval_per_class=eval_per_class,
            val_fraction=0.2 if val_fraction is None else val_fraction,
        )
    labels, sp = dataset.labels, dataset.splits
    check_splits(  # before any extraction: the split's classes and sizes
        {k: (None, labels[getattr(sp, k)]) for k in ("train", "val", "eval")},
        len(dataset.class_names),
        dataset.class_names,
    )
    data, scores = from_backbones(
        list(backbones),
        dataset,
        dict(weights or {}),
        score,
        allow_random_init=allow_random_init,
        seed=seed,
        input_size=input_size,
        features=features,
        runtime=runtime,
        progress=progress,
    )
    return _ranked(scores, data, share, seed, str(runtime.device), heads, by, bootstrap)


def run_features(
    feature_dir: str | Path,
    *,
    val_fraction: float = 0.2,
    device: str = "auto",
    by: str = "separability",
    heads: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    dlsa: DLSAConfig | Mapping | None = None,
    progress: bool = True,
) -> RankResult:
    """Score and rank the precomputed features of ``feature_dir``: one sub-folder per
    backbone with feature_train.h5 / feature_test.h5 (``lteval.features.read_h5``);
    ``val_fraction`` of each train class is carved out for validation with ``seed``.

    ``device``: where the flows train ("auto": CUDA when available). ``by``: the
    ranking metric. ``heads``: the baseline heads next to DLSA and the probe
    (default: all of ``HEADS``). ``bootstrap``: replicates for the intervals and rank
    correlations (0: none). ``dlsa``: a mapping of DLSA settings over the defaults
    scaled to each train set (``lteval.dlsa.scaled_for``; a ``preset`` key replaces
    them), or a ``DLSAConfig`` used as it is for every backbone, unscaled (scale one
    yourself with ``scaled_for(n_train, num_classes, base=config)``), its ``device``
    replaced by the run's. ``seed`` drives every random choice.
    """
    if not isinstance(feature_dir, str | PathLike):
        raise UsageError(
            f"{arg('feature_dir')} must be a folder path, got {type(feature_dir).__name__}"
        )
    check_names(heads=heads)
    heads, dlsa = _check_common(by, heads, dlsa, seed, bootstrap, val_fraction)
    seed, bootstrap = int(seed), int(bootstrap)
    device = str(resolve_device(str(device)))
    share = Share.current()
    progress = progress and share.root
    score = _scorer(seed, device, heads, dlsa, progress)
    data, scores = from_feature_dir(Path(feature_dir), val_fraction, seed, score, progress, share)
    return _ranked(scores, data, share, seed, device, heads, by, bootstrap)


def _check_common(by, heads, dlsa, seed, bootstrap, val_fraction) -> tuple[list[str], object]:
    """The checks both entry points share; (the heads to run, the DLSA settings: a
    checked ``DLSAConfig``, a dict of overrides, or None)."""
    config = isinstance(dlsa, DLSAConfig)
    heads = check_settings(by, list(HEADS) if heads is None else heads, None if config else dlsa)
    if config:
        try:  # its device is the run's (set by _scorer): that is what is checked there
            dlsa = replace(copy.deepcopy(dlsa), device="cpu").validate()
        except ValueError as e:
            raise UsageError(f"{arg('dlsa')}: {e}") from None
    else:
        dlsa = dict(dlsa) if dlsa else None
    check_params(seed=seed, val_fraction=val_fraction)
    check_bootstrap(bootstrap)
    return heads, dlsa


def _scorer(seed: int, device: str, heads: list[str], dlsa, progress: bool) -> Callable:
    """``_score`` with the run's options: a DLSAConfig as the config (on the run's
    device), a dict as overrides of the scaled defaults."""
    config = replace(dlsa, device=device) if isinstance(dlsa, DLSAConfig) else None
    return functools.partial(
        _score,
        seed=seed,
        device=device,
        heads=heads,
        dlsa=None if config else dlsa,
        progress=progress,
        config=config,
    )


def _ranked(scores, data, share, seed, device, heads, by, bootstrap) -> RankResult:
    """The run record, the scores and the ranking's bootstrap validity."""
    if not share.root:  # its scores went to rank 0, which ranks and writes
        return RankResult({"rank": share.rank, "world_size": share.world}, [], by, worker=True)
    ok = [s for s in scores if s.ok]
    info = _run_info(scores, data, seed=seed, device=device, heads=heads, by=by)
    info["world_size"] = share.world
    if not ok:
        return RankResult(info, scores, by)
    log.info(f"ranking validity: {bootstrap} bootstrap replicates")
    try:
        validity = validate_ranking(ok, by, n_boot=bootstrap, seed=seed)
    except ValueError as e:  # e.g. feature folders with different test sets
        log.error(f"ranking validity skipped: {e}")
        validity = {"skipped": str(e), "intervals": {}, "pairs": [], "correlations": []}
    return RankResult(info, scores, by, validity)


def _score(
    name: str, splits: dict, *, seed: int, device: str, heads: list[str], dlsa, progress, **kw
) -> BackboneScore:
    """``score_features`` with the run's options, guarded (a failure becomes a record)."""
    return guarded(
        name,
        "scoring",
        score_features,
        name,
        splits,
        seed=seed,
        device=device,
        heads=heads,
        dlsa_overrides=dlsa,
        progress=progress,
        **kw,
    )


def _run_info(scores: list[BackboneScore], data: dict, *, seed, device, heads, by) -> dict:
    """The run record of results.json: what ran, where, and what the report must say."""
    ok = [s for s in scores if s.ok]
    defined = any(np.isfinite(s.row.get(by, np.nan)) for s in ok)
    if ok and not defined:
        log.warning(f"{by} is NaN for every backbone: the ranking is undefined")
    return {
        "ranking_defined": defined,
        "command": None,  # a program sets it: what the user typed
        "dataset": data,
        "seed": seed,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda") else None,
        "torch_threads": torch.get_num_threads(),
        "versions": versions(),
        "heads": heads,
        "random_weights": [
            s.row["backbone"]
            for s in scores
            if s.row.get("pretrained") is False and not s.row.get("control")
        ],
        "controls": [s.row["backbone"] for s in scores if s.row.get("control")],
        "failed": [s.row["backbone"] for s in scores if not s.ok],
        "warnings": run_warnings(data, ok) if ok else [],
    }


def _few(ids: np.ndarray) -> str:
    return "{" + ", ".join(map(str, ids[:6].tolist())) + (", ...}" if len(ids) > 6 else "}")


def run_warnings(dataset: dict, ok: list[BackboneScore]) -> list[str]:
    """What the report's header must say about choices made on the user's data."""
    out = []
    empty = dataset.get("empty_class_folders_left_out")
    if empty:
        out.append(f"{len(empty)} empty class folder(s) left out: {', '.join(empty)}")
    hashes = dataset.get("split_hashes", {})
    if len(set(hashes.values())) > 1:
        out.append(
            "the backbones' feature files hold different samples or labels (their split "
            "hashes differ: run.dataset.split_hashes): the ranking compares them on "
            "different data"
        )
    for name, ids in dataset.get("labels_remapped", {}).items():
        out.append(
            f"{name}: labels {_few(np.asarray(ids))} are not 0..{len(ids) - 1}; remapped to "
            f"{len(ids)} classes in sorted order (results.json: run.dataset.labels_remapped)"
        )
    for s in ok:
        if s.row.get("warning"):
            out.append(f"{s.row['backbone']}: {s.row['warning']}")
        if s.row.get("skipped_images"):
            n = len(s.row["skipped_images"])
            out.append(f"{s.row['backbone']}: {n} unreadable image(s) left out (listed below)")
    for w in out:
        log.warning(w)
    return out
