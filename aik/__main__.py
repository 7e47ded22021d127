"""`python -m aik`: the same command line as the `aik` console script."""

from aik.cli import main

raise SystemExit(main())
