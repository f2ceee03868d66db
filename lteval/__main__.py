"""``python -m lteval COMMAND ...``: the ``lteval`` command (see lteval.cli.main)."""

import sys

from lteval.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
