"""The pipeline's features as categorical fields: each field's range and the unseen codes (no PyTorch)."""

from __future__ import annotations

from aik.bundle import FeatureIndexer
from aik.device import NUM_DEVICE_TYPES
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS

#: Fields whose range the pipeline fixes: dow is Spark's dayofweek (1-7), hour 0-23, device 0-6.
FIXED_CARDINALITIES: dict[str, int] = {"dow": 8, "hour": 24, "device_type_id": NUM_DEVICE_TYPES}


def cardinalities(indexer: FeatureIndexer) -> tuple[int, ...]:
    """Valid values per feature (FEATURE_COLUMNS order); a field's table has one more row, for the rest."""
    by_index = {out: len(indexer.labels.get(raw, ())) for raw, out in INDEXED_COLUMNS.items()}
    return tuple(by_index[c] if c in by_index else FIXED_CARDINALITIES[c] for c in FEATURE_COLUMNS)


def unseen_codes(indexer: FeatureIndexer) -> dict[str, int]:
    """Index column -> the code the server sends for a value the pipeline never saw (= label count)."""
    return {out: len(indexer.labels[raw]) for raw, out in INDEXED_COLUMNS.items() if raw in indexer.labels}
