"""'Beats the baseline' needs a one-sided test at 5% on the scored rows."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from dlrun.evaluation.baselines import Targets
from dlrun.evaluation.baselines import score_baselines
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.significance import Evidence
from dlrun.evaluation.significance import binomial_tail
from dlrun.evaluation.significance import paired_t_less
from dlrun.evaluation.significance import verdict
from dlrun.evaluation.tails import student_t_cdf
from dlrun.tasks.base import TASKS
from dlrun.training.metrics import Predictions


def classification(true: np.ndarray, pred: np.ndarray, train: np.ndarray) -> Evidence:
    labels = Predictions(torch.tensor(true), torch.tensor(pred).float(),
                         torch.tensor(true), torch.tensor(pred))  # fmt: skip
    evaluation = Evaluation("test", {"accuracy": float((true == pred).mean())}, labels, len(true))
    targets = Targets(train, true, seed=0)
    return Evidence(
        evaluation, score_baselines(TASKS.get("multiclass").baselines, targets), targets
    )


def test_a_model_a_hair_above_the_majority_class_does_not_beat_it() -> None:
    """The lr=1e9 case: accuracy 0.1028 against a majority class at 0.1000 on 10,000 rows."""
    true = np.repeat(np.arange(10), 1000)
    right = np.random.default_rng(0).permutation(10000) < 1028  # 1028 rows right, spread out
    pred = np.where(right, true, (true + 1) % 10)
    train = np.repeat(np.arange(10), 50)
    judged = verdict([classification(true, pred, train)])
    assert judged is not None and judged["baseline"] in {"majority class", "random guessing"}
    assert judged["model"] > judged["baseline_value"]  # higher, but not convincingly
    assert judged["beats"] is False and judged["test"] == "exact binomial"
    hits = int((true == pred).sum())
    expected = stats.binomtest(hits, 10000, judged["baseline_value"], alternative="greater")
    assert judged["p_value"] == pytest.approx(expected.pvalue)
    assert 0.05 < judged["p_value"] < 0.5


def test_a_clearly_better_model_beats_it_with_a_tiny_p_value() -> None:
    true = np.repeat(np.arange(3), 20)
    pred = true.copy()
    pred[:6] = (pred[:6] + 1) % 3  # 0.9 accuracy against a third
    judged = verdict([classification(true, pred, np.repeat(np.arange(3), 10))])
    assert judged is not None and judged["beats"] is True and judged["p_value"] < 1e-15


def regression(prediction: np.ndarray, target: np.ndarray, train: np.ndarray) -> Evidence:
    predictions = Predictions(torch.tensor(target[:, None]), torch.tensor(prediction[:, None]))
    metrics = {"mae": float(np.abs(prediction - target).mean())}
    evaluation = Evaluation("test", metrics, predictions, len(target))
    targets = Targets(train, target, seed=0)
    return Evidence(
        evaluation, score_baselines(TASKS.get("regression").baselines, targets), targets
    )


def test_regression_errors_are_compared_row_by_row_with_a_paired_test() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(10, 3, 200)
    target = rng.normal(10, 3, 100)
    good = target + rng.normal(0, 0.5, 100)
    judged = verdict([regression(good, target, train)])
    assert judged is not None and judged["metric"] == "mae" and judged["test"] == "paired t"
    assert judged["beats"] is True and judged["p_value"] < 1e-10
    mean = np.full(100, train.mean())  # a model no better than the mean predictor
    lucky = mean - (0.01 - 0.1 * (-1) ** np.arange(100)) * np.sign(mean - target)
    judged = verdict([regression(lucky, target, train)])
    assert judged is not None and judged["model"] < judged["baseline_value"]
    our = np.abs(lucky - target)
    their = np.abs(np.median(train) - target)
    if judged["baseline"] == "mean predictor":
        their = np.abs(mean - target)
    assert judged["p_value"] == pytest.approx(
        stats.ttest_rel(our, their, alternative="less").pvalue
    )
    assert judged["p_value"] > 0.05 and judged["beats"] is False


def test_folds_pool_their_rows() -> None:
    """Each fold alone is too small to tell; five folds together are not."""
    parts = []
    for fold in range(5):
        true = np.repeat(np.arange(2), 6)
        pred = true.copy()
        pred[fold] = 1 - pred[fold]  # 11 of 12 right against 0.5
        parts.append(classification(true, pred, np.repeat(np.arange(2), 20)))
    alone = verdict(parts[:1])
    pooled = verdict(parts, {"accuracy": 11 / 12}, parts[0].baselines)
    assert alone is not None and pooled is not None
    rates = [r["accuracy"] for p in parts for r in p.baselines if r["name"] == pooled["baseline"]]
    expected = stats.binomtest(55, 60, float(np.mean(rates)), alternative="greater")
    assert pooled["p_value"] == pytest.approx(expected.pvalue)
    assert pooled["p_value"] < alone["p_value"]


def test_the_sentence_names_the_test_and_its_p_value() -> None:
    from dlrun.reporting.markdown import verdict_sentence

    judged = {"metric": "accuracy", "model": 0.975, "baseline": "majority class",
              "baseline_value": 0.1, "beats": True, "p_value": 0.0, "test": "exact binomial"}  # fmt: skip
    assert verdict_sentence(judged, markdown=True) == (
        "The model (accuracy 0.9750) beats the strongest baseline (majority class at 0.1000): "
        "one-sided exact binomial test, p < 1e-16."
    )
    weak = {**judged, "model": 0.1028, "beats": False, "p_value": 0.1813}
    assert verdict_sentence(weak) == (  # after "warning:", as the terminal shows it
        "the model (accuracy 0.1028) is no better than the majority class baseline at 0.1000: "
        "one-sided exact binomial test, p = 0.18"
    )


@pytest.mark.parametrize("seed", range(20))
def test_the_two_tests_equal_scipy_stats(seed: int) -> None:
    rng = np.random.default_rng(seed)
    total = int(rng.integers(1, 3000))
    hits, rate = int(rng.integers(0, total + 1)), float(rng.choice([0.0, 1.0, rng.random()]))
    expected = stats.binomtest(hits, total, rate, alternative="greater").pvalue
    assert binomial_tail(hits, total, rate) == pytest.approx(expected, rel=1e-9, abs=1e-300)
    n = int(rng.integers(2, 500))
    ours, theirs = rng.normal(size=n), rng.normal(0.1, size=n)
    expected = stats.ttest_rel(ours, theirs, alternative="less").pvalue
    assert paired_t_less(ours - theirs) == pytest.approx(expected, rel=1e-9)


# Far tails, large splits and the edges, where a careless formula loses its digits.
BINOMIAL_CASES = [(60, 60, 0.1), (1, 1, 1e-300), (1500, 10000, 0.11), (2600, 25000, 0.1),
                  (12600, 25000, 0.5), (1, 25000, 0.5), (3, 5, 0.999999), (0, 7, 0.3)]  # fmt: skip
T_CASES = [(-1000.0, 5), (-40.0, 3000), (-1e150, 2), (-0.5, 100000), (1e-20, 1), (1e10, 7),
           (-1.6746, 25201), (-0.0021, 17943), (2.5, 12), (-3.0, 1), (0.0, 9)]  # fmt: skip


@pytest.mark.parametrize(("hits", "total", "rate"), BINOMIAL_CASES)
def test_the_binomial_tail_keeps_its_digits_far_out(hits: int, total: int, rate: float) -> None:
    expected = stats.binom.sf(hits - 1, total, rate)
    assert expected > 0  # each case has a tail a double can hold
    assert binomial_tail(hits, total, rate) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(("t", "df"), T_CASES)
def test_the_t_distribution_keeps_its_digits_far_out(t: float, df: int) -> None:
    assert student_t_cdf(t, df) == pytest.approx(stats.t.cdf(t, df), rel=1e-9, abs=1e-300)


def test_the_binomial_tail_of_a_million_rows_sums_only_what_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below the mode the tail is nearly 1: summed from the mode outward, a few thousand terms,
    not the 600,000 between ``hits`` and the end (three log-gammas a term)."""
    import math

    calls = 0
    lgamma = math.lgamma

    def counted(x: float) -> float:
        nonlocal calls
        calls += 1
        return lgamma(x)

    monkeypatch.setattr(math, "lgamma", counted)
    below = binomial_tail(400_000, 1_000_000, 0.5)
    assert calls < 30_000
    above = binomial_tail(501_000, 1_000_000, 0.5)
    assert below == pytest.approx(1.0, rel=1e-8)
    assert above == pytest.approx(stats.binom.sf(500_999, 1_000_000, 0.5), rel=1e-8)


def test_the_binomial_tail_at_its_edges() -> None:
    assert binomial_tail(5, 3, 1.0) == 0.0  # more hits than rows: impossible at any rate
    assert binomial_tail(0, 3, 0.0) == 1.0
    assert binomial_tail(3, 3, 1.0) == 1.0
    assert binomial_tail(1, 3, 0.0) == 0.0
    assert np.isnan(binomial_tail(2, 3, float("nan")))


def test_constant_differences_decide_the_t_test() -> None:
    assert paired_t_less(np.full(5, -0.5)) == 0.0  # always better: as certain as it gets
    assert paired_t_less(np.full(5, 0.5)) == 1.0
    assert np.isnan(paired_t_less(np.zeros(5)))
