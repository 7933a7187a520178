"""Which config changes a resumed run may take: only those that do not change what was learned.

Extending training (``train.epochs=30``), watching it differently (``train.progress``) or moving
it (``train.device``) is safe; anything that shaped the saved weights (model, data,
preprocessing, loss, optimizer, seed, protocol, batch size, callbacks) is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dlrun.config.overrides import dotted
from dlrun.config.schema import ExperimentConfig
from dlrun.config.yaml_io import format_path
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.reporting.hparams import flatten

SAFE_ON_RESUME = (
    "name", "description", "sweep", "train.epochs", "train.progress", "train.device",
    "train.checkpoint_every",
)  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One config key whose value a resume changes."""

    key: str  # dotted, as flattened: ``train.epochs``
    before: Any
    after: Any

    def __str__(self) -> str:
        return f"{format_path(dotted(self.key))} {self.before!r} -> {self.after!r}"


# A sweep's trials must stay comparable: its training may not change on resume either (more
# trials, a longer timeout or another pruner are fine).
SAFE_ON_SWEEP_RESUME = tuple(key for key in SAFE_ON_RESUME if key != "train.epochs")


def _safe(key: str, safe_keys: tuple[str, ...]) -> bool:
    return any(key == safe or key.startswith(f"{safe}.") for safe in safe_keys)


def resume_changes(saved: ExperimentConfig, new: ExperimentConfig) -> list[Change]:
    """Every key whose value differs between the run's saved config and the resumed one."""
    before = flatten(saved.model_dump(mode="json"))
    after = flatten(new.model_dump(mode="json"))
    return [
        Change(key, before.get(key), after.get(key))
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key)
    ]


def check_resume_changes(
    saved: ExperimentConfig,
    new: ExperimentConfig,
    source: str,
    safe_keys: tuple[str, ...] = SAFE_ON_RESUME,
    noun: str = "run",
) -> list[Change]:
    """The changes a resume may make (so the caller can say which); raises a
    :class:`ConfigError` naming every key outside ``safe_keys`` whose value differs (``noun``:
    what was trained with the saved config, a run or a sweep)."""
    changes = resume_changes(saved, new)
    issues = [
        ConfigIssue(
            format_path(dotted(change.key)),
            f"cannot change when resuming (the {noun} was trained with {change.before!r}); "
            f"start a new {noun} instead",
        )
        for change in changes
        if not _safe(change.key, safe_keys)
    ]
    if issues:
        raise ConfigError(issues, source)
    return changes
