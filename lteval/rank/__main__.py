"""``python -m lteval.rank``: an alias of ``lteval rank`` (lteval.cli.rank)."""

import sys

from lteval.cli.rank import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lteval.rank"))
