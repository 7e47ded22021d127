"""The outcome report: per arm and per segment, calibration and accuracy; the A/B verdict; JSON, text, PNGs.

`build_report(joined, ...)` takes the joined frame of `aik.monitor.join` (and, in a synthetic world, each
request's true probability in `p_true`) and computes, for each arm and each segment value: requests,
events, the realized rate, the mean prediction, the expected/actual ratio, the mean log loss and the AUC,
each with its interval where one exists; and, for each challenger arm against the champion, the
difference in log loss and in outcome rate with intervals and whether it is significant at `alpha`.
With the truth it also says what each estimate should have found, and whether the interval covers it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from aik import storage
from aik.monitor import stats as S
from aik.monitor.join import SEGMENTS

if TYPE_CHECKING:
    import pandas as pd

CHAMPION = "champion"
REPORT_JSON = "monitor-report.json"
REPORT_TEXT = "monitor-report.txt"


@dataclass(frozen=True)
class Truth:
    """What the synthetic world's truth says the estimates of one group should be."""

    rate: float
    expected_actual: float
    logloss: float
    covered: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "rate": self.rate,
            "expected_actual": self.expected_actual,
            "logloss": self.logloss,
            "covered": self.covered,
        }


@dataclass(frozen=True)
class GroupMetrics:
    """One arm, or one arm within one segment value."""

    n: int
    events: int
    rate: S.Interval
    mean_prediction: float
    expected_actual: S.Interval
    logloss: S.Interval
    auc: float | None
    truth: Truth | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "n": self.n,
            "events": self.events,
            "rate": self.rate.to_dict(),
            "mean_prediction": self.mean_prediction,
            "expected_actual": self.expected_actual.to_dict(),
            "logloss": self.logloss.to_dict(),
            "auc": self.auc,
            **({"truth": self.truth.to_dict()} if self.truth is not None else {}),
        }


def group_metrics(y: np.ndarray, q: np.ndarray, p: np.ndarray | None, alpha: float) -> GroupMetrics:
    """The metrics of one group of requests (outcomes `y`, predictions `q`, true probabilities `p`)."""
    losses = S.log_losses(y, q)
    rate = S.rate(int(y.sum()), int(y.size), alpha)
    ratio = S.expected_actual(y, q, alpha)
    logloss = S.mean_interval(losses, alpha)
    truth = None
    if p is not None and p.size and p.sum() > 0:
        true_rate = float(p.mean())
        true_ratio = float(q.sum() / p.sum())
        true_logloss = float(S.expected_log_losses(p, q).mean())
        truth = Truth(
            true_rate,
            true_ratio,
            true_logloss,
            {
                "rate": rate.covers(true_rate),
                "expected_actual": ratio.covers(true_ratio),
                "logloss": logloss.covers(true_logloss),
            },
        )
    return GroupMetrics(
        n=int(y.size),
        events=int(y.sum()),
        rate=rate,
        mean_prediction=float(q.mean()) if q.size else float("nan"),
        expected_actual=ratio,
        logloss=logloss,
        auc=S.auc(y, q),
        truth=truth,
    )


@dataclass(frozen=True)
class Verdict:
    """A challenger against the champion: differences in log loss and outcome rate, and who wins."""

    challenger: str
    champion: str
    logloss: S.Difference
    rate: S.Difference
    winner: str | None
    #: The truth's difference in expected log loss and outcome rate (synthetic worlds only).
    truth: dict[str, float] | None = None

    @property
    def summary(self) -> str:
        """One line: who wins on log loss, at which level."""
        d = self.logloss.difference
        if d.value is None:
            return f"{self.challenger} vs {self.champion}: not enough requests to compare"
        if self.winner is None:
            return f"{self.challenger} vs {self.champion}: no significant difference in log loss"
        return f"{self.challenger} vs {self.champion}: {self.winner} has the lower log loss (significant)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = {
            "challenger": self.challenger,
            "champion": self.champion,
            "logloss": self.logloss.to_dict(),
            "rate": self.rate.to_dict(),
            "winner": self.winner,
            "summary": self.summary,
        }
        if self.truth is not None:
            out["truth"] = self.truth
        return out


def verdict(frame: pd.DataFrame, challenger: str, champion: str, alpha: float) -> Verdict:
    """Compare one challenger arm with the champion on log loss and on the outcome rate."""
    a, b = frame[frame["arm"] == challenger], frame[frame["arm"] == champion]
    ya, yb = a["y"].to_numpy(), b["y"].to_numpy()
    loss = S.logloss_difference(
        S.log_losses(ya, a["likelihood"].to_numpy()), S.log_losses(yb, b["likelihood"].to_numpy()), alpha
    )
    rate = S.rate_difference(int(ya.sum()), ya.size, int(yb.sum()), yb.size, alpha)
    winner = None
    if loss.significant and loss.difference.value is not None:
        winner = challenger if loss.difference.value < 0 else champion
    truth = None
    if "p_true" in frame.columns and len(a) and len(b):
        pa, pb = a["p_true"].to_numpy(), b["p_true"].to_numpy()
        truth = {
            "logloss_difference": float(
                S.expected_log_losses(pa, a["likelihood"].to_numpy()).mean()
                - S.expected_log_losses(pb, b["likelihood"].to_numpy()).mean()
            ),
            "rate_difference": float(pa.mean() - pb.mean()),
        }
    return Verdict(challenger, champion, loss, rate, winner, truth)


@dataclass
class MonitorReport:
    """The whole report (`to_dict` is monitor-report.json; `lines` the text)."""

    outcome: str
    alpha: float
    experiment: str | None
    inputs: dict[str, Any]
    releases: dict[str, list[str]]
    arms: dict[str, GroupMetrics]
    segments: dict[str, list[dict[str, Any]]]
    verdicts: list[Verdict]
    min_segment: int
    plots: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "outcome": self.outcome,
            "alpha": self.alpha,
            "experiment": self.experiment,
            "inputs": self.inputs,
            "methods": {
                "expected_actual": S.RATIO_METHOD,
                "logloss": S.LOGLOSS_METHOD,
                "rate": S.RATE_METHOD,
                "rate_interval": "Wilson (scipy.stats.binomtest)",
            },
            "arms": {
                arm: {"releases": self.releases.get(arm, []), **m.to_dict()} for arm, m in self.arms.items()
            },
            "segments": self.segments,
            "min_segment": self.min_segment,
            "verdicts": [v.to_dict() for v in self.verdicts],
            "plots": self.plots,
        }

    def lines(self) -> list[str]:
        """The report as text."""
        level = f"{1 - self.alpha:.0%}"
        out = [
            f"outcome report: {self.outcome} ({self.inputs.get('requests', 0):,} requests joined"
            + (f", experiment {self.experiment}" if self.experiment else "")
            + f"; intervals {level})",
            f"{'arm':<22} {'requests':>9} {'rate':>22} {'E/A':>22} {'log loss':>24} {'AUC':>6}",
        ]
        for arm, m in self.arms.items():
            out.append(_row(arm, m))
            if m.truth is not None:
                t = m.truth
                out.append(
                    f"{'  truth':<22} {'':>9} {t.rate:>22.4f} {t.expected_actual:>22.3f} {t.logloss:>24.4f}"
                    f"   covered: {', '.join(k for k, v in t.covered.items() if v) or 'none'}"
                )
        for name, rows in self.segments.items():
            out.append(f"by {name} (groups of at least {self.min_segment} requests):")
            for row in rows:
                out.append(_row(f"{row['arm']}:{row['value']}", GroupMetricsView(row)))
        for v in self.verdicts:
            out.append(f"verdict: {v.summary} at alpha {self.alpha}")
            for d in (v.logloss, v.rate):
                out.append(
                    f"  {d.metric} difference ({v.challenger} - {v.champion}): {_interval(d.difference, 5)}"
                    f"  p = {_num(d.p_value, 4)}{'  significant' if d.significant else ''}"
                )
            if v.truth is not None:
                t_loss, t_rate = v.truth["logloss_difference"], v.truth["rate_difference"]
                out.append(
                    f"  truth: log loss difference {t_loss:+.5f} "
                    f"(covered: {'yes' if v.logloss.difference.covers(t_loss) else 'no'}), "
                    f"rate difference {t_rate:+.5f} "
                    f"(covered: {'yes' if v.rate.difference.covers(t_rate) else 'no'})"
                )
        out += [f"{name}: {uri}" for name, uri in self.plots.items()]
        return out

    def write(self, out_dir: str) -> dict[str, str]:
        """monitor-report.json and monitor-report.txt under `out_dir` (local or S3); their URIs."""
        written = {
            "json": storage.join(out_dir, REPORT_JSON),
            "text": storage.join(out_dir, REPORT_TEXT),
        }
        storage.write_text(written["json"], json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        storage.write_text(written["text"], "\n".join(self.lines()) + "\n")
        return written


class GroupMetricsView:
    """A segment row's dict read like GroupMetrics (for the text table)."""

    def __init__(self, row: dict[str, Any]) -> None:
        self.n = row["n"]
        self.rate = S.Interval(**row["rate"])
        self.expected_actual = S.Interval(**row["expected_actual"])
        self.logloss = S.Interval(**row["logloss"])
        self.auc = row["auc"]


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _interval(i: S.Interval, digits: int) -> str:
    return f"{_num(i.value, digits)} [{_num(i.low, digits)}, {_num(i.high, digits)}]"


def _row(label: str, m: GroupMetrics | GroupMetricsView) -> str:
    return (
        f"{label:<22} {m.n:>9,} {_interval(m.rate, 4):>22} {_interval(m.expected_actual, 3):>22} "
        f"{_interval(m.logloss, 4):>24} {_num(m.auc, 3):>6}"
    )


def arms_in_order(frame: pd.DataFrame) -> list[str]:
    """The champion first, then the other arms by name."""
    arms = sorted(set(frame["arm"].astype(str)))
    return sorted(arms, key=lambda a: (a != CHAMPION, a))


def build_report(
    joined: pd.DataFrame,
    *,
    outcome: str,
    alpha: float,
    min_segment: int,
    experiment: str | None,
    inputs: dict[str, Any],
) -> tuple[MonitorReport, pd.DataFrame]:
    """The report of the joined requests, and the frame it judged (`y`, `likelihood`, `arm`, segments)."""
    frame = joined
    if outcome == "click":  # a click is an outcome of an impression: judge the won requests only
        frame = frame[frame["impression"] == 1]
        truth_column = "p_click"
    else:
        truth_column = "p_win"
    frame = frame.assign(y=frame[outcome].astype("int8"))
    if truth_column in frame.columns:
        frame = frame.assign(p_true=frame[truth_column].astype("float64"))
    has_truth = "p_true" in frame.columns and not frame["p_true"].isna().any()
    arms = arms_in_order(frame)

    def metrics(part: pd.DataFrame) -> GroupMetrics:
        p = part["p_true"].to_numpy() if has_truth else None
        return group_metrics(part["y"].to_numpy(), part["likelihood"].to_numpy(), p, alpha)

    per_arm = {arm: metrics(frame[frame["arm"] == arm]) for arm in arms}
    releases = {arm: sorted(set(frame.loc[frame["arm"] == arm, "release"].astype(str))) for arm in arms}
    segments: dict[str, list[dict[str, Any]]] = {}
    for name in SEGMENTS:
        rows = []
        for (arm, value), part in frame.groupby(["arm", name], sort=True):
            if len(part) >= min_segment:
                rows.append({"arm": str(arm), "value": str(value), **metrics(part).to_dict()})
        segments[name] = sorted(rows, key=lambda r: (arms.index(r["arm"]), sort_key(r["value"])))
    champion = CHAMPION if CHAMPION in arms else (max(arms, key=lambda a: per_arm[a].n) if arms else None)
    verdicts = [verdict(frame, arm, champion, alpha) for arm in arms if champion and arm != champion]
    report = MonitorReport(
        outcome=outcome,
        alpha=alpha,
        experiment=experiment,
        inputs={**inputs, "requests": len(frame)},
        releases=releases,
        arms=per_arm,
        segments=segments,
        verdicts=verdicts,
        min_segment=min_segment,
    )
    return report, frame


def sort_key(value: str) -> tuple[int, Any]:
    """Segment values in order: numbers by value, then names."""
    return (0, int(value)) if value.isdigit() else (1, value)
