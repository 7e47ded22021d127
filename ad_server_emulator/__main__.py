"""`python -m ad_server_emulator HOST THREADS REQUESTS`: load-test the filtering server."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from aik.settings import add_backend_arguments


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments and replay requests (not built yet: issue 6)."""
    parser = argparse.ArgumentParser(prog="python -m ad_server_emulator", description=__doc__)
    add_backend_arguments(parser)
    parser.add_argument("host")
    parser.add_argument("threads", type=int)
    parser.add_argument("requests", type=int)
    parser.parse_args(argv)
    print("ad_server_emulator: not built yet (issue 6)", file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
