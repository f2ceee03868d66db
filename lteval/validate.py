"""``python -m lteval.validate``: an alias of ``lteval.cli.validate`` (the program)."""

import sys

from lteval.cli.validate import main

if __name__ == "__main__":
    sys.exit(main())
