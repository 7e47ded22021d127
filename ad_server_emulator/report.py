"""The emulator's report of a finished run: numbers as JSON, two lines on the console, and a PNG.

Latency, throughput and the likelihood distribution come from each connection's own measurements
(`Worker`); the raw latencies are saved too, so runs of several emulator processes can be merged.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ad_server_emulator.emulator import EmulatorConfig, Worker

REPORT_JSON = "emulator-report.json"
REPORT_PNG = "emulator-report.png"
#: Every measured call's latency (ms, float32), so runs of several processes can be merged exactly.
LATENCIES_NPY = "emulator-latency-ms.npy"


def _percentiles(values: np.ndarray, qs: Iterable[float]) -> dict[str, float]:
    if values.size == 0:
        return {f"p{q:g}": math.nan for q in qs}
    return {f"p{q:g}": float(np.percentile(values, q)) for q in qs}


def build_report(
    config: EmulatorConfig, workers: Sequence[Worker], wall: float, status: Any
) -> dict[str, Any]:
    """Numbers of a finished run (JSON-serialisable)."""
    latency = np.concatenate([w.latency_ms[: w.measured] for w in workers]) if workers else np.empty(0)
    ends = np.concatenate([w.end_time[: w.measured] for w in workers]) if workers else np.empty(0)
    likelihood = np.asarray([v for w in workers for v in w.likelihoods], dtype=np.float64)
    errors: Counter[str] = Counter()
    for w in workers:
        errors.update(w.errors)
    measured_requests = int(likelihood.size)
    # throughput over the measured phase: from the first to the last measured answer
    span = float(ends.max() - ends.min() + latency[np.argmin(ends)] / 1000.0) if ends.size > 1 else wall
    counts, edges = np.histogram(likelihood, bins=20, range=(0.0, 1.0))
    cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}
    return {
        "config": cfg,
        "model_version": status.modelVersion,
        "requests_answered": int(sum(w.done for w in workers)),
        "requests_measured": measured_requests,
        "calls_measured": int(latency.size),
        "errors": int(sum(errors.values())),
        "error_messages": dict(errors.most_common(5)),
        "wall_seconds": wall,
        "measured_seconds": span,
        "throughput_rps": measured_requests / span if span > 0 else math.nan,
        "latency_ms": {
            "mean": float(latency.mean()) if latency.size else math.nan,
            "min": float(latency.min()) if latency.size else math.nan,
            **_percentiles(latency, (50, 95, 99, 99.9)),
            "max": float(latency.max()) if latency.size else math.nan,
        },
        "likelihood": {
            "mean": float(likelihood.mean()) if likelihood.size else math.nan,
            "min": float(likelihood.min()) if likelihood.size else math.nan,
            "max": float(likelihood.max()) if likelihood.size else math.nan,
            **_percentiles(likelihood, (5, 25, 50, 75, 95)),
            "histogram": {"edges": edges.tolist(), "counts": counts.tolist()},
        },
    }


def print_report(report: Mapping[str, Any]) -> None:
    """The report on the console: throughput, errors, latency and likelihood in two lines."""
    lat = report["latency_ms"]
    lik = report["likelihood"]
    print(
        f"emulator: {report['requests_measured']:,} requests measured in {report['measured_seconds']:.1f} s "
        f"= {report['throughput_rps']:,.0f} requests/s ({report['errors']} errors), "
        f"model {report['model_version']}\n"
        f"  latency ms: mean {lat['mean']:.3f}  p50 {lat['p50']:.3f}  p95 {lat['p95']:.3f}  "
        f"p99 {lat['p99']:.3f}  max {lat['max']:.3f}\n"
        f"  likelihood: mean {lik['mean']:.4f}  min {lik['min']:.4f}  p50 {lik['p50']:.4f}  "
        f"max {lik['max']:.4f}"
    )
    for message, count in report["error_messages"].items():
        print(f"  error x{count}: {message}")


def write_report(report: Mapping[str, Any], workers: Sequence[Worker], out: Path) -> tuple[Path, Path]:
    """Write the JSON report, the raw latencies, and a PNG of latency over time and the distributions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    json_path = out / REPORT_JSON
    json_path.write_text(json.dumps(report, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    latency = np.concatenate([w.latency_ms[: w.measured] for w in workers])
    np.save(out / LATENCIES_NPY, latency.astype(np.float32))
    ends = np.concatenate([w.end_time[: w.measured] for w in workers])
    likelihood = np.asarray([v for w in workers for v in w.likelihoods], dtype=np.float64)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    ax = axes[0]
    if ends.size:
        order = np.argsort(ends)
        ends, latency_sorted = ends[order], latency[order]
        ax.plot(ends, latency_sorted, ",", alpha=0.3, color="tab:gray", label="each call")
        width = max((ends[-1] - ends[0]) / 60.0, 0.05)  # about 60 windows, whatever the run's length
        window = np.floor(ends / width).astype(np.int64)
        buckets = np.unique(window)
        p50 = [np.percentile(latency_sorted[window == w], 50) for w in buckets]
        p99 = [np.percentile(latency_sorted[window == w], 99) for w in buckets]
        ax.plot((buckets + 0.5) * width, p50, "-", color="tab:blue", label=f"p50 per {width:.2g} s")
        ax.plot((buckets + 0.5) * width, p99, "-", color="tab:red", label=f"p99 per {width:.2g} s")
        ax.set_yscale("log")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency over time")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    if latency.size:
        ax.hist(latency, bins=np.geomspace(max(latency.min(), 1e-3), latency.max() * 1.01 + 1e-3, 60))
        ax.set_xscale("log")
        for q, color in ((50, "tab:blue"), (99, "tab:red")):
            ax.axvline(np.percentile(latency, q), color=color, linestyle="--", label=f"p{q}")
        ax.legend(fontsize=8)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("calls")
    ax.set_title("Latency distribution")
    ax = axes[2]
    ax.hist(likelihood, bins=40, range=(0.0, 1.0), color="tab:green")
    ax.set_xlabel("likelihood to bid")
    ax.set_ylabel("requests")
    ax.set_title(f"Likelihood distribution (mean {report['likelihood']['mean']:.3f})")
    fig.suptitle(
        f"ad-server emulator: {report['throughput_rps']:,.0f} requests/s, "
        f"p99 {report['latency_ms']['p99']:.3f} ms, {report['errors']} errors, "
        f"model {report['model_version']}"
    )
    fig.tight_layout()
    png_path = out / REPORT_PNG
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path
