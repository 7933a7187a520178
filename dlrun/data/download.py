"""Fetch a dataset's canonical files into a verified local cache.

HTTPS only (plain HTTP is accepted for the loopback address, where tests serve fixtures). A
transfer goes to ``<file>.part`` and resumes from there with an HTTP range request; the finished
file is checked against its registered SHA-256 and renamed into place, so the cache never holds a
partial or corrupt file. An exclusive lock per file keeps concurrent runs from fetching the same
file twice or reading it half-written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rich.console import Console
from rich.progress import BarColumn
from rich.progress import DownloadColumn
from rich.progress import Progress
from rich.progress import TextColumn
from rich.progress import TransferSpeedColumn

from dlrun.errors import DataError

CHUNK = 1 << 16
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Resource:
    """One canonical file of a dataset. ``sha256`` is ``None`` where no checksum is published;
    such files are accepted as downloaded and ``dlrun datasets verify`` says so."""

    name: str
    url: str
    sha256: str | None = None
    size: int | None = None  # bytes, informational
    variant: str = ""  # e.g. "raw" for IMDB's review tarball; "" = the default files
    # Other files known to hold the same data (a re-saved or repacked copy): (SHA-256, how it
    # differs). ``verify`` accepts them as such and a run says it used one.
    repackagings: tuple[tuple[str, str], ...] = ()

    def repackaging(self, digest: str) -> str | None:
        """How the file with SHA-256 ``digest`` repackages this data, if it is a known one."""
        return dict(self.repackagings).get(digest)


def cache_root() -> Path:
    return Path(os.environ.get("DLRUN_CACHE", "~/.cache/dlrun/datasets")).expanduser()


def cached_path(dataset: str, resource: Resource) -> Path:
    return cache_root() / dataset / resource.name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_url(url: str) -> None:
    parsed = urlparse(url)
    if parsed.scheme == "https" or (parsed.scheme == "http" and parsed.hostname in LOOPBACK):
        return
    raise DataError(f"refusing to download {url}: only https:// URLs are allowed")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock on ``<path>.lock``, held while the file is fetched."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fetch(dataset: str, resource: Resource, console: Console | None = None) -> Path:
    """The cached file, downloading (or resuming) it first if needed."""
    target = cached_path(dataset, resource)
    if target.is_file():
        return target
    check_url(resource.url)
    with file_lock(target):
        if target.is_file():  # another process finished it while we waited
            return target
        part = target.with_name(target.name + ".part")
        _transfer(resource, part, console or Console(stderr=True))
        if resource.sha256 is not None:
            actual = sha256_of(part)
            if actual != resource.sha256:
                part.unlink()
                raise DataError(
                    f"dataset {dataset}: {resource.name} from {resource.url} has SHA-256 "
                    f"{actual}, expected {resource.sha256}; the corrupt download was deleted"
                )
        os.replace(part, target)
    return target


def _transfer(resource: Resource, part: Path, console: Console) -> None:
    """Append the missing bytes to ``part`` (all of them on a first attempt)."""
    done = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(resource.url, headers={"User-Agent": "dlrun"})
    if done:
        request.add_header("Range", f"bytes={done}-")
    try:
        response = urllib.request.urlopen(request, timeout=30)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and done:  # nothing left to fetch
            return
        raise DataError(
            f"downloading {resource.url} failed: HTTP {exc.code} {exc.reason}"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"cannot reach {resource.url}: {reason}") from None
    with response:
        resumed = response.status == 206
        length = response.headers.get("Content-Length")
        expected = int(length) + (done if resumed else 0) if length is not None else None
        mode = "ab" if resumed else "wb"
        received = done if resumed else 0
        columns = (TextColumn(resource.name), BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with part.open(mode) as out, Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("", total=expected, completed=received)
            try:
                for block in iter(lambda: response.read(CHUNK), b""):
                    out.write(block)
                    received += len(block)
                    bar.update(task, completed=received)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                raise DataError(
                    f"the transfer of {resource.url} broke off after {received} bytes ({exc}); "
                    "run the command again to resume"
                ) from None
    if expected is not None and received < expected:
        raise DataError(
            f"the transfer of {resource.url} broke off after {received} of {expected} bytes; "
            "run the command again to resume"
        )
