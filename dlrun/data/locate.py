"""Find a dataset's canonical files on local disk.

Looked up in ``data.path`` (the file itself, or a directory holding it) or in each
``DLRUN_DATA_PATH`` directory under ``<dataset>/``. A missing file is a one-line error that says
where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path

from dlrun.errors import DataError


def data_dirs(dataset: str, explicit: str | None) -> list[Path]:
    if explicit is not None:
        return [Path(explicit).expanduser()]
    roots = [p for p in os.environ.get("DLRUN_DATA_PATH", "").split(os.pathsep) if p]
    return [Path(root).expanduser() / dataset for root in roots]


def find_file(dataset: str, name: str, explicit: str | None) -> Path:
    if explicit is not None and Path(explicit).expanduser().is_file():
        return Path(explicit).expanduser()
    candidates = data_dirs(dataset, explicit)
    for directory in candidates:
        if (directory / name).is_file():
            return directory / name
    searched = ", ".join(str(d) for d in candidates) or "nowhere (DLRUN_DATA_PATH is not set)"
    raise DataError(
        f"dataset {dataset}: file {name} not found (searched {searched}); put it in "
        f"<dir>/{dataset}/ and set DLRUN_DATA_PATH=<dir>, or set data.path to it"
    )
