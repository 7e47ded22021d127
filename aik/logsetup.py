"""Logging setup shared by every entry point (aik, the feature job, the server, the emulator, monitoring)."""

from __future__ import annotations

import logging

#: Libraries whose INFO/DEBUG lines drown the kit's own (request-level chatter, JIT compilation).
NOISY_LOGGERS = ("botocore", "boto3", "urllib3", "s3transfer", "py4j", "smart_open", "matplotlib", "numba")


def setup_logging(verbose: bool = False) -> None:
    """Log lines with date, time, level and logger to stderr; third-party libraries only from WARNING up."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
