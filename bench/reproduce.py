"""Reproduce the books' chapter 2-4 numbers on the datasets found locally; print a markdown table.

Runs each shipped config whose data is present (through ``DLRUN_DATA_PATH``; default
../shared/data), over several seeds where a run is cheap, and compares the mean with the book:

    python bench/reproduce.py [--seeds 3] [--quick] [--output table.md]

``--quick`` runs the subset CI checks (MNIST dense and the IMDB final model, one seed). The exit
status is 1 when a result falls outside its tolerance. Tolerances were set from the spread
measured across seeds on a 2-core CPU (see the README).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Experiment:
    label: str
    config: str
    dataset: str
    variant: str  # which of the dataset's files it reads ("" default, "raw" IMDB reviews)
    split: str  # "test" or "cv"
    metric: str
    book: float | None  # None: no published number; the run must beat its baselines instead
    tolerance: float
    seeds: int  # how many seeds the full table runs
    quick: bool = False
    overrides: tuple[str, ...] = ()


EXPERIMENTS = [
    Experiment("DLwP 2.1 MNIST dense (E1)", "dlwp/ch2_mnist_dense.yaml", "mnist", "", "test",
               "accuracy", 0.9785, 0.006, 3, quick=True),
    Experiment("DLwP 3.4.4 IMDB final, raw reviews (E3)", "dlwp/ch3_imdb_final.yaml", "imdb",
               "raw", "test", "accuracy", 0.8833, 0.008, 3, quick=True),
    Experiment("DLwP 3.6.4 Boston final model (E12)", "dlwp/ch3_boston_final.yaml",
               "boston_housing", "", "test", "mae", 2.55, 0.2, 3),
    Experiment("DLwP 3.6.4 Boston 4-fold validation (E10)", "dlwp/ch3_boston_kfold.yaml",
               "boston_housing", "", "cv", "mae", 2.99, 0.65, 1),
    Experiment("Course module II Pima 12-8-1", "course/pima.yaml", "pima", "", "test",
               "accuracy", None, 0.0, 3),
]  # fmt: skip


def available(experiment: Experiment) -> bool:
    from dlrun.data.catalog import source_class
    from dlrun.data.locate import local_copy

    needed = [
        r for r in source_class(experiment.dataset).resources if r.variant == experiment.variant
    ]
    return all(local_copy(experiment.dataset, r) is not None for r in needed)


def run(experiment: Experiment, seed: int, runs: Path) -> tuple[float, bool]:
    """The experiment's headline number for one seed, and whether it beat its baselines."""
    from dlrun.api import run_experiment
    from dlrun.config.load import load_config

    overrides = [f"seed={seed}", "train.progress=none", *experiment.overrides]
    cfg = load_config(REPO / "configs" / experiment.config, overrides)
    results = run_experiment(cfg, runs).results
    beats = bool(results.get("beats_baseline"))
    if experiment.split == "cv":
        return float(results["cross_validation"]["metrics"][experiment.metric]["mean"]), beats
    return float(results["test"][experiment.metric]), beats


@dataclass(frozen=True)
class Row:
    experiment: Experiment
    values: list[float]
    beats_baselines: bool

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values)

    @property
    def within(self) -> bool:
        if self.experiment.book is None:
            return self.beats_baselines
        return abs(self.mean - self.experiment.book) <= self.experiment.tolerance

    def markdown(self) -> str:
        e = self.experiment
        spread = f" +/- {statistics.stdev(self.values):.4f}" if len(self.values) > 1 else ""
        verdict = "yes" if self.within else "**no**"
        book = "none published" if e.book is None else str(e.book)
        tolerance = "beats baselines" if e.book is None else f"+/- {e.tolerance}"
        return (f"| {e.label} | {e.split} {e.metric} | {book} | {self.mean:.4f}{spread} "
                f"({len(self.values)} seed{'s' if len(self.values) > 1 else ''}) | "
                f"{tolerance} | {verdict} |")  # fmt: skip


def reproduce(quick: bool, seeds: int | None) -> tuple[list[Row], list[str]]:
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for experiment in EXPERIMENTS:
            if quick and not experiment.quick:
                continue
            if not available(experiment):
                skipped.append(experiment.label)
                continue
            count = 1 if quick else seeds or experiment.seeds
            outcomes = [run(experiment, seed, Path(scratch)) for seed in range(count)]
            rows.append(Row(experiment, [v for v, _ in outcomes], all(b for _, b in outcomes)))
    return rows, skipped


def table(rows: list[Row], skipped: list[str]) -> str:
    lines = ["| experiment | metric | book | dlrun mean | tolerance | within |",
             "|---|---|---|---|---|---|", *(row.markdown() for row in rows)]  # fmt: skip
    lines += [f"\nNot run (data not found): {', '.join(skipped)}"] if skipped else []
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per experiment")
    parser.add_argument("--quick", action="store_true", help="the CI subset, one seed")
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    os.environ.setdefault("DLRUN_DATA_PATH", str(REPO.parent / "shared" / "data"))
    rows, skipped = reproduce(args.quick, args.seeds)
    text = table(rows, skipped)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    sys.exit(0 if all(row.within for row in rows) else 1)


if __name__ == "__main__":
    main()
