"""The feature job's report: what it read, rejected and wrote (`features-report.json`, read downstream)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aik.features.job import Outputs, Sources


@dataclass(frozen=True)
class LineCounts:
    """One kind of log's lines: read, accepted, rejected, and rejects per reason class."""

    lines: int
    accepted: int
    rejected: int
    reasons: dict[str, int]


@dataclass(frozen=True)
class SplitCount:
    """One split as written: where, its rows and its positive rows."""

    uri: str
    rows: int
    positives: int


@dataclass(frozen=True)
class FeaturesReport:
    """What the job did; `to_dict` is the features-report.json document (its keys are read downstream)."""

    use_case: str
    seed: int
    #: The split: {"split": "random"} or the temporal window's days (`aik.features.window.Chosen`).
    split: dict[str, Any]
    #: Every input file read, with its fingerprint (a rerun on the same files can be skipped).
    input_files: dict[str, Any]
    inputs: dict[str, LineCounts]
    splits: dict[str, SplitCount]
    #: Labels per indexed column.
    labels: dict[str, int]
    bundle_writer: str
    sources: Sources
    outputs: Outputs
    seconds: float

    @property
    def rows(self) -> int:
        """Rows over the three splits."""
        return sum(s.rows for s in self.splits.values())

    @property
    def positives(self) -> int:
        """Positive rows over the three splits."""
        return sum(s.positives for s in self.splits.values())

    @property
    def positive_rate(self) -> float | None:
        """positives / rows (None without rows)."""
        return self.positives / self.rows if self.rows else None

    def to_dict(self) -> dict[str, Any]:
        """The features-report.json document."""
        return {
            "use_case": self.use_case,
            "seed": self.seed,
            "split": self.split,
            "input_files": self.input_files,
            "inputs": {kind: asdict(counts) for kind, counts in self.inputs.items()},
            "rows": self.rows,
            "positives": self.positives,
            "positive_rate": self.positive_rate,
            "splits": {name: asdict(split) for name, split in self.splits.items()},
            "labels": self.labels,
            "bundle_writer": self.bundle_writer,
            "sources": asdict(self.sources),
            "outputs": asdict(self.outputs),
            "seconds": self.seconds,
        }
