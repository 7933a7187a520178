"""How a local dataset file compares with its registered SHA-256, and saying so once per run.

Downloads are verified before they enter the cache, but a mirror (``DLRUN_DATA_PATH``) or
``data.path`` file is the user's and is used as given. A user should still learn when such a
file is not the published one, so locating it hashes it (once per process and file version)
and leaves a one-line note for the run's output and report; ``dlrun datasets verify`` uses the
same comparison.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from rich.console import Console

from dlrun.data.download import Resource
from dlrun.data.download import sha256_of


class Match(Enum):
    CANONICAL = "the registered file"
    REPACKAGED = "a known repackaging of the same data"
    DIFFERENT = "not the registered file"
    UNPUBLISHED = "no published checksum"


@dataclass(frozen=True)
class Comparison:
    match: Match
    digest: str | None  # None when there was nothing to compare with
    repackaging: str | None = None  # how a known repackaging differs


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    return sha256_of(Path(path))


def file_digest(path: Path) -> str:
    """SHA-256 of ``path``, hashed once per process for each version of the file."""
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


def compare(resource: Resource, path: Path) -> Comparison:
    if resource.sha256 is None:
        return Comparison(Match.UNPUBLISHED, None)
    digest = file_digest(path)
    if digest == resource.sha256:
        return Comparison(Match.CANONICAL, digest)
    why = resource.repackaging(digest)
    if why is not None:
        return Comparison(Match.REPACKAGED, digest, why)
    return Comparison(Match.DIFFERENT, digest)


def note_for(dataset: str, resource: Resource, path: Path) -> str | None:
    """The line a run prints when ``path`` is not byte for byte the registered file."""
    result = compare(resource, path)
    differs = f"{path} differs from the registered SHA-256 of {dataset}/{resource.name}"
    if result.match is Match.REPACKAGED:
        return f"note: {differs}, as a known repackaging of the same data ({result.repackaging})"
    if result.match is Match.DIFFERENT:
        got, expected = str(result.digest)[:12], str(resource.sha256)[:12]
        return (
            f"warning: {differs} (got {got}..., expected {expected}...); it is used as given, so "
            f"results may not match the published data; the canonical file is at {resource.url}"
        )
    return None


_NOTES: ContextVar[list[str] | None] = ContextVar("dlrun_data_notes", default=None)


@contextlib.contextmanager
def collect_notes() -> Iterator[list[str]]:
    """Gather the notes of the files located inside the block, for the run's output and
    report, instead of printing each on stderr as it comes."""
    notes: list[str] = []
    token = _NOTES.set(notes)
    try:
        yield notes
    finally:
        _NOTES.reset(token)


def check_local_file(dataset: str, resource: Resource, path: Path) -> Path:
    """``path``, after noting (once) any difference from the registered checksum."""
    said = note_for(dataset, resource, path)
    if said is not None:
        note(said)
    return path


def note(text: str) -> None:
    """One line about the data for the run's output and report (once), or for stderr when no
    run collects notes."""
    notes = _NOTES.get()
    if notes is None:
        Console(stderr=True).print(text, highlight=False, markup=False, soft_wrap=True)
    elif text not in notes:
        notes.append(text)
