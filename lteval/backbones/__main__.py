"""``python -m lteval.backbones list [--family F] [--filter TEXT] [--cached]``."""

from __future__ import annotations

import argparse
import sys

from lteval.backbones.catalog import LISTERS, list_names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m lteval.backbones", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    ls = sub.add_parser("list", help="list the backbone names that can be given")
    ls.add_argument("--family", choices=sorted(LISTERS), help="only this family")
    ls.add_argument("--filter", help="only names containing this text (any case)")
    ls.add_argument(
        "--cached",
        action="store_true",
        help="only names whose pretrained weights are in the local caches",
    )
    args = p.parse_args(argv)
    names = list_names(args.family, args.filter, args.cached)
    if names:
        print("\n".join(names))
    print(f"{len(names)} backbones", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
