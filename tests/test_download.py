"""Downloads, cache, mirrors and safe extraction, against a local HTTP server (no network)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlrun.config.load import config_from_data
from dlrun.data.archives import safe_extract
from dlrun.data.download import Resource
from dlrun.data.download import cached_path
from dlrun.data.download import fetch
from dlrun.data.keras_npz import BostonHousing
from dlrun.data.load import load_data
from dlrun.data.locate import locate
from dlrun.errors import DataError
from tests.conftest import tiny_config
from tests.http_fixture import FileServer

BODY = bytes(range(256)) * 400  # 102,400 bytes, several read chunks


def _resource(
    server: FileServer, name: str = "blob.bin", body: bytes = BODY, good: bool = True
) -> Resource:
    server.files[name] = body
    digest = hashlib.sha256(body if good else b"something else").hexdigest()
    return Resource(name, server.url(name), digest, len(body))


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLRUN_OFFLINE")


def test_download_then_cache_hit(file_server: FileServer, online: None) -> None:
    resource = _resource(file_server)
    path = fetch("toy", resource)
    assert path == cached_path("toy", resource) and path.read_bytes() == BODY
    assert fetch("toy", resource) == path and len(file_server.requests) == 1  # served from cache
    assert not list(path.parent.glob("*.part"))


def test_broken_transfer_resumes_with_a_range_request(
    file_server: FileServer, online: None
) -> None:
    resource = _resource(file_server)
    file_server.break_after["blob.bin"] = 30_000
    with pytest.raises(
        DataError, match="broke off after 30000 of 102400 bytes; run the command again to resume"
    ):
        fetch("toy", resource)
    part = cached_path("toy", resource).with_name("blob.bin.part")
    assert part.stat().st_size == 30_000 and not cached_path("toy", resource).exists()
    assert fetch("toy", resource).read_bytes() == BODY
    assert file_server.requests[-1] == ("blob.bin", "bytes=30000-")


def test_checksum_mismatch_deletes_the_download(file_server: FileServer, online: None) -> None:
    resource = _resource(file_server, good=False)
    with pytest.raises(
        DataError, match=r"has SHA-256 .* expected .*; the corrupt download was deleted"
    ):
        fetch("toy", resource)
    folder = cached_path("toy", resource).parent
    assert not [p for p in folder.iterdir() if not p.name.endswith(".lock")]


def test_only_https_is_allowed(online: None) -> None:
    with pytest.raises(DataError, match="only https:// URLs are allowed"):
        fetch("toy", Resource("x.bin", "http://example.com/x.bin"))


def test_concurrent_fetches_download_once(file_server: FileServer, online: None) -> None:
    resource = _resource(file_server)
    results: list[bytes] = []

    def worker() -> None:
        results.append(fetch("toy", resource).read_bytes())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [BODY] * 4 and len(file_server.requests) == 1


def test_offline_error_names_file_place_and_url() -> None:
    resource = Resource("boston_housing.npz", "https://example.org/boston_housing.npz")
    with pytest.raises(DataError) as caught:
        locate("boston_housing", resource)
    message = str(caught.value)
    for part in ("dataset boston_housing", "boston_housing.npz", "DLRUN_DATA_PATH", "<dir>/boston_housing/",
                 "https://example.org/boston_housing.npz"):  # fmt: skip
        assert part in message


def test_unreachable_server_is_the_same_clear_error(online: None) -> None:
    resource = Resource("x.npz", "http://127.0.0.1:9/x.npz")  # discard port: nothing listens
    with pytest.raises(
        DataError, match=r"file x\.npz not found and not downloadable \(cannot reach"
    ):
        locate("toy", resource)


def test_mirror_directory_is_searched_before_the_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          file_server: FileServer, online: None) -> None:  # fmt: skip
    resource = _resource(file_server)
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "blob.bin").write_bytes(b"local copy")
    monkeypatch.setenv("DLRUN_DATA_PATH", f"{tmp_path / 'empty'}:{mirror}")
    assert locate("toy", resource).read_bytes() == b"local copy" and not file_server.requests


def test_a_dataset_downloads_verifies_and_parses(file_server: FileServer, online: None,
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    buffer = io.BytesIO()
    np.savez(buffer, x=np.ones((10, 13)), y=np.arange(10.0))
    resource = _resource(file_server, "boston_housing.npz", buffer.getvalue())
    monkeypatch.setattr(BostonHousing, "resources", (resource,))
    cfg = config_from_data(tiny_config(task="regression", loss="mse", metrics=[], preprocess=[],
                                       data={"dataset": "boston_housing"}, evaluation={},
                                       model={"layers": [{"dense": 1}]}))  # fmt: skip
    data = load_data(cfg)
    assert len(data.train) == 8 and data.test_split is not None and len(data.test_split) == 2
    assert cached_path("boston_housing", resource).is_file()


def _tar(path: Path, name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> Path:
    with tarfile.open(path, "w:gz") as archive:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.linkname = link
        data = b"" if link else b"payload"
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("name", "kind", "link", "message"),
    [
        ("../escape.txt", tarfile.REGTYPE, "", "would land outside"),
        ("/etc/planted", tarfile.REGTYPE, "", "would land outside"),
        ("data/link", tarfile.SYMTYPE, "/etc/passwd", "is a link"),
        ("data/hard", tarfile.LNKTYPE, "../../x", "is a link"),
        ("data/dev", tarfile.CHRTYPE, "", "special file"),
    ],
)
def test_unsafe_tar_members_are_refused(
    tmp_path: Path, name: str, kind: bytes, link: str, message: str
) -> None:
    archive = _tar(tmp_path / "bad.tar.gz", name, kind, link)
    with pytest.raises(DataError, match=message):
        safe_extract(archive, tmp_path / "out" / "target")
    assert not (tmp_path / "out" / "target").exists() and not (tmp_path / "escape.txt").exists()
    assert not list((tmp_path / "out").iterdir())  # no half-extracted scratch left behind


def test_unsafe_zip_member_is_refused_and_safe_archives_extract(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("../../escape.txt", "x")
    with pytest.raises(DataError, match="would land outside"):
        safe_extract(bad, tmp_path / "zip_target")
    good = _tar(tmp_path / "good.tar.gz", "folder/file.txt")
    assert (safe_extract(good, tmp_path / "target") / "folder/file.txt").read_bytes() == b"payload"


def test_datasets_cli_list_info_path_download_verify(file_server: FileServer, online: None,
                                                     monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # fmt: skip
    from typer.testing import CliRunner

    from dlrun.cli import app

    runner = CliRunner()
    resource = _resource(file_server, "boston_housing.npz", BODY)
    monkeypatch.setattr(BostonHousing, "resources", (resource,))
    listed = runner.invoke(app, ["datasets", "list"], terminal_width=200)
    assert (
        listed.exit_code == 0 and "boston_housing" in listed.output and "cifar10" in listed.output
    )
    assert "built in or your own files" in listed.output
    missing = runner.invoke(app, ["datasets", "path", "boston_housing"], terminal_width=300)
    assert missing.exit_code == 2 and "boston_housing.npz not found" in missing.output
    downloaded = runner.invoke(app, ["datasets", "download", "boston_housing"])
    assert downloaded.exit_code == 0, downloaded.output
    cached = cached_path("boston_housing", resource)
    assert downloaded.output.strip() == str(cached) and cached.read_bytes() == BODY
    found = runner.invoke(app, ["datasets", "path", "boston_housing"])
    assert found.output.strip() == str(cached)
    bundled = runner.invoke(app, ["datasets", "path", "iris"], terminal_width=300)
    assert bundled.exit_code == 0 and bundled.stdout == ""  # no path for a script to read
    assert "iris has no files of its own to locate: Iris flowers" in bundled.output
    info = runner.invoke(app, ["datasets", "info", "boston_housing"], terminal_width=300)
    assert resource.url in info.output and resource.sha256 in info.output  # type: ignore[operator]
    assert runner.invoke(app, ["datasets", "verify"], terminal_width=300).exit_code == 0
    cached.write_bytes(b"tampered")
    verified = runner.invoke(app, ["datasets", "verify"], terminal_width=300)
    assert verified.exit_code == 1 and "): deleted from the cache; dlrun datasets download " \
        "boston_housing fetches it again" in verified.output  # fmt: skip
    assert not cached.exists()
    assert runner.invoke(app, ["datasets", "download", "iris"]).exit_code == 2


def _canonical_files(tmp_path: Path, dataset: str) -> dict[str, bytes]:
    """Small files in each dataset's canonical format, as the server will serve them."""
    from tests.test_book_datasets import _cifar_tarball
    from tests.test_book_datasets import _write_aclimdb
    from tests.test_data import write_idx

    folder = tmp_path / dataset
    folder.mkdir()
    if dataset == "mnist":
        arrays = {"train-images-idx3-ubyte.gz": np.zeros((6, 28, 28), np.uint8),
                  "train-labels-idx1-ubyte.gz": np.arange(6, dtype=np.uint8),
                  "t10k-images-idx3-ubyte.gz": np.ones((2, 28, 28), np.uint8),
                  "t10k-labels-idx1-ubyte.gz": np.array([3, 4], np.uint8)}  # fmt: skip
        for name, array in arrays.items():
            write_idx(folder / name, array)
    elif dataset == "cifar10":
        batch = {b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        _cifar_tarball(
            folder / "cifar-10-python.tar.gz", "cifar-10-batches-py", dict.fromkeys(names, batch)
        )
    elif dataset == "jena_climate":
        rows = ['"Date Time","p (mbar)","T (degC)"'] + [
            f"01.01.2009 00:{i:02d}:00,99{i},{i}.5" for i in range(9)
        ]
        with zipfile.ZipFile(folder / "jena_climate_2009_2016.csv.zip", "w") as archive:
            archive.writestr("jena_climate_2009_2016.csv", "\n".join(rows) + "\n")
    elif dataset == "imdb":
        _write_aclimdb(folder / "aclImdb_v1.tar.gz")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize(
    ("dataset", "data", "task", "train_shape", "test_size"),
    [
        ("mnist", {}, "multiclass", (6, 28, 28), 2),  # IDX
        ("cifar10", {}, "multiclass", (10, 32, 32, 3), 2),  # pickle tarball, extracted safely
        ("jena_climate", {"test_fraction": 0.0}, "regression", (9, 2), 0),  # zipped CSV
        ("imdb", {"source": "raw"}, "binary", (4,), 2),  # text tarball
    ],
)
def test_each_canonical_format_downloads_and_parses(
    file_server: FileServer, online: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    dataset: str, data: dict[str, object], task: str, train_shape: tuple[int, ...], test_size: int,
) -> None:  # fmt: skip
    from dlrun.data.base import DATASETS

    served = _canonical_files(tmp_path, dataset)
    source = DATASETS.get(dataset)
    patched = tuple(
        _resource(file_server, r.name, served[r.name]) if r.name in served else r
        for r in source.resources
    )
    monkeypatch.setattr(source, "resources", patched)
    heads = {"multiclass": ("sparse_categorical_crossentropy", {"units": 10, "activation": "softmax"}),
             "regression": ("mse", {"units": 1}),
             "binary": ("binary_crossentropy", {"units": 1, "activation": "sigmoid"})}  # fmt: skip
    loss, head = heads[task]
    cfg = config_from_data(tiny_config(task=task, loss=loss, metrics=[], preprocess=[],
                                       data={"dataset": dataset, **data}, evaluation={},
                                       model={"layers": [{"dense": head}]}))  # fmt: skip
    loaded = load_data(cfg)
    assert loaded.train.x.shape == train_shape
    assert len(loaded.test_split or []) == test_size
    assert {path for path, _ in file_server.requests} == set(served)  # each file fetched once
