"""Render the dashboard locally: the four widgets of `Monitoring-Dashboard` as a PNG and a self-contained
HTML page (the PNG embedded as base64 and a table of each widget's figures; no external resources).

The layout follows the CloudWatch dashboard: a 2x2 grid of the p99 latency graph (client and server
lines, ms), requests per second (each 10-s Sum / 10), the likelihood-to-bid average and the total bid
requests as one big number over the whole range. A metric that never arrived is drawn as an honest
"No data" panel or legend entry, never as invented values; periods without a datapoint are gaps, as in
CloudWatch.
"""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aik.dashboard import DASHBOARD_NAME, NAMESPACE
from aik.monitoring.summary import DashboardSummary, SeriesFigures, WidgetFigures, load_records, summarize

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_NAME = "dashboard.png"
HTML_NAME = "dashboard.html"
NO_DATA = "No data"
#: Line colours of a graph's metrics, in order (CloudWatch's first two defaults).
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c")


@dataclass(frozen=True)
class RenderResult:
    """Where the dashboard was written, and the figures it shows."""

    png: Path
    html: Path
    summary: DashboardSummary


def _times(timestamps: list[float]) -> list[float]:
    """Matplotlib's date numbers of Unix timestamps (what its date axis plots)."""
    import matplotlib.dates as mdates

    return [float(mdates.date2num(datetime.fromtimestamp(t, tz=UTC))) for t in timestamps]


def _gapped(series: SeriesFigures, period_s: int) -> tuple[list[float], list[float]]:
    """The series' points at the middle of their periods (the value describes the whole period), with
    a NaN wherever a period has no datapoint, so the line breaks."""
    xs: list[float] = []
    ys: list[float] = []
    previous: int | None = None
    for timestamp, value in series.points:
        if previous is not None and timestamp - previous > period_s:
            xs.append(previous + period_s)
            ys.append(float("nan"))
        xs.append(timestamp)
        ys.append(value)
        previous = timestamp
    return _times([x + period_s / 2 for x in xs]), ys


def _no_data(ax: Axes, widget: WidgetFigures) -> None:
    ax.text(
        0.5, 0.55, NO_DATA, ha="center", va="center", fontsize=20, color="#888888", transform=ax.transAxes
    )
    names = "\n".join(sorted({s.spec.cloudwatch_name for s in widget.series}))
    ax.text(
        0.5, 0.35, f"never received:\n{names}", ha="center", va="center", fontsize=9, color="#888888",
        transform=ax.transAxes,
    )  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _graph(ax: Axes, widget: WidgetFigures, summary: DashboardSummary) -> None:
    import matplotlib.dates as mdates

    for colour, series in zip(COLOURS, widget.series, strict=False):
        if not series.has_data:
            # Keep the metric in the legend so its absence is visible, without inventing a line.
            ax.plot([], [], color=colour, linestyle="none", label=f"{series.spec.label} ({NO_DATA.lower()})")
            continue
        xs, ys = _gapped(series, summary.period_s)
        # Markers show single periods in short runs; in long ones they would only blur the line.
        marker = "o" if len(xs) <= 60 else None
        ax.plot(xs, ys, color=colour, marker=marker, markersize=3, linewidth=1.5, label=series.spec.label)
    ax.set_ylabel(widget.spec.unit)
    # From zero, as CloudWatch draws these, with headroom so the legend does not sit on the lines.
    highest = max((s.maximum or 0.0) for s in widget.series)
    ax.set_ylim(0, highest * 1.25 if highest > 0 else 1.0)
    ax.grid(True, alpha=0.3)
    if summary.start is not None and summary.end is not None:
        # Every graph spans the dashboard's whole range, as CloudWatch widgets share one time range
        # (and a run of a single period still gets a readable axis).
        ax.set_xlim(*_times([summary.start, summary.end]))
    locator = mdates.AutoDateLocator(tz=UTC, minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="best", fontsize=8, framealpha=0.8)


def _single_value(ax: Axes, widget: WidgetFigures, summary: DashboardSummary) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.text(
        0.5, 0.55, f"{widget.total:,.0f}", ha="center", va="center", fontsize=40, fontweight="bold",
        transform=ax.transAxes,
    )  # fmt: skip
    ax.text(0.5, 0.30, widget.spec.unit, ha="center", va="center", fontsize=12, transform=ax.transAxes)
    ax.text(
        0.5, 0.15, f"sum over {summary.range_text()}", ha="center", va="center", fontsize=8,
        color="#555555", transform=ax.transAxes,
    )  # fmt: skip


def render_figure(summary: DashboardSummary) -> Figure:
    """The dashboard as a matplotlib Figure (no pyplot: no global state, safe in any thread)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7.5), dpi=100, layout="constrained")
    fig.suptitle(f"{DASHBOARD_NAME} (local) - namespace {NAMESPACE}, {summary.range_text()}", fontsize=11)
    axes = fig.subplots(2, 2).ravel()
    for ax, widget in zip(axes, summary.widgets, strict=False):
        ax.set_title(widget.spec.title, fontsize=11, loc="left")
        if not widget.has_data:
            _no_data(ax, widget)
        elif widget.spec.kind == "single_value":
            _single_value(ax, widget, summary)
        else:
            _graph(ax, widget, summary)
    for ax in axes[len(summary.widgets) :]:
        ax.set_visible(False)
    return fig


def png_bytes(summary: DashboardSummary) -> bytes:
    """The dashboard as PNG bytes (Agg canvas)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = render_figure(summary)
    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _cell(value: float | None, digits: int) -> str:
    return NO_DATA.lower() if value is None else f"{value:,.{digits}f}"


def _digits(widget: WidgetFigures) -> int:
    return {"ms": 3, "probability": 4}.get(widget.spec.unit, 1)


def html_page(summary: DashboardSummary, png: bytes, source: str = "") -> str:
    """A self-contained HTML page: headline figures, the PNG inline and a table per widget."""
    esc = html.escape
    headline = "".join(f"<li>{esc(line.strip())}</li>" for line in summary.lines()[1:])
    tables = []
    for widget in summary.widgets:
        digits = _digits(widget)
        if widget.spec.kind == "single_value":
            body = (
                f"<tr><th>{esc(widget.spec.unit)} (sum over the range)</th>"
                f"<td>{_cell(widget.total, 0)}</td></tr>"
            )
            table = f"<table>{body}</table>"
        else:
            rows = "".join(
                f"<tr><td>{esc(s.spec.label)}</td><td><code>{esc(s.spec.cloudwatch_name)}</code></td>"
                f"<td>{esc(s.spec.stat)}{' / period' if s.per_second else ''}</td><td>{len(s.points)}</td>"
                f"<td>{_cell(s.minimum, digits)}</td><td>{_cell(s.mean, digits)}</td>"
                f"<td>{_cell(s.maximum, digits)}</td><td>{_cell(s.last, digits)}</td></tr>"
                for s in widget.series
            )
            table = (
                "<table><tr><th>metric</th><th>CloudWatch name</th><th>statistic</th><th>periods</th>"
                "<th>min</th><th>mean</th><th>max</th><th>last</th></tr>"
                f"{rows}</table>"
            )
        tables.append(
            f"<section><h2>{esc(widget.spec.title)}</h2>"
            f"<p class='unit'>unit: {esc(widget.spec.unit)}</p>{table}</section>"
        )
    notes = []
    if source:
        notes.append(f"source: <code>{esc(source)}</code>")
    if summary.malformed:
        notes.append(f"{summary.malformed} malformed line(s) in the metrics file were skipped")
    image = base64.b64encode(png).decode("ascii")
    title = f"{DASHBOARD_NAME} (local)"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
img {{ max-width: 100%; border: 1px solid #ddd; }}
.unit, footer {{ color: #666; font-size: 0.9em; }}
</style>
</head>
<body>
<h1>{esc(title)}</h1>
<p>namespace <code>{esc(NAMESPACE)}</code>, {esc(summary.range_text())}</p>
<ul>{headline}</ul>
<img alt="{esc(title)}: the four widgets" src="data:image/png;base64,{image}">
{"".join(tables)}
<footer>{" &middot; ".join(notes)}</footer>
</body>
</html>
"""


def render_dashboard(metrics_uri: str | os.PathLike[str], out_dir: str | os.PathLike[str]) -> RenderResult:
    """Read a metrics file and write `dashboard.png` and `dashboard.html` into `out_dir`."""
    metrics = load_records(metrics_uri)
    summary = summarize(metrics.records, malformed=metrics.malformed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = png_bytes(summary)
    png_path = out / PNG_NAME
    html_path = out / HTML_NAME
    png_path.write_bytes(png)
    html_path.write_text(html_page(summary, png, source=metrics.uri), encoding="utf-8")
    return RenderResult(png_path, html_path, summary)
