"""The closed loop: an experiment serves fresh requests, the synthetic world answers, `aik monitor` judges.

1. `fresh_auctions`: requests of the world's traffic under new BidIDs.
2. Serving, by the filtering server itself (`serve_by_server`: the experiment started as its parameter,
   the server started with its prediction log at 100 %, the requests sent with `filterBatch`), or by
   the public contracts (`serve_by_contract`: each request's arm by the experiment's salted hash
   `aik.experiments.assign`, that arm's release loaded and scored by `filtering_server.model`, the
   answers written in the prediction log's format by `aik.predictions`).
3. The synthetic exchange realizes each request's outcome from the world's truth and writes the bid,
   impression and click logs (`aik.monitor.exchange`).
4. `aik monitor` joins and judges, with the realized truth beside its estimates.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aik import experiments, releases, storage
from aik.errors import AikError
from aik.experiments import Experiment, assign_many
from aik.monitor import MonitorOptions, MonitorReport, run_monitor
from aik.monitor.exchange import TRUTH_FILE, fresh_auctions, realize, timestamps, write_logs
from aik.params import ParameterStore
from aik.predictions import Prediction, write_local
from aik.settings import Settings
from aik.truth import TruthModel

#: Requests per filterBatch call of the server path.
BATCH = 500
#: Seconds the server may take to serve every arm of the experiment.
ARMS_TIMEOUT_S = 300.0

#: serve(experiment, auctions, predictions_root): answer the auctions and write the prediction log.
Serve = Callable[[Experiment, Sequence[Mapping[str, Any]], str], None]


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


def by_contract(releases_root: str, models: Mapping[str, Any] | None = None) -> Serve:
    """`serve_by_contract` with the releases under `releases_root` (and those already loaded)."""

    def serve(experiment: Experiment, auctions: Sequence[Mapping[str, Any]], root: str) -> None:
        serve_by_contract(releases_root, experiment, auctions, root, models=models)

    return serve


def _serving_arms(port: int) -> dict[str, str]:
    from filtering_api.client import connect

    client = connect("127.0.0.1", port, 10_000)
    try:
        status = client.health()
    finally:
        client.close()
    return {a.arm: a.release for a in (getattr(status, "arms", None) or [])}


def serve_by_server(
    settings: Settings, store: ParameterStore, experiment: Experiment, auctions: Sequence[Mapping[str, Any]],
    root: str, log_path: Path,
) -> None:  # fmt: skip
    """Start the experiment, serve the auctions with a filtering server process logging every answer to
    `root`, stop it (its drain flushes the log) and stop the experiment."""
    from ad_server_emulator.emulator import bid_request
    from filtering_api.client import connect
    from filtering_server.process import ServerProcess

    log_path.parent.mkdir(parents=True, exist_ok=True)
    experiments.start(store, experiment)
    wanted = {a.arm: a.release for a in experiment.arms}
    try:
        args = ["--no-metrics", "--watch-interval", "1", "--prediction-sample", "1", "--prediction-log", root]
        with ServerProcess(settings, log_path=log_path, extra_args=args) as server:
            deadline = time.monotonic() + ARMS_TIMEOUT_S
            while (serving := _serving_arms(server.port)) != wanted:
                if time.monotonic() > deadline:
                    raise AikError(f"the server serves {serving}, not the experiment's arms {wanted}")
                time.sleep(0.2)
            client = connect("127.0.0.1", server.port, 60_000)
            try:
                requests = [bid_request(a) for a in auctions]
                for start in range(0, len(requests), BATCH):
                    client.filterBatch(requests[start : start + BATCH])
            finally:
                client.close()
    finally:
        experiments.stop(store)


def by_server(settings: Settings, store: ParameterStore, log_path: Path) -> Serve:
    """`serve_by_server` with this workspace's settings and parameter store."""

    def serve(experiment: Experiment, auctions: Sequence[Mapping[str, Any]], root: str) -> None:
        serve_by_server(settings, store, experiment, auctions, root, log_path)

    return serve


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
    serve: Serve,
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
) -> ClosedLoop:
    """Serve `requests` fresh auctions under the experiment, realize them, and judge the experiment."""
    auctions = fresh_auctions(traffic, requests, seed)
    serve(experiment, auctions, predictions_root)
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
