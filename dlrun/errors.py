"""Domain exceptions.

User mistakes raise a subclass of :class:`DlrunError`; the CLI prints its message on one line and
exits with code 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


class DlrunError(Exception):
    """A problem the user can fix (bad config, missing file, unreadable data)."""

    exit_code = 2
    label = "error"  # how the CLI's one line starts


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config: where it is, what is wrong, and how to fix it."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        line = f"line {self.line}" if self.line is not None else ""
        if not self.path:
            return f"{line}: {self.message}" if line else self.message
        return f"{self.path} ({line}): {self.message}" if line else f"{self.path}: {self.message}"


class ConfigError(DlrunError, ValueError):
    """Every problem found in one config, collected before raising."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None) -> None:
        self.issues = issues
        self.source = source
        head = f"{source}: " if source else ""
        if len(issues) == 1:
            text = f"{head}{issues[0]}"
        else:
            lines = "\n".join(f"  - {issue}" for issue in issues)
            text = f"{head}{len(issues)} problems in the config:\n{lines}"
        super().__init__(text)


class RegistryError(DlrunError, KeyError):
    """An unknown name was looked up in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotFittedError(RuntimeError):
    """A preprocessing step was used before ``fit``; always a programming error."""


class DataError(DlrunError):
    """A dataset could not be read or does not match what the config expects."""


class DataNotHere(DataError):
    """A registered dataset's file is on no local path and was not downloaded: the data may be
    fine elsewhere (``validate`` then checks without it), unlike a file that is damaged."""


class RunError(DlrunError):
    """A run directory is missing, incomplete or unreadable."""


class OutputError(DlrunError):
    """Output cannot go where it was asked to: a file or directory that cannot be written
    there (a directory in the way, a file where a directory should be, no permission, a full
    disk), or a port another server holds."""


class Interrupted(DlrunError):
    """The user pressed Ctrl-C outside the training loop (which stops cleanly by itself)."""

    exit_code = 130
    label = "interrupted"
