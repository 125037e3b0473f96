"""`FileAccess`: the files of one FileDatastore, written and read through formatters.

Paths given to it are relative to the root and checked again (`checkRelativePath`) before any
file is touched. Formatter failures become `FormatterError` (or `DatasetTypeMismatchError` when
the object does not fit the format), naming the file and the formatter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from ..dataset_ref import DatasetRef
from ..exceptions import (
    DatasetIntegrityError,
    DatasetNotFoundError,
    DatasetTypeMismatchError,
    FormatterError,
    InvalidParameterError,
)
from ..formatters.base import Formatter
from ..storage_class import StorageClass
from .file_io import readWhole, removeQuietly, tempPathFor, writeTemp
from .file_layout import FileLayout
from .file_records import StoredFileInfo
from .file_templates import checkRelativePath

__all__ = ["FileAccess"]


class FileAccess:
    """Reads, writes, moves and deletes the files under one root.

    Parameters
    ----------
    fs : fsspec.AbstractFileSystem
        The file system.
    rootPath : str
        The root, as a path in ``fs``.
    checksum : bool
        Whether to hash files as they are written and verify them when read.
    layout : FileLayout
        Gives the formatter recorded for each file.
    """

    def __init__(self, fs: Any, rootPath: str, checksum: bool, layout: FileLayout) -> None:
        self.fs = fs
        self.rootPath = rootPath
        self.checksum = checksum
        self.layout = layout

    def fullPath(self, relPath: str) -> str:
        """Return the path in ``fs`` of ``relPath``.

        Raises
        ------
        UnsafePathError
            ``relPath`` is not a safe relative path.
        """
        return f"{self.rootPath}/{checkRelativePath(relPath)}"

    def uri(self, relPath: str) -> str:
        """Return the URI of ``relPath`` (``file:///...``, ``s3://...``)."""
        return str(self.fs.unstrip_protocol(self.fullPath(relPath)))

    def writeFile(
        self, ref: DatasetRef, relPath: str, formatter: Formatter, obj: Any, storageClass: StorageClass
    ) -> tuple[str, int, str | None]:
        """Write ``obj`` with ``formatter`` to a temporary file beside ``relPath``.

        Returns
        -------
        tempPath, size, checksum : str, int, str or None
            Where it was written, how many bytes, and their checksum (if checksums are on).

        Raises
        ------
        DatasetTypeMismatchError
            The formatter cannot write this object.
        FormatterError
            The formatter (or the file system) failed; no file is left behind.
        """
        try:
            return writeTemp(
                self.fs,
                self.fullPath(relPath),
                lambda s: formatter.write(obj, s, storageClass),
                self.checksum,
            )
        except DatasetTypeMismatchError as exc:
            raise DatasetTypeMismatchError(
                f"{formatter.name} cannot write {ref} to {self.uri(relPath)}: {exc}"
            ) from exc
        except Exception as exc:
            raise FormatterError(
                f"{formatter.name} failed to write {ref} to {self.uri(relPath)}; nothing was stored: {exc}"
            ) from exc

    def readFile(
        self,
        ref: DatasetRef,
        info: StoredFileInfo,
        storageClass: StorageClass,
        parameters: Mapping[str, Any] | None,
    ) -> Any:
        """Read one file with its recorded formatter; push down what parameters it can."""
        assert info.formatter is not None
        formatter = self.layout.getFormatter(info.formatter)
        pushed = {k: v for k, v in (parameters or {}).items() if k in formatter.pushdownParameters}
        rest = {k: v for k, v in (parameters or {}).items() if k not in formatter.pushdownParameters}
        fullPath, uri = self.fullPath(info.path), self.uri(info.path)
        try:
            if self.checksum or not formatter.prefersStream:
                checksum = info.checksum if self.checksum else None
                buffer = readWhole(self.fs, fullPath, uri, info.fileSize, checksum, formatter.newBuffer)
                obj = formatter.readBuffer(buffer, storageClass, pushed)
            else:
                try:
                    with self.fs.open(fullPath, "rb") as stream:
                        obj = formatter.readStream(stream, storageClass, pushed)
                except FileNotFoundError as exc:
                    raise DatasetNotFoundError(
                        f"File {uri} of {ref} is recorded but no longer exists."
                    ) from exc
        except (InvalidParameterError, DatasetIntegrityError, DatasetNotFoundError):
            raise
        except DatasetTypeMismatchError as exc:
            raise DatasetTypeMismatchError(f"{formatter.name} cannot read {uri} as {ref}: {exc}") from exc
        except Exception as exc:
            raise FormatterError(f"{formatter.name} failed to read {uri} ({ref}): {exc}") from exc
        return storageClass.delegate().handleParameters(obj, rest) if rest else obj

    def deleteFiles(self, infos: list[StoredFileInfo]) -> None:
        """Delete the files of ``infos``, then their folders if empty; failures are logged."""
        for info in sorted(infos, key=lambda i: i.formatter is None):  # files before their folder
            path = self.fullPath(info.path)
            if info.formatter is not None:
                removeQuietly(self.fs, path)
            else:
                with contextlib.suppress(Exception):  # object stores have no folders
                    self.fs.rmdir(path)

    def moveAside(self, relPath: str) -> tuple[str, str]:
        """Rename ``relPath`` to a hidden name beside it; return ``(path, asidePath)`` to undo it."""
        path = self.fullPath(relPath)
        aside = tempPathFor(path).replace(".tmp-", ".removed-")
        self.fs.mv(path, aside)
        return path, aside
