"""Options and plumbing shared by ``lteval.rank`` and ``lteval.extract``."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from lteval import atomic
from lteval.backbones import read_name_list
from lteval.cli.config import Parser, parse_with_config
from lteval.cli.options import LIBRARY_FLAGS, check_options
from lteval.data import DATASETS, ImageDataset, load_dataset
from lteval.errors import LtevalError, UsageError, read_user_text, speaking_flags
from lteval.features import FeatureOptions, RunOptions, resolve_device
from lteval.features.cache import cache_root
from lteval.packaged import assets_root

log = logging.getLogger(__name__)


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
        "timm:resnet18,torchvision:resnet18,open_clip:ViT-B-32/openai; prefix a name "
        "with 'random:' for a random-init control (random:torchvision:mobilenet_v2)",
    )
    g.add_argument(
        "--backbones-file",
        metavar="FILE",
        help="text file of backbone names, one per line (' #' starts a comment); "
        "adds to --backbones",
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
    g.add_argument(
        "--input-size",
        type=int,
        metavar="PIXELS",
        help="side of the square model input, replacing each backbone's own (resize and "
        "crop keep the weights' ratio); enters the cache key and the report "
        "(default: each backbone's native size)",
    )
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
        "--lock-timeout",
        type=float,
        default=3600.0,
        metavar="SECONDS",
        help="how long to wait for another run that is extracting the same features "
        "(its lock on the cache entry) before giving up; negative = wait for ever "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=0,
        help="DataLoader worker processes for decoding (default: %(default)s)",
    )
    g = p.add_argument_group("run")
    g.add_argument(
        "--config",
        metavar="FILE",
        help="YAML mapping of any of these options (e.g. 'backbones: [timm:resnet18]', "
        "'seed: 1'; rank also takes 'dlsa:', a mapping of DLSA settings); "
        "command-line flags override it",
    )
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
        out[name] = Path(path).expanduser()
    return out


def split_list(text: str) -> list[str]:
    """The comma-separated items of an option's value, stripped, empty ones left out."""
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_heads(text: str) -> list[str] | None:
    """``--heads``: 'all' (None: every head), 'none' ([]) or comma-separated names."""
    word = text.strip().lower()
    return None if word == "all" else [] if word == "none" else split_list(text)


def backbone_list(arg: str | None, file: str | None = None) -> list[str]:
    """Names from ``--backbones a,b`` and/or ``--backbones-file F`` (one per line,
    a ``#`` at the start or after a space starts a comment; ``file:m.pt#arch`` is a name)."""
    names = [n.strip() for n in (arg or "").split(",") if n.strip()]
    if file:
        path = Path(file)
        if not path.is_file():
            raise UsageError(f"--backbones-file {file}: no such file")
        listed = read_name_list(read_user_text(path, "--backbones-file", UsageError))
        if not listed:
            raise UsageError(
                f"--backbones-file {file} lists no backbone (it is empty or only comments); "
                "write one name per line"
            )
        names += listed
    if not names:
        raise UsageError(
            "give --backbones (comma-separated names), --backbones-file F or --features DIR"
        )
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


def new_parser(prog: str, description: str) -> Parser:
    """A parser for one of lteval's programs, with the shared data/backbone/run options."""
    p = Parser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_common_options(p)
    return p


def run_options(args) -> RunOptions:
    """How to extract, from the shared options (resolves ``--device`` first)."""
    return RunOptions(
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        num_workers=args.workers,
        skip_bad_images=args.skip_bad_images,
        lock_timeout=args.lock_timeout,
    )


def feature_options(args) -> FeatureOptions:
    """What to extract, from the shared options."""
    return FeatureOptions(layer=args.layer, l2_normalize=args.l2_normalize, storage=args.storage)


HUB_CACHES = ("HF_HOME", "TORCH_HOME")
"""Environment variables naming caches a run may write weights into."""


def check_out(
    out: str | Path, what: str = "--out", inputs: Sequence[tuple[str, str | Path | None]] = ()
) -> None:
    """Fail before any work when the output folder cannot be written, or when
    replacing it would delete what the user keeps there: files lteval did not write
    (``lteval.atomic.foreign``), the current folder, or a cache the run may write
    into; or when it lies inside one of ``inputs`` ((option, path) pairs such as
    ("--data-root", root)), where the next run would read the report as data."""
    if not str(out).strip():  # Path("") would be the current folder
        raise UsageError(f"{what} is empty; name a folder for the report")
    out = Path(out).expanduser()
    if out.is_symlink():
        raise UsageError(f"{what} {out} is a link; name the folder it points to, or a new one")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{what} {out} is an existing file; name a folder for the report")
    found = atomic.foreign(out)
    if found:
        raise UsageError(atomic.refusal(out, found, what))
    full = out.resolve()
    kept = [
        ("the current folder", Path.cwd()),
        ("LTEVAL_CACHE (the feature cache)", cache_root()),
        ("the installed weights and datasets", assets_root()),
        *((f"${v}", Path(os.environ[v])) for v in HUB_CACHES if os.environ.get(v)),
    ]
    inside = [(w, p) for w, p in kept if full == p.resolve() or full in p.resolve().parents]
    if inside:
        name, p = inside[0]
        raise UsageError(
            f"{what} {out} holds {name} ({p}), and the run replaces the whole folder; "
            f"name an {what} outside it"
        )
    check_not_inside(out, what, inputs)
    atomic.check_writable_dir(out, what)


def check_not_inside(
    out: str | Path,
    what: str,
    inputs: Sequence[tuple[str, str | Path | None]],
    written: str = "the report",
) -> None:
    """UsageError when output folder ``out`` is, or lies inside, one of ``inputs``
    ((option, path) pairs; None or empty paths are skipped), where the next run
    would read ``written`` as data."""
    full = Path(out).expanduser().resolve()
    for option, p in inputs:
        if p and str(p).strip():
            root = Path(p).expanduser().resolve()
            if full == root or root in full.parents:
                raise UsageError(
                    f"{what} {out} is inside {option} {p}: the next run would read "
                    f"{written} as data; name an {what} outside it"
                )


class _Format(logging.Formatter):
    """Messages as they are; warnings start with "warning: "."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        return f"warning: {msg}" if record.levelno == logging.WARNING else msg


@contextlib.contextmanager
def cli_logging(quiet: bool) -> Iterator[None]:
    """lteval's log on stderr for one program run, through tqdm so that progress bars
    stay intact: INFO and up, or with ``--quiet`` only warnings and errors (progress
    is hidden, errors never are). Restored afterwards."""
    logger = logging.getLogger("lteval")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False
    try:
        with logging_redirect_tqdm(loggers=[logger]):
            yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def run_main(
    fn: Callable[[argparse.Namespace], int], parser: Parser, argv: list[str] | None
) -> int:
    """Parse, run, and turn user errors into one clear message and exit status 2.

    The one place parameter names become flags: inside, every message the library
    writes names ``by`` as ``--by`` (``lteval.errors.speaking_flags``)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with _sigterm_unwinds(), speaking_flags({**parser.flags(), **LIBRARY_FLAGS}):
        return _run(fn, parser, argv)


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt, so temporary folders go."""


@contextlib.contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a program runs, SIGTERM (kill, a batch scheduler's time limit) raises
    ``Terminated`` instead of ending the process on the spot, so that every
    ``finally`` runs and no temporary folder is left beside --out or in the cache."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _run(fn: Callable[[argparse.Namespace], int], parser: Parser, argv: list[str]) -> int:
    try:
        args = parse_with_config(parser, argv)
        check_options(args)
        args.argv = argv
        with cli_logging(getattr(args, "quiet", False)):
            return fn(args)
    except LtevalError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except Terminated:  # SIGTERM: the same clean ending as Ctrl-C
        print(
            f"\n{parser.prog}: terminated; the feature cache and the output folder are as "
            "they were (finished extraction chunks are kept for the next run)",
            file=sys.stderr,
        )
        return 143
    except OSError as e:  # a full or read-only disk wherever it struck: not a bug
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        print(f"{parser.prog}: error: {atomic.output_error(e, 'output')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the cache and --out are written atomically: nothing half-done
        print(
            f"\n{parser.prog}: interrupted; the feature cache and the output folder are as "
            "they were (finished extraction chunks are kept for the next run)",
            file=sys.stderr,
        )
        return 130
