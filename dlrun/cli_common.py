"""What every dlrun command shares: the consoles and the one-line handling of user errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import typer
from rich.console import Console

from dlrun.errors import DlrunError

console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def user_errors(fn: F) -> F:
    """Turn a DlrunError into one line on stderr and exit code 2, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DlrunError as exc:
            errors.print(
                f"[bold red]error:[/] {exc}", highlight=False, markup=True, soft_wrap=True
            )
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
