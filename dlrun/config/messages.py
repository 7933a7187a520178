"""Turn pydantic validation errors into dlrun's one-line config issues.

Each issue names the YAML path as the user wrote it, the line it is on, what was received and,
for typos, the nearest valid key or name.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from dataclasses import replace
from typing import Any
from typing import Union

from pydantic import BaseModel
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dlrun.config.yaml_io import Path
from dlrun.config.yaml_io import format_path
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.registry import did_you_mean

OVERRIDE_NOTE = " (set by a command-line override)"


TYPE_PREFIX = "input should be "
UNION_MEMBER_TYPES = frozenset({"str", "int", "float", "bool", "none", "bytes"})


def issues_from_validation(
    exc: ValidationError,
    root: type[BaseModel],
    data: Any,
    lines: dict[Path, int],
    overridden: list[Path],
) -> list[ConfigIssue]:
    by_path: dict[Path, list[str]] = {}
    for error in exc.errors(include_url=False):
        by_path.setdefault(_yaml_path(data, error["loc"]), []).append(_message(error, root, data))
    issues = []
    for path, messages in by_path.items():
        message = _either(messages)
        message += override_note(format_path(path), [format_path(o) for o in overridden])
        issues.append(ConfigIssue(format_path(path), message, _line(path, lines)))
    return issues


def _either(messages: list[str]) -> str:
    """One message for a value that fits none of a union's types: pydantic reports each
    member (``input should be a valid string, got a list`` and the same for an integer)."""
    heads = [m.removeprefix(TYPE_PREFIX).rpartition(", got ") for m in messages]
    if len(messages) > 1 and all(m.startswith(TYPE_PREFIX) and sep for m, (_, sep, _) in
                                 zip(messages, heads, strict=True)):  # fmt: skip
        got = {tail for _, _, tail in heads}
        if len(got) == 1:
            return f"{TYPE_PREFIX}{' or '.join(head for head, _, _ in heads)}, got {got.pop()}"
    return "; ".join(dict.fromkeys(messages))


def locate(
    issues: list[ConfigIssue], lines: Mapping[Path, int], overridden: Sequence[Path] = ()
) -> list[ConfigIssue]:
    """``issues`` with the YAML line of their key path filled in where they have none.

    Checks that run on the validated config name paths as text (``model.layers[1].dense``);
    the nearest written key on that path gives the line. A path a command-line override set
    says so, since the file's line then shows the value before the override.
    """
    by_text = {format_path(path): line for path, line in lines.items()}
    overrides = [format_path(path) for path in overridden]
    located = []
    for issue in issues:
        text = issue.path
        while issue.line is None and text and text not in by_text:
            text = _section(text)
        line = issue.line if issue.line is not None else by_text.get(text)
        message = issue.message
        if issue.line is None:
            message += override_note(issue.path, overrides)
        located.append(replace(issue, message=message, line=line))
    return located


def override_note(path: str, overrides: Sequence[str]) -> str:
    """What command-line overrides had to do with an issue at ``path``: they set its value
    (or a section holding it), or they set keys beside it or inside it, which may or may not
    be what is wrong (``evaluation.protocol=holdout`` makes ``evaluation.k`` unknown), so
    those keys are named rather than blamed. Top-level keys beside it are not named."""
    if any(_within(path, o) for o in overrides):
        return OVERRIDE_NOTE
    near = [
        o for o in overrides if _within(o, path) or (_section(o) and _within(path, _section(o)))
    ]
    return f" (the command line overrode {', '.join(near)})" if near else ""


def _section(path: str) -> str:
    """The text path one level up: ``model.layers[1]`` for ``model.layers[1].dense``."""
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _within(path: str, outer: str) -> bool:
    """Whether the text path ``path`` is ``outer`` or lies inside it."""
    return path == outer or path.startswith((f"{outer}.", f"{outer}["))


@dataclass(frozen=True, eq=False)
class ConfigOrigin:
    """Where a config was read: its file, the line of every key and the keys overrides set, so
    problems found after loading (a model too big for memory, outputs that do not match the
    data) point there too.

    Not part of what a config says: every origin compares equal, so the same settings read
    from two files make equal configs.
    """

    source: str | None = None
    lines: Mapping[Path, int] = dataclass_field(default_factory=dict)
    overridden: Sequence[Path] = ()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ConfigOrigin)

    def __hash__(self) -> int:
        return 0

    def error(self, issues: list[ConfigIssue]) -> ConfigError:
        """A :class:`ConfigError` naming this file and the line of each issue's key."""
        return ConfigError(locate(issues, self.lines, self.overridden), self.source)


def _yaml_path(data: Any, loc: tuple[int | str, ...]) -> Path:
    """Drop the parts pydantic adds that the YAML does not have (union tags, function names)."""
    path: list[str | int] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if _has_child(node, part):
            node = node[part]
            path.append(part)
        elif last and isinstance(part, str) and not _is_synthetic(part, node):
            path.append(part)  # a missing key: name it
    return tuple(path)


def _has_child(node: Any, part: int | str) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _is_synthetic(part: str, node: Any) -> bool:
    """Union members (tag values, or the type names of a ``str | int`` union) and validator
    names are not user keys."""
    if "[" in part or part.endswith("]") or part in UNION_MEMBER_TYPES:
        return True
    return isinstance(node, dict) and part in {str(v) for v in node.values() if isinstance(v, str)}


def _line(path: Path, lines: dict[Path, int]) -> int | None:
    for cut in range(len(path), 0, -1):
        if path[:cut] in lines:
            return lines[path[:cut]]
    return None


def _message(error: ErrorDetails, root: type[BaseModel], data: Any) -> str:
    kind = error["type"]
    received = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        allowed = valid_keys(root, error["loc"][:-1], data)
        hint = did_you_mean(key, allowed)
        known = f" (allowed: {', '.join(allowed)})" if allowed and not hint else ""
        return f"unknown key{hint}{known}"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
        name = str(ctx.get("tag", received))
        return f"unknown {ctx.get('discriminator', 'name').strip(chr(39))} '{name}'{did_you_mean(name, tags)}; known: {', '.join(tags)}"
    if kind == "union_tag_not_found":
        return f"needs a '{str(ctx.get('discriminator', 'name')).strip(chr(39))}' key"
    if kind == "literal_error":
        options = [
            o.strip(" '") for o in str(ctx.get("expected", "")).replace(" or ", ", ").split(",")
        ]
        hint = did_you_mean(str(received), options) if isinstance(received, str) else ""
        return f"expected one of {', '.join(options)}, got {received!r}{hint}"
    if kind in ("value_error", "assertion_error"):
        return str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{_lower_first(error['msg'])}, got {_describe(received)}"


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _describe(value: Any) -> str:
    if isinstance(value, dict | list):
        return f"a {type(value).__name__}"
    return f"{value!r}"


def valid_keys(root: type[BaseModel], loc: tuple[int | str, ...], data: Any = None) -> list[str]:
    """The keys allowed at ``loc`` (a pydantic error location), for did-you-mean hints.

    A section whose members are looked up when validated (``task``) names its member through
    a ``resolve(data)`` classmethod, given what the config holds at ``loc``.
    """
    current: Any = root
    for part in loc:
        current = _step_into(current, part)
        if current is None:
            return []
    model = _as_model(current, None)
    resolve = getattr(model, "resolve", None)
    if resolve is not None:
        model = resolve(_node(data, loc))
    return sorted(model.model_fields) if model is not None else []


def _node(data: Any, loc: tuple[int | str, ...]) -> Any:
    for part in loc:
        if not _has_child(data, part):
            return None
        data = data[part]
    return data


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _members(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _members(arg)]
    return [annotation]


def _as_model(annotation: Any, tag: str | int | None) -> type[BaseModel] | None:
    models = [m for m in _members(annotation) if isinstance(m, type) and issubclass(m, BaseModel)]
    if len(models) == 1:
        return models[0]
    for model in models:
        for field in model.model_fields.values():
            if typing.get_origin(field.annotation) is typing.Literal and tag in typing.get_args(
                field.annotation
            ):
                return model
    return None


def _step_into(current: Any, part: int | str) -> Any:
    model = _as_model(current, part)
    if model is not None and isinstance(part, str):
        if part in model.model_fields:
            return model.model_fields[part].annotation
        if model is not current and _as_model(current, None) is None:
            return model  # ``part`` was a union tag selecting ``model``
        return None
    for member in _members(current):
        if typing.get_origin(member) is list and isinstance(part, int):
            return typing.get_args(member)[0]
        if typing.get_origin(member) is dict:
            return typing.get_args(member)[1]
    return None
