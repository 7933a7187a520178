"""What running a protocol produces, and where its training is recorded."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import Protocol

from dlrun.evaluation.aggregate import CrossValidation
from dlrun.evaluation.baselines import Targets
from dlrun.evaluation.fitting import FitHooks
from dlrun.evaluation.fitting import FittedModel
from dlrun.evaluation.protocols import Fold
from dlrun.evaluation.scoring import Evaluation
from dlrun.evaluation.significance import Evidence
from dlrun.training.callbacks import Callback
from dlrun.training.snapshots import Snapshots
from dlrun.training.status import RunStatus

Sizes = dict[str, int | str]  # rows per split; a range (``47-48``) where folds differ


@dataclass
class FoldOutcome:
    fold: Fold
    fitted: FittedModel
    evaluation: Evaluation | None  # the fold's validation part, scored after training
    baselines: list[dict[str, Any]]
    verdict: dict[str, Any] | None
    targets: Targets | None = None  # the fold's raw targets, behind its baselines

    def evidence(self) -> list[Evidence]:
        """What the significance test of this fold's verdict reads."""
        if self.evaluation is None:
            return []
        return [Evidence(self.evaluation, self.baselines, self.targets)]


@dataclass
class ProtocolOutcome:
    protocol: str
    sizes: Sizes
    duplicates: dict[str, int]
    warnings: list[str]
    status: RunStatus = RunStatus.COMPLETED
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
    layout: str = ""  # how the folds are said: "3 folds x 2 repeats"
    test_reads: int = 0
    parallel: bool = False

    @property
    def model(self) -> FittedModel | None:
        """The model to describe at the top of the run: the scored one, else the first fold's."""
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

    def stop(self, status: RunStatus, reason: str | None) -> None:
        self.status, self.stop_reason = status, reason


class Recording(Protocol):
    """Where training is recorded; ``fold=None`` means the run's top directory."""

    def hooks(self, fold: Fold | None, phase: str, progress: bool = True) -> FitHooks: ...
    def snapshots(self, fold: Fold | None, phase: str) -> Snapshots | None: ...
    def progress(self, label: str) -> Callback: ...
    def fold_finished(self, outcome: FoldOutcome) -> None: ...
