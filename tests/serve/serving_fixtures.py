"""Small serving artifacts built in seconds, for the serving tests and bench/bench_serving.py.

`build_artifacts` writes what the pipeline and the trainer publish — an MLeap bundle of the four
StringIndexers, pipeline-schema.json, an xgboost booster trained on the seven features, inference rows
as JSON lines — and the parameters that name them, into a local workspace. The rows and their labels
come from the kit's synthetic generator (`aik.synthetic.sample`), so the booster learns real structure
and its scores spread over [0, 1]. Three booster flavours exercise the evaluator:
numerical splits only, native categorical splits on the index columns (numpy input), and categorical
splits trained from pandas categoricals (xgboost >= 3 then stores the categories in the model).
`StatsdLines` collects what a server or client sends to StatsD, raw.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from aik import params, storage
from aik.bundle import StringIndexerSpec, write_bundle
from aik.device import device_type_id
from aik.schema import FEATURE_COLUMNS, INDEXED_COLUMNS, RAW_SCHEMA
from aik.settings import Settings
from aik.synthetic import SyntheticConfig, sample

Flavour = Literal["numeric", "categorical", "pandas-categorical"]


@dataclass
class Artifacts:
    """What `build_artifacts` wrote, and the data behind it (for exact comparisons in tests)."""

    settings: Settings
    store: params.LocalParameterStore
    rows: list[dict[str, Any]]
    features: np.ndarray  # float64, FEATURE_COLUMNS order, as the Spark job computes them
    labels: np.ndarray
    booster: Any  # xgboost.Booster
    flavour: Flavour
    specs: list[StringIndexerSpec]

    @property
    def model_uri(self) -> str:
        """Where the booster was published."""
        return self.store.get(params.XGBOOST_PATH)

    def predict_reference(self, features: np.ndarray) -> np.ndarray:
        """xgboost's own prediction for index features (pandas categoricals for that flavour)."""
        import xgboost

        if self.flavour == "pandas-categorical":
            data = pandas_frame(features, self.specs)
            return self.booster.predict(xgboost.DMatrix(data, enable_categorical=True))
        return self.booster.predict(xgboost.DMatrix(features, feature_names=list(FEATURE_COLUMNS)))


def _labels_by_frequency(values: Sequence[str | None]) -> tuple[str, ...]:
    """Spark StringIndexer's order: descending frequency, ties alphabetically; nulls are not labels."""
    counts = Counter(v for v in values if v is not None)
    return tuple(sorted(counts, key=lambda v: (-counts[v], v)))


def random_rows(n: int, seed: int, *, domains: int = 500) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Raw joined rows with the fields of pipeline-schema.json, drawn by the kit's synthetic generator,
    and whether each was won (its label under the generator's truth)."""
    drawn = sample(SyntheticConfig(rows=n, seed=seed, domains=domains, days=7))
    c = drawn.columns
    rows = [
        {
            "BidID": c["BidID"][i],
            "dow": int(c["dow"][i]),
            "hour": f"{int(c['hour'][i]):02d}",
            "RegionID": c["RegionID"][i],
            "CityID": c["CityID"][i],
            "Domain": c["Domain"][i],
            "AdvertiserID": c["AdvertiserID"][i],
            "BiddingPrice": int(c["BiddingPrice"][i]),
            "PayingPrice": int(c["PayingPrice"][i]),
            "UserAgent": c["UserAgent"][i],
        }
        for i in range(n)
    ]
    return rows, drawn.win.astype(np.int32)


def index_features(rows: Sequence[dict[str, Any]], specs: Sequence[StringIndexerSpec]) -> np.ndarray:
    """The seven features of raw rows, computed as the Spark job does (float64, FEATURE_COLUMNS order)."""
    lookups = {s.input_col: {label: i for i, label in enumerate(s.labels)} for s in specs}
    out = np.empty((len(rows), len(FEATURE_COLUMNS)), dtype=np.float64)
    for r, row in enumerate(rows):
        values: dict[str, float] = {
            "dow": row["dow"],
            "hour": int(row["hour"]),
            "device_type_id": device_type_id(row["UserAgent"]),
        }
        for column, output in INDEXED_COLUMNS.items():
            table = lookups[column]
            values[output] = table.get(row[column], len(table)) if row[column] is not None else len(table)
        out[r] = [values[c] for c in FEATURE_COLUMNS]
    return out


def varied_rows(artifacts: Artifacts, n: int = 10_000, seed: int = 2) -> list[dict[str, Any]]:
    """Inference rows, some with categories the pipeline never saw and some with missing (null) ones."""
    rng = np.random.default_rng(seed)
    rows = [dict(artifacts.rows[i]) for i in rng.integers(0, len(artifacts.rows), n)]
    for row in rows:
        for column in ("AdvertiserID", "Domain", "RegionID", "CityID"):
            u = rng.random()
            if u < 0.03:
                row[column] = f"never-seen-{rng.integers(1_000_000)}"
            elif u < 0.05:
                row[column] = None
    return rows


def pandas_frame(features: np.ndarray, specs: Sequence[StringIndexerSpec]) -> Any:
    """Index features as a DataFrame with the index columns as pandas categoricals (all indices)."""
    import pandas as pd

    frame = pd.DataFrame(features, columns=list(FEATURE_COLUMNS))
    sizes = {INDEXED_COLUMNS[s.input_col]: len(s.labels) for s in specs}
    for column, n in sizes.items():
        # every index the bundle can emit except the unseen bucket (training never sees it), listed
        # in reverse so that a category's code differs from its value and re-coding is exercised
        seen = frame[column].where(frame[column] < n)  # the unseen bucket becomes missing
        frame[column] = pd.Categorical(seen.astype("Int64"), categories=list(range(n))[::-1])
    return frame


def train_booster(
    features: np.ndarray,
    labels: np.ndarray,
    specs: Sequence[StringIndexerSpec],
    *,
    flavour: Flavour = "numeric",
    rounds: int = 60,
    depth: int = 6,
    seed: int = 0,
    extra: dict[str, Any] | None = None,
) -> Any:
    """An xgboost binary:logistic booster on the seven features, in one of the three flavours."""
    import xgboost

    param = {
        "objective": "binary:logistic",
        "eta": 0.2,
        "max_depth": depth,
        "seed": seed,
        "nthread": 2,
        **(extra or {}),
    }
    names = list(FEATURE_COLUMNS)
    if flavour == "numeric":
        data = xgboost.DMatrix(features, labels, feature_names=names)
    elif flavour == "categorical":
        types = ["c" if n in INDEXED_COLUMNS.values() else "q" for n in names]
        data = xgboost.DMatrix(
            features, labels, feature_names=names, feature_types=types, enable_categorical=True
        )
        param["max_cat_to_onehot"] = 1
    elif flavour == "pandas-categorical":
        data = xgboost.DMatrix(pandas_frame(features, specs), labels, enable_categorical=True)
        param["max_cat_to_onehot"] = 1
    else:
        raise ValueError(f"unknown flavour {flavour!r}")
    return xgboost.train(param, data, rounds)


def build_artifacts(
    workspace: Path,
    *,
    rows: int = 20_000,
    seed: int = 0,
    flavour: Flavour = "numeric",
    rounds: int = 60,
    depth: int = 6,
    domains: int = 500,
    inference_rows: int = 2_000,
    extra: dict[str, Any] | None = None,
) -> Artifacts:
    """Write bundle, schema, booster and inference rows where `aik configure` says, in a local workspace."""
    settings = Settings(backend="local", workspace=Path(workspace))
    store = params.LocalParameterStore(settings.workspace / "parameters.json")
    params.configure(store, settings)
    raw, labels = random_rows(rows, seed, domains=domains)
    specs = [
        StringIndexerSpec(column, output, _labels_by_frequency([r[column] for r in raw]))
        for column, output in INDEXED_COLUMNS.items()
    ]
    features = index_features(raw, specs)
    booster = train_booster(
        features, labels, specs, flavour=flavour, rounds=rounds, depth=depth, seed=seed, extra=extra
    )

    write_bundle(store.get(params.PIPELINE_MODEL), specs)
    storage.write_text(store.get(params.PIPELINE_SCHEMA), json.dumps(RAW_SCHEMA, indent=2))
    storage.write_bytes(store.get(params.XGBOOST_PATH), bytes(booster.save_raw("ubj")))
    lines = "".join(json.dumps(r) + "\n" for r in raw[:inference_rows])
    storage.write_text(storage.join(store.get(params.INFERENCE_DATA), "part-00000.json"), lines)
    return Artifacts(settings, store, raw, features, labels, booster, flavour, specs)


def publish_booster(artifacts: Artifacts, booster: Any) -> bytes:
    """Replace the published booster atomically (as the trainer does) and return its bytes."""
    data = bytes(booster.save_raw("ubj"))
    storage.write_bytes(artifacts.model_uri, data)
    return data


def copy_artifacts(artifacts: Artifacts, workspace: Path) -> Artifacts:
    """The same artifacts in another workspace (a copy a test may change), without training again."""
    import shutil

    source = artifacts.settings.workspace
    shutil.copytree(source, workspace)
    settings = Settings(backend="local", workspace=Path(workspace))
    store = params.LocalParameterStore(settings.workspace / "parameters.json")
    old, new = str(source), str(settings.workspace)
    store.put_many({k: v.replace(old, new, 1) for k, v in store.get_all().items() if v.startswith(old)})
    return Artifacts(
        settings,
        store,
        artifacts.rows,
        artifacts.features,
        artifacts.labels,
        artifacts.booster,
        artifacts.flavour,
        artifacts.specs,
    )


class StatsdLines:
    """A UDP socket on 127.0.0.1 collecting raw StatsD lines (`name:value|type`): tests and benchmarks."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # bursts of timings
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.lines.extend(data.decode("ascii").splitlines())

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Wait until `predicate(lines)` is true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.lines)):
                return True
            time.sleep(0.05)
        return predicate(list(self.lines))

    def values(self, name: str, kind: str) -> list[float]:
        """Values of every line `name:<value>|<kind>` received."""
        out = []
        for line in list(self.lines):
            metric, _, rest = line.partition(":")
            value, _, rest = rest.partition("|")
            if metric == name and rest.split("|")[0] == kind:
                out.append(float(value))
        return out

    def clear(self) -> None:
        """Forget the lines received so far."""
        self.lines = []

    def close(self) -> None:
        """Stop receiving."""
        self._stop.set()
        self._thread.join(timeout=1)
        self.sock.close()
