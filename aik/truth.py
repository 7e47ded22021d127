"""The ground-truth model behind synthetic logs: a logistic model of independent per-value effects.

The generator draws one `TruthModel`, decides wins and clicks from it, and saves it beside the logs
(`truth_uri`). Because every term depends only on fields that reach the model's features, the best
achievable AUC on any split is the AUC of `probability(...)` on that split's rows (the oracle).
Feature conventions: `hour` 0-23, `dow` as Spark's `dayofweek` (1 = Sunday ... 7 = Saturday),
`device_type_id` from `aik.device`. Values missing from an effect table contribute 0.

Optional interaction terms (`pairs`, from `aik ingest --synthetic --interactions`): an effect per pair
of values of two terms, e.g. advertiser x domain, keyed `"<value>|<value>"` under `"<term>:<term>"`.
They are added after the main terms, in sorted order of their names, by the generator and the oracle
alike, so the oracle stays exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from aik import storage

#: Fields of a logit model, each an effect table keyed by the raw value as a string.
TERMS: tuple[str, ...] = ("advertiser", "domain", "region", "city", "device_type", "hour", "dow")

#: The raw/feature column each term reads.
TERM_COLUMNS: dict[str, str] = {
    "advertiser": "AdvertiserID",
    "domain": "Domain",
    "region": "RegionID",
    "city": "CityID",
    "device_type": "device_type_id",
    "hour": "hour",
    "dow": "dow",
}


def pair_terms(name: str) -> tuple[str, str]:
    """The two terms of an interaction's name ("advertiser:domain" -> ("advertiser", "domain"))."""
    first, _, second = name.partition(":")
    if first not in TERMS or second not in TERMS or first == second:
        raise ValueError(f"{name!r} is not an interaction of two terms ({', '.join(TERMS)})")
    return first, second


@dataclass(frozen=True)
class LogitModel:
    """logit p = intercept + sum of the effects of the row's values."""

    intercept: float
    advertiser: Mapping[str, float]
    domain: Mapping[str, float]
    region: Mapping[str, float]
    city: Mapping[str, float]
    device_type: Mapping[str, float]
    hour: Mapping[str, float]
    dow: Mapping[str, float]
    #: Interaction terms: "<term>:<term>" -> {"<value>|<value>": effect}; empty for an additive truth.
    pairs: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def logit(self, columns: Mapping[str, Iterable[object]]) -> np.ndarray:
        """Vectorised logit for columns (name in TERM_COLUMNS -> sequence of values, one per row)."""
        total: np.ndarray | None = None
        for term in TERMS:
            table = getattr(self, term)
            values = columns[TERM_COLUMNS[term]]
            effects = np.fromiter(
                (table.get(str(v), 0.0) for v in values),
                dtype=np.float64,
            )
            total = effects if total is None else total + effects
        assert total is not None
        for name in sorted(self.pairs):
            table = self.pairs[name]
            first, second = (columns[TERM_COLUMNS[term]] for term in pair_terms(name))
            total = total + np.fromiter(
                (table.get(f"{a}|{b}", 0.0) for a, b in zip(first, second, strict=True)),
                dtype=np.float64,
            )
        return total + self.intercept

    def probability(self, columns: Mapping[str, Iterable[object]]) -> np.ndarray:
        """Vectorised probability: the logistic of `logit`."""
        return 1.0 / (1.0 + np.exp(-self.logit(columns)))


@dataclass(frozen=True)
class TruthModel:
    """Win (impression given bid request) and click (given impression) models of a synthetic dataset."""

    win: LogitModel
    click: LogitModel
    seed: int | None = None

    def to_json(self) -> str:
        """Serialise (the file stored beside the logs)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TruthModel:
        """Parse what `to_json` wrote."""
        doc = json.loads(text)
        return cls(win=LogitModel(**doc["win"]), click=LogitModel(**doc["click"]), seed=doc.get("seed"))

    def save(self, uri: str) -> None:
        """Write to a URI."""
        storage.write_text(uri, self.to_json())

    @classmethod
    def load(cls, uri: str) -> TruthModel:
        """Read from a URI."""
        return cls.from_json(storage.read_text(uri))


def truth_uri(raw_data: str) -> str:
    """Where the generator stores the truth model: beside the logs under `/aik/raw_data`."""
    return storage.join(raw_data, "truth", "truth.json")
