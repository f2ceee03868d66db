"""``python -m lteval.report``: an alias of ``lteval report`` (lteval.cli.report)."""

import sys

from lteval.cli.report import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lteval.report"))
