"""Read a YAML experiment, apply overrides, validate, and return one frozen config object."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError

from dlrun.config.base import CONFIG_DIR
from dlrun.config.checks import run_checks
from dlrun.config.messages import ConfigOrigin
from dlrun.config.messages import issues_from_validation
from dlrun.config.overrides import apply_overrides
from dlrun.config.schema import ExperimentConfig
from dlrun.config.yaml_io import dump_yaml
from dlrun.config.yaml_io import parse_yaml
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue

SHORTHAND_TAGS = {"optimizer": "name", "loss": "name", "data": "dataset", "task": "name"}


def load_config(path: str | FsPath, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load and validate ``path``; raises :class:`ConfigError` listing every problem found."""
    source = str(path)
    try:
        text = FsPath(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue("", "config file not found")], source) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            [ConfigIssue("", f"cannot read the config file: {exc}")], source
        ) from None
    return config_from_text(text, source, overrides or [], FsPath(path).parent)


def config_from_text(
    text: str, source: str, overrides: list[str], folder: FsPath | None = None
) -> ExperimentConfig:
    """``folder``: where relative paths in the text start (the config file's folder)."""
    data, lines = parse_yaml(text, source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue("", "the config must be a YAML mapping of keys to values")], source
        )
    return config_from_data(data, source, overrides, lines, folder)


def config_from_data(
    data: dict[str, Any],
    source: str = "<config>",
    overrides: list[str] | None = None,
    lines: dict[Any, int] | None = None,
    folder: FsPath | None = None,
) -> ExperimentConfig:
    try:
        overridden = apply_overrides(data, overrides or [], SHORTHAND_TAGS)
    except ConfigError as exc:
        raise ConfigError(exc.issues, source) from None
    try:
        context = {CONFIG_DIR: str(folder)} if folder is not None else None
        config = ExperimentConfig.model_validate(data, context=context)
    except ValidationError as exc:
        issues = issues_from_validation(exc, ExperimentConfig, data, lines or {}, overridden)
        raise ConfigError(issues, source) from None
    config._origin = ConfigOrigin(source, lines or {}, overridden)
    issues = run_checks(config)
    if issues:
        raise config.origin.error(issues)
    return config


def resolved_yaml(config: ExperimentConfig) -> str:
    """The config with every default filled in, as saved next to each run."""
    return dump_yaml(config.model_dump(mode="json"))
