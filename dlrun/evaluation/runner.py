"""Run any evaluation protocol: train every fold, aggregate, retrain the final model, test once.

Protocols only plan index splits (:mod:`dlrun.evaluation.protocols`); this module is the one
place that decides what is trained and scored on them. One rule holds for every protocol: a
halted fit (diverged, interrupted, pruned) ends the run there, so nothing after it is trained and
the test split is never read. The test split stays sealed until every model is trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.evaluation.aggregate import best_epoch
from dlrun.evaluation.aggregate import cross_validate
from dlrun.evaluation.aggregate import undefined_warnings
from dlrun.evaluation.baselines import Targets
from dlrun.evaluation.baselines import average_baselines
from dlrun.evaluation.baselines import score_baselines
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import train_fold
from dlrun.evaluation.folds import fold_models
from dlrun.evaluation.leaks import duplicate_counts
from dlrun.evaluation.leaks import duplicate_warnings
from dlrun.evaluation.outcome import FoldOutcome
from dlrun.evaluation.outcome import ProtocolOutcome
from dlrun.evaluation.outcome import Recording
from dlrun.evaluation.outcome import Sizes
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.protocols import Fold
from dlrun.evaluation.protocols import Protocol
from dlrun.evaluation.scoring import evaluate_split
from dlrun.evaluation.significance import Evidence
from dlrun.evaluation.significance import verdict
from dlrun.tasks.base import TASKS
from dlrun.tasks.base import Task
from dlrun.training.metrics import higher_is_better


@dataclass(frozen=True)
class Plan:
    """The protocol, its data (a time split carves its test range) and its folds."""

    name: str
    protocol: Protocol
    data: LoadedData
    folds: list[Fold]
    held_back: int = 0  # test rows left out (a sweep's trials), as the sizes state them

    def without_test(self) -> Plan:
        """The same folds with the test split left out: nothing can read it."""
        rows = len(self.data.test_split) if self.data.test_split is not None else 0
        return replace(self, data=self.data.with_splits(self.data.train, None), held_back=rows)


def plan_protocol(cfg: ExperimentConfig, data: LoadedData) -> Plan:
    """Split before anything is written, so impossible splits fail without a run directory."""
    name = cfg.evaluation.protocol
    protocol = PROTOCOLS.get(name)(cfg.evaluation)
    prepared = protocol.prepare(data)
    task = TASKS.get(cfg.task.name)
    return Plan(name, protocol, prepared, protocol.folds(prepared.train, task, cfg.seed))


def tests_a_model(cfg: ExperimentConfig) -> bool:
    """Whether a run of ``cfg`` scores a model on the test split: a single split's, or a final
    retrain's (K-fold without one never reads it)."""
    return PROTOCOLS.get(cfg.evaluation.protocol).single_split or cfg.evaluation.final is not None


def split_sizes(plan: Plan) -> Sizes:
    """Rows per split, as results.json and the start line state them; folds of unequal sizes
    give the range (``47-48``), and a test split held back says so."""
    folds, data = plan.folds, plan.data
    test: Sizes = (
        {"test_held_back": plan.held_back}
        if plan.held_back
        else {"test": len(data.test_split) if data.test_split is not None else 0}
    )
    first = folds[0]
    val = 0 if first.val_idx is None else len(first.val_idx)
    if len(folds) == 1:
        return {"train": len(first.train_idx), "validation": val, **test}
    return {"non_test": len(data.train), "folds": len(folds),
            "train_per_fold": _per_fold([len(f.train_idx) for f in folds]),
            "validation_per_fold": _per_fold([0 if f.val_idx is None else len(f.val_idx)
                                              for f in folds]),
            **test}  # fmt: skip


def _per_fold(counts: list[int]) -> int | str:
    low, high = min(counts), max(counts)
    return low if low == high else f"{low:,}-{high:,}"


def _score_fold(
    task: type[Task], train: Arrays, fold: Fold, fitted: FittedModel, protocol: Protocol
) -> FoldOutcome:
    if fold.val_idx is None or not len(fold.val_idx) or fitted.state.status.halted:
        return FoldOutcome(fold, fitted, None, [], None)
    evaluation = evaluate_split(fitted, train.subset(fold.val_idx), "validation")
    baselines: list[dict[str, Any]] = []
    targets = None
    if task.baselines and task.target is not None:
        y = train[task.target]
        targets = Targets(y[fold.train_idx], y[fold.val_idx], fold.seed, protocol.time_ordered)
        baselines = score_baselines(task.baselines, targets)
    judged = verdict([Evidence(evaluation, baselines, targets)])
    return FoldOutcome(fold, fitted, evaluation, baselines, judged, targets)


def _holdout_validation(cfg: ExperimentConfig, fitted: FittedModel) -> dict[str, Any]:
    """The validation values of the model kept (the epoch early stopping restored, else the
    last one), and the best epoch by the monitor."""
    history = fitted.state.history
    if not history or not any(k.startswith("val_") for k in history[-1]):
        return {}
    monitor = cfg.evaluation.monitor
    restored = fitted.state.restored_epoch
    kept = restored if restored and restored <= len(history) else len(history)
    values = {k: v for k, v in history[kept - 1].items() if k.startswith("val_")}
    epoch, value = best_epoch([row.get(monitor, np.nan) for row in history],
                              higher_is_better(monitor))  # fmt: skip
    # "epoch": whose values these are (the last, unless weights were restored), beside the best
    return {"epoch": kept, **values, "monitor": monitor, "best_epoch": epoch, "best_value": value}


def _aggregate_folds(cfg: ExperimentConfig, protocol: Protocol, outcome: ProtocolOutcome) -> None:
    """Mean/std per metric, averaged and smoothed curves, and baselines averaged over folds."""
    curves = protocol.curves
    outcome.cv = cross_validate(
        [f.evaluation.metrics for f in outcome.folds if f.evaluation is not None],
        [f.fitted.state.history for f in outcome.folds],
        cfg.evaluation.monitor,
        higher_is_better(cfg.evaluation.monitor),
        curves.smoothing,
        curves.skip_first,
    )
    outcome.warnings.extend(undefined_warnings(outcome.cv.metrics))
    outcome.validation = {k: v.mean for k, v in outcome.cv.metrics.items()}
    outcome.cv_baselines = average_baselines([f.baselines for f in outcome.folds])
    pooled = [part for f in outcome.folds for part in f.evidence()]
    outcome.cv_verdict = verdict(pooled, outcome.validation, outcome.cv_baselines)
    outcome.layout = protocol.layout(len(outcome.folds))
    outcome.baselines, outcome.verdict = outcome.cv_baselines, outcome.cv_verdict


def _final_epochs(cfg: ExperimentConfig, outcome: ProtocolOutcome) -> int:
    final = cfg.evaluation.final
    assert final is not None
    if isinstance(final.epochs, int):
        return final.epochs
    best = outcome.cv.best_epoch if outcome.cv else outcome.validation.get("best_epoch")
    return int(best) if best else cfg.train.epochs


def _trained_now(outcome: ProtocolOutcome) -> bool:
    """Whether this process trained any fold further (a resumed run may only rescore them)."""
    return any(
        f.fitted.state.resumed_from is None or f.fitted.state.epoch > f.fitted.state.resumed_from
        for f in outcome.folds
    )


def _named(fit: str, reason: str | None) -> str | None:
    """A stop reason with the fit it happened in (``fold 2/3: ...``), so a run of many fits
    says which one stopped; a single split's reason is the run's own."""
    return f"{fit}: {reason}" if fit and reason else reason


def _one_class_warnings(task: type[Task], train: Arrays, folds: Sequence[Fold]) -> list[str]:
    """Validation rows of a single class: a constant guess scores them perfectly, so their
    accuracy and baselines say nothing about telling the classes apart (the last rows of data
    stored class by class, as Keras's validation_split takes them, are one class)."""
    if not task.single_label or task.target is None or task.target not in train:
        return []
    targets = train[task.target]
    warnings = []
    for fold in folds:
        if fold.val_idx is None or not len(fold.val_idx):
            continue
        values = targets[fold.val_idx]
        if len(np.unique(values, axis=0 if values.ndim > 1 else None)) == 1:
            where = f"{fold.label}'s validation rows" if fold.label else "the validation rows"
            warnings.append(
                f"{where} ({len(fold.val_idx):,}) hold a single class: any constant guess "
                "scores them perfectly; draw them at random (evaluation.validation: "
                "{fraction: ..., stratify: true}) or shuffle the data"
            )
    return warnings


def run_protocol(
    cfg: ExperimentConfig, plan: Plan, device: torch.device, recording: Recording
) -> ProtocolOutcome:
    protocol, data, folds = plan.protocol, plan.data, plan.folds
    task = TASKS.get(cfg.task.name)
    train = data.train
    tested = data.test_split if tests_a_model(cfg) else None  # else never read: no warning
    duplicates = duplicate_counts(train, folds, tested, task.inputs)
    warnings = [*protocol.warnings(), *duplicate_warnings(duplicates),
                *_one_class_warnings(task, train, folds)]  # fmt: skip
    outcome = ProtocolOutcome(plan.name, split_sizes(plan), duplicates, warnings)
    for fold, fitted in fold_models(cfg, protocol, data, folds, device, recording, outcome):
        scored_fold = _score_fold(task, train, fold, fitted, protocol)
        outcome.folds.append(scored_fold)
        recording.fold_finished(scored_fold)
        halted = fitted.state.status.halted
        if (halted and not outcome.status.halted) or len(folds) == 1:
            outcome.stop(fitted.state.status, _named(fold.label, fitted.state.stop_reason))
        if halted and not outcome.parallel:
            return outcome  # no later fold is trained
    if outcome.status.halted:
        return outcome  # stacked folds halted together: all are recorded, none goes further
    if len(folds) > 1:
        _aggregate_folds(cfg, protocol, outcome)
    else:
        outcome.validation = _holdout_validation(cfg, outcome.folds[0].fitted)
        outcome.scored = outcome.folds[0].fitted
    targets_of = task.target if task.baselines else None  # the array baselines score
    y_train = train[targets_of][folds[0].train_idx] if targets_of else None
    if cfg.evaluation.final is not None:
        epochs = _final_epochs(cfg, outcome)
        outcome.final_epochs = epochs
        snapshots = recording.snapshots(None, "final")
        if snapshots is not None and _trained_now(outcome):
            snapshots.discard()  # the folds changed, so a saved final retrain is stale
        final = train_fold(
            cfg, train, np.arange(len(train)), None, epochs, device,
            recording.hooks(None, "final"), data.implied_steps, cfg.seed + len(folds),
        )  # fmt: skip
        outcome.scored = final
        y_train = train[targets_of] if targets_of else None
        if final.state.status.halted:
            outcome.stop(final.state.status, _named("final retrain", final.state.stop_reason))
            return outcome
    if outcome.scored is None:
        return outcome  # K-fold without a final model: validation only, the test stays sealed
    targets = None
    if data.test_split is not None:
        test = data.test_split.unseal()
        outcome.evaluation = evaluate_split(outcome.scored, test, "test")
        outcome.test_reads = data.test_split.reads
        if targets_of and y_train is not None:
            targets = Targets(y_train, test[targets_of], cfg.seed, protocol.time_ordered,
                              preceding=train[targets_of])  # fmt: skip
            outcome.baselines = score_baselines(task.baselines, targets)
    elif cfg.evaluation.final is None and outcome.folds[0].evaluation is not None:
        outcome.evaluation = outcome.folds[0].evaluation
        outcome.baselines = outcome.folds[0].baselines
        targets = outcome.folds[0].targets
    if outcome.evaluation is not None:
        outcome.verdict = verdict([Evidence(outcome.evaluation, outcome.baselines, targets)])
    return outcome
