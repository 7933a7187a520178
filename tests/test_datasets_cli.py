"""``dlrun datasets``: offline downloads, presence of variants, verify verdicts, descriptions and
sizes; and data files that differ from their registered checksum or carry pickled code."""

from __future__ import annotations

import hashlib
import inspect
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.cli_datasets import human_size
from dlrun.data.base import DATASETS
from dlrun.data.catalog import summary_of
from dlrun.data.checksums import collect_notes
from dlrun.data.download import Resource
from dlrun.data.download import cached_path
from dlrun.data.keras_npz import BostonHousing
from dlrun.data.locate import locate
from dlrun.data.word_sequences import Imdb
from tests.conftest import tiny_config
from tests.http_fixture import FileServer

runner = CliRunner()
WriteConfig = Callable[[dict[str, Any]], Path]
BOSTON = "boston_housing.npz"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _boston_npz(rows: int = 20) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, x=np.arange(rows * 13, dtype=np.float64).reshape(rows, 13),
             y=np.arange(rows, dtype=np.float64))  # fmt: skip
    return buffer.getvalue()


def _use_boston(monkeypatch: pytest.MonkeyPatch, resource: Resource) -> None:
    monkeypatch.setattr(BostonHousing, "resources", (resource,))


def _mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dataset: str, name: str,
            body: bytes) -> Path:  # fmt: skip
    folder = tmp_path / "mirror" / dataset
    folder.mkdir(parents=True)
    (folder / name).write_bytes(body)
    monkeypatch.setenv("DLRUN_DATA_PATH", str(tmp_path / "mirror"))
    return folder / name


def _error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


# Item 5: download offline or without network is one line, exit 2.


def test_download_with_dlrun_offline_refuses_without_trying_the_network(
    file_server: FileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    file_server.files[BOSTON] = b"payload"
    resource = Resource(BOSTON, file_server.url(BOSTON), _sha(b"payload"), 7)
    _use_boston(monkeypatch, resource)  # DLRUN_OFFLINE=1 comes from conftest
    result = runner.invoke(app, ["datasets", "download", "boston_housing"])
    assert result.exit_code == 2
    assert _error_line(result.output) == (
        f"error: dataset boston_housing: file {BOSTON} not found and not downloadable "
        f"(DLRUN_OFFLINE is set); put it in <dir>/boston_housing/ and set DLRUN_DATA_PATH=<dir>, "
        f"or set data.path to it; it is published at {resource.url}"
    )
    assert file_server.requests == [] and not cached_path("boston_housing", resource).exists()


def test_download_without_network_is_one_line_exit_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLRUN_OFFLINE")
    url = f"http://127.0.0.1:9/{BOSTON}"  # the discard port: nothing listens
    _use_boston(monkeypatch, Resource(BOSTON, url, None))
    result = runner.invoke(app, ["datasets", "download", "boston_housing"])
    assert result.exit_code == 2
    line = _error_line(result.output)
    assert line.startswith(f"error: dataset boston_housing: file {BOSTON} not found and not "
                           f"downloadable (cannot reach {url}: ")  # fmt: skip
    assert line.endswith(f"set data.path to it; it is published at {url}")


def test_download_prints_a_mirror_copy_even_when_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = _mirror(tmp_path, monkeypatch, "boston_housing", BOSTON, b"local")
    _use_boston(monkeypatch, Resource(BOSTON, "https://example.org/b.npz", _sha(b"local")))
    result = runner.invoke(app, ["datasets", "download", "boston_housing"])
    assert result.exit_code == 0 and result.output.strip() == str(copy)


# Item 14 (part): the raw IMDB tarball in a mirror shows as present.


def test_list_shows_the_raw_imdb_tarball_of_a_mirror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _mirror(tmp_path, monkeypatch, "imdb", "aclImdb_v1.tar.gz", b"reviews")
    listed = runner.invoke(app, ["datasets", "list"], terminal_width=200)
    (row,) = [line for line in listed.output.splitlines() if " imdb " in line]
    assert "missing; raw: mirror" in row
    (cifar,) = [line for line in listed.output.splitlines() if " cifar10 " in line]
    assert cifar.split("│")[4].strip() == "missing"


# Item 16: verify verdicts, descriptions, sizes.


def test_verify_tells_a_known_repackaging_from_a_corrupt_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canonical, resaved = _boston_npz(), _boston_npz() + b"\0"
    resource = Resource(BOSTON, "https://example.org/boston_housing.npz", _sha(canonical),
                        repackagings=((_sha(resaved), "re-saved by a newer NumPy"),))  # fmt: skip
    _use_boston(monkeypatch, resource)
    copy = _mirror(tmp_path, monkeypatch, "boston_housing", BOSTON, resaved)
    same = runner.invoke(app, ["datasets", "verify"], terminal_width=400)
    assert same.exit_code == 0, same.output
    assert f"boston_housing: {copy}: ok: a known different packaging of the same data " \
           "(re-saved by a newer NumPy)" in same.output  # fmt: skip
    copy.write_bytes(b"truncated")
    corrupt = runner.invoke(app, ["datasets", "verify"], terminal_width=400)
    assert corrupt.exit_code == 1
    assert (f"boston_housing: {copy}: CORRUPT or a different file (SHA-256 {_sha(b'truncated')}, "
            f"registered {resource.sha256}, and no known repackaging of it): the mirror copy is "
            f"kept; replace it with {resource.url}") in corrupt.output  # fmt: skip
    assert "1 of 1 files are corrupt or not the published ones" in corrupt.output
    assert copy.read_bytes() == b"truncated"  # the user's file is never deleted
    copy.write_bytes(canonical)
    assert runner.invoke(app, ["datasets", "verify"], terminal_width=400).output.strip() == (
        f"boston_housing: {copy}: ok"
    )


def test_verify_deletes_a_corrupt_cached_file_and_says_how_to_fetch_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resource = Resource("aclImdb_v1.tar.gz", "https://example.org/a.tar.gz", _sha(b"good"),
                        variant="raw")  # fmt: skip
    monkeypatch.setattr(Imdb, "resources", (resource,))
    cached = cached_path("imdb", resource)
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"bad")
    result = runner.invoke(app, ["datasets", "verify"], terminal_width=400)
    assert result.exit_code == 1 and not cached.exists()
    assert (f"CORRUPT (SHA-256 {_sha(b'bad')}, registered {_sha(b'good')}): deleted from the "
            "cache; dlrun datasets download imdb --variant raw fetches it again") in result.output  # fmt: skip


@pytest.mark.parametrize("name", sorted(DATASETS.names()))
def test_every_dataset_describes_itself_not_its_base_class(name: str) -> None:
    source = DATASETS.get(name)
    own = vars(source).get("__doc__")
    assert own and own.strip(), f"{name}: {source.__qualname__} has no docstring of its own"
    inherited = {inspect.getdoc(base) for base in source.__mro__[1:]}
    assert inspect.getdoc(source) not in inherited
    assert summary_of(source) == inspect.cleandoc(own).split("\n\n")[0].replace("\n", " ")


def test_info_fashion_mnist_prints_its_own_description() -> None:
    result = runner.invoke(app, ["datasets", "info", "fashion_mnist"], terminal_width=300)
    assert result.exit_code == 0 and "ABC" not in result.output
    assert result.output.splitlines()[0] == (
        "fashion_mnist: 70,000 28x28 grey Zalando clothing images in 10 classes: 60,000 train "
        "/ 10,000 test."
    )
    assert "- train-images-idx3-ubyte.gz\n" in result.output  # no size registered, none printed


@pytest.mark.parametrize(
    ("count", "text"),
    [(None, ""), (0, "0 B"), (999, "999 B"), (4542, "4.5 KB"), (23278, "23.3 KB"),
     (999_960, "1.0 MB"), (170_498_071, "170.5 MB"), (862_182_613, "862.2 MB"),
     (1_500_000_000, "1.5 GB")],
)  # fmt: skip
def test_sizes_are_human_readable(count: int | None, text: str) -> None:
    assert human_size(count) == text


def test_list_prints_small_files_in_kilobytes() -> None:
    listed = runner.invoke(app, ["datasets", "list"], terminal_width=200)
    assert "0.0 MB" not in listed.output
    (pima,) = [line for line in listed.output.splitlines() if " pima " in line]
    assert pima.split("│")[2].strip() == "23.3 KB"


# Item 17: a data file never runs code; a file that is not the registered one is said once.


class _Payload:
    """Pickles as a call to ``os.mkdir(marker)``: proof of code running when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _tampered_imdb(folder: Path, marker: Path) -> Path:
    evil = np.empty(2, dtype=object)
    evil[:] = [[1, 2], _Payload(marker)]
    path = folder / "imdb.npz"
    np.savez(path, x_train=evil, y_train=np.array([0, 1]), x_test=evil, y_test=np.array([1, 0]))
    return path


def test_keras_npz_with_a_reduce_payload_is_refused_in_one_line(
    tmp_path: Path, write_config: WriteConfig
) -> None:
    marker = tmp_path / "payload-ran"
    path = _tampered_imdb(tmp_path, marker)
    with np.load(path, allow_pickle=True) as archive:  # what the old reader did: code runs
        archive["x_train"]
    assert marker.is_dir()
    marker.rmdir()
    config = tiny_config(
        task="binary", loss="binary_crossentropy", preprocess=[{"multi_hot": 50}],
        data={"dataset": "imdb", "path": str(path)},
        model={"layers": [{"dense": {"units": 1, "activation": "sigmoid"}}]},
    )  # fmt: skip
    result = runner.invoke(app, ["validate", str(write_config(config))], terminal_width=400)
    assert result.exit_code == 2 and not marker.exists() and "Traceback" not in result.output
    (error,) = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert error == (
        f"error: {path}: array 'x_train' holds pickled code (posix.mkdir), not data; refusing to "
        "load it. Replace the file with a canonical copy (dlrun datasets info shows its URL)"
    )


def test_keras_npz_object_arrays_of_lists_and_arrays_still_load(tmp_path: Path) -> None:
    from dlrun.data.keras_npz import read_npz

    lists, arrays = np.empty(2, dtype=object), np.empty(2, dtype=object)
    lists[:] = [[1, 2], [3]]
    arrays[:] = [np.array([4, 5], np.int32), np.array([6], np.int32)]
    np.savez(tmp_path / "r.npz", x=lists, y=arrays, z=np.arange(3))
    read = read_npz(str(tmp_path / "r.npz"), ("x", "y", "z"))
    assert [list(s) for s in read["x"]] == [[1, 2], [3]]
    assert [s.tolist() for s in read["y"]] == [[4, 5], [6]] and read["y"][0].dtype == np.int32
    assert read["z"].tolist() == [0, 1, 2]


def test_a_data_path_file_is_noted_once_as_differing_or_as_a_known_repackaging(
    tmp_path: Path,
) -> None:
    body = _boston_npz()
    (tmp_path / BOSTON).write_bytes(body)
    other = Resource(BOSTON, "https://example.org/b.npz", _sha(b"canonical"))
    with collect_notes() as notes:
        for _ in range(2):  # e.g. loaded again: still one note
            assert locate("boston_housing", other, str(tmp_path)) == tmp_path / BOSTON
    assert notes == [
        f"warning: {tmp_path / BOSTON} differs from the registered SHA-256 of "
        f"boston_housing/{BOSTON} (got {_sha(body)[:12]}..., expected {_sha(b'canonical')[:12]}"
        "...); it is used as given, so results may not match the published data; the canonical "
        "file is at https://example.org/b.npz"
    ]
    known = Resource(BOSTON, other.url, other.sha256, repackagings=((_sha(body), "re-saved"),))
    with collect_notes() as notes:
        locate("boston_housing", known, str(tmp_path / BOSTON))
    assert notes == [
        f"note: {tmp_path / BOSTON} differs from the registered SHA-256 of boston_housing/"
        f"{BOSTON}, as a known repackaging of the same data (re-saved)"
    ]
    with collect_notes() as notes:
        locate("boston_housing", Resource(BOSTON, other.url, _sha(body)), str(tmp_path))
    assert notes == []


def test_a_run_on_a_differing_mirror_file_says_so_once_in_output_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_config: WriteConfig
) -> None:
    copy = _mirror(tmp_path, monkeypatch, "boston_housing", BOSTON, _boston_npz())
    config = tiny_config(
        task="regression", loss="mse", metrics=["mae"], preprocess=[], evaluation={},
        data={"dataset": "boston_housing"}, model={"layers": [{"dense": 1}]},
        train={"epochs": 1, "batch_size": 8, "progress": "none"},
    )  # fmt: skip
    runs = tmp_path / "runs"
    args = ["train", str(write_config(config)), "--runs-dir", str(runs)]
    result = runner.invoke(app, args, terminal_width=400)
    assert result.exit_code == 0, result.output
    expected = f"warning: {copy} differs from the registered SHA-256 of boston_housing/{BOSTON}"
    assert result.output.count(expected) == 1
    (report,) = runs.glob("*/report.md")
    assert report.read_text().count(f"- {expected}") == 1
