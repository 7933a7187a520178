"""Components from outside dlrun: tasks, layers, datasets ... registered by user modules.

A module registers what it defines when it is imported (``@TASKS.register("autoencoder")``).
dlrun imports, right after its own components and before the config schema is built from the
registries, every module named in ``DLRUN_PLUGINS`` (comma-separated, importable from the
current directory or ``PYTHONPATH``) and every entry point of the ``dlrun.plugins`` group, so
installed packages can add components too. Sweep workers, which start as new processes, import
them the same way. A plugin module imports the registries it adds to (``dlrun.tasks.base``,
``dlrun.models.layers``, ...), not ``dlrun.config``, which is still being built then.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

from dlrun.errors import DlrunError

ENVIRONMENT = "DLRUN_PLUGINS"
ENTRY_POINTS = "dlrun.plugins"


def load_plugins() -> None:
    for entry in importlib.metadata.entry_points(group=ENTRY_POINTS):
        entry.load()
    names = [n.strip() for n in os.environ.get(ENVIRONMENT, "").split(",") if n.strip()]
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # `DLRUN_PLUGINS=my_tasks dlrun train ...` from here
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise DlrunError(
                f"cannot import the plugin module '{name}' ({ENVIRONMENT}): {exc}"
            ) from None
