"""``python -m lteval.validate``: an alias of ``lteval validate`` (lteval.cli.validate)."""

import sys

from lteval.cli.validate import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lteval.validate"))
