"""Build config models from registries, so a new component needs no schema edit.

Two YAML shapes are supported:

* one-key entries for lists of components, e.g. ``- dense: {units: 16}`` (or just ``- flatten``);
* tagged mappings for a single choice, e.g. ``optimizer: {name: rmsprop, lr: 0.001}``
  (or just ``optimizer: rmsprop``).
"""

from __future__ import annotations

from typing import Annotated
from typing import Any
from typing import Literal
from typing import Union
from typing import get_args

from pydantic import BeforeValidator
from pydantic import Field
from pydantic import SerializerFunctionWrapHandler
from pydantic import create_model
from pydantic import model_serializer
from pydantic import model_validator

from dlrun.config.base import StrictModel
from dlrun.registry import Registry


class OneOfEntry(StrictModel):
    """A mapping with exactly one key naming a registered component."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {data: {}}
        if isinstance(data, dict):
            return {key: cls._expand(key, value) for key, value in data.items()}
        return data

    @classmethod
    def _expand(cls, key: str, value: Any) -> Any:
        """``{dense: null}`` means defaults; ``{dropout: 0.5}`` sets the positional parameter."""
        if value is None:
            return {}
        field = cls.model_fields.get(key)
        if field is None or isinstance(value, dict):
            return value
        config = next(arg for arg in get_args(field.annotation) if arg is not type(None))
        positional = config.positional if issubclass(config, StrictModel) else None
        return {positional: value} if positional is not None else value

    @model_validator(mode="after")
    def _exactly_one(self) -> OneOfEntry:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"each entry needs exactly one key naming one of: {names}")
        return self

    @model_serializer(mode="wrap")
    def _only_selected(self, handler: SerializerFunctionWrapHandler) -> Any:
        dumped = handler(self)
        return {key: value for key, value in dumped.items() if value is not None}

    def selected(self) -> tuple[str, StrictModel]:
        """The chosen component's name and its parameters."""
        for name in type(self).model_fields:
            value = getattr(self, name)
            if value is not None:
                return name, value
        raise AssertionError("validated entries always hold one component")


def one_of_entry(model_name: str, registry: Registry[Any]) -> type[OneOfEntry]:
    """A model whose single key is any name in ``registry``, holding that entry's ``Config``."""
    fields: dict[str, Any] = {
        name: (component.Config | None, None) for name, component in registry.items()
    }
    return create_model(model_name, __base__=OneOfEntry, **fields)


def tagged_config(
    config: type[StrictModel], section: type[StrictModel], tag: str, name: str, title: str
) -> Any:
    """``config`` with the ``tag`` field fixed to ``name``, also a subclass of ``section``.

    ``section`` declares the tag and the fields all members share, so code typed against the
    section (``cfg.loss.name``, ``cfg.evaluation.final``) reads the real object.
    """
    bases = (section,) if issubclass(section, config) else (config, section)
    return create_model(title, __base__=bases, **_tag_field(tag, name))


def tagged_union(
    registry: Registry[Any], tag: str, section: type[StrictModel], default: str | None = None
) -> Any:
    """A discriminated union over every registered ``Config``, keyed by the ``tag`` field.

    A bare string selects an entry with its defaults; ``default`` fills in a missing tag.
    """

    def shorthand(data: Any) -> Any:
        if isinstance(data, str):
            return {tag: data}
        if default is not None and isinstance(data, dict) and tag not in data:
            return {tag: default, **data}
        return data

    members = tuple(
        tagged_config(
            component.Config, section, tag, name, f"{component.__name__}{tag.capitalize()}Config"
        )
        for name, component in registry.items()
    )
    return Annotated[
        Union[members],  # noqa: UP007 - a runtime tuple of members needs Union[...]
        Field(discriminator=tag),
        BeforeValidator(shorthand),
    ]


def _tag_field(tag: str, name: str) -> dict[str, Any]:
    return {tag: (Literal[name], ...)}
