"""``dlrun datasets ...``: list, inspect, download, verify and prepare book datasets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from dlrun.cli_common import console
from dlrun.cli_common import error_line
from dlrun.cli_common import user_errors

datasets_app = typer.Typer(
    help="List, download and verify book datasets.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


def human_size(count: int | None) -> str:
    """Bytes in B, KB, MB or GB (powers of 1000), so no small file reads as "0.0 MB"."""
    if count is None:
        return ""
    if count < 1000:
        return f"{count} B"
    value = float(count)
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if round(value, 1) < 1000:
            return f"{value:.1f} {unit}"
    return f"{value / 1000:.1f} TB"


@datasets_app.command("list")
@user_errors
def datasets_list() -> None:
    """Every dataset: size, source, and whether a local copy exists."""
    from dlrun.data.catalog import catalog

    table = Table()
    for column in ("dataset", "size", "source", "local"):
        table.add_column(column)
    for entry in catalog():
        table.add_row(entry.name, human_size(entry.size), entry.source, entry.local)
    console.print(table)


@datasets_app.command("info")
@user_errors
def datasets_info(name: str = typer.Argument(..., help="dataset name")) -> None:
    """What a dataset is and where each of its files comes from and lies."""
    from dlrun.data.catalog import info

    entry = info(name)
    console.print(f"[bold]{entry.name}[/]: {entry.summary}", highlight=False, soft_wrap=True)
    for status in entry.files:
        r = status.resource
        variant = f" (source: {r.variant})" if r.variant else ""
        size = f" {human_size(r.size)}" if r.size is not None else ""
        console.print(f"- {r.name}{variant}{size}\n  url: {r.url}\n  sha256: "
                      f"{r.sha256 or 'not published'}\n  local: {status.path or 'missing'}",
                      highlight=False, soft_wrap=True)  # fmt: skip


@datasets_app.command("download")
@user_errors
def datasets_download(
    name: str = typer.Argument(..., help="dataset name"),
    variant: str = typer.Option(None, "--variant", help="e.g. raw for the IMDB review tarball"),
) -> None:
    """Fetch a dataset's files into the cache (verified; resumes a broken transfer)."""
    from dlrun.data.catalog import download

    for path in download(name, variant):
        print(path)


@datasets_app.command("path")
@user_errors
def datasets_path(name: str = typer.Argument(..., help="dataset name")) -> None:
    """Print the local path of each of a dataset's files; exit 2 if one is missing."""
    from dlrun.data.catalog import info
    from dlrun.data.locate import missing

    entry = info(name)
    if not entry.files:  # bundled or generated: stdout stays empty for scripts, a note says why
        error_line(f"{name} has no files of its own to locate: {entry.summary}")
    for status in entry.files:
        if status.path is None and status.resource.variant == "":
            raise missing(name, status.resource, "no local copy")
        if status.path is not None:
            print(status.path)


@datasets_app.command("verify")
@user_errors
def datasets_verify() -> None:
    """Re-check the SHA-256 of every cached and mirrored dataset file; exit 1 if one is corrupt.

    A file that differs from the registered one but is a known repackaging of the same data
    (e.g. a mirror's re-saved copy) is reported as such and passes.
    """
    from dlrun.data.catalog import verify

    results = verify()
    for result in results:
        console.print(f"{result.dataset}: {result.path}: {result.verdict}", highlight=False,
                      soft_wrap=True)  # fmt: skip
    if not results:
        console.print("no local dataset files to verify")
    corrupt = sum(r.corrupt for r in results)
    if corrupt:
        console.print(f"{corrupt} of {len(results)} files are corrupt or not the published ones")
        raise typer.Exit(1)


@datasets_app.command("subset")
@user_errors
def datasets_subset(
    source: Path = typer.Argument(..., help="the Kaggle Dogs-vs-Cats train folder"),
    target: Path = typer.Argument(..., help="new directory for train/validation/test"),
    train: int = typer.Option(1000, help="images per class for training"),
    validation: int = typer.Option(500, help="images per class for validation"),
    test: int = typer.Option(500, help="images per class for testing"),
) -> None:
    """Build the DLwP 5.2 small Dogs-vs-Cats split (1000/500/500 per class by default)."""
    from dlrun.data.images import build_subset

    counts = build_subset(source, target, {"train": train, "validation": validation, "test": test})
    console.print(f"{target}: {', '.join(f'{n} {c} images' for c, n in counts.items())} in "
                  "train/validation/test; read it with dataset: image_folder")  # fmt: skip


@datasets_app.command("embed")
@user_errors
def datasets_embed(
    path: Path = typer.Option(..., "--path", help="`glove.6B.DIMd.txt` or `glove.6B.zip`"),
    word_index: Path = typer.Option(..., "--word-index", help="JSON word -> rank (Keras form)"),
    num_words: int = typer.Option(10000, "--num-words"),
    dim: int = typer.Option(100, "--dim"),
    index_from: int = typer.Option(3, "--index-from", help="offset of rank 1 in the sequences"),
    output: Path = typer.Option(..., "--output", "-o", help=".npy file for the matrix"),
) -> None:
    """Turn GloVe vectors into an embedding matrix for a vocabulary (DLwP 6.1.3)."""
    import numpy as np

    from dlrun.data.glove import embedding_matrix
    from dlrun.errors import DataError
    from dlrun.reporting.files import atomic_path

    try:
        index = json.loads(word_index.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the word index {word_index}: {exc}") from None
    result = embedding_matrix(path, dim, index, num_words, index_from)
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.save(handle, result.matrix)
    console.print(
        f"{output}: {result.matrix.shape}, vectors for {result.found} of {result.rows} words"
    )
