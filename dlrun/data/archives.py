"""Extract tar and zip archives without letting any member escape the target directory.

Absolute names, ``..`` components, links and device files are refused before anything is
written; extraction goes to a temporary sibling directory that is renamed into place, so a
half-extracted archive is never mistaken for a complete one.
"""

from __future__ import annotations

import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path
from pathlib import PurePosixPath

from dlrun.errors import DataError


def _check_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or ".." in path.parts:
        raise DataError(f"{archive} is unsafe: member {name!r} would land outside the target")


def _tar_members(archive: Path, handle: tarfile.TarFile) -> list[tarfile.TarInfo]:
    members = handle.getmembers()
    for member in members:
        _check_name(archive, member.name)
        if member.issym() or member.islnk():
            raise DataError(f"{archive} is unsafe: member {member.name!r} is a link")
        if not (member.isfile() or member.isdir()):
            raise DataError(f"{archive} is unsafe: member {member.name!r} is a special file")
    return members


def _zip_members(archive: Path, handle: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = handle.infolist()
    for member in members:
        _check_name(archive, member.filename)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise DataError(f"{archive} is unsafe: member {member.filename!r} is a link")
    return members


def safe_extract(archive: Path, target: Path) -> Path:
    """Extract ``archive`` (tar, tar.gz or zip) into ``target``; returns ``target``.

    An existing ``target`` is taken as a finished extraction and returned as is.
    """
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as handle:
                handle.extractall(scratch, members=_zip_members(archive, handle))
        else:
            with tarfile.open(archive) as handle:
                members = _tar_members(archive, handle)
                handle.extractall(scratch, members=members, filter="data")
        scratch.rename(target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise DataError(f"cannot extract {archive}: {exc}") from None
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    return target
