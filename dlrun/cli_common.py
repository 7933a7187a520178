"""What every dlrun command shares: the consoles, the one-line handling of user errors, and
rows printed for a terminal or a pipe."""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import typer
from rich.console import Console
from rich.table import Table

from dlrun.errors import DlrunError
from dlrun.errors import Interrupted
from dlrun.errors import OutputError
from dlrun.interrupts import terminate_as_interrupt

console = Console()
errors = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

EXIT_DIVERGED = 1
EXIT_INTERRUPTED = 130


def error_line(text: str) -> None:
    """One line on stderr, unwrapped even in a narrow terminal or a log file."""
    errors.print(text, highlight=False, markup=False, soft_wrap=True)


def user_errors(fn: F) -> F:
    """Turn a DlrunError into one line on stderr and its exit code (2 for a mistake), and
    Ctrl-C anywhere into one line and exit code 130, without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            try:
                with terminate_as_interrupt():
                    return fn(*args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted("stopped by the user; nothing was left half-written") from None
            except (OSError, RuntimeError) as exc:  # torch.save wraps the OSError it met
                full = disk_full(exc)
                if full is None:
                    raise
                raise OutputError(
                    f"no space left on the device{full}; free some space and run the command "
                    "again (a run continues where it stopped with dlrun train --resume RUN_DIR)"
                ) from None
        except DlrunError as exc:
            errors.print(
                f"[bold red]{exc.label}:[/] {exc}", highlight=False, markup=True, soft_wrap=True
            )
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def disk_full(exc: BaseException) -> str | None:
    """`` writing <file>`` (or "") when ``exc`` or what caused it is a full disk, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno == errno.ENOSPC:
            return f" writing {seen.filename}" if seen.filename else ""
        seen = seen.__cause__ or seen.__context__
    return None


def print_rows(columns: tuple[str, ...], rows: list[list[str]], title: str = "") -> None:
    """A table on a terminal; elsewhere (a pipe, a file) plain aligned rows, never truncated or
    wrapped, so ``grep`` and ``awk`` see every name whole."""
    if console.is_terminal:
        table = Table(title=title or None)
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        return
    if title:
        print(title)
    widths = [max(len(cell) for cell in cells) for cells in zip(columns, *rows, strict=True)]
    for line in (list(columns), *rows):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
