"""The demo's summary: every figure beside the artifact it comes from, as `summary.json` and text lines."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aik.train.metrics import Metrics
from demo.abtest import AbTested
from demo.abtest import lines as ab_lines
from demo.config import DemoConfig
from demo.serve import Served, Swap
from demo.state import StepRecord
from demo.steps import Featured, Ingested, Synthesized, Trained

SUMMARY_JSON = "summary.json"
SUMMARY_TXT = "summary.txt"


@dataclass(frozen=True)
class Artifacts:
    """Where each figure of the summary comes from."""

    ingest_report: str
    features_report: str | None
    metrics: str
    plots: dict[str, str]
    emulator_report: str
    emulator_png: str
    server_log: str
    metrics_file: str
    dashboard_png: str
    dashboard_html: str
    cdk_out: str | None


@dataclass(frozen=True)
class StepTiming:
    """How long a step took this run, and whether an earlier run's result was reused."""

    seconds: float
    reused: bool


@dataclass(frozen=True)
class Summary:
    """The figures `make demo` prints, and their sources."""

    rows: int
    auc: float | None
    oracle_auc: float | None
    oracle_ratio: float | None
    baselines: dict[str, float | None]
    throughput_rps: float
    latency_ms: dict[str, float]
    errors: int
    swap: Swap
    dashboard: dict[str, Any]
    #: The A/B step's experiments and verdicts (None when it was skipped).
    abtest: AbTested | None
    artifacts: Artifacts
    steps: dict[str, StepTiming]
    seconds: float
    lines: list[str]

    def to_dict(self) -> dict[str, Any]:
        """The summary.json document."""
        return {
            **asdict(self),
            "swap": self.swap.to_dict(),
            "abtest": self.abtest.to_dict() if self.abtest else None,
        }

    def write(self, directory: Path) -> None:
        """summary.json and summary.txt in the demo directory."""
        (directory / SUMMARY_JSON).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")
        (directory / SUMMARY_TXT).write_text("\n".join(self.lines) + "\n")


def _ratio(m: Metrics) -> float | None:
    return m.oracle_ratio or (m.auc / m.oracle_auc if m.auc and m.oracle_auc else None)


def _model_lines(train: Trained) -> list[str]:
    m = train.metrics
    auc, oracle_auc, ratio = m.auc, m.oracle_auc, _ratio(m)
    quality = f"AUC {auc:.4f}" if auc is not None else "AUC n/a"
    if oracle_auc is not None and ratio is not None:
        quality += f", oracle AUC {oracle_auc:.4f}, ratio {ratio:.3f}"
    logloss = m.test.logloss if m.test.logloss is not None else float("nan")
    baselines = ", ".join(f"{k} AUC {b.auc:.4f}" for k, b in m.baselines.items() if b.auc is not None)
    return [
        f"model      xgboost {quality}, log loss {logloss:.4f}",
        f"           baselines {baselines}",
        f"           [{train.reports.get('metrics.json', '')}]",
    ]


def _serving_lines(serve: Served, connections: int, summary_json: Path) -> list[str]:
    lat, swap, timing, canary = serve.latency_ms, serve.swap, serve.swap.timing, serve.swap.canary
    return [
        f"serving    {serve.requests_measured:,} requests over {connections} connections: "
        f"{serve.throughput_rps:,.0f} requests/s, p50 {lat['p50']:.3f} ms, p99 {lat['p99']:.3f} ms, "
        f"{serve.errors} errors",
        f"           [{serve.emulator_report}]",
        f"hot swap   {swap.from_version} -> {swap.to_version} published after "
        f"{timing.published_after_requests:,} requests, serving {timing.picked_up_seconds:.1f} s later",
        f"           canary across the swap: {canary.requests:,} requests, {canary.errors} failed, "
        f"model versions seen {' -> '.join(canary.versions)}",
        f"           [{serve.server_log}, {summary_json}]",
        "dashboard  " + "; ".join(line.strip() for line in serve.dashboard_lines[1:]),
        f"           [{serve.metrics_file}]",
        f"           {serve.dashboard_png}",
        f"           {serve.dashboard_html}",
    ]


def build_summary(
    directory: Path,
    config: DemoConfig,
    ingest: Ingested,
    features: Featured,
    train: Trained,
    serve: Served,
    ab: AbTested | None,
    synth: Synthesized | None,
    steps: dict[str, StepRecord],
    seconds: float,
) -> Summary:
    """Every figure of the summary with the artifact it comes from."""
    plots = {k: v for k, v in train.reports.items() if k.endswith(".png")}
    lines = [
        "",
        "AIK demo summary (every figure: the artifact it comes from in [brackets])",
        f"data       {config.rows:,} synthetic bid requests, seed {config.seed}: "
        f"{features.rows:,} rows, {100 * (features.positive_rate or 0):.1f} % won",
        f"           [{ingest.report_uri}]",
        "           splits " + ", ".join(f"{k} {v:,}" for k, v in features.split_rows.items()),
        f"           [{features.outputs.get('report', '')}]",
        *_model_lines(train),
        *_serving_lines(serve, config.connections, directory / SUMMARY_JSON),
        *(ab_lines(ab) if ab else []),
        "plots      " + "\n           ".join([*plots.values(), serve.emulator_png]),
    ]
    if synth:
        lines.append(f"cdk        {len(synth.templates)} templates synthesized offline [{synth.cdk_out}]")
    timings = ", ".join(
        f"{name} {rec.seconds:.0f} s" + (" (reused)" if rec.reused else "") for name, rec in steps.items()
    )
    lines.append(f"steps      {timings}; total {seconds:.0f} s")
    m = train.metrics
    return Summary(
        rows=features.rows,
        auc=m.auc,
        oracle_auc=m.oracle_auc,
        oracle_ratio=_ratio(m),
        baselines={name: b.auc for name, b in m.baselines.items()},
        throughput_rps=serve.throughput_rps,
        latency_ms=serve.latency_ms,
        errors=serve.errors,
        swap=serve.swap,
        dashboard=serve.dashboard,
        abtest=ab,
        artifacts=Artifacts(
            ingest_report=ingest.report_uri,
            features_report=features.outputs.get("report"),
            metrics=train.reports.get("metrics.json", ""),
            plots=plots,
            emulator_report=serve.emulator_report,
            emulator_png=serve.emulator_png,
            server_log=serve.server_log,
            metrics_file=serve.metrics_file,
            dashboard_png=serve.dashboard_png,
            dashboard_html=serve.dashboard_html,
            cdk_out=synth.cdk_out if synth else None,
        ),
        steps={name: StepTiming(round(rec.seconds, 1), rec.reused) for name, rec in steps.items()},
        seconds=round(seconds, 1),
        lines=lines,
    )
