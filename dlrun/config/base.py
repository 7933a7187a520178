"""Base classes shared by every typed config model.

Components (layers, steps, datasets, losses, optimizers, callbacks) declare their parameters as a
nested ``Config`` model derived from :class:`StrictModel`; that model *is* the parameter list, so
defaults live in one place and unknown keys are rejected.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Annotated
from typing import Any
from typing import ClassVar

from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict


class StrictModel(BaseModel):
    """Frozen, typo-proof config model: unknown keys and silent type coercion are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)
    # The parameter a bare value sets in list entries: ``- dropout: 0.5`` is ``{rate: 0.5}``.
    positional: ClassVar[str | None] = None


def _parse_number(value: Any) -> Any:
    """Accept ``1/255``-style fractions and ``1e-3`` strings where a float is expected."""
    if isinstance(value, str):
        try:
            return float(Fraction(value.replace(" ", "")))
        except (ValueError, ZeroDivisionError):
            return value
    return value


Number = Annotated[float, BeforeValidator(_parse_number)]
"""A float that may be written as a fraction such as ``1/255``."""
