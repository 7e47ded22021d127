"""The report's statistics hold their stated level on simulated requests whose truth is known."""

from __future__ import annotations

import numpy as np

from aik.monitor import stats as S

ALPHA = 0.05
REPLICATES = 300


def _requests(rng: np.random.Generator, n: int) -> np.ndarray:
    """True win probabilities spread like the synthetic world's (mean about 0.2)."""
    return rng.beta(1.2, 4.8, n)


def test_the_expected_actual_interval_covers_the_true_ratio_at_its_level() -> None:
    rng = np.random.default_rng(1)
    # a model that over-predicts by 10 %: its true ratio over the traffic is E[q] / E[p]
    population = _requests(rng, 2_000_000)
    true_ratio = np.minimum(population * 1.1, 1).mean() / population.mean()
    covered = 0
    for _ in range(REPLICATES):
        p = _requests(rng, 3_000)
        q = np.minimum(p * 1.1, 1)
        y = rng.random(p.size) < p
        covered += S.expected_actual(y, q, ALPHA).covers(true_ratio)
    # binomial(300, 0.95): 0.92-0.98 is about +-2.4 standard deviations
    assert 0.92 <= covered / REPLICATES <= 0.98


def test_equal_arms_differ_significantly_in_log_loss_at_about_the_rate_alpha() -> None:
    rng = np.random.default_rng(2)
    significant = 0
    for _ in range(REPLICATES):
        a, b = _requests(rng, 2_000), _requests(rng, 2_000)
        ya, yb = rng.random(a.size) < a, rng.random(b.size) < b
        q = 0.2  # one model for both arms: a constant is enough to be equal
        loss = S.logloss_difference(
            S.log_losses(ya, np.full(a.size, q)), S.log_losses(yb, np.full(b.size, q)), ALPHA
        )
        significant += loss.significant
    assert significant / REPLICATES <= 0.09


def test_a_better_model_has_a_significantly_lower_log_loss() -> None:
    rng = np.random.default_rng(3)
    a, b = _requests(rng, 5_000), _requests(rng, 5_000)
    ya, yb = rng.random(a.size) < a, rng.random(b.size) < b
    loss = S.logloss_difference(S.log_losses(ya, a), S.log_losses(yb, np.full(b.size, b.mean())), ALPHA)
    assert loss.significant and loss.difference.value is not None and loss.difference.value < 0


def test_the_rate_difference_interval_covers_the_true_difference() -> None:
    difference = S.rate_difference(230, 1_000, 200, 1_000, ALPHA)
    assert difference.difference.covers(0.03)
    assert not difference.significant  # 23 % vs 20 % on 1,000 requests each is within chance


def test_a_certain_prediction_that_was_wrong_has_a_finite_log_loss() -> None:
    losses = S.log_losses(np.array([1, 0]), np.array([0.0, 1.0]))
    assert np.isfinite(losses).all() and (losses > 30).all()


def test_the_expected_actual_ratio_is_undefined_without_events() -> None:
    ratio = S.expected_actual(np.zeros(50), np.full(50, 0.1), ALPHA)
    assert ratio.value is None and not ratio.covers(1.0)


def test_calibration_bins_hold_equal_shares_of_the_requests() -> None:
    rng = np.random.default_rng(4)
    q = rng.random(10_000)
    bins = S.calibration_bins(rng.random(q.size) < q, q, ALPHA, bins=10)
    assert len(bins) == 10
    assert all(950 <= b.n <= 1_050 for b in bins)
    # a calibrated model: each bin's interval covers its mean prediction with probability 0.95
    assert sum(b.rate.covers(b.mean_prediction) for b in bins) >= 8
