"""The outcome report's statistics: rates, expected/actual ratios, log loss, AUC, the A/B comparison.

Libraries do the statistics where one has them: scipy's Wilson interval for a rate and Welch's t-test
for the difference in mean log loss between arms (two independent samples of requests: an arm's
requests are disjoint from another's, so no paired test applies), statsmodels' Newcomb interval and
Agresti-Caffo test for the difference of two outcome rates, scikit-learn's AUC and calibration bins.
The expected/actual ratio's interval is the delta method for a ratio of two means (no library has it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

#: Predictions are clipped to [EPS, 1 - EPS] for the log loss (a 0 or 1 would make it infinite).
EPS = 1e-15

LOGLOSS_METHOD = "Welch's t-test on per-request log loss (scipy.stats.ttest_ind, equal_var=False)"
RATE_METHOD = (
    "difference of two proportions: Newcomb's interval, Agresti-Caffo test "
    "(statsmodels confint_proportions_2indep / test_proportions_2indep)"
)
RATIO_METHOD = "delta method for sum(predicted) / sum(actual) over requests, on the log scale"


def log_losses(y: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each request's log loss of predicting `q` when the outcome was `y` (0/1)."""
    q = np.clip(np.asarray(q, dtype=np.float64), EPS, 1 - EPS)
    y = np.asarray(y, dtype=np.float64)
    return -(y * np.log(q) + (1 - y) * np.log1p(-q))


def expected_log_losses(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each request's expected log loss when its true probability is `p` (the truth's view of `q`)."""
    return log_losses(np.asarray(p, dtype=np.float64), q)


def _finite(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class Interval:
    """An estimate with its (1 - alpha) confidence interval; None where it is undefined."""

    value: float | None
    low: float | None
    high: float | None

    def covers(self, x: float) -> bool:
        """Whether `x` lies within the interval (False when the interval is undefined)."""
        return self.low is not None and self.high is not None and self.low <= x <= self.high

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def rate(events: int, n: int, alpha: float) -> Interval:
    """The realized rate with Wilson's interval (scipy.stats.binomtest)."""
    from scipy.stats import binomtest

    if n == 0:
        return Interval(None, None, None)
    ci = binomtest(events, n).proportion_ci(confidence_level=1 - alpha, method="wilson")
    return Interval(events / n, float(ci.low), float(ci.high))


def expected_actual(y: np.ndarray, q: np.ndarray, alpha: float) -> Interval:
    """sum(q) / sum(y) with a delta-method interval (requests as independent draws), on the log scale.

    Written out: no library offers the ratio of two correlated means; the log scale keeps the interval
    positive and closer to symmetric in the ratio's distribution.
    """
    from scipy.stats import norm

    y = np.asarray(y, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    n = y.size
    if n < 2 or y.sum() == 0:
        return Interval(None, None, None)
    mq, my = q.mean(), y.mean()
    ratio = mq / my
    cov = np.cov(q, y, ddof=1)
    # Var(log R) ~ Var(q)/(n mq^2) + Var(y)/(n my^2) - 2 Cov(q, y)/(n mq my)
    var_log = (cov[0, 0] / mq**2 + cov[1, 1] / my**2 - 2 * cov[0, 1] / (mq * my)) / n
    half = norm.ppf(1 - alpha / 2) * math.sqrt(max(var_log, 0.0))
    return Interval(float(ratio), float(ratio * math.exp(-half)), float(ratio * math.exp(half)))


def mean_interval(values: np.ndarray, alpha: float) -> Interval:
    """A mean with its t interval (scipy.stats.ttest_1samp's confidence_interval)."""
    from scipy.stats import ttest_1samp

    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return Interval(_finite(values.mean()) if values.size else None, None, None)
    ci = ttest_1samp(values, 0.0).confidence_interval(1 - alpha)
    return Interval(float(values.mean()), _finite(ci.low), _finite(ci.high))


def auc(y: np.ndarray, q: np.ndarray) -> float | None:
    """ROC AUC (scikit-learn), None when only one class occurred."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y)
    if y.size == 0 or y.min() == y.max():
        return None
    return float(roc_auc_score(y, q))


@dataclass(frozen=True)
class CalibrationBin:
    """One bin of the calibration curve: its requests, mean prediction and realized rate with its interval."""

    n: int
    mean_prediction: float
    rate: Interval

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"n": self.n, "mean_prediction": self.mean_prediction, "rate": self.rate.to_dict()}


def calibration_bins(y: np.ndarray, q: np.ndarray, alpha: float, bins: int = 10) -> list[CalibrationBin]:
    """Quantile bins of the prediction (equal counts, as sklearn's calibration_curve 'quantile' cuts them)."""
    y = np.asarray(y)
    q = np.asarray(q, dtype=np.float64)
    if q.size == 0:
        return []
    edges = np.unique(np.quantile(q, np.linspace(0, 1, bins + 1)))
    # the same binning as sklearn.calibration.calibration_curve(strategy="quantile")
    which = np.searchsorted(edges[1:-1], q, side="right")
    out = []
    for b in range(len(edges) - 1):
        mask = which == b
        n = int(mask.sum())
        if n:
            out.append(CalibrationBin(n, float(q[mask].mean()), rate(int(y[mask].sum()), n, alpha)))
    return out


@dataclass(frozen=True)
class Difference:
    """challenger - champion of one metric: the estimate, its interval, the p-value and the verdict."""

    metric: str
    difference: Interval
    p_value: float | None
    significant: bool
    method: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {**asdict(self), "difference": self.difference.to_dict()}


def logloss_difference(challenger: np.ndarray, champion: np.ndarray, alpha: float) -> Difference:
    """Mean log loss of the challenger's requests minus the champion's (negative: the challenger wins)."""
    from scipy.stats import ttest_ind

    if challenger.size < 2 or champion.size < 2:
        return Difference("logloss", Interval(None, None, None), None, False, LOGLOSS_METHOD)
    result = ttest_ind(challenger, champion, equal_var=False)
    ci = result.confidence_interval(1 - alpha)
    p = _finite(result.pvalue)
    value = float(challenger.mean() - champion.mean())
    return Difference(
        "logloss",
        Interval(value, _finite(ci.low), _finite(ci.high)),
        p,
        p is not None and p < alpha,
        LOGLOSS_METHOD,
    )


def rate_difference(
    challenger_events: int, challenger_n: int, champion_events: int, champion_n: int, alpha: float
) -> Difference:
    """The challenger's outcome rate minus the champion's: Newcomb's interval, Agresti-Caffo's test."""
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    if challenger_n == 0 or champion_n == 0:
        return Difference("rate", Interval(None, None, None), None, False, RATE_METHOD)
    low, high = confint_proportions_2indep(
        challenger_events,
        challenger_n,
        champion_events,
        champion_n,
        method="newcomb",
        compare="diff",
        alpha=alpha,
    )
    test = test_proportions_2indep(
        challenger_events, challenger_n, champion_events, champion_n, method="agresti-caffo", compare="diff"
    )
    p = _finite(float(test.pvalue))
    value = challenger_events / challenger_n - champion_events / champion_n
    return Difference(
        "rate", Interval(value, _finite(low), _finite(high)), p, p is not None and p < alpha, RATE_METHOD
    )
