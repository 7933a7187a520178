"""Run any evaluation protocol: train every fold, aggregate, retrain the final model, test once.

Protocols only plan index splits (:mod:`dlrun.evaluation.protocols`); this module is the one
place that trains on them. The test split stays sealed until every model is trained.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

import numpy as np
import torch

from dlrun.config.entries import tag_of
from dlrun.config.schema import ExperimentConfig
from dlrun.data.base import Arrays
from dlrun.data.base import LoadedData
from dlrun.evaluation.aggregate import CrossValidation
from dlrun.evaluation.aggregate import best_epoch
from dlrun.evaluation.aggregate import cross_validate
from dlrun.evaluation.baselines import Targets
from dlrun.evaluation.baselines import average_baselines
from dlrun.evaluation.baselines import score_baselines
from dlrun.evaluation.baselines import verdict
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.fitting import SaverFactory
from dlrun.evaluation.fitting import train_model
from dlrun.evaluation.leaks import duplicate_counts
from dlrun.evaluation.leaks import duplicate_warnings
from dlrun.evaluation.parallel import parallel_blocker
from dlrun.evaluation.parallel import train_parallel
from dlrun.evaluation.protocols import PROTOCOLS
from dlrun.evaluation.protocols import Fold
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.scoring import evaluate_split
from dlrun.training.callbacks import Callback
from dlrun.training.metrics import higher_is_better

STOPPED = ("interrupted", "diverged")


@dataclass
class FoldOutcome:
    fold: Fold
    fitted: FittedModel
    evaluation: Evaluation | None  # the fold's validation part, scored after training
    baselines: list[dict[str, Any]]
    verdict: dict[str, Any] | None


@dataclass
class ProtocolOutcome:
    protocol: str
    sizes: dict[str, int]
    duplicates: dict[str, int]
    warnings: list[str]
    status: str = "completed"
    stop_reason: str | None = None
    folds: list[FoldOutcome] = field(default_factory=list)
    validation: dict[str, Any] = field(default_factory=dict)
    cv: CrossValidation | None = None
    final_epochs: int | None = None
    scored: FittedModel | None = None  # the model behind ``evaluation`` and checkpoint.pt
    evaluation: Evaluation | None = None
    baselines: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] | None = None
    cv_baselines: list[dict[str, Any]] = field(default_factory=list)  # fold means
    cv_verdict: dict[str, Any] | None = None
    test_reads: int = 0
    parallel: bool = False

    @property
    def model(self) -> FittedModel | None:
        """The model to save at the top of the run: the scored one, else the first fold's."""
        return self.scored or (self.folds[0].fitted if self.folds else None)

    @property
    def top_model(self) -> FittedModel | None:
        """The model saved at the top of the run: the scored one, or a single split's model
        even when training stopped; fold models live in their own sub-runs."""
        if self.scored is not None:
            return self.scored
        if len(self.folds) == 1 and not self.folds[0].fold.name:
            return self.folds[0].fitted
        return None

    def stop(self, status: str, reason: str | None) -> None:
        self.status, self.stop_reason = status, reason


class Recording(Protocol):
    """Where training is recorded; ``fold=None`` means the final retrain at the run's top."""

    def callbacks(self, fold: Fold | None, phase: str, progress: bool = True) -> Callback: ...
    def saver(self, fold: Fold | None) -> SaverFactory | None: ...
    def progress(self, label: str) -> Callback: ...
    def fold_finished(self, outcome: FoldOutcome) -> None: ...


def _sizes(folds: list[Fold], train: Arrays, data: LoadedData) -> dict[str, int]:
    test = len(data.test_split) if data.test_split is not None else 0
    first = folds[0]
    val = 0 if first.val_idx is None else len(first.val_idx)
    if len(folds) == 1:
        return {"train": len(first.train_idx), "validation": val, "test": test}
    return {"non_test": len(train), "folds": len(folds), "train_per_fold": len(first.train_idx),
            "validation_per_fold": val, "test": test}  # fmt: skip


def _score_fold(
    cfg: ExperimentConfig, train: Arrays, fold: Fold, fitted: FittedModel, time_ordered: bool
) -> FoldOutcome:
    if fold.val_idx is None or not len(fold.val_idx) or fitted.state.status in STOPPED:
        return FoldOutcome(fold, fitted, None, [], None)
    evaluation = evaluate_split(fitted, train.subset(fold.val_idx), cfg, "validation")
    targets = Targets(train.y[fold.train_idx], train.y[fold.val_idx], fold.seed, time_ordered)
    baselines = score_baselines(cfg.task, targets)
    return FoldOutcome(fold, fitted, evaluation, baselines, verdict(evaluation.metrics, baselines))


def _train_folds(
    cfg: ExperimentConfig,
    data: LoadedData,
    folds: list[Fold],
    device: torch.device,
    recording: Recording,
    outcome: ProtocolOutcome,
) -> Iterator[tuple[Fold, FittedModel]]:
    """Fitted models fold by fold: all at once when parallel folds apply, else one at a time."""
    wants_parallel = bool(getattr(cfg.evaluation, "parallel_folds", False)) and len(folds) > 1
    blocker = parallel_blocker(cfg, folds) if wants_parallel else None
    if wants_parallel and blocker is not None:
        outcome.warnings.append(f"parallel_folds: {blocker}; training folds one after another")
    if wants_parallel and blocker is None:
        outcome.parallel = True
        callbacks = [recording.callbacks(fold, "fit", progress=False) for fold in folds]
        group = recording.progress(f"folds 1-{len(folds)} together: ")
        fitted = train_parallel(
            cfg, data.train, folds, device, callbacks, group, data.implied_steps
        )
        yield from zip(folds, fitted, strict=True)
        return
    for fold in folds:
        yield fold, train_model(
            cfg, data.train, fold.train_idx, fold.val_idx, cfg.train.epochs, device,
            recording.callbacks(fold, "fit"), data.implied_steps, fold.seed,
            recording.saver(fold),
        )  # fmt: skip


def _holdout_validation(cfg: ExperimentConfig, fitted: FittedModel) -> dict[str, Any]:
    history = fitted.state.history
    if not history or not any(k.startswith("val_") for k in history[-1]):
        return {}
    monitor = cfg.evaluation.monitor
    last = {k: v for k, v in history[-1].items() if k.startswith("val_")}
    epoch, value = best_epoch([row.get(monitor, np.nan) for row in history],
                              higher_is_better(monitor))  # fmt: skip
    return {**last, "monitor": monitor, "best_epoch": epoch, "best_value": value}


def _aggregate_folds(cfg: ExperimentConfig, outcome: ProtocolOutcome) -> None:
    """Mean/std per metric, averaged and smoothed curves, and baselines averaged over folds."""
    curves = getattr(cfg.evaluation, "curves")  # noqa: B009 - every multi-fold protocol has it
    outcome.cv = cross_validate(
        [f.evaluation.metrics for f in outcome.folds if f.evaluation is not None],
        [f.fitted.state.history for f in outcome.folds],
        cfg.evaluation.monitor,
        curves.smoothing,
        curves.skip_first,
    )
    outcome.validation = {k: v.mean for k, v in outcome.cv.metrics.items()}
    outcome.cv_baselines = average_baselines([f.baselines for f in outcome.folds])
    outcome.cv_verdict = verdict(outcome.validation, outcome.cv_baselines)
    outcome.baselines, outcome.verdict = outcome.cv_baselines, outcome.cv_verdict


def _final_epochs(cfg: ExperimentConfig, outcome: ProtocolOutcome) -> int:
    final = cfg.evaluation.final
    assert final is not None
    if isinstance(final.epochs, int):
        return final.epochs
    best = outcome.cv.best_epoch if outcome.cv else outcome.validation.get("best_epoch")
    return int(best) if best else cfg.train.epochs


@dataclass(frozen=True)
class Plan:
    """The protocol's data (a time split carves its test range) and its folds."""

    protocol: str
    data: LoadedData
    folds: list[Fold]


def plan_protocol(cfg: ExperimentConfig, data: LoadedData) -> Plan:
    """Split before anything is written, so impossible splits fail without a run directory."""
    name = tag_of(cfg.evaluation, "protocol")
    protocol = PROTOCOLS.get(name)(cfg.evaluation)
    prepared = protocol.prepare(data)
    return Plan(name, prepared, protocol.folds(prepared.train, cfg.task, cfg.seed))


def run_protocol(
    cfg: ExperimentConfig, plan: Plan, device: torch.device, recording: Recording
) -> ProtocolOutcome:
    name, data, folds = plan.protocol, plan.data, plan.folds
    train = data.train
    duplicates = duplicate_counts(train, folds, data.test_split)
    outcome = ProtocolOutcome(
        name, _sizes(folds, train, data), duplicates, duplicate_warnings(duplicates)
    )
    time_ordered = name == "time_split"
    for fold, fitted in _train_folds(cfg, data, folds, device, recording, outcome):
        scored_fold = _score_fold(cfg, train, fold, fitted, time_ordered)
        outcome.folds.append(scored_fold)
        recording.fold_finished(scored_fold)
        if fitted.state.status in STOPPED or len(folds) == 1:
            outcome.stop(fitted.state.status, fitted.state.stop_reason)
        if fitted.state.status in STOPPED:
            return outcome
    if len(folds) > 1:
        _aggregate_folds(cfg, outcome)
    else:
        outcome.validation = _holdout_validation(cfg, outcome.folds[0].fitted)
        outcome.scored = outcome.folds[0].fitted
    y_train = train.y[folds[0].train_idx]
    if cfg.evaluation.final is not None:
        epochs = _final_epochs(cfg, outcome)
        outcome.final_epochs = epochs
        final = train_model(
            cfg, train, np.arange(len(train)), None, epochs, device,
            recording.callbacks(None, "final"), data.implied_steps, cfg.seed + len(folds),
            recording.saver(None),
        )  # fmt: skip
        outcome.scored, y_train = final, train.y
        if final.state.status in STOPPED:
            outcome.stop(final.state.status, final.state.stop_reason)
            return outcome
    if outcome.scored is None:
        return outcome  # K-fold without a final model: validation only, the test stays sealed
    if data.test_split is not None:
        test = data.test_split.unseal()
        outcome.evaluation = evaluate_split(outcome.scored, test, cfg, "test")
        outcome.test_reads = data.test_split.reads
        targets = Targets(y_train, test.y, cfg.seed, time_ordered, preceding=train.y)
        outcome.baselines = score_baselines(cfg.task, targets)
    elif cfg.evaluation.final is None and outcome.folds[0].evaluation is not None:
        outcome.evaluation = outcome.folds[0].evaluation
        outcome.baselines = outcome.folds[0].baselines
    if outcome.evaluation is not None:
        outcome.verdict = verdict(outcome.evaluation.metrics, outcome.baselines)
    return outcome
