"""Render the dashboard locally: the widgets of `Monitoring-Dashboard` as a PNG and a self-contained
HTML page (the PNG embedded as base64 and a table of each widget's figures; no external resources).

The layout follows the CloudWatch dashboard: a 2x2 grid of the p99 latency graph (client and server
lines, ms), requests per second (each 10-s Sum / 10), the likelihood-to-bid average and the total bid
requests as one big number over the whole range; then the per-arm row, a line per experiment arm:
requests per 10 s, latency p99 and mean likelihood, the last with each arm's sudden-change band
(`summary.likelihood_band`) shaded and the periods outside it marked. A metric that never arrived is
drawn as an honest "No data" panel or legend entry, never as invented values; periods without a
datapoint are gaps, as in CloudWatch.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from aik.dashboard import ARM_DIMENSION, ARM_LIKELIHOOD, DASHBOARD_NAME, NAMESPACE
from aik.monitoring.summary import (
    ArmWidgetFigures,
    DashboardSummary,
    SeriesFigures,
    WidgetFigures,
    load_records,
    summarize,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PNG_NAME = "dashboard.png"
HTML_NAME = "dashboard.html"
NO_DATA = "No data"
#: Line colours of a graph's metrics or arms, in order (CloudWatch's first two defaults, then
#: matplotlib's tab10), repeated beyond ten arms.
COLOURS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#d62728",
)  # fmt: skip
#: Periods outside their likelihood band, and the times the sudden-change rule turned on.
OUTSIDE = "#d62728"
SUDDEN_CHANGE = "sudden change"
#: Inches at 100 dpi: two rows of the first row's widgets, then the per-arm row.
FIGURE_SIZE = (12.0, 10.5)


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


def _no_data(ax: Axes, names: Iterable[str]) -> None:
    ax.text(
        0.5, 0.55, NO_DATA, ha="center", va="center", fontsize=20, color="#888888", transform=ax.transAxes
    )
    listed = "\n".join(sorted(set(names)))
    ax.text(
        0.5, 0.35, f"never received:\n{listed}", ha="center", va="center", fontsize=9, color="#888888",
        transform=ax.transAxes,
    )  # fmt: skip
    ax.set_xticks([])
    ax.set_yticks([])


def _graph(
    ax: Axes, unit: str, series: Sequence[SeriesFigures], summary: DashboardSummary, max_ticks: int = 8
) -> None:
    import matplotlib.dates as mdates

    for colour, one in zip(itertools.cycle(COLOURS), series, strict=False):
        if not one.has_data:
            # Keep the metric in the legend so its absence is visible, without inventing a line.
            ax.plot([], [], color=colour, linestyle="none", label=f"{one.label} ({NO_DATA.lower()})")
            continue
        xs, ys = _gapped(one, summary.period_s)
        # Markers show single periods in short runs; in long ones they would only blur the line.
        marker = "o" if len(xs) <= 60 else None
        ax.plot(xs, ys, color=colour, marker=marker, markersize=3, linewidth=1.5, label=one.label)
    ax.set_ylabel(unit)
    # From zero, as CloudWatch draws these, with headroom so the legend does not sit on the lines.
    highest = max((s.maximum or 0.0) for s in series)
    ax.set_ylim(0, highest * 1.25 if highest > 0 else 1.0)
    ax.grid(True, alpha=0.3)
    if summary.start is not None and summary.end is not None:
        # Every graph spans the dashboard's whole range, as CloudWatch widgets share one time range
        # (and a run of a single period still gets a readable axis).
        ax.set_xlim(*_times([summary.start, summary.end]))
    locator = mdates.AutoDateLocator(tz=UTC, minticks=2, maxticks=max_ticks)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S", tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.legend(loc="best", fontsize=8, framealpha=0.8)


def _bands(ax: Axes, summary: DashboardSummary) -> None:
    """The mean-likelihood widget's sudden-change check: each arm's band shaded, periods outside it
    marked with a red x, and the times the rule turned on as dashed red lines."""
    colours = dict(zip((a.arm for a in summary.arms), itertools.cycle(COLOURS), strict=False))
    for arm in summary.arms:
        if not arm.band:
            continue
        xs = _times([p.timestamp + summary.period_s / 2 for p in arm.band])
        ax.fill_between(
            xs, [p.low for p in arm.band], [p.high for p in arm.band], color=colours[arm.arm], alpha=0.12,
            linewidth=0,
        )  # fmt: skip
        outside = [p for p in arm.band if p.outside]
        if outside:
            ax.plot(
                _times([p.timestamp + summary.period_s / 2 for p in outside]), [p.value for p in outside],
                linestyle="none", marker="x", color=OUTSIDE, markersize=7,
                label=f"{arm.arm} outside its band",
            )  # fmt: skip
        for start in arm.sudden_changes:
            ax.axvline(_times([start + summary.period_s / 2])[0], color=OUTSIDE, linestyle="--", linewidth=1)
    flagged = [a.arm for a in summary.arms if a.sudden_changes]
    if flagged:
        ax.text(
            0.98, 0.02, f"{SUDDEN_CHANGE}: {', '.join(flagged)}", ha="right", va="bottom", fontsize=9,
            color=OUTSIDE, transform=ax.transAxes,
        )  # fmt: skip
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
    """The dashboard as a matplotlib Figure (no pyplot: no global state, safe in any thread): the first
    row's four widgets as a 2x2 grid, then the per-arm row's three widgets side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGURE_SIZE, dpi=100, layout="constrained")
    fig.suptitle(f"{DASHBOARD_NAME} (local) - namespace {NAMESPACE}, {summary.range_text()}", fontsize=11)
    grid = fig.add_gridspec(3, 6, height_ratios=(1, 1, 1))
    cells = [grid[0, 0:3], grid[0, 3:6], grid[1, 0:3], grid[1, 3:6]]
    for cell, widget in zip(cells, summary.widgets, strict=False):
        ax = fig.add_subplot(cell)
        ax.set_title(widget.spec.title, fontsize=11, loc="left")
        if not widget.has_data:
            _no_data(ax, (s.spec.cloudwatch_name for s in widget.series))
        elif widget.spec.kind == "single_value":
            _single_value(ax, widget, summary)
        else:
            _graph(ax, widget.spec.unit, widget.series, summary)
    for k, arm_widget in enumerate(summary.arm_widgets):
        ax = fig.add_subplot(grid[2, 2 * k : 2 * k + 2])
        ax.set_title(arm_widget.spec.title, fontsize=11, loc="left")
        if not arm_widget.has_data:
            _no_data(ax, [f"{arm_widget.spec.metric.cloudwatch_name} ({ARM_DIMENSION}=...)"])
            continue
        _graph(ax, arm_widget.spec.unit, arm_widget.series, summary, max_ticks=4)
        if arm_widget.spec.metric.name == ARM_LIKELIHOOD:
            _bands(ax, summary)
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


def _digits(widget: WidgetFigures | ArmWidgetFigures) -> int:
    return {"ms": 3, "probability": 4}.get(widget.spec.unit, 1)


def _arm_table(widget: ArmWidgetFigures) -> str:
    """A per-arm widget's section: one row per arm (the widget's metric, its `arm` dimension)."""
    esc = html.escape
    digits = _digits(widget)
    metric = widget.spec.metric
    rows = "".join(
        f"<tr><td>{esc(s.label)}</td><td><code>{esc(metric.cloudwatch_name)}</code></td>"
        f"<td>{esc(metric.stat)}</td><td>{len(s.points)}</td>"
        f"<td>{_cell(s.minimum, digits)}</td><td>{_cell(s.mean, digits)}</td>"
        f"<td>{_cell(s.maximum, digits)}</td><td>{_cell(s.last, digits)}</td></tr>"
        for s in widget.series
    )
    empty = f"<tr><td colspan='8'>{NO_DATA.lower()}</td></tr>" if not widget.series else ""
    return (
        f"<section><h2>{esc(widget.spec.title)}</h2><p class='unit'>unit: {esc(widget.spec.unit)}, "
        f"a line per value of the dimension <code>{esc(ARM_DIMENSION)}</code></p>"
        "<table><tr><th>arm</th><th>CloudWatch name</th><th>statistic</th><th>periods</th>"
        f"<th>min</th><th>mean</th><th>max</th><th>last</th></tr>{rows}{empty}</table></section>"
    )


def html_page(summary: DashboardSummary, png: bytes, source: str = "") -> str:
    """A self-contained HTML page: headline figures, the PNG inline and a table per widget."""
    esc = html.escape
    lines = [*summary.lines()[1:], *summary.arm_lines()]
    headline = "".join(f"<li>{esc(line.strip())}</li>" for line in lines)
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
    tables += [_arm_table(widget) for widget in summary.arm_widgets]
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
<img alt="{esc(title)}: the widgets" src="data:image/png;base64,{image}">
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
