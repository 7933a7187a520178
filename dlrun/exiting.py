"""Ending a dlrun process quickly once its work is done."""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn


def exit_now(code: str | int | None) -> NoReturn:
    """End the process as ``sys.exit(code)`` would, less the interpreter's teardown.

    Freeing torch's, scikit-learn's and matplotlib's thousands of modules and objects one by one
    takes about a second on a small machine after the command has finished (a tenth of a second
    for the figure process and its matplotlib). What a normal exit does first still happens, in
    its order: other threads are waited for (``threading``'s own shutdown, which also stops idle
    executor workers), ``atexit`` handlers run (temporary directories, logging, child processes)
    and the standard streams are flushed; then the process ends. Python file objects left open
    are not flushed: dlrun writes its files in ``with`` blocks, and a run closes its TensorBoard
    events files on every way out of it. Under a profiler or tracer (``python -m cProfile``),
    which writes its results at the normal exit, it exits normally.
    """
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    if isinstance(code, str):  # sys.exit("message") prints it and fails
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter calls at exit
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe (dlrun runs list | head)
            stream.flush()
    os._exit(code or 0)
