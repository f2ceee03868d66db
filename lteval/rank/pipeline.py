"""The whole ranking as one library call: features (cached extraction, or h5 files),
scores, the ranking's bootstrap validity and the run record.

    import lteval.rank
    result = lteval.rank.run(["timm:resnet18", "random:timm:resnet18"], dataset="mnist5k-lt")
    result.table()          # one row per backbone, best first
    result.write("out/")    # results.json/.csv, stages.csv, per_class.csv, timings.csv

``lteval rank`` parses its options into these arguments, calls ``run`` and writes
the report (``lteval.report.render_report``); it adds nothing else.
"""

from __future__ import annotations

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
from lteval.errors import UsageError, arg
from lteval.features import (
    FeatureOptions,
    RunOptions,
    backbone_features,
    check_backbones,
    resolve_device,
    versions,
)
from lteval.features.cache import check_writable
from lteval.rank.arguments import check_bootstrap, check_names, check_runtime, check_settings
from lteval.rank.bootstrap import validate_ranking
from lteval.rank.distributed import Share
from lteval.rank.precomputed import from_feature_dir, log_score, progress_bar
from lteval.rank.results import RESULT_FILES, result_rows, write_results
from lteval.rank.row import Row
from lteval.rank.scoring import (
    HEADS,
    BackboneScore,
    check_splits,
    failed,
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
    backbones: Sequence[str] | None = None,
    *,
    dataset: ImageDataset | str = "mnist5k-lt",
    data_root: str | Path | None = None,
    imbalance_factor: float | None = None,
    eval_per_class: int | None = None,
    feature_dir: str | Path | None = None,
    weights: Mapping[str, str | Path] | None = None,
    allow_random_init: bool = False,
    input_size: int | None = None,
    features: FeatureOptions | None = None,
    runtime: RunOptions | None = None,
    val_fraction: float = 0.2,
    by: str = "separability",
    heads: Sequence[str] | None = None,
    bootstrap: int = 1000,
    seed: int = 0,
    dlsa: Mapping | None = None,
    progress: bool = True,
    command: str | None = None,
) -> RankResult:
    """Score and rank ``backbones`` (names, see ``lteval backbones``) on ``dataset``,
    or the precomputed features of ``feature_dir`` (one sub-folder per backbone with
    feature_train.h5 / feature_test.h5; ``val_fraction`` of each train class is
    carved out for validation).

    ``dataset``: a loaded ``ImageDataset``, or a dataset name loaded after every
    check with ``data_root``, ``imbalance_factor``, ``eval_per_class``, ``seed`` and
    ``val_fraction`` (None: the dataset's defaults; see ``lteval.data.load_dataset``).
    ``weights``: local checkpoints by backbone name.
    ``features`` / ``runtime``: what to extract and how (``runtime.device`` also
    trains the flows; default: CUDA when available). ``heads``: the baseline heads
    next to DLSA and the probe (default: all of ``HEADS``). ``bootstrap``: replicates
    for the intervals and rank correlations (0: none). ``dlsa``: DLSA settings over
    the scaled defaults (a ``preset`` key replaces them). ``seed`` drives every random
    choice. A backbone that fails is recorded with its error; the run goes on.
    """
    check_names(backbones=backbones, heads=heads)
    if (feature_dir is None) == (not backbones):
        raise UsageError(f"give exactly one of {arg('backbones')} and {arg('feature_dir')}")
    if feature_dir is not None and not isinstance(feature_dir, str | PathLike):
        raise UsageError(
            f"{arg('feature_dir')} must be a folder path, got {type(feature_dir).__name__}"
        )
    if not isinstance(dataset, ImageDataset | str):
        raise UsageError(
            f"{arg('dataset')} must be a dataset name or a lteval.data.ImageDataset, got "
            f"{type(dataset).__name__}"
        )
    if feature_dir is not None and weights:
        raise UsageError(
            f"{arg('weights')} is for backbones extracted here; with {arg('feature_dir')} the "
            f"features are already extracted: drop {arg('weights')}"
        )
    heads = check_settings(by, list(HEADS) if heads is None else heads, dlsa)
    check_params(
        seed=seed,
        val_fraction=val_fraction,
        eval_per_class=eval_per_class,
        imbalance_factor=imbalance_factor,
        input_size=input_size,
    )
    if runtime is not None:
        check_runtime(runtime)
    check_bootstrap(bootstrap)
    seed, bootstrap = int(seed), int(bootstrap)  # numpy ints pass the checks; JSON needs int
    input_size, eval_per_class = (
        None if v is None else int(v) for v in (input_size, eval_per_class)
    )
    share = Share.current()  # under torchrun: this rank scores its share of the backbones
    progress = progress and share.root  # one bar: rank 0's
    runtime = runtime or RunOptions(device=resolve_device("auto"))
    device = str(runtime.device)
    score = functools.partial(
        _score,
        seed=seed,
        device=device,
        heads=heads,
        dlsa=dict(dlsa) if dlsa else None,
        progress=progress,
    )
    if feature_dir is not None:
        data, scores = from_feature_dir(
            Path(feature_dir), val_fraction, seed, score, progress, share
        )
    else:
        check_writable()  # a read-only cache fails here, not after the first extraction
        if isinstance(dataset, str):
            dataset = load_dataset(
                dataset,
                data_root,
                seed=seed,
                imbalance_factor=imbalance_factor,
                eval_per_class=eval_per_class,
                val_fraction=val_fraction,
            )
        labels = dataset.labels
        sp = dataset.splits
        check_splits(  # before any extraction: the split's classes and sizes
            {k: (None, labels[getattr(sp, k)]) for k in ("train", "val", "eval")},
            len(dataset.class_names),
            dataset.class_names,
        )
        data, scores = _from_backbones(
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
    if not share.root:  # its scores went to rank 0, which ranks and writes
        return RankResult({"rank": share.rank, "world_size": share.world}, [], by, worker=True)
    ok = [s for s in scores if s.ok]
    info = _run_info(scores, data, seed=seed, device=device, heads=heads, by=by, command=command)
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


def _from_backbones(
    names: list[str],
    dataset: ImageDataset,
    weights: dict[str, Path],
    score: Callable,
    *,
    allow_random_init: bool,
    seed: int,
    input_size: int | None,
    features: FeatureOptions | None,
    runtime: RunOptions,
    progress: bool,
) -> tuple[dict, list[BackboneScore]]:
    missing = check_backbones(names, weights, allow_random_init)
    share = Share.current()
    runtime = replace(runtime, shard_images=False) if share.world > 1 else runtime
    features_of = functools.partial(
        backbone_features,
        allow_random_init=allow_random_init,
        seed=seed,
        input_size=input_size,
        options=features,
        run=runtime,
        progress=progress,
    )
    mine = [i for i in range(len(names)) if share.mine(i)]
    with progress_bar(2 * len(mine), progress) as bar:  # closed on Ctrl-C too
        one = functools.partial(
            _one_backbone,
            names=names, dataset=dataset, weights=weights, missing=missing, score=score,
            features_of=features_of, bar=bar,
        )  # fmt: skip
        return dataset.manifest(), share.gather(len(names), one)


def _one_backbone(
    i: int, *, names: list[str], dataset: ImageDataset, weights: dict, missing: dict,
    score: Callable, features_of: Callable, bar,
) -> BackboneScore:  # fmt: skip
    """Extract (cached, with ``features_of(name, dataset, weights_file=, tag=)``) and
    score ``names[i]``: its score, or its failure record."""
    name = names[i]
    tag = f"[{i + 1}/{len(names)}]"
    if name in missing:
        log.error(f"{tag} {name}: FAILED: pretrained weights not found (see the report)")
        bar.update(2)
        return failed(name, str(missing[name]), "weights", kind="weights")
    bar.set_description(f"{tag} {name}: features (cache or extraction)")
    got = guarded(
        name, "extracting", features_of, name, dataset, weights_file=weights.get(name), tag=tag
    )
    bar.update(1)
    if isinstance(got, BackboneScore):
        bar.update(1)
        return got
    feats, manifest, backbone = got
    bar.set_description(f"{tag} {name}: scoring")
    splits = {k: (np.asarray(X), y) for k, (X, y) in feats.items()}
    # unreadable images left out (--skip-bad-images) are the same for every
    # backbone: a class they emptied ends the run, in one line
    check_splits(splits, len(dataset.class_names), dataset.class_names)
    s = score(name, splits, num_classes=len(dataset.class_names), class_names=dataset.class_names)
    bar.update(1)
    s.row.update(
        precomputed=False,
        pretrained=backbone.pretrained,
        control=backbone.control,
        weights=backbone.weights,
        **backbone.weights_info(),
        input_size=backbone.input_size,
        num_params=backbone.num_params,
        cache_key=manifest["key"],
        extract_seconds=round(manifest.get("extract_seconds", 0.0), 3),
        skipped_images=manifest.get("bad_images", {}).get("files", []),
    )
    log_score(tag, s)
    return s


def _run_info(scores: list[BackboneScore], data: dict, *, seed, device, heads, by, command) -> dict:
    """The run record of results.json: what ran, where, and what the report must say."""
    ok = [s for s in scores if s.ok]
    defined = any(np.isfinite(s.row.get(by, np.nan)) for s in ok)
    if ok and not defined:
        log.warning(f"{by} is NaN for every backbone: the ranking is undefined")
    return {
        "ranking_defined": defined,
        "command": command,
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
