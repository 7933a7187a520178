"""The ``dlrun`` command line: parse arguments, call the library, print results.

User errors (:class:`~dlrun.errors.DlrunError`) print one message and exit with code 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from dlrun.cli_common import EXIT_DIVERGED
from dlrun.cli_common import EXIT_INTERRUPTED
from dlrun.cli_common import console
from dlrun.cli_common import error_line
from dlrun.cli_common import print_rows
from dlrun.cli_common import user_errors
from dlrun.cli_datasets import datasets_app
from dlrun.cli_output import fold_table
from dlrun.cli_output import metrics_table
from dlrun.cli_output import number_table
from dlrun.cli_output import print_result
from dlrun.cli_output import warn
from dlrun.errors import RunError
from dlrun.exiting import exit_now
from dlrun.training.status import RunStatus

app = typer.Typer(
    name="dlrun",
    help="Run deep-learning experiments described in YAML: train, evaluate, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # docstring paragraphs rewrap to the terminal's width
)
runs_app = typer.Typer(
    help="List and inspect run directories.", no_args_is_help=True, rich_markup_mode="markdown"
)
app.add_typer(runs_app, name="runs")
app.add_typer(datasets_app, name="datasets")


def _print_version(value: bool) -> None:
    if value:
        from dlrun import __version__

        print(f"dlrun {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="print the version"
    ),
) -> None:
    pass


@app.command()
@user_errors
def train(
    config: str = typer.Argument(None, help="experiment YAML file (omit with --resume)"),
    overrides: list[str] = typer.Argument(None, help="dotted overrides, e.g. optimizer.lr=0.01"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where run directories go"),
    resume: Path = typer.Option(
        None, "--resume", help="continue this run directory where it stopped"
    ),
) -> None:
    """Train and evaluate one experiment; prints the run directory as the last line.

    With --resume RUN_DIR, every positional argument is an override (train.epochs=30 extends
    a finished run); overrides that would change what was learned are refused.
    """
    from dlrun.reporting.drawing import drawn_last

    extra = list(overrides or [])
    with drawn_last():  # first: the figure process imports matplotlib while torch loads here
        from dlrun.api import resume_experiment
        from dlrun.api import run_experiment
        from dlrun.config.load import load_config

        if resume is not None:
            overrides = [config, *extra] if config is not None else extra
            if any("=" not in o for o in overrides):
                raise RunError(
                    "with --resume, give only key=value overrides (the config is the run's)"
                )
            command = ["dlrun", "train", "--resume", str(resume), *overrides]
            result = resume_experiment(resume, overrides, console, command)
        else:
            if config is None:
                raise RunError("give a config file, or --resume RUN_DIR")
            cfg = load_config(config, extra)
            command = ["dlrun", "train", config, *extra, "--runs-dir", str(runs_dir)]
            result = run_experiment(cfg, runs_dir, console, command=command)
        print_result(result)
    if result.status is RunStatus.DIVERGED:
        raise typer.Exit(EXIT_DIVERGED)
    if result.status is RunStatus.INTERRUPTED:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
@user_errors
def sweep(
    config: Path = typer.Argument(..., help="experiment YAML file with a sweep section"),
    overrides: list[str] = typer.Argument(None, help="dotted overrides of the base config"),
    workers: int = typer.Option(1, "--workers", "-w", help="worker processes on this machine"),
    storage: str = typer.Option(
        None, "--storage", help="e.g. postgresql://... (default: journal)"
    ),
    study: str = typer.Option(None, "--study", help="study name in shared storage"),
    resume: bool = typer.Option(False, "--resume", help="continue a stopped sweep"),
    runs_dir: Path = typer.Option(
        Path("runs"), "--runs-dir", help="where the sweep directory goes"
    ),
    sweep_file: Path = typer.Option(None, "--sweep-file", help="YAML whose sweep section is used"),
) -> None:
    """Search hyperparameters; every trial is a normal run under `runs/NAME/trial-NNNN`."""
    from dlrun.config.load import load_config
    from dlrun.sweep.report import LEADERBOARD_COLUMNS
    from dlrun.sweep.report import leaderboard_cells
    from dlrun.sweep.report import scoring_command
    from dlrun.sweep.run import run_sweep
    from dlrun.sweep.space import load_sweep_file

    cfg = load_config(config, overrides or [])
    if sweep_file is not None:
        cfg = cfg.model_copy(update={"sweep": load_sweep_file(sweep_file)})
    try:
        result = run_sweep(cfg, runs_dir, workers, storage, study, resume, console)
    except KeyboardInterrupt:
        error_line("interrupted: finished trials are kept; continue with --resume")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if result.requeued:
        console.print(f"re-queued {result.requeued} trial(s) whose worker had stopped")
    names = list(cfg.sweep.parameters) if cfg.sweep else []
    cells = [leaderboard_cells(row, names) for row in result.rows[:10]]
    print_rows((*LEADERBOARD_COLUMNS, *names, "seconds"), cells, f"leaderboard: {cfg.name}")
    if result.unscored():
        warn(f"no trial finished with a score ({', '.join(result.unscored())}): nothing was "
             "chosen; each trial's run directory says why it ended")  # fmt: skip
    scoring = scoring_command(cfg, result.sweep_dir, result.rows)
    if scoring is not None:  # trials never read the test split; this run scores the choice once
        console.print(f"score the best config on the test split: {scoring}",
                      highlight=False, markup=False, soft_wrap=True)  # fmt: skip
    print(result.sweep_dir)


@app.command()
@user_errors
def validate(
    config: Path = typer.Argument(..., help="experiment YAML file"),
    overrides: list[str] = typer.Argument(None, help="dotted overrides"),
    no_data: bool = typer.Option(
        False, "--no-data", help="build from model.input_shape only; skip checking the data"
    ),
) -> None:
    """Check a config and print the model summary without training.

    When the data can be read, the model's outputs are checked against its targets.
    """
    from dlrun.api import validate_experiment
    from dlrun.config.load import load_config
    from dlrun.models.summary import summary_table
    from dlrun.models.summary import totals_line

    cfg = load_config(config, overrides or [])
    validation = validate_experiment(cfg, use_data=not no_data)
    for model in validation.models:
        console.print(summary_table(model, title=cfg.name))
        console.print(totals_line(model), highlight=False)
    if len(validation.models) > 1:
        total = sum(m.total_params for m in validation.models)
        console.print(f"Total params of the {len(validation.models)} models: {total:,}")
    if validation.skipped_data is not None:
        console.print(
            f"not checked against the data ({validation.skipped_data})",
            highlight=False, markup=False, soft_wrap=True,
        )  # fmt: skip
    console.print(f"{config}: config OK")


@app.command()
@user_errors
def augment(
    config: Path = typer.Argument(..., help="experiment YAML file with data.augment"),
    overrides: list[str] = typer.Argument(None, help="dotted overrides"),
    output: Path = typer.Option(Path("augment.png"), "--output", "-o", help="PNG to write"),
    count: int = typer.Option(4, "--count", "-n", min=1, help="training images (rows)"),
    variants: int = typer.Option(4, "--variants", min=1, help="augmented copies of each"),
) -> None:
    """Draw the first training images beside augmented copies (DLwP figure 5.11)."""
    from dlrun.config.load import load_config
    from dlrun.reporting.augment_grid import write_augment_grid

    cfg = load_config(config, overrides or [])
    width, height = write_augment_grid(cfg, output, count, variants)
    print(f"{output} ({width}x{height} pixels)")


@app.command()
def schema() -> None:
    """Print the JSON Schema of the config file format (for editor completion)."""
    from dlrun.config.schema import json_schema

    print(json.dumps(json_schema(), indent=2))


@app.command("eval")
@user_errors
def eval_(run: Path = typer.Argument(..., help="run directory")) -> None:
    """Re-score a finished run: each K-fold model on its validation fold, the run's model on
    the test split."""
    from dlrun.evaluation.aggregate import summarize
    from dlrun.evaluation.aggregate import undefined_warnings
    from dlrun.reuse import evaluate_run

    evaluation = evaluate_run(run)
    if evaluation.folds:
        console.print(fold_table(f"{run}: validation metrics per fold", evaluation.folds))
        scores = summarize([scored.metrics for _, scored in evaluation.folds])
        for warning in undefined_warnings(scores):
            warn(warning)
    if evaluation.test is not None:
        console.print(metrics_table(f"{run}: test metrics", evaluation.test.metrics))
    for note in evaluation.notes:
        console.print(note, highlight=False, soft_wrap=True)


@app.command()
@user_errors
def predict(
    run: Path = typer.Argument(..., help="run directory"),
    input: Path = typer.Option(
        ..., "--input", "-i", help="CSV or .npz file of raw inputs (or .txt texts)"
    ),
    output: Path = typer.Option(..., "--output", "-o", help="CSV file to write"),
    header: bool = typer.Option(
        True,
        "--header/--no-header",
        help="the CSV's first row names the training features (matched by name); "
        "--no-header reads the columns by position",
    ),
    threshold: str = typer.Option(
        None,
        "--threshold",
        help="binary runs: call a sample positive at a score of at least this number, or at "
        "the threshold the run chose on its validation split ('validation'); default: above 0.5",
    ),
) -> None:
    """Predict with a run's model, applying its saved preprocessing."""
    from dlrun.reuse import predict_file

    count = predict_file(run, input, output, header, threshold)
    console.print(f"wrote {count} predictions to {output}", highlight=False, soft_wrap=True)


@runs_app.command("list")
@user_errors
def runs_list(directory: Path = typer.Argument(Path("runs"), help="runs directory")) -> None:
    """Name, date, status, task and key metric of every run, and each sweep directory."""
    from dlrun.runs import RunRow
    from dlrun.runs import list_runs

    print_rows(RunRow.COLUMNS, [row.cells() for row in list_runs(directory)])


@app.command()
@user_errors
def tensorboard(
    directory: Path = typer.Argument(Path("runs"), help="runs or sweep directory"),
    port: int = typer.Option(6006, "--port", min=1, max=65535),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="address to listen on (0.0.0.0: every interface)"
    ),
) -> None:
    """Start TensorBoard on a runs directory (trials and folds appear as sibling runs).

    It listens on this machine only unless --host says otherwise (runs hold configs and data
    paths). Ctrl-C or SIGTERM stops TensorBoard too, rather than leaving it serving, orphaned.
    """
    from dlrun.reporting.tensorboard_server import check_port_free
    from dlrun.reporting.tensorboard_server import serve_tensorboard
    from dlrun.reporting.tensorboard_server import tensorboard_url

    if not directory.is_dir():
        raise RunError(f"no runs directory at {directory}")
    check_port_free(host, port)  # before the address is printed as if it served
    console.print(f"TensorBoard on {directory}: {tensorboard_url(host, port)} (Ctrl-C stops it)")
    code = serve_tensorboard(directory, port, host)
    if code:  # TensorBoard ended by itself, e.g. the port was taken
        raise typer.Exit(code)


@runs_app.command("compare")
@user_errors
def runs_compare(
    runs: list[Path] = typer.Argument(..., help="two or more run directories"),
    output: Path = typer.Option(Path("compare.png"), "--output", "-o", help="PNG to write"),
    keys: str = typer.Option("val_loss,loss", "--keys", help="per-epoch quantities to overlay"),
) -> None:
    """Overlay learning curves of several runs and show how their configs differ."""
    from dlrun.runs import compare_runs

    comparison = compare_runs(runs, output, [k.strip() for k in keys.split(",") if k.strip()])
    # Long keys and run names fold onto more lines instead of ending in "…" at 80 columns:
    # two keys cut to "evaluation.valid…" would read the same.
    diff = Table(title="config differences")
    diff.add_column("key", overflow="fold")
    for name in comparison.names:
        diff.add_column(name, overflow="fold")
    for key, values in comparison.differences.items():
        diff.add_row(key, *("-" if v is None else str(v) for v in values))
    console.print(diff)
    columns = list(dict.fromkeys(k for row in comparison.metrics for k in row))
    rows = [
        [f"{v:.4f}" if isinstance(v, float) else str(v) for v in (row.get(c, "") for c in columns)]
        for row in comparison.metrics
    ]
    console.print(number_table("results", columns[0], columns[1:], rows))  # [0]: the run
    console.print(f"curves: {comparison.figure}")
    if comparison.unrecorded:
        warn(f"no run recorded {', '.join(comparison.unrecorded)} per epoch; not drawn")
    if comparison.losses:
        warn(f"the runs train different losses ({', '.join(comparison.losses)}): their loss "
             "curves and min val_loss are on different scales, not better or worse")  # fmt: skip


def main() -> None:
    """The console script: run the command, then exit without tearing the interpreter down."""
    try:
        app()
    except SystemExit as stop:
        exit_now(stop.code)
    exit_now(0)
