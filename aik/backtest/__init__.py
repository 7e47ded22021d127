"""`aik backtest EXPERIMENTS.yaml`: candidates side by side on the same splits, recorded in MLflow.

`run_backtest(ctx, experiments, BacktestOptions(...)) -> BacktestResult`. Modules: `spec` (the YAML),
`runner` (parallel processes), `sagemaker` (parallel SageMaker training jobs, `job` their program),
`report` (table and plots), `tracking` (MLflow). Everything a backtest writes lives under
`<data bucket>/backtests/<id>/`; nothing is released.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aik import params as P
from aik import storage
from aik.backtest import report as R
from aik.backtest import tracking
from aik.backtest.runner import CandidateResult, Job, SplitUris, read_splits, run_all
from aik.backtest.spec import Experiments
from aik.context import Context
from aik.errors import AikError

if TYPE_CHECKING:
    from aik.backtest.sagemaker import SageMakerBacktest

log = logging.getLogger(__name__)

BACKTESTS_DIR = "backtests"


@dataclass(frozen=True)
class BacktestOptions:
    """How to run (the CLI's options)."""

    #: Candidates trained at the same time, each in its own process.
    processes: int = 2
    #: Threads each candidate's training uses (None: 1 locally, every vCPU of a SageMaker instance).
    threads: int | None = None
    use_case: str = "bid-filtering"
    mlflow: bool = True
    #: Where the candidates train: "local" (processes) or "sagemaker" (one training job each).
    on: str = "local"
    sagemaker: SageMakerBacktest | None = None


@dataclass
class BacktestResult:
    """Where the report went and what it says."""

    backtest_id: str
    directory: str
    table: list[dict[str, Any]]
    reports: dict[str, str]
    markdown: str
    mlflow: dict[str, Any] = field(default_factory=dict)
    results: list[CandidateResult] = field(default_factory=list)

    @property
    def failed(self) -> list[str]:
        """Names of the candidates that failed."""
        return [row["name"] for row in self.table if not row.get("ok")]


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def run_backtest(
    ctx: Context, experiments: Experiments, options: BacktestOptions | None = None
) -> BacktestResult:
    """Run every candidate, write the report under `<bucket>/backtests/<id>/`, record the runs in MLflow."""
    from aik.bundle import read_bundle
    from aik.train import evaluate as E
    from aik.train.families import SPARK_FAMILIES, models
    from aik.truth import TruthModel, truth_uri

    options = options or BacktestOptions()
    if options.use_case not in E.USE_CASES:
        raise AikError(f"unknown use case {options.use_case!r} (choose from {', '.join(E.USE_CASES)})")
    if options.on not in ("local", "sagemaker"):
        raise AikError(f"unknown place to run {options.on!r} (choose local or sagemaker)")
    if options.on == "sagemaker" and ctx.settings.backend != "aws":
        raise AikError(
            "--on sagemaker needs the aws backend (--backend aws): the jobs read the splits from S3"
        )
    spark = [c.name for c in experiments.candidates if c.family in SPARK_FAMILIES]
    if options.on == "sagemaker" and spark:
        raise AikError(
            f"{', '.join(spark)}: Spark ML candidates train in a Spark session, which the backtest jobs' "
            "image does not have; run them without --on sagemaker"
        )
    # on SageMaker the image trains the neural families; locally this process needs PyTorch
    if options.on == "local" and any(models.needs_torch(c.family) for c in experiments.candidates):
        models.require_torch(next(c.family for c in experiments.candidates if models.needs_torch(c.family)))
    use_mlflow = options.mlflow and tracking.available()
    if options.mlflow and not use_mlflow:
        log.warning("MLflow is not installed (the tracking extra): the runs are not recorded, the report is")
    store = ctx.params
    uris = SplitUris(
        train=store.get(P.OUTPUT_TRAIN),
        valid=store.get(P.OUTPUT_VALID),
        test=store.get(P.OUTPUT_TEST),
        pipeline_model=store.get(P.PIPELINE_MODEL),
    )
    backtest_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)
    directory = storage.join(P.bucket_root(store.get(P.DATA_BUCKET)), BACKTESTS_DIR, backtest_id)

    # the parent reads the test split once for the oracle and the plots (the workers read the same rows)
    _, _, test = read_splits(uris, experiments.seed, experiments.max_rows)
    indexer = read_bundle(uris.pipeline_model)
    truth = None
    try:
        raw_data = store.get(P.RAW_DATA)
        if storage.exists(truth_uri(raw_data)):
            truth = TruthModel.load(truth_uri(raw_data))
    except AikError:
        pass
    reference: dict[str, float | None] = {"oracle_auc": None, "additive_auc": None}
    p_oracle = None
    if truth is not None:
        reference = R.truth_reference(truth, options.use_case, test.y, test.X, indexer)
        p_oracle = E.truth_model(truth, options.use_case).probability(E.deindex(test.X, indexer)[0])

    threads = options.threads if options.threads is not None or options.on == "sagemaker" else 1
    jobs = [
        Job(c, uris, directory, experiments.seed, experiments.max_rows, threads)
        for c in experiments.candidates
    ]
    processes = max(1, min(options.processes, len(jobs))) if options.on == "local" else len(jobs)
    log.info(
        "backtest %s: %d candidates, %d at a time, %d thread(s) each -> %s",
        backtest_id,
        len(jobs),
        processes,
        threads or "all",
        directory,
    )
    load_before = _load()
    started = time.monotonic()
    done = 0

    def on_done(result: CandidateResult) -> None:
        nonlocal done
        done += 1
        status = f"AUC {result.metrics.get('auc')}" if result.ok else f"failed ({result.error})"
        log.info("backtest: %s done (%d/%d): %s", result.name, done, len(jobs), status)

    if options.on == "sagemaker":
        results = _run_on_sagemaker(ctx, jobs, backtest_id, directory, options, on_done)
    else:
        results = run_all(jobs, processes, on_done)
    header = {
        "name": experiments.name,
        "backtest_id": backtest_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "use_case": options.use_case,
        "on": options.on,
        "seed": experiments.seed,
        "test_rows": test.rows,
        "processes": processes,
        "threads": threads,
        **(
            {"instance_type": (options.sagemaker or _default_sagemaker()).instance_type}
            if options.on == "sagemaker"
            else {}
        ),
        "load_before": load_before,
        "load_after": _load(),
        "seconds": round(time.monotonic() - started, 1),
    }
    table = R.rows(experiments.candidates, results, reference)
    images = R.plots(test.y, results, p_oracle, reference)
    reports = R.write(directory, header, table, reference, images)
    markdown = storage.read_text(reports[R.REPORT_MD])
    recorded: dict[str, Any] = {}
    if use_mlflow:
        files = {name: storage.read_bytes(uri) for name, uri in reports.items()}
        uri = tracking.default_tracking_uri(
            ctx.settings.workspace, experiments.mlflow_tracking_uri, tracking.stack_server_arn(store)
        )
        recorded = tracking.record(
            uri,
            experiments.mlflow_experiment,
            ctx.settings.workspace / "mlartifacts" if uri.startswith("sqlite:") else None,
            f"{experiments.name} {backtest_id}",
            header,
            experiments.candidates,
            table,
            files,
        )
    return BacktestResult(
        backtest_id=backtest_id,
        directory=directory,
        table=table,
        reports=reports,
        markdown=markdown,
        mlflow=recorded,
        results=results,
    )


def _run_on_sagemaker(
    ctx: Context,
    jobs: list[Job],
    backtest_id: str,
    directory: str,
    options: BacktestOptions,
    on_done: Any,
) -> list[CandidateResult]:
    """The candidates as parallel SageMaker training jobs (aik.backtest.sagemaker)."""
    from aik import aws
    from aik.backtest import sagemaker as S

    settings = options.sagemaker or _default_sagemaker()
    env = S.environment(ctx.params, settings)
    return S.run_jobs(
        aws.client("sagemaker"),
        jobs,
        backtest_id=backtest_id,
        directory=directory,
        env=env,
        settings=settings,
        on_done=on_done,
    )


def _default_sagemaker() -> SageMakerBacktest:
    from aik.backtest.sagemaker import SageMakerBacktest

    return SageMakerBacktest()
