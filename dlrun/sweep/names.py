"""Names of the files and folders in a sweep directory, shared without importing Optuna.

``dlrun runs list`` recognises a sweep by them, and the trial folders' numbers are what every
table and plot of a sweep shows (Optuna numbers trials from 0, folders from 1).
"""

from __future__ import annotations

import re

JOURNAL = "journal.log"
LEADERBOARD = "leaderboard.csv"
TRIAL_FOLDER = re.compile(r"trial-(\d{4,})")


def trial_folder(number: int) -> str:
    """The folder of Optuna's trial ``number``: ``trial-0001`` for trial 0."""
    return f"trial-{number + 1:04d}"


def folder_number(folder: str, number: int) -> int:
    """The number a sweep shows for a trial: its folder's (a trial queued again after its
    worker died continues the first one's folder), else Optuna's ``number`` plus one."""
    match = TRIAL_FOLDER.fullmatch(folder)
    return int(match.group(1)) if match else number + 1
