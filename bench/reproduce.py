"""Reproduce the books' numbers on the datasets found locally; print a markdown table.

Runs each shipped config whose data is present (through ``DLRUN_DATA_PATH``; default
../shared/data), over several seeds where a run is cheap, and compares the mean with the book:

    python bench/reproduce.py [--seeds 3] [--quick] [--only "Beginners ch. 6"] [--output t.md]

``--quick`` runs the subset CI checks (MNIST dense, IMDB final, Boston final and the ch. 6
spirals network, one seed each). The exit
status is 1 when a result falls outside its tolerance. A tolerance is the book's std where the
book gives one, else set from the spread measured across seeds on a 2-core CPU (see the
README). Books that only describe a curve ("starts overfitting after four epochs") are held to
the epoch of the best validation value; experiments without a number must beat their baselines.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Experiment:
    label: str
    config: str
    dataset: str
    variant: str  # which of the dataset's files it reads ("" default, "raw" IMDB reviews)
    split: str  # a key of READERS: where in the run the number is read
    metric: str
    book: float | None  # None: no published number; the run must beat its baselines instead
    tolerance: float
    seeds: int  # how many seeds the full table runs
    quick: bool = False
    overrides: tuple[str, ...] = ()
    basis: str = "seeds"  # where the tolerance comes from: "book std" or "seeds" (our spread)


# Stacks g and h of the spirals search (Beginners E18), as `model.layers` overrides.
_RELU, _SIG = "{dense: {units: 16, activation: relu}}", "{dense: {units: 16, activation: sigmoid}}"
_OUT = "{dense: {units: 2, activation: sigmoid}}"
STACK_G = f"model.layers=[{_RELU}, {_RELU}, {_SIG}, {_OUT}]"
STACK_H = f"model.layers=[{_RELU}, {_RELU}, {_RELU}, {_OUT}]"

EXPERIMENTS = [
    Experiment("DLwP 2.1 MNIST dense (E1)", "dlwp/ch2_mnist_dense.yaml", "mnist", "", "test",
               "accuracy", 0.9785, 0.006, 3, quick=True),
    Experiment("DLwP 3.4.3 IMDB validation peak (E2)", "dlwp/ch3_imdb.yaml", "imdb", "raw",
               "best_epoch", "val_loss", 4, 1, 3),
    Experiment("DLwP 3.4.4 IMDB final, raw reviews (E3)", "dlwp/ch3_imdb_final.yaml", "imdb",
               "raw", "test", "accuracy", 0.8833, 0.008, 3, quick=True),
    Experiment("DLwP 3.5.4 Reuters validation peak (E5)", "dlwp/ch3_reuters.yaml", "reuters",
               "", "best_epoch", "val_loss", 9, 2, 3),
    Experiment("DLwP 3.5.5 Reuters final (E6)", "dlwp/ch3_reuters_final.yaml", "reuters", "",
               "test", "accuracy", 0.797, 0.015, 3),
    Experiment("DLwP 3.5.6 Reuters integer labels (E7)", "dlwp/ch3_reuters_sparse_labels.yaml",
               "reuters", "", "test", "accuracy", 0.797, 0.015, 3),
    Experiment("DLwP 3.5.7 Reuters bottleneck (E8)", "dlwp/ch3_reuters_bottleneck.yaml",
               "reuters", "", "best_value", "val_accuracy", 0.71, 0.03, 3),
    Experiment("DLwP 3.6.4 Boston 4-fold validation (E10)", "dlwp/ch3_boston_kfold.yaml",
               "boston_housing", "", "cv", "mae", 2.99, 0.65, 3),
    Experiment("DLwP 3.6.4 Boston 500-epoch curve (E11)", "dlwp/ch3_boston_curves.yaml",
               "boston_housing", "", "cv_best_epoch", "val_mae", 80, 40, 1),
    Experiment("DLwP 3.6.4 Boston final model (E12)", "dlwp/ch3_boston_final.yaml",
               "boston_housing", "", "test", "mae", 2.55, 0.2, 3, quick=True),
    Experiment("DLwP 4.4.1 IMDB original, overfitting starts (E13)",
               "dlwp/ch4_imdb_original.yaml", "imdb", "raw", "best_epoch", "val_loss", 4, 1, 3),
    Experiment("DLwP 4.4.1 IMDB smaller, overfitting starts (E13)",
               "dlwp/ch4_imdb_smaller.yaml", "imdb", "raw", "best_epoch", "val_loss", 6, 2, 3),
    Experiment("DLwP 4.4.1 IMDB bigger, overfitting starts (E14)", "dlwp/ch4_imdb_bigger.yaml",
               "imdb", "raw", "best_epoch", "val_loss", 1, 1, 3),
    Experiment("DLwP 4.4.2 IMDB L2 (E15)", "dlwp/ch4_imdb_l2.yaml", "imdb", "raw", "test",
               "accuracy", None, 0.0, 3),
    Experiment("DLwP 4.4.3 IMDB dropout (E16)", "dlwp/ch4_imdb_dropout.yaml", "imdb", "raw",
               "test", "accuracy", None, 0.0, 3),
    Experiment("Beginners ch. 4 linear regression, 3-fold (E11)", "beginners/ch4_cv_regression.yaml",
               "linear", "", "cv", "r2", 0.935, 0.055, 3, overrides=("data.noise=0.13",),
               basis="book std"),
    Experiment("Beginners ch. 4 five hidden layers, 10-fold (E12)",
               "beginners/ch4_layers_cv.yaml", "classification", "", "cv", "ber", 0.067, 0.05,
               3, basis="book std"),
    Experiment("Beginners ch. 6 2-3-2 sigmoid net (E17)", "beginners/ch6_spirals.yaml",
               "spirals", "", "train", "accuracy", 0.62, 0.04, 3, quick=True),
    Experiment("Beginners ch. 6 search, stack g (E18)", "beginners/ch6_spirals_search.yaml",
               "spirals", "", "cv", "binary_accuracy", 0.9175, 0.143, 3, overrides=(STACK_G,),
               basis="book std"),
    Experiment("Beginners ch. 6 search, stack h (E18)", "beginners/ch6_spirals_search.yaml",
               "spirals", "", "cv", "binary_accuracy", 0.905, 0.094, 3, overrides=(STACK_H,),
               basis="book std"),
    Experiment("Beginners ch. 7 toy autoencoder, trained vector (E19)",
               "beginners/ch7_bits_autoencoder.yaml", "bits", "", "train", "loss", 0.0066,
               0.003, 3),
    Experiment("Beginners ch. 7 toy autoencoder, inverted vector (E19)",
               "beginners/ch7_bits_autoencoder.yaml", "bits", "", "test", "loss", 0.8445, 0.03,
               3),
    Experiment("Beginners ch. 13 SimpleRNN, Youden threshold (E38)",
               "beginners/ch13_imdb_simple_rnn.yaml", "imdb", "raw", "threshold",
               "balanced_accuracy", 0.8382, 0.02, 3),
    Experiment("Beginners ch. 13 LSTM, Youden threshold (E39)", "beginners/ch13_imdb_lstm.yaml",
               "imdb", "raw", "threshold", "balanced_accuracy", 0.8544, 0.02, 3),
    Experiment("Course module II Pima 12-8-1 (003-1)", "course/pima.yaml", "pima", "", "test",
               "accuracy", None, 0.0, 3),
]  # fmt: skip


def _last_training_value(run_dir: Path, metric: str) -> float:
    """The metric on the training data at the last epoch (what a book quotes when it trains
    without holding anything out)."""
    with (run_dir / "metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["phase"] == "fit"]
    return float(rows[-1][metric])


def _at_validation_threshold(run_dir: Path, metric: str) -> float:
    """The test split's metric at Youden's threshold chosen on the validation split (the book
    chose it on the test split; dlrun's report shows that figure too)."""
    from dlrun.evaluation.thresholds import validation_row

    row = validation_row(run_dir)
    if row is None or row["in_sample"]:
        raise RuntimeError(f"{run_dir} chose no threshold on a validation split of its own")
    return float(str(row[metric]))


READERS: dict[str, Callable[[dict[str, Any], Path, str], float]] = {
    "test": lambda results, _, metric: float(results["test"][metric]),
    "cv": lambda results, _, metric: float(results["cross_validation"]["metrics"][metric]["mean"]),
    "best_epoch": lambda results, _, metric: float(results["validation"]["best_epoch"]),
    "best_value": lambda results, _, metric: float(results["validation"]["best_value"]),
    "cv_best_epoch": lambda results, _, metric: float(results["cross_validation"]["best_epoch"]),
    "train": lambda _, run_dir, metric: _last_training_value(run_dir, metric),
    "threshold": lambda _, run_dir, metric: _at_validation_threshold(run_dir, metric),
}
"""Where an experiment's number is read: the test split, the cross-validated mean, the epoch
of the best validation value (the books' "starts overfitting after N epochs"), the test split
at the decision threshold chosen on validation, ..."""


def available(experiment: Experiment) -> bool:
    from dlrun.data.catalog import source_class
    from dlrun.data.locate import local_copy

    needed = [
        r for r in source_class(experiment.dataset).resources if r.variant == experiment.variant
    ]
    return all(local_copy(experiment.dataset, r) is not None for r in needed)


@dataclass(frozen=True)
class Outcome:
    value: float
    beats_baselines: bool
    seconds: float


def run(experiment: Experiment, seed: int, runs: Path) -> Outcome:
    """The experiment's headline number for one seed, and whether it beat its baselines."""
    from dlrun.api import run_experiment
    from dlrun.config.load import load_config

    overrides = [f"seed={seed}", "train.progress=none", *experiment.overrides]
    cfg = load_config(REPO / "configs" / experiment.config, overrides)
    started = time.perf_counter()
    result = run_experiment(cfg, runs)
    seconds = time.perf_counter() - started
    results = result.results
    beats = results.get("beats_baseline")
    if beats is None and results.get("cross_validation"):
        beats = (results["cross_validation"].get("baseline_verdict") or {}).get("beats")
    value = READERS[experiment.split](results, result.run_dir, experiment.metric)
    return Outcome(value, bool(beats), seconds)


@dataclass(frozen=True)
class Row:
    experiment: Experiment
    outcomes: list[Outcome]

    @property
    def values(self) -> list[float]:
        return [o.value for o in self.outcomes]

    @property
    def beats_baselines(self) -> bool:
        return all(o.beats_baselines for o in self.outcomes)

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
        book = "none published" if e.book is None else f"{e.book:g}"
        basis = "" if e.basis == "seeds" else f" ({e.basis})"
        tolerance = "beats baselines" if e.book is None else f"+/- {e.tolerance:g}{basis}"
        seconds = statistics.fmean(o.seconds for o in self.outcomes)
        return (f"| {e.label} | {e.split.replace('_', ' ')} {e.metric} | {book} | "
                f"{self.mean:.4f}{spread} ({len(self.values)} seed"
                f"{'s' if len(self.values) > 1 else ''}) | {tolerance} | {verdict} | "
                f"{seconds:.0f} |")  # fmt: skip


def reproduce(quick: bool, seeds: int | None, only: str = "") -> tuple[list[Row], list[str]]:
    rows, skipped = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for experiment in EXPERIMENTS:
            if (quick and not experiment.quick) or only.lower() not in experiment.label.lower():
                continue
            if not available(experiment):
                skipped.append(experiment.label)
                continue
            count = 1 if quick else seeds or experiment.seeds
            outcomes = [run(experiment, seed, Path(scratch)) for seed in range(count)]
            rows.append(Row(experiment, outcomes))
            print(rows[-1].markdown(), file=sys.stderr, flush=True)  # progress on long runs
    return rows, skipped


def table(rows: list[Row], skipped: list[str]) -> str:
    lines = ["| experiment | metric | book | dlrun mean | tolerance | within | s per seed |",
             "|---|---|---|---|---|---|---|", *(row.markdown() for row in rows)]  # fmt: skip
    lines += [f"\nNot run (data not found): {', '.join(skipped)}"] if skipped else []
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=None, help="seeds per experiment")
    parser.add_argument("--quick", action="store_true", help="the CI subset, one seed")
    parser.add_argument("--output", type=Path, default=None, help="also write the table here")
    parser.add_argument("--only", default="", help="experiments whose label contains this")
    args = parser.parse_args()
    os.environ.setdefault("DLRUN_DATA_PATH", str(REPO.parent / "shared" / "data"))
    rows, skipped = reproduce(args.quick, args.seeds, args.only)
    text = table(rows, skipped)
    print(text)
    if args.output is not None:
        args.output.write_text(text + "\n")
    sys.exit(0 if all(row.within for row in rows) else 1)


if __name__ == "__main__":
    main()
