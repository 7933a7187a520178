"""``dlrun sweep``: check the space, open the study, run the workers, write the report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from dlrun.config.schema import ExperimentConfig
from dlrun.errors import ConfigError
from dlrun.errors import ConfigIssue
from dlrun.errors import RunError
from dlrun.sweep.names import JOURNAL
from dlrun.sweep.progress import SweepProgress
from dlrun.sweep.report import LeaderRow
from dlrun.sweep.report import best_row
from dlrun.sweep.report import write_sweep_files
from dlrun.sweep.study import check_same_space
from dlrun.sweep.study import check_same_training
from dlrun.sweep.study import check_study_exists
from dlrun.sweep.study import enqueue_grid
from dlrun.sweep.study import open_storage
from dlrun.sweep.study import open_study
from dlrun.sweep.study import requeue_stale
from dlrun.sweep.study import run_workers
from dlrun.sweep.trials import check_space


@dataclass(frozen=True)
class SweepResult:
    sweep_dir: Path
    rows: list[LeaderRow]
    requeued: int

    def unscored(self) -> list[str]:
        """How the trials ended when none finished with a score (nothing was chosen), else []."""
        if not self.rows or best_row(self.rows) is not None:
            return []
        return sorted({row.state.said for row in self.rows})


def run_sweep(
    cfg: ExperimentConfig,
    runs_dir: Path = Path("runs"),
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    resume: bool = False,
    console: Console | None = None,
) -> SweepResult:
    """Run the sweep of ``cfg`` to its end; ``console`` shows its progress (a line per finished
    trial, a live leaderboard on a terminal), none by default."""
    if cfg.sweep is None:
        raise ConfigError([ConfigIssue("sweep", "this config has no sweep section")])
    if workers < 1:
        raise RunError("--workers must be at least 1")
    check_space(cfg, with_data=True)  # every setting and value, before anything is created
    sweep_dir = runs_dir / cfg.name
    journal_exists = (sweep_dir / JOURNAL).exists()
    if storage is None and journal_exists and not resume:
        raise RunError(f"{sweep_dir} already holds a sweep; add --resume to continue it")
    if resume and storage is None and not journal_exists:
        raise RunError(f"nothing to resume: no sweep in {sweep_dir}")
    name = study_name or cfg.name
    opened = open_storage(sweep_dir, storage)
    if resume:
        check_study_exists(opened, name)
    study = open_study(cfg, opened, name)
    sweep_dir.mkdir(parents=True, exist_ok=True)  # only once the storage has opened
    check_same_training(study, cfg)
    check_same_space(study, cfg)
    requeued = requeue_stale(study)
    if cfg.sweep.method == "grid":
        enqueue_grid(study, cfg.sweep)
    with SweepProgress(cfg, study, console or Console(quiet=True)) as progress:
        run_workers(cfg, sweep_dir, storage, name, workers, progress.poll)
    return SweepResult(sweep_dir, write_sweep_files(cfg, study, sweep_dir), requeued)
