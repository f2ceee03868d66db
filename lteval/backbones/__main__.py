"""``python -m lteval.backbones``: an alias of ``lteval backbones`` (lteval.cli.backbones)."""

import sys

from lteval.cli.backbones import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lteval.backbones"))
