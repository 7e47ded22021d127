"""`python -m aik.features`: the feature job's own entry point (what spark-submit runs on EMR)."""

from aik.features.job import main

raise SystemExit(main())
