"""What ``dlrun predict`` reads: a run's raw inputs from a CSV, .npz or text file.

Features are matched by name, never guessed; texts go to runs whose preprocessing starts from
text. Every mistake in the file is one line naming the file (and the line, where there is one).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np

from dlrun.data.files import MISSING_MARKERS
from dlrun.data.files import is_number
from dlrun.data.files import read_npz_arrays
from dlrun.data.files import read_table
from dlrun.data.text import read_text
from dlrun.errors import DataError
from dlrun.preprocess.categorical import category_codes

TEXT_RUNS = (
    "a run reads texts when it was trained on them (data.output: text, then tokenize) "
    "or on word ids it can index them by (imdb with source: raw)"
)


def read_inputs(
    path: Path,
    feature_names: list[str] | None,
    header: bool = True,
    categories: dict[int, list[str]] | None = None,
) -> np.ndarray:
    """Raw inputs from a CSV or an .npz file (see README, "Inputs for dlrun predict").

    A CSV's columns are matched to the training features by the names in its header row, so
    their order does not matter and extra columns (the target) are ignored; ``header=False``
    reads them by position instead, and only when their count is the training features' count.
    Guessing is never safe: a data row taken for a header scrambles every column silently.
    ``categories`` maps the positions of text-valued (categorical) features to the training
    vocabulary their cells are coded by.
    """
    _check_input_file(path)
    if path.suffix.lower() == ".txt":
        raise DataError(f"{path}: a .txt file holds texts, but this run's preprocessing does not "
                        f"start from text; {TEXT_RUNS}")  # fmt: skip
    if path.suffix.lower() == ".npz":
        if not header:
            raise DataError(f"{path}: --no-header applies to CSV files; an .npz has no header")
        if categories:
            coded = [feature_names[j] if feature_names else str(j) for j in categories]
            raise DataError(f"{path}: this run codes text columns ({_listing(coded)}), which "
                            "an .npz cannot hold as trained; give the inputs as a CSV with a "
                            "header row")  # fmt: skip
        return _npz_inputs(path, feature_names)
    names, rows = read_table(str(path), ",", header=header)
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    if header:
        columns = _columns_by_name(path, names, feature_names)
    else:
        columns = _columns_by_position(path, rows[0], feature_names)
    table = np.array(rows, dtype=object)
    first_line = 2 if header else 1
    shown = feature_names or names
    categories = categories or {}
    return np.stack(
        [
            category_codes(table[:, i], categories[j], list(MISSING_MARKERS))
            if j in categories
            else _numbers(table[:, i], shown[j], path, first_line)
            for j, i in enumerate(columns)
        ],
        axis=1,
    )


def read_texts(path: Path, header: bool = True) -> np.ndarray:
    """One text per sample, for a run whose preprocessing starts from text (``tokenize``).

    A ``.txt`` file holds one text per line; a CSV a column named ``text`` in its header row,
    or without a header (``header=False``) only texts, in one column (quoted cells may hold
    commas and line breaks); an ``.npz`` one array of strings.
    """
    _check_input_file(path)
    suffix = path.suffix.lower()
    if suffix in (".txt", ".npz") and not header:
        raise DataError(f"{path}: --no-header applies to CSV files; a {suffix} has no header")
    if suffix == ".txt":
        # lines end at "\n" only: str.splitlines would also split at form feeds and the
        # Unicode line separators pasted web text holds, pairing outputs with the wrong texts
        lines = read_text(path, "utf-8-sig", lower=False).split("\n")
        texts = [line.removesuffix("\r") for line in lines if line.strip()]
        if not texts:
            raise DataError(f"{path}: no texts (every line is empty)")
    elif suffix == ".npz":
        texts = _npz_texts(path)
    else:
        names, rows = read_table(str(path), ",", header=header)
        column = _text_column(path, names, header)
        texts = [row[column] for row in rows]
    out = np.empty(len(texts), dtype=object)
    out[:] = texts
    return out


def holds_texts(path: Path, header: bool = True) -> bool:
    """Whether ``path`` gives texts rather than numbers: a .txt file, a CSV whose header row
    names a ``text`` column, an .npz of strings. A file that cannot be read says so later,
    in the reader's own words."""
    suffix = path.suffix.lower()
    if suffix == ".txt":
        return True
    if not path.is_file() or (suffix != ".npz" and not header):
        return False
    with contextlib.suppress(DataError):
        if suffix == ".npz":
            return _npz_array(path).dtype.kind == "U"
        return "text" in read_table(str(path), ",", header=True)[0]
    return False


def _text_column(path: Path, names: list[str], header: bool) -> int:
    """The texts' column: the one named ``text`` in a header row, or a headerless file's only
    one (a first row is never guessed to be a header: that would drop or keep a text silently)."""
    if header and "text" in names:
        return names.index("text")
    if header:
        raise DataError(
            f"{path}: no column named 'text' in the header row ({_listing(names)}); this run "
            "reads one text per sample: name the texts' column 'text', pass --no-header for "
            "a file of texts in one column without a header row, or give a .txt file of one "
            "text per line"
        )
    if len(names) != 1:
        raise DataError(f"{path}: {len(names)} columns; with --no-header this run reads a file "
                        "of texts in one column")  # fmt: skip
    return 0


def _npz_texts(path: Path) -> list[str]:
    try:
        x = _npz_array(path)
    except DataError as exc:
        if "allow_pickle" not in str(exc):
            raise
        raise DataError(f"{path} holds an object array, which is not read (it could run code "
                        "when loaded); save the texts as a string array: np.savez(path, "
                        "x=np.array(texts, dtype=str))") from None  # fmt: skip
    if not len(x):
        raise DataError(f"{path}: the array holds no texts")
    if x.dtype.kind != "U" or x.ndim != 1:  # object arrays were refused when read
        raise DataError(f"{path}: the array holds {x.dtype} values of shape {list(x.shape)}; "
                        "this run reads one text per sample (a 1-D array of strings)")  # fmt: skip
    return [str(text) for text in x]


def _check_input_file(path: Path) -> None:
    if path.is_dir():
        raise DataError(f"input {path} is a directory; give a CSV, .npz or .txt file")
    if not path.exists():
        raise DataError(f"input file not found: {path}")
    if not path.is_file():  # /dev/null, a pipe: nothing to read rows from twice
        raise DataError(f"input {path} is not a regular file; give a CSV, .npz or .txt file")


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:12])
    return f"{shown}, ... ({len(names)} columns)" if len(names) > 12 else shown


def _columns_by_name(path: Path, header: list[str], features: list[str] | None) -> list[int]:
    if features is None:
        raise DataError(
            f"{path}: this run's training data had no column names to match a header against; "
            "pass --no-header to read the columns by position (and remove the file's header "
            "row, if it has one)"
        )
    missing = [name for name in features if name not in header]
    if len(missing) == len(features):
        raise DataError(
            f"{path}: the first row is not a header naming the training features; expected a "
            f"header row with {_listing(features)} (any order, other columns ignored), or pass "
            "--no-header to read the columns by position"
        )
    if missing:
        raise DataError(
            f"{path}: the header lacks training feature(s) {', '.join(missing)}; expected "
            f"{_listing(features)} (any order, other columns ignored)"
        )
    repeated = [name for name in features if header.count(name) > 1]
    if repeated:
        raise DataError(f"{path}: column '{repeated[0]}' appears more than once in the header")
    return [header.index(name) for name in features]


def _columns_by_position(path: Path, first: list[str], features: list[str] | None) -> list[int]:
    if features is None:
        return list(range(len(first)))  # the shape check after preprocessing still applies
    if set(features) <= {cell.strip() for cell in first}:
        raise DataError(f"{path}: the first row is a header; drop --no-header")
    if len(first) != len(features):
        raise DataError(
            f"{path}: {len(first)} columns, but the model was trained on {len(features)} "
            f"features; with --no-header the columns must be exactly {_listing(features)}, "
            "in this order"
        )
    return list(range(len(features)))


def _numbers(values: np.ndarray, name: str, path: Path, first_line: int) -> np.ndarray:
    """One column parsed to floats; missing markers become NaN."""
    text = np.char.strip(values.astype(str))
    present = ~np.isin(text, MISSING_MARKERS)
    out = np.full(len(text), np.nan)
    try:
        out[present] = text[present].astype(np.float64)
    except ValueError:
        row = next(int(r) for r in np.flatnonzero(present) if not is_number(str(text[r])))
        raise DataError(
            f"{path}, line {first_line + row}: column '{name}' holds '{text[row]}', not a "
            "number; predict reads the raw numeric features the run was trained on"
        ) from None
    return out


def _npz_array(path: Path) -> np.ndarray:
    """The array named ``x``, or the archive's only array."""
    arrays = read_npz_arrays(path)
    keys = list(arrays)
    if "x" not in keys and len(keys) != 1:
        raise DataError(
            f"{path} holds arrays {', '.join(keys) or '(none)'}; predict reads the array "
            "named 'x' (or an archive's only array)"
        )
    return arrays["x" if "x" in keys else keys[0]]


def _npz_inputs(path: Path, features: list[str] | None) -> np.ndarray:
    x = _npz_array(path)
    if x.dtype.kind not in "biuf":
        hint = f"; {TEXT_RUNS}" if x.dtype.kind == "U" else ""
        raise DataError(f"{path}: the array holds {x.dtype} values, not numbers; predict reads "
                        f"the raw numeric features the run was trained on{hint}")  # fmt: skip
    if x.ndim < 2 or not len(x):
        raise DataError(f"{path}: the array has shape {list(x.shape)}; predict reads one row "
                        "per sample (rows first), and at least one row")  # fmt: skip
    if features is not None and x.ndim == 2 and x.shape[1] != len(features):
        raise DataError(
            f"{path}: array has {x.shape[1]} columns, but the model was trained on "
            f"{len(features)} features ({_listing(features)}, in this order)"
        )
    return x
