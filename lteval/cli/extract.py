"""``python -m lteval.extract``: extract backbone features into the cache, no scoring.

Takes the same data and backbone options as ``python -m lteval.rank``. With
``--export-h5 DIR`` it also writes DIR/<backbone>/feature_{train,test}.h5 (the
DLSA reference format; train there is train + validation), which
``python -m lteval.rank --features DIR`` reads back.

Distributed: ``torchrun --nproc_per_node=N -m lteval.extract ...`` shards every split
across the ranks (no padded duplicates); each rank writes its shard and rank 0
merges them into one cache entry (nccl on CUDA, gloo on CPU).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from lteval import atomic
from lteval.cli import common
from lteval.cli.torchrun import init_process_group
from lteval.errors import UsageError
from lteval.features import backbone_features, check_backbones, resolve_device, write_h5
from lteval.features.cache import check_writable
from lteval.features.h5io import H5_FILES


def build_parser(prog: str = "lteval extract") -> argparse.ArgumentParser:
    p = common.new_parser(prog, __doc__)
    p.add_argument("--export-h5", metavar="DIR", help="also write the features as h5 files")
    return p


def safe_name(name: str) -> str:
    """A backbone name as a folder name: 'timm:resnet18' -> 'timm_resnet18'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def export_folders(root: str, names: list[str]) -> dict[str, Path]:
    """{backbone: its --export-h5 folder}; UsageError naming both backbones when two
    would share one folder (``file:/x/m/a.pt`` and ``file:/x/m_a.pt`` both map to
    ``file_x_m_a.pt``; case is ignored, as some file systems do), and
    ``common.check_out``'s UsageError when a folder is a link (writing there would
    write outside ``root``) or holds anything lteval did not write."""
    out, seen = {}, {}
    for name in names:
        folder = safe_name(name)
        other = seen.setdefault(folder.lower(), name)
        if other != name:
            raise UsageError(
                f"--export-h5: backbones {other!r} and {name!r} would both be written to "
                f"{Path(root) / folder}; export them in two runs, to two folders"
            )
        d = Path(root) / folder
        common.check_out(d, "--export-h5")  # replaced whole, as --out is: the same checks
        out[name] = d
    return out


def run(args: argparse.Namespace) -> int:
    rank, _ = init_process_group(args.device)
    resolve_device(args.device)  # a bad --device fails before any data is read
    names = common.backbone_list(args.backbones, args.backbones_file)
    weights = common.parse_weights(args.weights)
    check_writable()  # a read-only cache fails here, not after the first extraction
    if args.export_h5 is not None:  # and so does a bad export folder, or a user's file
        atomic.check_writable_dir(args.export_h5, "--export-h5")
        inputs = [("--data-root", args.data_root)]
        common.check_not_inside(args.export_h5, "--export-h5", inputs, "the h5 files")
        folders = export_folders(args.export_h5, names)
    dataset = common.load_data(args)
    missing = check_backbones(names, weights, args.allow_random_init)
    if missing:
        raise next(iter(missing.values()))
    runtime, options = common.run_options(args), common.feature_options(args)
    for i, name in enumerate(names, 1):
        feats, manifest, _ = backbone_features(
            name,
            dataset,
            weights_file=weights.get(name),
            allow_random_init=args.allow_random_init,
            seed=args.seed,
            input_size=args.input_size,
            options=options,
            run=runtime,
            progress=not args.quiet,
            tag=f"[{i}/{len(names)}]",
        )
        if rank != 0:
            continue
        print(f"{name}\t{manifest['key']}")
        if args.export_h5:
            Xtr = np.concatenate([feats["train"][0], feats["val"][0]])
            ytr = np.concatenate([feats["train"][1], feats["val"][1]])
            # the folder appears whole, with its manifest, or not at all: a run killed
            # half-way leaves nothing that a rerun would take for a user's files
            with atomic.folder(folders[name]) as tmp:
                write_h5(tmp / H5_FILES[0], Xtr, ytr)
                write_h5(tmp / H5_FILES[1], *feats["eval"])
    return 0


def main(argv: list[str] | None = None, prog: str = "lteval extract") -> int:
    return common.run_main(run, build_parser(prog), argv)
