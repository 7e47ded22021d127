"""`python -m filtering_server`: start the Thrift bid-filtering server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aik.settings import add_backend_arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and serve (not built yet: issue 6)."""
    parser = argparse.ArgumentParser(prog="python -m filtering_server", description=__doc__)
    add_backend_arguments(parser)
    parser.add_argument("--port", type=int, default=9090, help="Thrift port (default 9090)")
    parser.parse_args(argv)
    print("filtering_server: not built yet (issue 6)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
