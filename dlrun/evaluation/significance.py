"""Does the model beat the strongest baseline, or only by chance? A one-sided test at 5%.

A model at accuracy 0.1028 against a majority class at 0.1000 has not learned anything: on
10,000 rows that gap is well inside chance. "Beats" therefore needs evidence on the scored rows:
for accuracy an exact binomial test of the model's correct rows against the baseline's rate;
for errors (MAE, MSE) a paired t-test of the model's per-row errors against the baseline's on
the same rows. Cross-validated runs pool every fold's validation rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlrun.evaluation.baselines import BASELINES
from dlrun.evaluation.baselines import Targets
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.tails import binomial_tail
from dlrun.evaluation.tails import student_t_cdf
from dlrun.training.metrics import higher_is_better

LEVEL = 0.05
KEY_METRICS = ("accuracy", "mae", "mse")  # the first the model and a baseline share is judged


@dataclass(frozen=True)
class Evidence:
    """One scored split: the model's predictions, the baselines on the same rows, their targets."""

    evaluation: Evaluation
    baselines: list[dict[str, Any]]
    targets: Targets | None


def verdict(evidence: Sequence[Evidence], metrics: dict[str, float] | None = None,
            baselines: list[dict[str, Any]] | None = None) -> dict[str, Any] | None:  # fmt: skip
    """The model against the strongest baseline on the first shared key metric.

    ``metrics`` and ``baselines`` are the values shown (fold means for cross-validation; by
    default the single split's); the test pools the rows of every piece of ``evidence``.
    """
    if not evidence:
        return None
    shown = metrics if metrics is not None else evidence[0].evaluation.metrics
    rows = baselines if baselines is not None else evidence[0].baselines
    for key in KEY_METRICS:
        candidates = [row for row in rows if key in row]
        if key not in shown or not candidates:
            continue
        higher = higher_is_better(key)
        best = (max if higher else min)(candidates, key=lambda r: r[key])
        test, p_value = _one_sided_test(key, best["name"], evidence)
        better = shown[key] > best[key] if higher else shown[key] < best[key]
        beats = better and p_value is not None and p_value < LEVEL
        return {"metric": key, "model": shown[key], "baseline": best["name"],
                "baseline_value": best[key], "beats": bool(beats), "p_value": p_value,
                "test": test}  # fmt: skip
    return None


def _one_sided_test(
    key: str, baseline: str, evidence: Sequence[Evidence]
) -> tuple[str, float | None]:
    if key == "accuracy":
        return "exact binomial", _binomial_p(baseline, evidence)
    return "paired t", _paired_p(key, baseline, evidence)


def _binomial_p(baseline: str, evidence: Sequence[Evidence]) -> float | None:
    """P(at least this many correct rows | each row correct at the baseline's rate)."""
    hits = total = 0
    expected = 0.0
    for part in evidence:
        predictions = part.evaluation.predictions
        rate = next((r["accuracy"] for r in part.baselines if r["name"] == baseline), None)
        if predictions is None or rate is None or predictions.true_labels is None:
            return None
        true, pred = predictions.labels()
        hits += int((true == pred).sum())
        total += true.numel()
        expected += float(rate) * true.numel()
    if total == 0:
        return None
    rate = min(max(expected / total, 0.0), 1.0)
    return binomial_tail(hits, total, rate)


def _paired_p(key: str, baseline: str, evidence: Sequence[Evidence]) -> float | None:
    """Are the model's per-row errors smaller than the baseline's on the same rows?"""
    predict = BASELINES.get(baseline).predict
    if predict is None:
        return None
    ours: list[np.ndarray] = []
    theirs: list[np.ndarray] = []
    for part in evidence:
        predictions = part.evaluation.predictions
        if predictions is None or part.targets is None:
            return None
        target = part.targets.values()[1]
        seen = predictions.y_true.detach().double().cpu().numpy().reshape(target.shape)
        if not np.allclose(seen, target):
            return None  # the model's outputs are on another scale than the raw targets
        model = predictions.y_pred.detach().double().cpu().numpy().reshape(target.shape)
        power = 1 if key == "mae" else 2
        ours.append((np.abs(model - target) ** power).mean(axis=1))
        theirs.append((np.abs(predict(part.targets) - target) ** power).mean(axis=1))
    model_errors, baseline_errors = np.concatenate(ours), np.concatenate(theirs)
    if len(model_errors) < 2 or np.all(model_errors == baseline_errors):
        return None
    return paired_t_less(model_errors - baseline_errors)


def paired_t_less(differences: np.ndarray) -> float:
    """One-sided paired t-test that the mean difference is below 0: scipy's
    ``ttest_rel(a, b, alternative="less")`` on ``differences = a - b``."""
    n = len(differences)
    spread = float(np.std(differences, ddof=1))
    mean = float(np.mean(differences))
    if spread == 0.0:
        return float("nan") if mean == 0.0 else float(mean > 0)
    t = mean / (spread / np.sqrt(n))
    return student_t_cdf(float(t), n - 1)
