"""The per-arm row of the local dashboard: an experiment of two arms sent by the server's own metrics
aggregator through a real StatsD client to the live receiver, summarized and rendered as the CloudWatch
dashboard's second row shows it, with the sudden-change check of each arm's mean likelihood."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from aik import dashboard
from aik.dashboard import ARM_WIDGETS, WIDGETS
from aik.monitoring.receiver import StatsdReceiver
from aik.monitoring.render import html_page, png_bytes, render_figure
from aik.monitoring.summary import (
    BAND_MIN_HISTORY,
    BAND_MIN_SD,
    DashboardSummary,
    likelihood_band,
    sudden_changes,
    summarize,
)
from aik.monitoring.windows import WindowRecord
from filtering_api.metrics import MetricNames, MetricsAggregator, statsd_client

from .test_statsd_receiver import FakeClock

T0 = 1_700_000_000
WINDOWS = 12
#: requests per window and the mean likelihood each arm's requests get; the challenger's jumps at
#: window 9 (a sudden change), the champion's wanders within a few thousandths
REQUESTS = {"champion": 90, "challenger": 10}
JUMP = 9
#: the calls of each window per arm: (requests, latency ms)
CALLS = {"champion": ((40, 0.4), (30, 0.6), (20, 1.5)), "challenger": ((6, 0.8), (4, 2.5))}
SERVER_NAMES = MetricNames(
    timer=dashboard.FILTERING_LATENCY,
    counter=dashboard.FILTERING_COUNT,
    arm_counter=dashboard.ARM_COUNT,
    arm_timer=dashboard.ARM_LATENCY,
    arm_gauge=dashboard.ARM_LIKELIHOOD,
)


@dataclass(frozen=True)
class ArmRun:
    records: list[WindowRecord]
    #: arm -> the mean likelihood sent in each window
    means: dict[str, list[float]]

    @property
    def summary(self) -> DashboardSummary:
        return summarize(self.records)


def _means(rng: np.random.Generator) -> dict[str, list[float]]:
    champion = (0.2 + rng.uniform(-0.002, 0.002, WINDOWS)).round(6).tolist()
    challenger = [0.3 if w < JUMP else 0.6 for w in range(WINDOWS)]
    return {"champion": champion, "challenger": challenger}


def _wait_lines(receiver: StatsdReceiver, lines: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while receiver.stats.lines < lines:
        assert time.monotonic() < deadline, f"{receiver.stats.lines} of {lines} StatsD lines arrived"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def arm_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArmRun]:
    """Twelve 10-s windows of an experiment, flushed once per window by the server's aggregator."""
    means = _means(np.random.default_rng(3))
    clock = FakeClock(T0 + 1)
    out = tmp_path_factory.mktemp("arms") / "metrics.jsonl"
    with StatsdReceiver(out, port=0, clock=clock) as receiver:
        client = statsd_client("127.0.0.1", receiver.port, dashboard.SERVER_PREFIX)
        metrics = MetricsAggregator(client, SERVER_NAMES, log_interval=1e9)
        lines = 0
        for w in range(WINDOWS):
            clock.set(T0 + 10 * w + 1)
            for arm, calls in CALLS.items():
                for n, latency in calls:
                    metrics.record(n, latency, arms=[(arm, n, means[arm][w] * n)])
            metrics.flush()
            calls_made = sum(len(c) for c in CALLS.values())
            # the counter, a timing per call, and per arm its count, its calls' timings and its gauge
            lines += 1 + calls_made + 2 * len(CALLS) + calls_made
            _wait_lines(receiver, lines)
    yield ArmRun(receiver.records, means)


def _arm_series(summary: DashboardSummary, name: str, arm: str) -> list[float]:
    (widget,) = [w for w in summary.arm_widgets if w.spec.metric.name == name]
    (series,) = [s for s in widget.series if s.arm == arm]
    assert [t for t, _ in series.points] == [T0 + 10 * w for w in range(WINDOWS)]
    return series.values


def test_each_arm_gets_its_requests_latency_p99_and_mean_likelihood_per_period(arm_run: ArmRun) -> None:
    summary = arm_run.summary
    assert [w.spec for w in summary.arm_widgets] == list(ARM_WIDGETS)
    assert [a.arm for a in summary.arms] == ["champion", "challenger"]
    for arm, n in REQUESTS.items():
        assert _arm_series(summary, dashboard.ARM_COUNT, arm) == [float(n)] * WINDOWS
        latencies = [ms for _, ms in CALLS[arm]]
        p99 = float(np.percentile(latencies, 99, method="inverted_cdf"))
        assert _arm_series(summary, dashboard.ARM_LATENCY, arm) == [p99] * WINDOWS
        assert _arm_series(summary, dashboard.ARM_LIKELIHOOD, arm) == pytest.approx(arm_run.means[arm])


def test_the_arm_lines_give_each_arms_requests_share_worst_p99_and_mean_likelihood(arm_run: ArmRun) -> None:
    lines = arm_run.summary.arm_lines()
    assert lines[0] == "arms (2, server side):"
    champion, challenger = lines[1:]
    assert champion.startswith("  arm champion: 1,080 requests (90.0 %), latency p99 (worst period) 1.500 ms")
    assert f"mean likelihood {np.mean(arm_run.means['champion']):.4f}" in champion
    assert challenger.startswith(
        "  arm challenger: 120 requests (10.0 %), latency p99 (worst period) 2.500 ms"
    )
    assert "mean likelihood 0.3750" in challenger  # nine windows at 0.3, three at 0.6


def test_a_sudden_change_of_an_arms_mean_likelihood_is_flagged_and_a_steady_arm_is_not(
    arm_run: ArmRun,
) -> None:
    champion, challenger = arm_run.summary.arms
    checked = WINDOWS - BAND_MIN_HISTORY
    assert len(champion.band) == len(challenger.band) == checked
    assert champion.sudden_changes == () and not any(p.outside for p in champion.band)
    assert "likelihood band: ok (6 period(s) checked)" in champion.line()
    # the jump at window 9 is outside from then on; the rule needs 3 of the last 5 periods outside
    assert [p.timestamp for p in challenger.band if p.outside] == [T0 + 10 * w for w in range(JUMP, WINDOWS)]
    assert challenger.sudden_changes == (T0 + 10 * (JUMP + 2),)
    stamp = time.strftime("%H:%M:%S", time.gmtime(T0 + 10 * (JUMP + 2)))
    assert f"likelihood band: SUDDEN CHANGE at {stamp} UTC" in challenger.line()
    assert arm_run.summary.to_dict()["arms"][1]["sudden_changes"] == [T0 + 10 * (JUMP + 2)]


def test_the_figure_draws_a_line_per_arm_in_the_second_row_and_marks_the_change(arm_run: ArmRun) -> None:
    summary = arm_run.summary
    axes = render_figure(summary).axes
    assert [ax.get_title(loc="left") for ax in axes] == [w.title for w in (*WIDGETS, *ARM_WIDGETS)]
    requests, latency, likelihood = axes[len(WIDGETS) :]
    for ax in (requests, latency):
        assert [line.get_label() for line in ax.get_lines()] == ["champion", "challenger"]
    champion, challenger = likelihood.get_lines()[:2]
    assert np.asarray(challenger.get_ydata(), dtype=float).tolist() == pytest.approx(
        arm_run.means["challenger"]
    )
    assert np.asarray(champion.get_ydata(), dtype=float).tolist() == pytest.approx(arm_run.means["champion"])
    (marks,) = [line for line in likelihood.get_lines() if line.get_label() == "challenger outside its band"]
    assert np.asarray(marks.get_ydata(), dtype=float).tolist() == [0.6] * (WINDOWS - JUMP)
    assert "sudden change: challenger" in [t.get_text() for t in likelihood.texts]
    assert len(likelihood.collections) == 2  # each arm's band, shaded
    assert png_bytes(summary).startswith(b"\x89PNG\r\n\x1a\n")


def test_the_html_lists_the_arms_and_has_a_table_per_arm_widget(arm_run: ArmRun) -> None:
    page = html_page(arm_run.summary, b"", source="metrics.jsonl")
    for widget in ARM_WIDGETS:
        assert f"<h2>{widget.title}</h2>" in page
    assert page.count("<table>") == len(WIDGETS) + len(ARM_WIDGETS)
    assert "arm challenger: 120 requests (10.0 %)" in page
    assert "SUDDEN CHANGE" in page


def test_a_metric_with_another_dimension_besides_arm_is_not_an_arms_series() -> None:
    tagged = WindowRecord(
        T0, 10, "filtering_server_arm_count", "counter", {"arm": "a", "host": "h"}, 1, 1.0, 5.0
    )
    summary = summarize([tagged])
    assert summary.arms == ()
    assert summary.arm_lines() == ["arms: no data (no per-arm metrics received)"]


def _points(values: list[float]) -> list[tuple[int, float]]:
    return [(T0 + 10 * i, v) for i, v in enumerate(values)]


def test_too_short_a_history_is_not_checked() -> None:
    assert likelihood_band(_points([0.2] * BAND_MIN_HISTORY)) == ()


def test_a_single_period_outside_the_band_is_no_sudden_change() -> None:
    values = [0.2] * 10 + [0.5] + [0.2] * 5
    band = likelihood_band(_points(values))
    assert sum(p.outside for p in band) == 1
    assert sudden_changes(band) == ()


def test_a_flat_history_gets_the_floor_width_not_a_zero_one() -> None:
    values = [0.2] * 8 + [0.2 + 2 * BAND_MIN_SD]  # inside 3 floor-deviations of a constant history
    (*_, last) = likelihood_band(_points(values))
    assert not last.outside
    assert last.high - last.low == pytest.approx(6 * BAND_MIN_SD)


def test_a_shift_stays_outside_the_band_until_it_is_most_of_the_history() -> None:
    values = [0.2] * 8 + [0.3] * 8
    band = likelihood_band(_points(values))
    outside = [p.value for p in band if p.outside]
    assert outside == [0.3] * 8  # the first periods of the shift do not widen the band for the rest
    assert sudden_changes(band) == (T0 + 10 * 10,)


def test_the_rule_turns_on_once_per_change_and_again_after_recovering() -> None:
    values = [0.2] * 8 + [0.6] * 3 + [0.2] * 12 + [0.01] * 3
    band = likelihood_band(_points(values))
    assert sudden_changes(band) == (T0 + 10 * 10, T0 + 10 * 25)


def test_render_dashboard_of_the_runs_metrics_file_shows_the_arms(arm_run: ArmRun, tmp_path: Path) -> None:
    from aik.monitoring.render import render_dashboard

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(r.to_json() + "\n" for r in arm_run.records))
    result = render_dashboard(metrics, tmp_path / "out")
    assert [a.arm for a in result.summary.arms] == ["champion", "challenger"]
    assert result.png.stat().st_size > 0
