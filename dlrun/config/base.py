"""Base classes shared by every typed config model.

Components (layers, steps, datasets, losses, optimizers, callbacks) declare their parameters as a
nested ``Config`` model derived from :class:`StrictModel`; that model *is* the parameter list, so
defaults live in one place and unknown keys are rejected.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Annotated
from typing import Any
from typing import ClassVar

from pydantic import AfterValidator
from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationInfo


class StrictModel(BaseModel):
    """Frozen, typo-proof config model: unknown keys and silent type coercion are errors."""

    # defer_build: a model's validator is built when first used, not at import; the registries
    # declare about 140 config models and building each one's at import cost a tenth of a
    # second of every command, while a config validates through one top-level validator.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)
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


Number = Annotated[float, BeforeValidator(_parse_number), Field(allow_inf_nan=False)]
"""A float that may be written as a fraction such as ``1/255``; never infinite or NaN (YAML's
``.inf`` would pass every positive bound, then wreck the run)."""


CONFIG_DIR = "config_dir"  # the validation context key holding the config file's folder


def _against_config_dir(value: str, info: ValidationInfo) -> str:
    """A relative path in a config file means relative to that file, wherever dlrun runs."""
    folder = (info.context or {}).get(CONFIG_DIR)
    if folder is None or Path(value).expanduser().is_absolute():
        return value
    return str((Path(folder) / value).resolve())


FilePath = Annotated[str, AfterValidator(_against_config_dir)]
"""A file or folder named in a config: relative to the config file (absolute in the saved
copy of the config, so a run's files are found again from any working directory)."""
