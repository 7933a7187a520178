"""The Optuna study behind a sweep, and the workers that pull trials from it.

Storage is a journal file in the sweep directory (safe for many processes on one machine) or an
RDB URL such as ``postgresql://...`` shared by machines that all run the same command. Grid
points are enqueued once, as waiting trials; a worker claims one by moving it to running, which
the storage allows for one worker only, so no point runs twice. A trial whose worker died (its
process is gone, or its heartbeat is older than ``STALE_SECONDS``) is marked failed and its
values are queued again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.distributions import check_distribution_compatibility
from optuna.storages import BaseStorage
from optuna.storages import JournalStorage
from optuna.storages import RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial
from optuna.trial import TrialState
from sqlalchemy.exc import IntegrityError
from sqlalchemy.exc import ProgrammingError

from dlrun.config.load import config_from_text
from dlrun.config.load import resolved_yaml
from dlrun.config.resume import SAFE_ON_SWEEP_RESUME
from dlrun.config.resume import check_resume_changes
from dlrun.config.schema import ExperimentConfig
from dlrun.errors import DlrunError
from dlrun.errors import Interrupted
from dlrun.errors import RunError
from dlrun.interrupts import TERMINATED
from dlrun.interrupts import terminate_as_interrupt
from dlrun.sweep.names import JOURNAL
from dlrun.sweep.space import SweepConfig
from dlrun.sweep.trials import direction
from dlrun.sweep.trials import distribution
from dlrun.sweep.trials import grid_points
from dlrun.sweep.trials import run_trial

STALE_SECONDS = 600
POLL_SECONDS = 1.0  # how often the main process reports the workers' finished trials
GRID_FLAG = "grid_enqueued"
# On a trial that stopped with its run (Ctrl-C, a dead worker) and is queued to continue: set
# before it is marked failed, so no progress line reports it as a failure in between.
CONTINUED = "continued"


def open_storage(sweep_dir: Path, url: str | None) -> BaseStorage:
    if url is None:
        sweep_dir.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))
    for attempt in range(5):
        try:
            return RDBStorage(url)
        except (IntegrityError, ProgrammingError) as exc:
            # Workers starting together race to create the schema; the loser retries. A
            # different database error is the user's to fix, at once.
            if not _schema_race(exc) or attempt == 4:
                raise DlrunError(
                    f"cannot open the sweep storage {url}: {_first_line(exc)}"
                ) from None
            time.sleep(1 + attempt)
        except Exception as exc:  # a bad URL, driver or server: SQLAlchemy raises many kinds
            raise DlrunError(f"cannot open the sweep storage {url}: {_first_line(exc)}") from None
    raise AssertionError("unreachable")


def _first_line(exc: Exception) -> str:
    """The error without SQLAlchemy's second line (a link to its documentation)."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _schema_race(exc: Exception) -> bool:
    """Another process created the same table, type or row between our check and insert."""
    text = str(exc).lower()
    return "already exists" in text or "duplicate key" in text or "unique constraint" in text


class _TrialSeeded:
    """A sampler whose random draws for a trial come from the sweep's seed and the trial's
    number: workers that share a seed drew the same values (one trial in two wasted with two
    workers), and now a trial's values no longer depend on which worker takes it."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed=seed)  # type: ignore[call-arg]  # the optuna sampler's
        self.seed = seed

    def _generators(self) -> list[Any]:
        return [self._rng]  # type: ignore[attr-defined]

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        for generator in self._generators():
            generator.rng.seed([self.seed, trial.number])
        super().before_trial(study, trial)  # type: ignore[misc]


class TrialSeededRandom(_TrialSeeded, optuna.samplers.RandomSampler):
    """Random search, drawing each trial's values from (seed, trial number)."""


class TrialSeededTPE(_TrialSeeded, optuna.samplers.TPESampler):
    """TPE, whose own draws and first (random) trials both follow (seed, trial number)."""

    def _generators(self) -> list[Any]:
        return [self._rng, self._random_sampler._rng]  # its first trials draw at random


def _sampler(sweep: SweepConfig) -> optuna.samplers.BaseSampler:
    if sweep.method == "tpe":
        return TrialSeededTPE(sweep.seed)
    return TrialSeededRandom(sweep.seed)  # grid trials are all enqueued


def _pruner(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    if sweep.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def check_study_exists(storage: BaseStorage, name: str) -> None:
    """A resume continues a study its storage holds: under another name (a --study given or
    left out) it would start a new study, whose trials find the first one's folders taken."""
    names = [n for n in optuna.get_all_study_names(storage) if "#grid-" not in n]
    if name not in names:
        held = ", ".join(repr(n) for n in names) or "none"
        hint = f"; pass --study {names[0]}" if len(names) == 1 else ""
        raise RunError(f"nothing to resume: the sweep's storage holds no study {name!r} "
                       f"(it holds {held}){hint}")  # fmt: skip


def open_study(cfg: ExperimentConfig, storage: BaseStorage, name: str) -> optuna.Study:
    sweep = cfg.sweep
    assert sweep is not None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=name, storage=storage, sampler=_sampler(sweep), pruner=_pruner(sweep),
        direction=direction(sweep), load_if_exists=True,
    )  # fmt: skip


BASE_CONFIG = "base_config"  # the study's user attribute holding the config it started with


def check_same_training(study: optuna.Study, cfg: ExperimentConfig) -> None:
    """Every worker, machine and resume of a sweep trains what its first start did, so its
    trials compare: the config is kept in the study at the start and later ones are checked
    against it (its sweep section may change: more trials, a longer timeout)."""
    saved = study.user_attrs.get(BASE_CONFIG)
    if saved is None:
        study.set_user_attr(BASE_CONFIG, resolved_yaml(cfg))
        return
    source = f"the sweep {study.study_name}"
    check_resume_changes(config_from_text(saved, source, []), cfg, source,
                         SAFE_ON_SWEEP_RESUME, "sweep")  # fmt: skip


def check_same_space(study: optuna.Study, cfg: ExperimentConfig) -> None:
    """A swept path keeps its kind of values for the study's life: Optuna refuses, inside a
    worker, another kind (a choice made a range), another log scale or other choices; and
    choices stored by position would show new values for old trials. Ranges may change."""
    saved = study.user_attrs.get(BASE_CONFIG)
    if saved is None or cfg.sweep is None:
        return
    began = config_from_text(saved, f"the sweep {study.study_name}", []).sweep
    for path, space in cfg.sweep.parameters.items():
        before = began.parameters.get(path) if began is not None else None
        if before is None:
            continue
        try:
            check_distribution_compatibility(distribution(before), distribution(space))
            same = before.choice == space.choice
        except ValueError:
            same = False
        if not same:
            raise RunError(
                f"sweep.parameters.{path}: its values changed kind or choices since the sweep "
                "began; a study keeps them, so start a new sweep (another name or --runs-dir) "
                "for other ones, or resume with the ones it began with (a range may grow)"
            )


def enqueue_grid(study: optuna.Study, sweep: SweepConfig, wait_seconds: float = 120) -> None:
    """Queue each grid point once per study, however many processes start at once.

    Creating a study is atomic in every Optuna storage, so of the processes starting with one
    grid, the one that creates the marker study ``<name>#grid-<points' hash>`` enqueues; the
    others wait until it has finished. A sweep resumed with more values in its grid has a new
    hash, and only the points that never had a trial are queued.
    """
    points = grid_points(sweep)
    key = hashlib.sha256(json.dumps(points, sort_keys=True).encode()).hexdigest()[:16]
    flag = f"{GRID_FLAG}-{key}"
    try:
        optuna.create_study(study_name=f"{study.study_name}#grid-{key}", storage=study._storage)
    except optuna.exceptions.DuplicatedStudyError:
        deadline = time.monotonic() + wait_seconds
        while not study.user_attrs.get(flag):
            if time.monotonic() > deadline:
                raise DlrunError(f"the grid of study {study.study_name} was never queued; "
                                 "another sweep process may have died while queuing") from None  # fmt: skip
            time.sleep(0.5)
        return
    had_trials = {_point(_values(t)) for t in study.get_trials(deepcopy=False)}
    for point in points:
        if _point(point) not in had_trials:
            study.enqueue_trial(point, user_attrs={"grid_point": True})
    study.set_user_attr(flag, True)


def _values(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's values; a waiting trial's are those it was queued with."""
    values: dict[str, Any] = trial.params or trial.system_attrs.get("fixed_params", {})
    return values


def _point(values: dict[str, Any]) -> str:
    """Values (a trial's or a grid point's) as comparable text."""
    return json.dumps(values, sort_keys=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def requeue_stale(study: optuna.Study) -> int:
    """Fail running trials whose worker is gone and queue their values again; returns how many."""
    host = socket.gethostname()
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        dead = attrs.get("host") == host and not _alive(int(attrs.get("pid", -1)))
        silent = time.time() - float(attrs.get("heartbeat", time.time())) > STALE_SECONDS
        if not (dead or silent):
            continue
        study._storage.set_trial_user_attr(trial._trial_id, CONTINUED, True)  # before it fails
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        queue_again(study, trial)
        count += 1
    return count


def queue_again(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a stopped trial's values again, to continue its run from its last saved epoch
    (or start it over, when that run cannot continue). A trial stopped before it drew its
    values keeps the ones it was queued with (a grid point)."""
    attrs = trial.user_attrs
    retry = {"grid_point": bool(attrs.get("grid_point")), "retry_of": trial.number}
    if attrs.get("run_dir"):
        retry["resume_dir"] = attrs["run_dir"]
    study.enqueue_trial(_values(trial), user_attrs=retry)


def _claim_waiting(study: optuna.Study) -> optuna.Trial | None:
    """Move one waiting trial to running; the storage lets exactly one worker succeed."""
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            claimed = study._storage.set_trial_state_values(frozen._trial_id, TrialState.RUNNING)
        except RuntimeError:  # someone else finished it meanwhile
            continue
        if claimed:
            return optuna.Trial(study, frozen._trial_id)
    return None


def _finished_or_running(study: optuna.Study) -> int:
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=states))


def work(
    cfg: ExperimentConfig,
    study: optuna.Study,
    sweep_dir: Path,
    on_trial_end: Callable[[], None] | None = None,
) -> None:
    """Pull trials until the queue (grid) or the budget (random, tpe) or the timeout runs out;
    ``on_trial_end`` is called after each trial is told (the progress of an in-process sweep).
    """
    sweep = cfg.sweep
    assert sweep is not None
    started = time.monotonic()
    while sweep.timeout is None or time.monotonic() - started < sweep.timeout:
        requeue_stale(study)  # a dead worker's trial goes back to the queue for the living
        trial = _claim_waiting(study)
        if trial is None:
            if sweep.method == "grid" or _finished_or_running(study) >= sweep.trial_budget():
                return
            trial = study.ask()
        try:
            value = run_trial(cfg, trial, sweep_dir)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except (KeyboardInterrupt, Interrupted):  # Ctrl-C stops the sweep, not just a trial
            trial.set_user_attr(CONTINUED, True)
            study.tell(trial, state=TrialState.FAIL)
            queue_again(study, study._storage.get_trial(trial._trial_id))  # --resume continues it
            raise KeyboardInterrupt from None
        except DlrunError as exc:
            trial.set_user_attr("error", str(exc))
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value if value == value else None,
                       state=TrialState.COMPLETE if value == value else TrialState.FAIL)  # fmt: skip
        if on_trial_end is not None:
            on_trial_end()


def _worker_main(
    config_yaml: str,
    sweep_dir: str,
    url: str | None,
    name: str,
    threads: int = 0,
    on_trial_end: Callable[[], None] | None = None,
) -> None:
    """Take trials until none is left; Ctrl-C propagates (the main process reports it)."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # workers share the cores instead of oversubscribing them
    try:
        cfg = config_from_text(config_yaml, "sweep config", [])
        study = open_study(cfg, open_storage(Path(sweep_dir), url), name)
        work(cfg, study, Path(sweep_dir), on_trial_end)
    finally:
        torch.set_num_threads(previous)


def _child_main(
    config_yaml: str, sweep_dir: str, url: str | None, name: str, threads: int
) -> None:
    """A worker process: Ctrl-C (sent to the whole process group) ends it quietly; the
    main process says the sweep was interrupted."""
    with contextlib.suppress(KeyboardInterrupt), terminate_as_interrupt():
        _worker_main(config_yaml, sweep_dir, url, name, threads)


def run_workers(cfg: ExperimentConfig, sweep_dir: Path, url: str | None, name: str,
                workers: int, poll: Callable[[], None] = lambda: None) -> None:  # fmt: skip
    """Run ``workers`` workers until the sweep is done: this process and ``workers - 1`` others.

    This process has already imported torch and dlrun, so it starts on trials at once while
    the other processes start (about 5 s each on a small machine). ``poll`` reports progress
    after each trial of this process, then every ``POLL_SECONDS`` until the others finish.
    Ctrl-C lets the other workers end their trial (they get it too) and is raised here; any
    other failure here stops them at once.
    """
    text = resolved_yaml(cfg)
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // workers)
    processes = [
        context.Process(target=_child_main, args=(text, str(sweep_dir), url, name, threads))
        for _ in range(workers - 1)
    ]
    for process in processes:
        process.start()
    try:
        _worker_main(text, str(sweep_dir), url, name, threads if processes else 0, poll)
        for process in processes:
            while process.is_alive():
                process.join(timeout=POLL_SECONDS)
                poll()
        poll()
    except KeyboardInterrupt:
        for process in processes:
            if TERMINATED.is_set() and process.pid is not None and process.is_alive():
                os.kill(process.pid, signal.SIGINT)  # Ctrl-C reached them too; SIGTERM did not
            process.join(timeout=30)
        raise
    except BaseException:
        for process in processes:
            process.terminate()
            process.join()
        raise
