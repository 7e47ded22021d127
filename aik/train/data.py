"""Read the feature job's parquet splits (local or S3) into arrays, sampling explicitly when asked.

A split is a Spark output directory: part-*.parquet files (plus _SUCCESS and other markers, which are
skipped). Parts are read batch by batch through `aik.storage` (S3 objects are read with ranged
requests, never downloaded whole), so memory holds only the kept rows. A split larger than the memory
budget is refused with a hint rather than read until the machine swaps: pass `max_rows` to sample it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aik import storage
from aik.errors import AikError, ArtifactError, ArtifactNotFound
from aik.progress import Progress
from aik.schema import FEATURE_COLUMNS, LABEL, SPLIT_COLUMNS

log = logging.getLogger(__name__)

#: Bytes of memory one row costs through training (arrays, xgboost's matrices, baselines' copies).
BYTES_PER_ROW = 256
_BATCH_ROWS = 65_536


@dataclass
class Split:
    """One split in memory: features in FEATURE_COLUMNS order (float32) and 0/1 labels."""

    uri: str
    X: np.ndarray
    y: np.ndarray
    #: Rows in the split's files (before sampling and before dropping rows without a label).
    total_rows: int
    #: Feature columns the split's files hold (the pipeline's features), in file order.
    columns: tuple[str, ...]
    sampled: bool = False
    dropped_rows: int = 0

    @property
    def rows(self) -> int:
        """Rows kept in memory."""
        return len(self.y)


def part_uris(uri: str) -> list[str]:
    """The data files of a Spark output directory: `*.parquet` not starting with `_` or `.`."""
    parts = [
        u
        for u in storage.list_uris(uri, suffix=".parquet")
        if not u.rsplit("/", 1)[-1].startswith(("_", "."))
        and "/_" not in u[len(uri.rstrip("/")) :]  # Spark's _temporary/ from an unfinished job
    ]
    if not parts:
        raise ArtifactNotFound(uri, "parquet split (run `aik features` first)")
    return parts


def available_memory() -> int:
    """Bytes of memory available to this process (MemAvailable, else physical memory)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@contextlib.contextmanager
def _parquet(uri: str) -> Iterator[pq.ParquetFile]:
    with storage.open_uri(uri, "rb") as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowInvalid, OSError) as exc:
            raise ArtifactError(uri, f"not a readable parquet file ({exc})") from exc
        yield pf


def count_rows(uri: str) -> tuple[int, tuple[str, ...]]:
    """Rows in a split (from the parquet footers, no data read) and the feature columns of its first part."""
    total = 0
    columns: tuple[str, ...] = ()
    for i, part in enumerate(part_uris(uri)):
        with _parquet(part) as pf:
            total += pf.metadata.num_rows
            names = tuple(pf.schema_arrow.names)
            if i == 0:
                columns = tuple(c for c in names if c != LABEL)
            missing = [c for c in SPLIT_COLUMNS if c not in names]
            if missing:
                raise ArtifactError(
                    part, f"missing columns {', '.join(missing)} (expected {', '.join(SPLIT_COLUMNS)})"
                )
    return total, columns


def _numeric(batch: pa.RecordBatch, column: str, part: str) -> np.ndarray:
    array = batch.column(batch.schema.get_field_index(column))
    if not (
        pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_boolean(array.type)
    ):
        try:
            array = pc.cast(array, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise ArtifactError(part, f"column {column} has type {array.type}, expected numbers") from exc
    return array.to_numpy(zero_copy_only=False).astype(np.float32)


def read_split(
    uri: str,
    *,
    max_rows: int | None = None,
    seed: int = 0,
    memory_budget: int | None = None,
    label: str = "split",
) -> Split:
    """Read a split; above `max_rows` keep a uniform random sample of about that many rows (seeded).

    Rows without a label are dropped and counted (bad rows are set aside, never guessed); labels other
    than 0/1 and negative or fractional index codes are reported as a corrupt artifact.
    """
    total, columns = count_rows(uri)
    keep = total if max_rows is None else min(total, max_rows)
    budget = memory_budget if memory_budget is not None else available_memory() // 2
    if keep * BYTES_PER_ROW > budget:
        raise AikError(
            f"the {label} split {uri} has {total:,} rows, about {keep * BYTES_PER_ROW / 2**30:.1f} GiB "
            f"to train on, more than the {budget / 2**30:.1f} GiB memory budget: pass --max-rows to sample "
            "(or train on SageMaker with --sagemaker)"
        )
    fraction = 1.0 if keep >= total else keep / total
    rng = np.random.default_rng(seed)
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    dropped = 0
    with Progress(f"read {label} split", total=total) as progress:
        for part in part_uris(uri):
            with _parquet(part) as pf:
                try:
                    for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=list(SPLIT_COLUMNS)):
                        progress.update(batch.num_rows)
                        if fraction < 1.0:
                            batch = batch.filter(pa.array(rng.random(batch.num_rows) < fraction))
                        y = _numeric(batch, LABEL, part)
                        X = np.column_stack([_numeric(batch, c, part) for c in FEATURE_COLUMNS])
                        ok = ~np.isnan(y)
                        dropped += int((~ok).sum())
                        xs.append(X[ok])
                        ys.append(y[ok])
                except (pa.ArrowInvalid, OSError) as exc:
                    raise ArtifactError(part, f"cannot read parquet data ({exc})") from exc
    X = np.concatenate(xs) if xs else np.empty((0, len(FEATURE_COLUMNS)), np.float32)
    y = np.concatenate(ys) if ys else np.empty(0, np.float32)
    if fraction < 1.0 and len(y) > keep:
        X, y = X[:keep], y[:keep]
    if len(y) == 0:
        raise ArtifactError(uri, f"the {label} split has no labelled rows")
    bad_labels = ~np.isin(y, (0.0, 1.0))
    if bad_labels.any():
        raise ArtifactError(uri, f"{int(bad_labels.sum())} labels are not 0 or 1 (e.g. {y[bad_labels][0]})")
    if dropped:
        log.warning("%s split %s: %d rows without a label set aside", label, uri, dropped)
    return Split(
        uri=uri,
        X=np.ascontiguousarray(X),
        y=y.astype(np.float32),
        total_rows=total,
        columns=columns,
        sampled=fraction < 1.0,
        dropped_rows=dropped,
    )


def check_codes(split: Split, categorical_columns: tuple[str, ...]) -> None:
    """Index codes used as xgboost categories must be whole numbers >= 0 (or missing)."""
    for column in categorical_columns:
        values = split.X[:, FEATURE_COLUMNS.index(column)]
        finite = values[~np.isnan(values)]
        bad = (finite < 0) | (finite != np.floor(finite))
        if bad.any():
            raise ArtifactError(split.uri, f"column {column} holds {finite[bad][0]}, not an index code")
