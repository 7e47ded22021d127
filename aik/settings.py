"""Runtime settings (backend and workspace), filled from the CLI or the environment in entry points only."""

from __future__ import annotations

import argparse
import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from aik.errors import AikError

Backend = Literal["local", "aws"]
BACKENDS: tuple[str, ...] = ("local", "aws")
ENV_BACKEND = "AIK_BACKEND"
ENV_WORKSPACE = "AIK_WORKSPACE"
DEFAULT_WORKSPACE = ".aik"


class SettingsError(AikError, ValueError):
    """A backend or workspace setting that cannot be used (a one-line error at every entry point)."""


@dataclass(frozen=True)
class Settings:
    """Which backend serves parameters and artifacts, and where the local workspace lives."""

    backend: Backend = "local"
    workspace: Path = field(default_factory=lambda: Path(DEFAULT_WORKSPACE).resolve())
    region: str | None = None

    @classmethod
    def from_env(
        cls,
        backend: str | None = None,
        workspace: str | os.PathLike[str] | None = None,
        region: str | None = None,
    ) -> Settings:
        """Explicit values win, then `AIK_BACKEND` / `AIK_WORKSPACE`, then the defaults."""
        chosen = backend or os.environ.get(ENV_BACKEND) or "local"
        if chosen not in BACKENDS:
            raise SettingsError(f"unknown backend {chosen!r} (choose from {', '.join(BACKENDS)})")
        ws = workspace or os.environ.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE
        return cls(backend=cast(Backend, chosen), workspace=Path(ws).expanduser().resolve(), region=region)


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (a bad value is a usage error, exit 2)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def iso_date(text: str) -> datetime.date:
    """argparse type for a day given as YYYY-MM-DD (a bad value is a usage error, exit 2)."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text}") from exc


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the global `--backend` / `--workspace` / `--region` options shared by every entry point."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help=f"parameter store and storage backend (env {ENV_BACKEND}, default local)",
    )
    parser.add_argument(
        "--workspace",
        default=None,
        metavar="DIR",
        help=f"local workspace directory (env {ENV_WORKSPACE}, default ./{DEFAULT_WORKSPACE})",
    )
    parser.add_argument(
        "--region",
        default=None,
        help="AWS region of the aws backend (default: AWS_REGION, then boto3's, then the instance's)",
    )
