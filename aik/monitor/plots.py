"""The outcome report's plots: each arm's calibration curve, and the expected/actual ratio by segment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from aik import storage
from aik.monitor import stats as S
from aik.monitor.join import SEGMENTS
from aik.monitor.report import MonitorReport, sort_key

if TYPE_CHECKING:
    import pandas as pd

CALIBRATION_PNG = "calibration.png"
SEGMENTS_PNG = "expected-actual.png"


def plot(report: MonitorReport, frame: pd.DataFrame, out_dir: str, bins: int = 10) -> dict[str, str]:
    """calibration.png (each arm's curve with its bins' intervals) and expected-actual.png (by segment)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(report.arms)
    fig, ax = plt.subplots(figsize=(6.5, 6))
    top = 0.0
    for i, arm in enumerate(arms):
        part = frame[frame["arm"] == arm]
        cells = S.calibration_bins(part["y"].to_numpy(), part["likelihood"].to_numpy(), report.alpha, bins)
        x = np.array([c.mean_prediction for c in cells])
        y = np.array([c.rate.value for c in cells], dtype=float)
        low = np.array([c.rate.low for c in cells], dtype=float)
        high = np.array([c.rate.high for c in cells], dtype=float)
        m = report.arms[arm]
        ratio = m.expected_actual.value
        label = f"{arm} ({m.n:,} requests, E/A {ratio:.3f})" if ratio is not None else arm
        ax.errorbar(
            x + (i - (len(arms) - 1) / 2) * 0.002, y, yerr=[y - low, high - y], marker="o", capsize=3,
            label=label, color=f"C{i}",
        )  # fmt: skip
        top = max(top, float(np.nanmax(high)) if high.size else 0.0, float(x.max()) if x.size else 0.0)
    top = min(1.0, top * 1.05 + 0.01)
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1, label="perfect calibration")
    ax.set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="mean predicted likelihood (quantile bins)",
        ylabel=f"realized {report.outcome} rate ({1 - report.alpha:.0%} Wilson interval)",
        title="Calibration by arm" + (f": experiment {report.experiment}" if report.experiment else ""),
    )
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    written = {"calibration": storage.join(out_dir, CALIBRATION_PNG)}
    _save(fig, written["calibration"])
    plt.close(fig)

    names = [n for n in SEGMENTS if report.segments.get(n)]
    if names:
        fig, axes = plt.subplots(len(names), 1, figsize=(10, 3.2 * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names, strict=True):
            rows = report.segments[name]
            values = sorted({r["value"] for r in rows}, key=sort_key)
            for i, arm in enumerate(arms):
                mine = {
                    r["value"]: r["expected_actual"]
                    for r in rows
                    if r["arm"] == arm and r["expected_actual"]["value"] is not None
                }
                at = [j for j, v in enumerate(values) if v in mine]
                ratios = [mine[values[j]] for j in at]
                xs = [j + (i - (len(arms) - 1) / 2) * 0.15 for j in at]
                y = np.array([c["value"] for c in ratios], dtype=float)
                low = np.array([c["low"] for c in ratios], dtype=float)
                high = np.array([c["high"] for c in ratios], dtype=float)
                ax.errorbar(xs, y, yerr=[y - low, high - y], fmt="o", capsize=2, label=arm, color=f"C{i}")
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=1)
            ax.set_xticks(range(len(values)), values, rotation=45 if len(values) > 8 else 0, fontsize=8)
            ax.set(ylabel="expected / actual", title=f"Expected/actual {report.outcome}s by {name}")
            ax.legend(fontsize=8)
        fig.tight_layout()
        written["expected_actual"] = storage.join(out_dir, SEGMENTS_PNG)
        _save(fig, written["expected_actual"])
        plt.close(fig)
    return written


def _save(fig: Any, uri: str) -> None:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    storage.write_bytes(uri, buffer.getvalue())
