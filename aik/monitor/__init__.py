"""`aik monitor`: what the model predicted against what happened, per arm and segment, with an A/B verdict.

`run_monitor` reads the prediction log (`aik.predictions`), joins it by BidID with the exchange's bid,
impression and click logs, computes the report (`aik.monitor.report`) and writes it as JSON, text and
PNGs. Two engines join: `pandas` in this process (`aik.monitor.join`), or `spark`, a Spark job
(`aik.monitor.spark_job`, local mode here, an EMR step in AWS) that writes the joined table
(`aik.monitor.table`) the report then reads; `joined` judges a table that job already wrote. Every
input and output is a URI: local paths or `s3://` alike. `aik.monitor.exchange` is the synthetic
exchange that closes the loop locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aik import storage
from aik.errors import AikError
from aik.monitor.join import OUTCOMES, JoinCounts, join
from aik.monitor.plots import plot
from aik.monitor.report import MonitorReport, build_report

if TYPE_CHECKING:
    import pandas as pd

#: The engines that join: in this process, or a Spark job.
ENGINES = ("pandas", "spark")
#: Where the Spark engine writes the joined table under the report's directory.
JOINED_DIR = "joined/"


@dataclass(frozen=True)
class MonitorOptions:
    """What to judge and how strictly."""

    predictions: str
    logs: str
    out: str | None = None
    outcome: str = "impression"
    alpha: float = 0.05
    #: Only the records of this experiment; None: the experiment of the newest record.
    experiment: str | None = None
    min_segment: int = 200
    #: The synthetic exchange's realized truth (`exchange.TRUTH_FILE`): adds what each estimate should be.
    truth: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    #: Who joins: `pandas` (this process) or `spark` (the Spark job, then its table is read back).
    engine: str = "pandas"
    #: A table the Spark job already wrote: judge it instead of joining (the job chose the experiment).
    joined: str | None = None
    #: Where the Spark engine writes its table (default `<out>/joined/`, else a temporary directory).
    joined_out: str | None = None


@dataclass(frozen=True)
class Joined:
    """The joined requests of one experiment, with the join's counts and what the report names as inputs."""

    frame: pd.DataFrame
    counts: JoinCounts
    experiment: str | None
    inputs: dict[str, Any]


def join_in_process(options: MonitorOptions) -> Joined:
    """The pandas engine: read the prediction log, choose the experiment, join it with the logs here."""
    import pandas as pd

    from aik.predictions import read_predictions

    predictions = read_predictions(options.predictions, start=options.start, end=options.end)
    if predictions.empty:
        raise AikError(f"no prediction records under {options.predictions}")
    experiment = options.experiment
    if experiment is None:
        newest = predictions.loc[predictions["ts_ms"].idxmax(), "experiment"]
        experiment = None if pd.isna(newest) else str(newest)
    chosen = (
        predictions["experiment"].isna() if experiment is None else predictions["experiment"] == experiment
    )
    predictions = predictions[chosen.fillna(False).to_numpy(dtype=bool)]
    if predictions.empty:
        raise AikError(f"no prediction records of experiment {experiment} under {options.predictions}")
    frame, counts = join(predictions, options.logs)
    return Joined(frame, counts, experiment, {"predictions": options.predictions, "logs": options.logs})


def read_table(uri: str) -> Joined:
    """A joined table the Spark job wrote, as the report reads it."""
    from aik.monitor.table import read_joined

    table = read_joined(uri)
    inputs = {"predictions": table.predictions, "logs": table.logs, "joined": uri}
    return Joined(table.frame, table.counts, table.experiment, inputs)


def join_with_spark(options: MonitorOptions) -> Joined:
    """The spark engine: run the join job in a local (or the active) session, then read its table."""
    import tempfile

    from aik.features.spark import get_session
    from aik.monitor.spark_job import JoinJob, run_join

    out = options.joined_out or (storage.join(options.out, JOINED_DIR) if options.out else None)
    if out is None:
        out = tempfile.mkdtemp(prefix="aik-monitor-") + "/" + JOINED_DIR
    spark = get_session("aik-monitor")
    uris = (options.predictions, options.logs, out)
    if (spark.sparkContext.master or "").startswith("local") and any(storage.is_s3(u) for u in uris):
        raise AikError(
            "the logs or the output are in S3 but Spark runs in local mode here: run the join on EMR "
            "(`aik --backend aws monitor --on emr`)"
        )
    run_join(
        spark, JoinJob(options.predictions, options.logs, out, options.experiment, options.start, options.end)
    )
    return read_table(out)


def run_monitor(options: MonitorOptions) -> MonitorReport:
    """Read, join, judge; write the report and plots when `options.out` is set."""
    if options.outcome not in OUTCOMES:
        raise AikError(f"unknown outcome {options.outcome!r} (choose from {', '.join(OUTCOMES)})")
    if not 0 < options.alpha < 1:
        raise AikError(f"alpha must be between 0 and 1, got {options.alpha}")
    if options.engine not in ENGINES:
        raise AikError(f"unknown engine {options.engine!r} (choose from {', '.join(ENGINES)})")
    if options.joined:
        done = read_table(options.joined)
    elif options.engine == "spark":
        done = join_with_spark(options)
    else:
        done = join_in_process(options)
    return judge(done, options)


def judge(done: Joined, options: MonitorOptions) -> MonitorReport:
    """The report of joined requests (both engines end here); written with its plots to `options.out`."""
    if done.frame.empty:
        raise AikError(f"none of the predicted requests is in the bid logs under {done.inputs['logs']}")
    # One row order whichever engine joined, so sums of floats (and so every figure) are the same.
    joined = done.frame.sort_values(["ts_ms", "bid_id"], kind="stable").reset_index(drop=True)
    if options.truth:
        from aik.monitor.exchange import read_truth

        truth = read_truth(options.truth)
        joined = joined.join(truth[["p_win", "p_click"]], on="bid_id")
    report, frame = build_report(
        joined,
        outcome=options.outcome,
        alpha=options.alpha,
        min_segment=options.min_segment,
        experiment=done.experiment,
        inputs={**done.inputs, **done.counts.to_dict()},
    )
    if options.out:
        report.plots = plot(report, frame, options.out)
        report.write(options.out)
    return report


__all__ = ["ENGINES", "MonitorOptions", "MonitorReport", "run_monitor"]
