"""Entry point of ``python -m lteval.extract`` (the program lives in lteval.cli.extract)."""

import sys

from lteval.cli.extract import main

if __name__ == "__main__":
    sys.exit(main())
