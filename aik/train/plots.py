"""The evaluation as PNG plots: ROC curve, calibration curve, prediction histogram, confusion matrices.

Figures are drawn with matplotlib's object API on the Agg canvas, so nothing depends on (or changes)
the global pyplot backend: the same code runs headless in the CLI and inside a notebook.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

#: Plot file names (under `reports/` beside the model).
PLOTS: dict[str, str] = {
    "roc": "roc.png",
    "calibration": "calibration.png",
    "prediction_histogram": "prediction_histogram.png",
    "confusion_matrix": "confusion_matrix.png",
}


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def roc_plot(y: np.ndarray, curves: Mapping[str, np.ndarray], aucs: Mapping[str, float | None]) -> bytes:
    """ROC curves of the model, the baselines and (on synthetic data) the oracle, on the same rows."""
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.add_subplot()
    for name, p in curves.items():
        if not np.all(np.isfinite(p)) or len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, p)
        auc = aucs.get(name)
        label = f"{name} (AUC {auc:.4f})" if auc is not None else name
        if name == "oracle":
            ax.plot(fpr, tpr, label=label, linewidth=1.4, linestyle="--", color="black")
        else:
            ax.plot(fpr, tpr, label=label, linewidth=1.4)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, linestyle=":", label="random")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (test split)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def calibration_plot(curves: Mapping[str, Sequence[Mapping[str, Any]]]) -> bytes:
    """Reliability diagram: mean prediction against the actual rate per prediction decile."""
    fig = Figure(figsize=(6.4, 5.6))
    ax = fig.add_subplot()
    top = 0.0
    for name, deciles in curves.items():
        xs = [d["mean_prediction"] for d in deciles if d["mean_prediction"] is not None]
        ys = [d["actual_rate"] for d in deciles if d["mean_prediction"] is not None]
        if not xs:
            continue
        top = max(top, *xs, *ys)
        ax.plot(xs, ys, marker="o", markersize=3.5, linewidth=1.2, label=name)
    top = min(1.0, top * 1.05) or 1.0
    ax.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=0.8, label="perfectly calibrated")
    ax.set(
        xlabel="mean predicted probability (per decile)",
        ylabel="actual rate",
        title="Calibration (test split, prediction deciles)",
    )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def histogram_plot(y: np.ndarray, p: np.ndarray, thresholds: Mapping[str, float]) -> bytes:
    """Distribution of the model's predictions, per true label, with the reported thresholds."""
    fig = Figure(figsize=(6.4, 4.4))
    ax = fig.add_subplot()
    finite = np.isfinite(p)
    bins = list(np.linspace(0.0, 1.0, 51))
    for label, color in ((0, "tab:blue"), (1, "tab:orange")):
        ax.hist(p[finite & (y == label)], bins=bins, alpha=0.6, color=color, label=f"label {label}")
    top = ax.get_ylim()[1]
    for i, (name, t) in enumerate(thresholds.items()):
        ax.axvline(t, color="black", linestyle="--", linewidth=0.8)
        ax.text(t, top * (0.97 - 0.07 * i), f" {name}", fontsize=7, va="top")
    ax.set(xlabel="predicted probability", ylabel="rows", title="Predictions on the test split")
    ax.legend(fontsize=8)
    return _png(fig)


def confusion_plot(matrices: Mapping[str, Mapping[str, int]]) -> bytes:
    """Confusion matrices (rows: actual, columns: predicted) side by side, one per threshold."""
    fig = Figure(figsize=(4.2 * max(len(matrices), 1), 4.0))
    for i, (title, m) in enumerate(matrices.items()):
        ax = fig.add_subplot(1, max(len(matrices), 1), i + 1)
        grid = np.array([[m["tn"], m["fp"]], [m["fn"], m["tp"]]])
        ax.imshow(grid, cmap="Blues")
        total = max(int(grid.sum()), 1)
        names = [["true negative", "false positive"], ["false negative", "true positive"]]
        for r in range(2):
            for c in range(2):
                dark = grid[r, c] > grid.max() / 2
                ax.text(
                    c,
                    r,
                    f"{names[r][c]}\n{grid[r, c]:,}\n{100 * grid[r, c] / total:.1f}%",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else "black",
                )
        ax.set_xticks([0, 1], ["0 (drop)", "1 (keep)"])
        ax.set_yticks([0, 1], ["0", "1"])
        ax.set(xlabel="predicted", ylabel="actual", title=title)
    return _png(fig)
