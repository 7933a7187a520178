"""Which config changes a resumed run may take: only those that do not change what was learned.

Extending training (``train.epochs=30``), watching it differently (``train.progress``) or moving
it (``train.device``) is safe; anything that shaped the saved weights (model, data,
preprocessing, loss, optimizer, seed, protocol, batch size, callbacks) is refused by name.
"""

from __future__ import annotations

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


def _safe(key: str) -> bool:
    return any(key == safe or key.startswith(f"{safe}.") for safe in SAFE_ON_RESUME)


def check_resume_changes(saved: ExperimentConfig, new: ExperimentConfig, source: str) -> None:
    """Raise a :class:`ConfigError` naming every unsafe key whose value differs."""
    before = flatten(saved.model_dump(mode="json"))
    after = flatten(new.model_dump(mode="json"))
    issues = [
        ConfigIssue(
            format_path(dotted(key)),
            f"cannot change when resuming (the run was trained with {before.get(key)!r}); "
            "start a new run instead",
        )
        for key in sorted(before.keys() | after.keys())
        if before.get(key) != after.get(key) and not _safe(key)
    ]
    if issues:
        raise ConfigError(issues, source)
