"""The ``sweep:`` section: search space, method, objective, budget and pruner.

Each parameter maps a dotted config path (``optimizer.lr``, ``model.layers.0.dense.units``, or a
whole ``model.layers`` list) to exactly one of: ``choice`` (a list of values), ``int`` or
``float`` (a range, optionally log-scaled or stepped). Grid sweeps need finite spaces: choices and
stepped integer ranges.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from typing import Literal

from pydantic import Field
from pydantic import ValidationError
from pydantic import field_validator
from pydantic import model_validator

from dlrun.config.base import Number
from dlrun.config.base import StrictModel
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.registry import did_you_mean
from dlrun.training.metrics import METRICS

MAX_GRID = 10_000  # points; a grid beyond it is a typo or a search for another method


class IntRange(StrictModel):
    low: int
    high: int
    step: int = Field(default=1, gt=0)
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> IntRange:
        if self.high < self.low:
            raise ValueError("high must not be below low")
        if self.log and (self.low <= 0 or self.step != 1):
            raise ValueError("a log-scaled range needs low > 0 and step 1")
        return self


class FloatRange(StrictModel):
    low: Number
    high: Number
    log: bool = False
    step: Number | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> FloatRange:
        if self.high < self.low:
            raise ValueError("high must not be below low")
        if self.log and (self.low <= 0 or self.step is not None):
            raise ValueError("a log-scaled range needs low > 0 and no step")
        return self


class ParameterSpace(StrictModel):
    """Exactly one of ``choice``, ``int`` or ``float``."""

    choice: list[Any] | None = Field(default=None, min_length=1)
    labels: list[str] | None = Field(default=None, description="short names for the choices")
    int: IntRange | None = None
    float: FloatRange | None = None

    @model_validator(mode="after")
    def _one(self) -> ParameterSpace:
        if sum(x is not None for x in (self.choice, self.int, self.float)) != 1:
            raise ValueError("give exactly one of choice, int or float")
        if self.labels is not None and len(self.labels) != len(self.choice or []):
            raise ValueError("labels name the choices: give one label per choice")
        return self

    def grid_values(self) -> Sequence[Any] | None:
        """Every value for a grid (a range is not listed: its size is known without), or
        ``None`` when the space is continuous."""
        if self.choice is not None:
            return list(self.choice)
        if self.int is not None and not self.int.log:
            return range(self.int.low, self.int.high + 1, self.int.step)
        return None

    def examples(self) -> list[Any]:
        """Values that must all give a valid config (checked before any trial starts)."""
        if self.choice is not None:
            return list(self.choice)
        bounds = self.int if self.int is not None else self.float
        assert bounds is not None
        return [bounds.low, bounds.high]


class Objective(StrictModel):
    metric: str = Field(default="loss", description="validation metric, e.g. accuracy or loss")
    direction: Literal["maximize", "minimize", "auto"] = "auto"

    @field_validator("metric")
    @classmethod
    def _known(cls, name: str) -> str:
        known = ["loss", *METRICS.names()]
        if name not in known:
            hint = did_you_mean(name, known)
            raise ValueError(f"unknown metric '{name}'{hint}; known: {', '.join(known)}")
        return name


class SweepConfig(StrictModel):
    parameters: dict[str, ParameterSpace] = Field(min_length=1)
    method: Literal["grid", "random", "tpe"] = "tpe"
    objective: Objective = Objective()
    n_trials: int | None = Field(default=None, gt=0, description="default: the grid size, or 20")
    timeout: Number | None = Field(default=None, gt=0, description="seconds per worker")
    seed: int = Field(default=0, ge=0, lt=2**31)
    pruner: Literal["none", "median", "hyperband"] = "none"

    @model_validator(mode="after")
    def _grid_is_finite(self) -> SweepConfig:
        if self.method == "grid":
            continuous = [k for k, v in self.parameters.items() if v.grid_values() is None]
            if continuous:
                raise ValueError(
                    f"grid sweeps need choice or int ranges; continuous: {continuous}"
                )
            points = math.prod(len(v.grid_values() or ()) for v in self.parameters.values())
            if points > MAX_GRID:
                raise ValueError(
                    f"the grid has {points:,} points, more than {MAX_GRID:,}: narrow the int "
                    "ranges or raise their step, or use method: tpe or random with n_trials"
                )
        return self

    def grid(self) -> list[dict[str, Any]]:
        names = list(self.parameters)
        values = [self.parameters[n].grid_values() or [] for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]

    def trial_budget(self) -> int:
        if self.n_trials is not None:
            return self.n_trials
        return len(self.grid()) if self.method == "grid" else 20


def load_sweep_file(path: Path) -> SweepConfig:
    """A separate sweep file: a ``sweep:`` section, or the sweep mapping itself.

    Problems are reported as for a config file: key path (``sweep.method``), line, did-you-mean.
    """
    from dlrun.config.messages import issues_from_validation
    from dlrun.config.yaml_io import parse_yaml

    try:
        data, lines = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue("", f"cannot read the sweep file: {exc}")], str(path)
        ) from None
    if isinstance(data, dict) and "sweep" in data:
        data = data["sweep"]
        lines = {key[1:]: line for key, line in lines.items() if key[:1] == ("sweep",)}
    elif isinstance(data, dict) and "parameters" not in data:  # e.g. an experiment config
        raise ConfigError([ConfigIssue("sweep", "the file has no sweep section: give it a "
            "'sweep:' mapping, or the sweep's own keys (method, parameters, ...)")], str(path))  # fmt: skip
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as exc:
        found = issues_from_validation(exc, SweepConfig, data, lines, [])
        issues = [replace(i, path=f"sweep.{i.path}" if i.path else "sweep") for i in found]
        raise ConfigError(issues, str(path)) from None
