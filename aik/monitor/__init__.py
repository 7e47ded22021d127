"""`aik monitor`: what the model predicted against what happened, per arm and segment, with an A/B verdict.

`run_monitor` reads the prediction log (`aik.predictions`), joins it by BidID with the exchange's bid,
impression and click logs (`aik.monitor.join`), computes the report (`aik.monitor.report`) and writes it
as JSON, text and PNGs. Every input and output is a URI: local paths or `s3://` alike.
`aik.monitor.exchange` is the synthetic exchange that closes the loop locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from aik.errors import AikError
from aik.monitor.join import OUTCOMES, join
from aik.monitor.plots import plot
from aik.monitor.report import MonitorReport, build_report


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


def run_monitor(options: MonitorOptions) -> MonitorReport:
    """Read, join, judge; write the report and plots when `options.out` is set."""
    import pandas as pd

    from aik.predictions import read_predictions

    if options.outcome not in OUTCOMES:
        raise AikError(f"unknown outcome {options.outcome!r} (choose from {', '.join(OUTCOMES)})")
    if not 0 < options.alpha < 1:
        raise AikError(f"alpha must be between 0 and 1, got {options.alpha}")
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
    joined, counts = join(predictions, options.logs)
    if joined.empty:
        raise AikError(f"none of the predicted requests is in the bid logs under {options.logs}")
    if options.truth:
        from aik.monitor.exchange import read_truth

        truth = read_truth(options.truth)
        joined = joined.join(truth[["p_win", "p_click"]], on="bid_id")
    report, frame = build_report(
        joined,
        outcome=options.outcome,
        alpha=options.alpha,
        min_segment=options.min_segment,
        experiment=experiment,
        inputs={"predictions": options.predictions, "logs": options.logs, **counts.to_dict()},
    )
    if options.out:
        report.plots = plot(report, frame, options.out)
        report.write(options.out)
    return report


__all__ = ["MonitorOptions", "MonitorReport", "run_monitor"]
