"""Dotted command-line overrides: ``optimizer.lr=0.01 model.layers.0.dense.units=32``."""

from __future__ import annotations

from typing import Any

import yaml

from dlrun.config.yaml_io import Path
from dlrun.config.yaml_io import format_path
from dlrun.config.yaml_io import parse_value
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue


def parse_override(text: str) -> tuple[Path, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError([ConfigIssue(text, "override must look like key.path=value")])
    path = dotted(key.strip())
    try:
        value = parse_value(raw)
    except yaml.YAMLError:
        raise ConfigError([ConfigIssue(key, f"cannot read the value '{raw}' as YAML")]) from None
    return path, value


def apply_overrides(
    data: dict[str, Any], overrides: list[str], shorthand_tags: dict[str, str]
) -> list[Path]:
    """Set each override into ``data`` in place (creating mappings as needed).

    ``shorthand_tags`` names top-level keys that may be written as a bare name, e.g.
    ``optimizer: adam``; ``optimizer.lr=0.01`` then expands it to ``{name: adam, lr: 0.01}``.
    Unknown keys are not rejected here: schema validation reports them with a suggestion.
    """
    paths = []
    for text in overrides:
        path, value = parse_override(text)
        set_path(data, path, value, shorthand_tags)
        paths.append(path)
    return paths


def dotted(key: str) -> Path:
    return tuple(int(p) if p.isdigit() else p for p in key.split("."))


def set_path(data: dict[str, Any], path: Path, value: Any, shorthand_tags: dict[str, str]) -> None:
    """Set one value at ``path``, expanding a bare-name shorthand on the way."""
    tag = shorthand_tags.get(str(path[0]))
    if tag and len(path) > 1 and isinstance(data.get(str(path[0])), str):
        data[str(path[0])] = {tag: data[str(path[0])]}
    _set(data, path, value)


def _set(node: Any, path: Path, value: Any) -> None:
    for depth, part in enumerate(path[:-1]):
        node = _child(node, part, path[: depth + 1])
    last = path[-1]
    if isinstance(node, list):
        _check_index(node, last, path)
        node[int(last)] = value
    elif isinstance(node, dict):
        node[str(last)] = value
    else:
        raise ConfigError(
            [
                ConfigIssue(
                    format_path(path[:-1]), "is not a mapping or list; cannot set a key inside it"
                )
            ]
        )


def _child(node: Any, part: str | int, path: Path) -> Any:
    if isinstance(node, list):
        _check_index(node, part, path)
        return node[int(part)]
    if isinstance(node, dict):
        key = str(part)
        if node.get(key) is None:
            node[key] = {}
        return node[key]
    raise ConfigError(
        [
            ConfigIssue(
                format_path(path[:-1]), "is not a mapping or list; cannot set a key inside it"
            )
        ]
    )


def _check_index(node: list[Any], part: str | int, path: Path) -> None:
    if not isinstance(part, int) or not 0 <= part < len(node):
        raise ConfigError(
            [
                ConfigIssue(
                    format_path(path),
                    f"no such list item; the list has {len(node)} items (0-{len(node) - 1})",
                )
            ]
        )
