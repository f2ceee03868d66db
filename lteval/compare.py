"""``python -m lteval.compare``: an alias of ``lteval compare`` (lteval.cli.compare)."""

import sys

from lteval.cli.compare import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lteval.compare"))
