"""Rendering: a valid PNG and a self-contained HTML page with the widgets, honest about missing data."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from aik.dashboard import ARM_WIDGETS, WIDGETS
from aik.monitoring.render import NO_DATA, html_page, png_bytes, render_dashboard, render_figure
from aik.monitoring.summary import summarize
from aik.monitoring.windows import WindowRecord

from .conftest import T0

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def texts(ax) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.get_text() for t in ax.texts]


def test_the_figure_has_the_first_rows_four_widgets_then_the_per_arm_row(records: list[WindowRecord]) -> None:
    fig = render_figure(summarize(records))
    assert [ax.get_title(loc="left") for ax in fig.axes] == [w.title for w in (*WIDGETS, *ARM_WIDGETS)]


def test_graphs_plot_the_period_values_with_gaps_and_the_total_is_one_number(
    records: list[WindowRecord],
) -> None:
    summary = summarize(records)
    latency, rps, likelihood, total, *_ = render_figure(summary).axes
    assert [line.get_label() for line in latency.get_lines()] == [m.label for m in WIDGETS[0].metrics]
    (line,) = rps.get_lines()
    ys = np.asarray(line.get_ydata(), dtype=float)
    # 10, 25, a gap for the period without data, then 5
    assert np.array_equal(ys, [10.0, 25.0, np.nan, 5.0], equal_nan=True)
    plotted = np.asarray(likelihood.get_lines()[0].get_ydata(), dtype=float)
    assert plotted[np.isfinite(plotted)] == pytest.approx(summary.widgets[2].series[0].values)
    assert "400" in texts(total)
    assert not total.get_lines()


def test_missing_metrics_render_as_no_data_never_as_values(records: list[WindowRecord]) -> None:
    only_server = [r for r in records if r.name.startswith("filtering_server")]
    latency, _, likelihood, *_ = render_figure(summarize(only_server)).axes
    client, server = latency.get_lines()
    assert len(client.get_xdata()) == 0
    assert client.get_label().endswith("(no data)")
    assert np.isfinite(np.asarray(server.get_ydata(), dtype=float)).sum() == 3
    assert NO_DATA in texts(likelihood)
    assert not likelihood.get_lines()
    assert "adserver_client_likelihood_to_bid" in "".join(texts(likelihood))
    for ax in render_figure(summarize([])).axes:
        assert NO_DATA in texts(ax)
        assert not ax.get_lines()


def test_png_is_valid(records: list[WindowRecord]) -> None:
    data = png_bytes(summarize(records))
    assert data.startswith(PNG_SIGNATURE)
    pixels = imread(io.BytesIO(data), format="png")
    assert pixels.shape[:2] == (1050, 1200)
    assert pixels.std() > 0  # not a blank image


def test_html_is_self_contained_with_the_titles_and_a_table_per_widget(records: list[WindowRecord]) -> None:
    summary = summarize(records)
    png = png_bytes(summary)
    page = html_page(summary, png, source="/tmp/metrics.jsonl")
    for widget in WIDGETS:
        assert f"<h2>{widget.title}</h2>" in page
    assert page.count("<table>") == len(WIDGETS) + len(ARM_WIDGETS)
    # no external resource: the only src is the inline PNG, no stylesheet or script links
    assert re.findall(r'(?:src|href)="([^"]*)"', page) == [
        "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    ]
    assert "<script" not in page and "<link" not in page and "url(" not in page
    assert "total bid requests: 400" in page
    assert "<td>25.0</td>" in page  # peak requests/s in the table


def test_html_escapes_what_it_shows() -> None:
    page = html_page(summarize([]), b"", source="<evil>&")
    assert "<evil>" not in page
    assert "&lt;evil&gt;&amp;" in page


def test_render_dashboard_writes_png_and_html(records: list[WindowRecord], tmp_path: Path) -> None:
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(r.to_json() + "\n" for r in records) + "{broken\n")
    result = render_dashboard(metrics, tmp_path / "out")
    assert result.png == tmp_path / "out" / "dashboard.png"
    assert result.png.read_bytes().startswith(PNG_SIGNATURE)
    page = result.html.read_text()
    assert all(w.title in page for w in WIDGETS)
    assert "1 malformed line(s)" in page
    assert result.summary.total_requests == 400
    assert result.summary.start == T0
