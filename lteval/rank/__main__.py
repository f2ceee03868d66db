"""Entry point of ``python -m lteval.rank`` (the program lives in lteval.cli.rank)."""

import sys

from lteval.cli.rank import main

if __name__ == "__main__":
    sys.exit(main())
