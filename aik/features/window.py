"""Time windows: train on the last N days of logs before the M newest days, and test on those M days.

The temporal split is the honest backtest for a model that will serve tomorrow's traffic: it is judged
on days it never saw, after the days it learnt from. Days come from the log files' names
(`bid.20130606.txt.bz2`, `imp.20131021.adv2821.txt`), so only the files of the window are read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aik.errors import AikError

_DAY = re.compile(r"^(?:bid|imp|clk|conv)\.([0-9]{8})\.")


@dataclass(frozen=True)
class Window:
    """N training days (train plus valid) followed by M test days."""

    days: int
    test_days: int = 1

    def __post_init__(self) -> None:
        if self.days < 1 or self.test_days < 1:
            raise AikError(
                f"a window needs at least one training and one test day (got {self.days}, {self.test_days})"
            )


@dataclass(frozen=True)
class Chosen:
    """The days a window picked from the logs at hand (yyyyMMdd strings, ascending)."""

    train_days: tuple[str, ...]
    test_days: tuple[str, ...]

    @property
    def first_test_day(self) -> str:
        """The first day whose rows are test rows."""
        return self.test_days[0]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (features report, release manifest)."""
        return {
            "split": "temporal",
            "first_day": self.train_days[0],
            "last_day": self.train_days[-1],
            "train_days": list(self.train_days),
            "test_days": list(self.test_days),
        }


def file_day(uri: str) -> str | None:
    """The day (yyyyMMdd) of a log file from its name, or None when the name carries none."""
    match = _DAY.match(uri.rsplit("/", 1)[-1])
    return match.group(1) if match else None


def choose(days: Sequence[str], window: Window) -> Chosen:
    """The M newest days for testing and up to N days before them for training."""
    ordered = sorted(set(days))
    if len(ordered) <= window.test_days:
        raise AikError(
            f"a temporal split needs more than {window.test_days} day(s) of logs, found {len(ordered)} "
            f"({', '.join(ordered) or 'none'}): ingest more days or use the random split"
        )
    test = ordered[-window.test_days :]
    train = ordered[: -window.test_days][-window.days :]
    return Chosen(tuple(train), tuple(test))


def select_files(
    files: Mapping[str, Sequence[str]], primary: str, window: Window
) -> tuple[dict[str, list[str]], Chosen]:
    """The window's files of every kind; the days come from the `primary` kind's files (bid or imp)."""
    undated = [u for u in files[primary] if file_day(u) is None]
    if undated:
        raise AikError(f"cannot tell the day of {undated[0]} (names like bid.20130606.txt.bz2 carry it)")
    chosen = choose([d for u in files[primary] if (d := file_day(u))], window)
    keep = set(chosen.train_days) | set(chosen.test_days)
    return {kind: [u for u in uris if file_day(u) in keep] for kind, uris in files.items()}, chosen


def add_window_arguments(parser: Any) -> None:
    """`--window-days N` and `--test-days M` (the feature job's CLI and `aik features`)."""
    parser.add_argument(
        "--window-days",
        type=int,
        default=None,
        metavar="N",
        help="temporal split: train on the N days before the test days (default: the random 80/10/10 split)",
    )
    parser.add_argument(
        "--test-days",
        type=int,
        default=1,
        metavar="M",
        help="with --window-days: the newest M days are the test split (default 1)",
    )


def window_from_args(args: Any) -> Window | None:
    """The window the arguments ask for (None: the random split)."""
    days = getattr(args, "window_days", None)
    return None if days is None else Window(days, getattr(args, "test_days", 1))
