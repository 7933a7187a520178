"""YAML reading that remembers where every key was written, and atomic-friendly dumping.

The loader is PyYAML's safe loader plus two fixes: ``1e-3`` is a float (YAML 1.1 would make it
a string), and a key written twice in one mapping is reported instead of silently overwritten.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue

Path = tuple[str | int, ...]


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _walk(node: yaml.Node, path: Path, lines: dict[Path, int], issues: list[ConfigIssue]) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*path, key)
            if key in seen:
                issues.append(
                    ConfigIssue(
                        format_path(child), "key is written twice", key_node.start_mark.line + 1
                    )
                )
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _walk(value_node, child, lines, issues)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            _walk(item, (*path, index), lines, issues)


def parse_yaml(text: str, source: str) -> tuple[Any, dict[Path, int]]:
    """The document and a map from key paths to 1-based line numbers."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        line = mark.line + 1 if mark is not None else None
        raise ConfigError([ConfigIssue("", f"invalid YAML: {problem}", line)], source) from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    issues: list[ConfigIssue] = []
    if node is not None:
        _walk(node, (), lines, issues)
    if issues:
        raise ConfigError(issues, source)
    return data, lines


def parse_value(text: str) -> Any:
    """A scalar or flow collection typed as YAML would type it (``3`` int, ``1e-3`` float)."""
    return yaml.load(text, Loader=_Loader)


def format_path(path: Path) -> str:
    """``("model", "layers", 0, "units")`` -> ``model.layers[0].units``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
