"""Storage locations: a local folder or an fsspec URL, as one kind of path.

A location given as ``scheme://...`` (``s3://bucket/prefix``, ``gs://...``, ``file:///srv/data``,
``memory://test``) or as a ``upath.UPath`` is reached through fsspec; anything else stays a local
``pathlib.Path``, so code that only ever sees local folders keeps getting Paths. Credentials are the
filesystem's own business (s3fs reads AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, fsspec reads
FSSPEC_S3_ENDPOINT_URL and friends): they never appear in a location. Kept free of pyarrow so that
settings can import it at start-up.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:  # upath and fsspec take ~0.1 s to import, which work on local files never needs
    from upath import UPath

StoragePath: TypeAlias = "Path | UPath"
Location: TypeAlias = "str | os.PathLike | UPath"
LOCAL_PROTOCOLS = frozenset({"file", "local"})
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")


def _is_upath(location) -> bool:
    """Whether `location` is a UPath: it cannot be one while upath has not been imported, so a command on
    local files never loads it."""
    upath = sys.modules.get("upath")
    return upath is not None and isinstance(location, upath.UPath)


def storage_path(location: Location) -> StoragePath:
    """`location` as a path: an fsspec URL (``scheme://...``) or a non-local UPath becomes a UPath on
    its filesystem, anything else a local ``pathlib.Path`` (so local callers keep getting Paths)."""
    if _is_upath(location):
        return location if not isinstance(location, Path) else Path(location)
    if isinstance(location, str) and _URL.match(location):
        from upath import UPath

        return UPath(location)
    return Path(location)


def is_remote(path: Location) -> bool:
    """Whether `path` is reached through fsspec (even ``file://``) rather than as a local Path."""
    return _is_upath(storage_path(path))


def local_path(path: Location) -> Path | None:
    """The local-disk path of `path` (a plain path or a ``file://`` URL), None on any other filesystem."""
    path = storage_path(path)
    if not _is_upath(path):
        return path
    if path.protocol in LOCAL_PROTOCOLS:  # decided without loading the filesystem (s3fs may be absent)
        return Path(path.path)
    return None


def renames_atomically(path: Location) -> bool:
    """Whether files and folders at `path` can be swapped in with a rename (local disk) or not (object
    stores: datasets/store.py says what its writers give there instead)."""
    return local_path(path) is not None


def display_path(path: Location) -> str:
    """How to show `path` to a person: the absolute local path, or the URL of an object store."""
    local = local_path(path)
    return str(local.resolve()) if local is not None else str(storage_path(path))


@contextmanager
def local_copy(location: Location) -> Iterator[Path]:
    """A local folder holding what is at `location`, for code that reads local folders only: the folder
    itself on local disk, else a temporary copy of its files (gone after the block)."""
    local = local_path(location)
    if local is not None:
        yield local
        return
    path = storage_path(location)
    with tempfile.TemporaryDirectory(prefix="jouletrace-copy-") as folder:
        copy = Path(folder) / (path.name or "copy")
        copy.mkdir()
        if path.exists():
            for remote in path.fs.find(path.path):
                target = copy / os.path.relpath(remote, path.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                path.fs.get_file(remote, str(target))
        yield copy


@contextmanager
def local_output(location: Location) -> Iterator[Path]:
    """A local folder whose files end up at `location`, for code that writes local folders only: the
    folder itself on local disk, else a temporary folder whose files are put there when the block ends
    without error (each file replaced whole; files already there that the block did not write stay)."""
    local = local_path(location)
    if local is not None:
        local.mkdir(parents=True, exist_ok=True)
        yield local
        return
    path = storage_path(location)
    with tempfile.TemporaryDirectory(prefix="jouletrace-out-") as folder:
        out = Path(folder)
        yield out
        for file in sorted(f for f in out.rglob("*") if f.is_file()):
            path.fs.put_file(str(file), f"{path.path}/{file.relative_to(out).as_posix()}")
