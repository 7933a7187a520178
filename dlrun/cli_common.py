"""What every dlrun command shares: the consoles and the one-line handling of user errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import typer
from rich.console import Console

from dlrun.errors import DlrunError
from dlrun.errors import Interrupted

console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def user_errors(fn: F) -> F:
    """Turn a DlrunError into one line on stderr and its exit code (2 for a mistake), and
    Ctrl-C anywhere into one line and exit code 130, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted("stopped by the user; nothing was left half-written") from None
        except DlrunError as exc:
            errors.print(
                f"[bold red]{exc.label}:[/] {exc}", highlight=False, markup=True, soft_wrap=True
            )
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]
