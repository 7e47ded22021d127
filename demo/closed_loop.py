"""The closed loop: an experiment serves fresh requests, the synthetic world answers, `aik monitor` judges.

1. `fresh_auctions`: requests of the world's traffic under new BidIDs.
2. Serving: each request gets its arm by the experiment's salted hash (`aik.experiments.assign`) and
   that arm's release scores it (`filtering_server.model`, the server's own loading and scoring); the
   answers are written to the prediction log (`aik.predictions`) as the server writes them.
3. The synthetic exchange realizes each request's outcome from the world's truth and writes the bid,
   impression and click logs (`aik.monitor.exchange`).
4. `aik monitor` joins and judges, with the realized truth beside its estimates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aik import releases, storage
from aik.experiments import Experiment, assign_many
from aik.monitor import MonitorOptions, MonitorReport, run_monitor
from aik.monitor.exchange import TRUTH_FILE, fresh_auctions, realize, timestamps, write_logs
from aik.predictions import Prediction, write_local
from aik.truth import TruthModel


def release_model(root: str, release_id: str) -> Any:
    """The release loaded, checked and validated as the filtering server loads it."""
    from filtering_server.model import ModelSources, load_model

    release = releases.find(root, release_id)
    files = release.files
    sources = ModelSources(
        release.file_uri("model"),
        release.file_uri("bundle"),
        release.file_uri("schema"),
        release_uri=release.manifest_uri,
        release_id=release.id,
        digests=(files["model"].sha256, files["bundle"].sha256, files["schema"].sha256),
    )
    return load_model(sources)


def serve_by_contract(
    releases_root: str,
    experiment: Experiment,
    auctions: Sequence[Mapping[str, Any]],
    predictions_root: str,
    writer: str = "closed-loop",
    models: Mapping[str, Any] | None = None,
) -> list[Prediction]:
    """Score each request with its arm's release and write the prediction log (every request sampled).

    `models`: release id -> the loaded release, for releases already loaded (each load validates the
    booster in a child process).
    """
    from ad_server_emulator.emulator import bid_request

    bid_ids = [str(a["BidID"]) for a in auctions]
    arms = assign_many(bid_ids, experiment)
    loaded = dict(models or {})
    for each in experiment.arms:
        if each.release not in loaded:
            loaded[each.release] = release_model(releases_root, each.release)
    by_arm = {each.arm: loaded[each.release] for each in experiment.arms}
    requests = [bid_request(a) for a in auctions]
    likelihood: list[float] = [0.0] * len(auctions)
    for arm, model in by_arm.items():
        mine = [i for i, a in enumerate(arms) if a == arm]
        for i, value in zip(mine, model.score_batch([requests[i] for i in mine]), strict=True):
            likelihood[i] = value
    now = int(time.time() * 1000)
    release_of = {each.arm: each.release for each in experiment.arms}
    records = [
        Prediction(b, now, experiment.name, arm, release_of[arm], p)
        for b, arm, p in zip(bid_ids, arms, likelihood, strict=True)
    ]
    write_local(predictions_root, records, writer)
    return records


@dataclass(frozen=True)
class ClosedLoop:
    """One closed-loop run: the report and where its inputs are."""

    report: MonitorReport
    requests: int
    logs_root: str
    predictions_root: str
    truth_uri: str


def run_closed_loop(
    *,
    releases_root: str,
    experiment: Experiment,
    traffic: Sequence[Mapping[str, Any]],
    truth: TruthModel,
    requests: int,
    seed: int,
    logs_root: str,
    predictions_root: str,
    out: str | None,
    alpha: float = 0.05,
    min_segment: int = 200,
    models: Mapping[str, Any] | None = None,
) -> ClosedLoop:
    """Serve `requests` fresh auctions under the experiment, realize them, and judge the experiment."""
    auctions = fresh_auctions(traffic, requests, seed)
    serve_by_contract(releases_root, experiment, auctions, predictions_root, models=models)
    outcomes = realize(auctions, truth, seed)
    write_logs(logs_root, auctions, outcomes, timestamps(auctions, seed))
    truth_uri = storage.join(logs_root, TRUTH_FILE)
    report = run_monitor(
        MonitorOptions(
            predictions=predictions_root,
            logs=logs_root,
            out=out,
            alpha=alpha,
            experiment=experiment.name,
            min_segment=min_segment,
            truth=truth_uri,
        )
    )
    return ClosedLoop(report, requests, logs_root, predictions_root, truth_uri)
