"""``python -m lteval.extract``: an alias of ``lteval extract`` (lteval.cli.extract)."""

import sys

from lteval.cli.extract import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m lteval.extract"))
