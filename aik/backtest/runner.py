"""Run a backtest's candidates in parallel processes on the same splits and collect their results.

Each candidate runs in its own process (spawned: PyTorch and OpenMP do not survive a fork) with a
fixed number of threads, reads the splits with the backtest's seed (so every candidate sees the same
validation and test rows), applies its feature subset and window, trains, writes its model file under
the backtest's directory, and returns its test predictions and figures. A candidate that fails is
reported as failed with its reason; the others go on. A Spark ML candidate (`spark-logreg`,
`spark-mlp`) trains in a local Spark session of its own that reads the train split's parquet itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aik import storage
from aik.backtest.spec import Candidate
from aik.schema import FEATURE_COLUMNS
from aik.train.families import SPARK_FAMILIES
from aik.train.families.encoding import cardinalities, unseen_codes

log = logging.getLogger(__name__)

#: Test rows timed one at a time for the per-request cost.
TIMED_REQUESTS = 500


@dataclass(frozen=True)
class SplitUris:
    """Where the shared inputs are."""

    train: str
    valid: str
    test: str
    pipeline_model: str


@dataclass(frozen=True)
class Job:
    """One candidate's work order (picklable: it crosses into the worker process)."""

    candidate: Candidate
    uris: SplitUris
    out_dir: str
    seed: int
    max_rows: int | None
    #: None: every core (a SageMaker job's instance).
    threads: int | None


@dataclass
class CandidateResult:
    """What a candidate produced (or why it failed)."""

    name: str
    ok: bool
    error: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    deciles: list[dict[str, Any]] = field(default_factory=list)
    p_test: np.ndarray | None = None
    model_uri: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    train_seconds: float | None = None
    per_request_us: float | None = None
    batch_us_per_row: float | None = None
    train_rows: int = 0


def read_splits(uris: SplitUris, seed: int, max_rows: int | None) -> tuple[Any, Any, Any]:
    """The three splits, read with the backtest's seed (the same rows in every process)."""
    from aik.train.data import read_split

    train = read_split(uris.train, max_rows=max_rows, seed=seed, label="train")
    valid = read_split(uris.valid, max_rows=max_rows, seed=seed + 1, label="valid")
    test = read_split(uris.test, max_rows=max_rows, seed=seed + 2, label="test")
    return train, valid, test


def mask_features(split: Any, features: tuple[str, ...]) -> Any:
    """The split with the features outside the subset set to missing (the model keeps its inputs)."""
    from aik.train.data import Split

    dropped = [FEATURE_COLUMNS.index(c) for c in FEATURE_COLUMNS if c not in features]
    if not dropped:
        return split
    X = split.X.copy()
    X[:, dropped] = np.nan
    return Split(split.uri, X, split.y, split.total_rows, split.columns, split.sampled, split.dropped_rows)


def apply_window(split: Any, candidate: Candidate) -> Any:
    """The training rows the candidate's window keeps: its days of the week, then a seeded sample."""
    from aik.errors import AikError
    from aik.train.data import Split

    keep = np.ones(split.rows, dtype=bool)
    window = candidate.window
    if window.days:
        keep &= np.isin(split.X[:, FEATURE_COLUMNS.index("dow")], window.days)
    rows = np.flatnonzero(keep)
    if window.train_rows is not None and len(rows) > window.train_rows:
        rng = np.random.default_rng(candidate.seed)
        rows = np.sort(rng.choice(rows, window.train_rows, replace=False))
    if len(rows) == 0:
        raise AikError(f"the window {window.as_dict()} keeps no training rows")
    if len(rows) == split.rows:
        return split
    return Split(
        split.uri, split.X[rows], split.y[rows], split.total_rows, split.columns, True, split.dropped_rows
    )


def _train(job: Job, train: Any, valid: Any, test: Any, indexer: Any) -> tuple[Any, dict[str, Any]]:
    candidate = job.candidate
    if candidate.family in SPARK_FAMILIES:
        from aik.train.families.spark_ml import train_candidate

        trained_spark = train_candidate(
            job.uris.train, valid, test.X, candidate, cardinalities(indexer), unseen_codes(indexer),
            max_rows=job.max_rows, threads=job.threads,
        )  # fmt: skip
        return trained_spark.model, trained_spark.info
    if candidate.family == "xgboost":
        from aik.train.model import train_booster
        from aik.train.presets import resolve

        config = resolve(candidate.preset or "default", candidate.params, seed=candidate.seed)
        trained = train_booster(train, valid, config, unseen_codes=unseen_codes(indexer), nthread=job.threads)
        info = {
            "best_rounds": trained.best_rounds,
            "rounds": trained.rounds,
            "refit_on_train_and_valid": trained.refit,
            "config": config.as_dict(),
        }
        return trained.booster, info
    from aik.train.families.config import resolve_neural
    from aik.train.families.neural import train_neural

    neural = resolve_neural(candidate.family, candidate.params, seed=candidate.seed)
    trained_neural = train_neural(
        train, valid, neural, cardinalities(indexer), unseen=unseen_codes(indexer), nthread=job.threads
    )
    return trained_neural.model, trained_neural.info()


def run_candidate(job: Job) -> CandidateResult:
    """Train and judge one candidate (runs in a worker process)."""
    from aik.bundle import read_bundle
    from aik.train import evaluate as E
    from aik.train.families import models

    candidate = job.candidate
    try:
        indexer = read_bundle(job.uris.pipeline_model)
        train, valid, test = read_splits(job.uris, job.seed, job.max_rows)
        # the window first: it reads the day of the week, which a feature subset may set to missing
        train = mask_features(apply_window(train, candidate), candidate.features)
        valid = mask_features(valid, candidate.features)
        test = mask_features(test, candidate.features)
        start = time.monotonic()
        model, training = _train(job, train, valid, test, indexer)
        train_seconds = time.monotonic() - start

        model_uri = storage.join(
            job.out_dir, "candidates", candidate.name, models.file_name(candidate.family)
        )
        data = models.model_bytes(model)
        storage.write_bytes(model_uri, data)
        model = models.load_model(candidate.family, storage.read_bytes(model_uri), model_uri)

        start = time.perf_counter()
        p_test = models.predict(model, test.X)
        batch_us = (time.perf_counter() - start) / max(test.rows, 1) * 1e6
        per_request = models.per_request_seconds(model, test.X[:TIMED_REQUESTS]) * 1e6
        headline = E.evaluate(test.y, p_test).to_dict()
        # the validation split's AUC: what variants of a candidate are chosen by (the test split judges)
        training = {**training, "valid_auc": E.auc(valid.y, models.predict(model, valid.X))}
        keys = ("rows", "auc", "logloss", "brier", "base_rate", "mean_prediction", "calibration_ratio")
        metrics = {k: headline[k] for k in keys}
        described = models.describe(model)
        described["bytes"] = len(data)
        return CandidateResult(
            name=candidate.name,
            ok=True,
            metrics=metrics,
            deciles=E.calibration_by_decile(test.y, p_test) if np.all(np.isfinite(p_test)) else [],
            p_test=p_test,
            model_uri=model_uri,
            training=training,
            model=described,
            train_seconds=train_seconds,
            per_request_us=per_request,
            batch_us_per_row=batch_us,
            train_rows=train.rows,
        )
    except Exception as exc:  # one candidate's failure is reported beside the others' results
        log.error("candidate %s failed: %s", candidate.name, exc)
        log.debug("%s", traceback.format_exc())
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return CandidateResult(name=candidate.name, ok=False, error=f"{type(exc).__name__}: {first}")


def _init_worker(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def run_all(
    jobs: list[Job],
    processes: int,
    on_done: Callable[[CandidateResult], None] | None = None,
) -> list[CandidateResult]:
    """Run every job, `processes` at a time (1: in this process); results in the jobs' order."""
    results: dict[str, CandidateResult] = {}
    if processes <= 1:
        for job in jobs:
            result = run_candidate(job)
            results[job.candidate.name] = result
            if on_done:
                on_done(result)
    else:
        threads = (jobs[0].threads if jobs else None) or 1
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=processes, mp_context=context, initializer=_init_worker, initargs=(threads,)
        ) as pool:
            futures = {pool.submit(run_candidate, job): job for job in jobs}
            for future in as_completed(futures):
                job = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # the worker process itself died (memory, a signal)
                    result = CandidateResult(job.candidate.name, ok=False, error=f"worker died: {exc}")
                results[job.candidate.name] = result
                if on_done:
                    on_done(result)
    return [results[job.candidate.name] for job in jobs]
