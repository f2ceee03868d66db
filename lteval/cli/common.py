"""Options and plumbing shared by ``lteval.rank`` and ``lteval.extract``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from lteval.backbones import load_backbone, resolve_weights
from lteval.data import DATASETS, ImageDataset, load_dataset
from lteval.errors import LtevalError, UsageError
from lteval.features import FeatureOptions, RunOptions, get_features, resolve_device


def add_common_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--dataset",
        default="mnist5k-lt",
        choices=sorted(DATASETS),
        help="dataset name (default: %(default)s, embedded, offline)",
    )
    g.add_argument("--data-root", help="dataset root folder (required by 'folder')")
    g.add_argument(
        "--imbalance-factor",
        type=float,
        help="IF of the exponential long-tailed profile (default: per dataset)",
    )
    g.add_argument(
        "--eval-per-class",
        type=int,
        help="images per class in the balanced eval split (default: per dataset)",
    )
    g.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="share of each train class carved out for validation (default: %(default)s)",
    )
    g = p.add_argument_group("backbones")
    g.add_argument(
        "--backbones",
        help="comma-separated names, e.g. "
        "timm:resnet18,torchvision:resnet18,open_clip:ViT-B-32/openai",
    )
    g.add_argument(
        "--weights",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="use this local checkpoint for backbone NAME (repeatable)",
    )
    g.add_argument(
        "--allow-random-init",
        action="store_true",
        help="run backbones whose pretrained weights are missing with random "
        "weights (the report then says the ranking only exercises the pipeline)",
    )
    g = p.add_argument_group("features")
    g.add_argument("--layer", help="module to take features from (default: pooled pre-logits)")
    g.add_argument("--l2-normalize", action="store_true", help="store unit-norm feature vectors")
    g.add_argument(
        "--storage",
        default="float32",
        choices=["float32", "float16"],
        help="on-disk feature dtype (default: %(default)s)",
    )
    g.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="leave unreadable images out (listed in the cache manifest) "
        "instead of stopping at the first one",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader worker processes for decoding (default: %(default)s)",
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--device",
        default="auto",
        help="torch device: auto (cuda if available, else cpu), cpu, cuda, cuda:1",
    )
    g.add_argument("--batch-size", type=int, default=64, help="extraction batch size")
    g.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    g.add_argument("--quiet", action="store_true", help="no progress output")


def parse_weights(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.rpartition("=")
        if not sep or not name or not path:
            raise UsageError(f"--weights {item!r} must look like NAME=PATH")
        out[name] = Path(path)
    return out


def backbone_list(arg: str | None) -> list[str]:
    names = [n.strip() for n in (arg or "").split(",") if n.strip()]
    if not names:
        raise UsageError("give --backbones (comma-separated names) or --features DIR")
    if len(set(names)) != len(names):
        raise UsageError(f"--backbones lists a name twice: {names}")
    return names


def load_data(args) -> ImageDataset:
    return load_dataset(
        args.dataset,
        args.data_root,
        seed=args.seed,
        imbalance_factor=args.imbalance_factor,
        eval_per_class=args.eval_per_class,
        val_fraction=args.val_fraction,
    )


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A parser for one of lteval's programs, with the shared data/backbone/run options."""
    p = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(p)
    return p


def prepare(args) -> tuple[list[str], dict[str, Path], ImageDataset]:
    """Validate the backbone options and load the dataset, before any extraction:
    (backbone names, --weights files, dataset)."""
    names = backbone_list(args.backbones)
    weights = parse_weights(args.weights)
    dataset = load_data(args)
    check_backbones(names, weights, args.allow_random_init)
    return names, weights, dataset


def check_backbones(names: list[str], weights: dict[str, Path], allow_random: bool) -> None:
    """Fail fast, before any extraction, on a bad name or missing weights."""
    unknown = set(weights) - set(names)
    if unknown:
        raise UsageError(f"--weights names {sorted(unknown)}, which are not in --backbones")
    for n in names:
        resolve_weights(n, weights.get(n), allow_random)


def log(quiet: bool) -> Callable[[str], None]:
    def emit(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    return emit


def extract_one(name: str, dataset: ImageDataset, args, weights: dict[str, Path], emit, tag: str):
    """Load backbone ``name`` and return (cached features, manifest, backbone)."""
    device = resolve_device(args.device)
    backbone = load_backbone(
        name,
        weights_file=weights.get(name),
        allow_random_init=args.allow_random_init,
        seed=args.seed,
    )
    if not backbone.pretrained:
        emit(f"{tag} {name}: pretrained weights not found; using RANDOM weights")
    t0, bars = time.perf_counter(), {}

    def progress(split: str, done: int, total: int) -> None:
        if args.quiet:
            return
        if split not in bars:
            bars[split] = tqdm(
                total=total,
                desc=f"{tag} {name}: extracting {split}",
                unit="img",
                file=sys.stderr,
                mininterval=2.0,
            )
        bars[split].update(done - bars[split].n)
        if done >= total:
            bars[split].close()

    run = RunOptions(
        device=device,
        batch_size=args.batch_size,
        num_workers=args.workers,
        skip_bad_images=args.skip_bad_images,
    )
    options = FeatureOptions(layer=args.layer, l2_normalize=args.l2_normalize, storage=args.storage)
    try:
        feats, manifest = get_features(
            backbone, dataset, run=run, options=options, progress=progress
        )
    finally:
        for bar in bars.values():
            bar.close()
    bad = manifest.get("bad_images", {}).get("count", 0)
    emit(
        f"{tag} {name}: features ready ({time.perf_counter() - t0:.1f}s, cache "
        f"{manifest['key']}{f', {bad} unreadable images skipped' if bad else ''})"
    )
    return feats, manifest, backbone


def run_main(
    fn: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser, argv: list[str] | None
) -> int:
    """Parse, run, and turn user errors into one clear message and exit status 2."""
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return fn(args)
    except LtevalError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
