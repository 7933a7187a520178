"""Arrays derived from a dataset (a parsed table, tokenized reviews), kept in dlrun's cache so
the next run reads them back instead of deriving them again."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from dlrun.errors import OutputError
from dlrun.reporting.files import atomic_path

NamedArrays = dict[str, np.ndarray]
STALE_SECONDS = 600.0  # a temporary entry this old is no write in progress: its writer died


def cached_arrays(
    path: Path,
    names: tuple[str, ...],
    derive: Callable[[], NamedArrays],
    consistent: Callable[[NamedArrays], bool] = lambda arrays: True,
) -> NamedArrays:
    """The arrays ``names`` saved at ``path``, or ``derive()``'s (then saved there).

    The cache never makes a run fail: an entry that cannot be read (absent, damaged, cut
    short, or missing an array or not ``consistent``, as an entry written by hand may be) is
    derived again, and one that cannot be written (a read-only or full disk) is skipped.
    Entries are written whole or not at all, so a killed run leaves none half written.
    """
    with contextlib.suppress(Exception), np.load(path, allow_pickle=False) as saved:
        arrays = {name: saved[name] for name in names}  # one missing: derived again
        if consistent(arrays):
            return arrays
    arrays = derive()
    remove_stale_temporaries(path)
    with (
        contextlib.suppress(OSError, OutputError),
        atomic_path(path, durable=False) as tmp,
        open(tmp, "wb") as handle,
    ):
        np.savez(handle, **arrays)  # type: ignore[arg-type]  # stubs: a name could be allow_pickle
    return arrays


def remove_stale_temporaries(path: Path) -> None:
    """Delete what killed writers of ``path`` left (``.<name>.*.tmp``, as large as the entry).

    A temporary file younger than :data:`STALE_SECONDS` may be another run writing the same
    entry right now, so it is left alone.
    """
    cutoff = time.time() - STALE_SECONDS
    for temporary in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if temporary.stat().st_mtime < cutoff:
                temporary.unlink()
