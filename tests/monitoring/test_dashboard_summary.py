"""The dashboard's figures from window records: series per widget and the headline numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aik.dashboard import WIDGETS
from aik.errors import ArtifactNotFound
from aik.monitoring.summary import load_records, series_of, summarize, summarize_file
from aik.monitoring.windows import WindowRecord

from .conftest import T0, Run


def test_requests_per_second_is_the_sum_per_period_over_ten(records: list[WindowRecord]) -> None:
    rps = series_of(records, WIDGETS[1].metrics[0], per_second=True)
    assert rps.points == ((T0, 10.0), (T0 + 10, 25.0), (T0 + 30, 5.0))


def test_latency_series_are_the_p99_of_each_period(run: Run) -> None:
    records, sent = run
    client_spec, server_spec = WIDGETS[0].metrics
    for spec, values in ((client_spec, sent["client"]), (server_spec, sent["server"])):
        got = series_of(records, spec).values
        assert got == [np.percentile(v, 99, method="inverted_cdf") for v in values]


def test_headline_figures(run: Run) -> None:
    records, sent = run
    summary = summarize(records)
    assert summary.total_requests == 400
    assert summary.peak_rps == 25.0
    assert summary.mean_rps == pytest.approx((10 + 25 + 5) / 3)
    assert summary.worst_p99_server_ms == max(
        np.percentile(v, 99, method="inverted_cdf") for v in sent["server"]
    )
    assert summary.worst_p99_client_ms == max(
        np.percentile(v, 99, method="inverted_cdf") for v in sent["client"]
    )
    assert summary.mean_likelihood == pytest.approx(np.concatenate(sent["likelihood"]).mean())
    assert (summary.start, summary.end, summary.periods) == (T0, T0 + 40, 4)


def test_single_value_widget_totals_the_range(records: list[WindowRecord]) -> None:
    total = summarize(records).widgets[3]
    assert total.spec.kind == "single_value"
    assert total.total == 400


def test_summary_lines_and_dict(records: list[WindowRecord]) -> None:
    summary = summarize(records)
    text = "\n".join(summary.lines())
    assert "total bid requests: 400" in text
    assert "peak 25, mean 13" in text
    data = json.loads(json.dumps(summary.to_dict()))
    assert [w["title"] for w in data["widgets"]] == [w.title for w in WIDGETS]
    assert data["widgets"][1]["series"][0]["max"] == 25.0
    assert data["total_requests"] == 400


def test_missing_metrics_are_no_data_not_zero(records: list[WindowRecord]) -> None:
    only_server = [r for r in records if r.name.startswith("filtering_server")]
    summary = summarize(only_server)
    assert summary.worst_p99_client_ms is None
    assert summary.mean_likelihood is None
    assert not summary.widgets[2].has_data
    assert summary.widgets[2].series[0].mean is None
    assert "client no data" in "\n".join(summary.lines())
    empty = summarize([])
    assert empty.total_requests is None and empty.peak_rps is None and empty.periods == 0
    assert empty.widgets[3].total is None


def test_records_with_other_dimensions_are_other_metrics() -> None:
    record = WindowRecord(T0, 10, "filtering_server_filtering_count", "counter", {"host": "a"}, 1, 1.0, 5.0)
    assert summarize([record]).total_requests is None


def test_load_records_skips_and_counts_broken_lines(records: list[WindowRecord], tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    lines = [r.to_json() for r in records]
    path.write_text(
        "\n".join([*lines[:3], "{not json", '{"name": "x"}', "", *lines[3:], '{"timestamp": 1, "na'])
    )
    metrics = load_records(path)
    assert metrics.records == tuple(records)
    assert metrics.malformed == 3
    summary = summarize_file(path)
    assert summary.malformed == 3
    assert summary.total_requests == 400


def test_load_records_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFound, match=r"missing\.jsonl"):
        load_records(tmp_path / "missing.jsonl")


def test_unknown_statistic_is_a_clear_error() -> None:
    from aik.dashboard import MetricSpec

    with pytest.raises(ValueError, match="p42"):
        series_of([], MetricSpec("a", "b", "timing", "p42", "x"))
