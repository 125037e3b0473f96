"""Reading an export into a repository (`Butler.import_`): all or nothing, ids kept, files verified.

Everything is checked before the first write: the manifest (`readManifest`), the dimension
definitions against this repository's universe, the dataset types against those registered, every
id against the datasets already here, and every file named (a regular file inside the export, no
symbolic link on the way, of the size recorded). Then one transaction registers the dataset types,
runs, dimension records and chains, adds the datasets with their ids and places their files, each
checked against its recorded size and checksum before it is recorded; any failure undoes all of
it, files placed included. Files in a zip are read by the names the manifest gives, into files of
our own naming: an entry's name never becomes a path on disk.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..dataset_ref import DatasetRef, checkRunName
from ..dataset_type import DatasetType
from ..exceptions import (
    CollectionError,
    ConflictingDatasetError,
    DatasetIntegrityError,
    DatasetTypeConflictError,
    ExportError,
    ManifestError,
    MissingDatasetTypeError,
    UnsafePathError,
)
from .exporting import fileDatastoreOf
from .manifest import MANIFEST_NAMES, ExportedFile, Manifest, readManifest, recordFromManifest

if TYPE_CHECKING:
    from ..butler import Butler
    from ..datastores.file import FileDatastore

__all__ = ["MAX_MANIFEST_SIZE", "ImportResult", "importDatasets"]

MAX_MANIFEST_SIZE = 1 << 30
"""A manifest bigger than 1 GiB is refused unread (ten million datasets fit in less)."""

_CHUNK = 1 << 20


@dataclass(slots=True)
class ImportResult:
    """What an import did: the datasets it added, and those already here that it skipped."""

    imported: list[DatasetRef] = field(default_factory=list)
    skipped: list[DatasetRef] = field(default_factory=list)


def importDatasets(
    butler: Butler, path: str | os.PathLike[str], *, transfer: str = "copy", skipExisting: bool = True
) -> ImportResult:
    """Read the export at ``path`` into ``butler``'s repository; see `Butler.import_`."""
    butler._requireWriteable(f"import {os.fspath(path)!r}")
    source = os.path.abspath(os.fspath(path))
    store = fileDatastoreOf(butler.datastore)
    if store is None:
        raise ExportError(
            f"Repository {str(butler.root)!r} keeps no files (datastore {butler.datastore.name!r}), so it "
            "cannot import an export."
        )
    with _openExport(source, store) as export:
        manifest = export.manifest
        where = export.where
        _checkDimensions(butler, manifest, where)
        datasetTypes = _datasetTypes(butler, manifest, where)
        refs = [DatasetRef(datasetTypes[d.datasetType], d.dataId, d.id, d.run) for d in manifest.datasets]
        _checkUniqueIds(refs, where)
        result = ImportResult()
        existing = butler.registry.getDatasets(ref.id for ref in refs)
        fresh: list[int] = []
        for index, ref in enumerate(refs):
            found = existing.get(ref.id)
            if found is None:
                fresh.append(index)
            elif (found.datasetType.name, dict(found.dataId), found.run) != (
                ref.datasetType.name,
                dict(ref.dataId),
                ref.run,
            ):
                raise ConflictingDatasetError(
                    f"Cannot import {where}: its dataset {ref} (run {ref.run!r}) has id {ref.id}, which this "
                    f"repository already uses for another dataset, {found} (run {found.run!r}); nothing was "
                    "imported."
                )
            elif not skipExisting:
                raise ConflictingDatasetError(
                    f"Cannot import {where}: dataset {ref} is already in this repository and skipExisting is "
                    "false; nothing was imported."
                )
            else:
                result.skipped.append(found)
        for collection in manifest.collections:
            if collection["type"] == "RUN":
                checkRunName(collection["name"])
        _checkSpace(butler, store, export, [f for i in fresh for f in manifest.datasets[i].files], transfer)
        for index in fresh:
            export.checkFile(manifest.datasets[index].files)
        with butler.transaction():
            for datasetType in datasetTypes.values():
                butler.registerDatasetType(datasetType)
            for run in sorted({str(ref.run) for ref in refs} | _runs(manifest)):
                butler.registry.registerRun(run)
            _importRecords(butler, manifest, where)
            for collection in manifest.collections:
                if collection["type"] == "CHAINED":
                    _importChain(butler, collection["name"], collection["children"], where)
            if fresh:
                stored = butler.registry.addDatasetRefs([refs[i] for i in fresh])
                items = [
                    (
                        ref,
                        [
                            (f.component, export.localPath(f.path), f.formatter, f.fileSize, f.checksum)
                            for f in manifest.datasets[index].files
                        ],
                    )
                    for ref, index in zip(stored, fresh, strict=True)
                ]
                store.ingestVerified(items, export.transferFor(transfer))
                result.imported = stored
    return result


def _checkSpace(
    butler: Butler, store: FileDatastore, export: _Export, files: list[ExportedFile], transfer: str
) -> None:
    """Refuse an import whose files (as their manifest sizes them) cannot fit on the datastore's disk.

    Files from a zip are extracted, and a copy writes every byte: checked first, a zip whose
    entries claim terabytes (a zip bomb) is refused before it fills the disk instead of after.
    """
    if not store.files.isLocal or not (isinstance(export, _ZipExport) or transfer in ("copy", "auto")):
        return
    needed = sum(f.fileSize for f in files)
    free = shutil.disk_usage(store.files.rootPath).free
    if needed > free:
        raise ExportError(
            f"Cannot import {export.where}: its files need {needed} bytes, but the disk of "
            f"{str(butler.root)!r} has {free} free; nothing was imported."
        )


def _checkUniqueIds(refs: list[DatasetRef], where: str) -> None:
    """Refuse a manifest that gives one dataset id to two of its datasets."""
    seen: dict[object, DatasetRef] = {}
    for ref in refs:
        other = seen.setdefault(ref.id, ref)
        if other is not ref:
            raise ManifestError(
                f"Export manifest {where}: datasets {other} (run {other.run!r}) and {ref} (run {ref.run!r}) "
                f"have the same id {ref.id}; an id names one dataset; nothing was imported."
            )


def _runs(manifest: Manifest) -> set[str]:
    return {c["name"] for c in manifest.collections if c["type"] == "RUN"}


def _checkDimensions(butler: Butler, manifest: Manifest, where: str) -> None:
    universe = butler.registry.dimensions
    for name, definition in manifest.dimensions.items():
        if name not in universe:
            raise ExportError(
                f"Cannot import {where}: its datasets use dimension {name!r}, which repository "
                f"{str(butler.root)!r} does not have; add it under registry.dimensions when making the "
                "repository; nothing was imported."
            )
        if universe[name].toConfig() != definition:
            raise ExportError(
                f"Cannot import {where}: dimension {name!r} is {definition!r} there but "
                f"{universe[name].toConfig()!r} here; nothing was imported."
            )


def _datasetTypes(butler: Butler, manifest: Manifest, where: str) -> dict[str, DatasetType]:
    """Return the export's dataset types by name, refusing any registered here differently."""
    out: dict[str, DatasetType] = {}
    for entry in manifest.datasetTypes:
        name = entry["name"]
        unknown = [d for d in entry["dimensions"] if d not in manifest.dimensions]
        if unknown:
            raise ManifestError(
                f"Export manifest {where}: dataset type {name!r} has dimensions {unknown} that its "
                "dimensions section does not define."
            )
        storageClass = butler.storageClassFactory.getStorageClass(entry["storageClass"])
        datasetType = DatasetType(name, tuple(entry["dimensions"]), storageClass)
        try:
            registered = butler.registry.getDatasetType(name)
        except MissingDatasetTypeError:
            registered = None
        if registered is not None and registered != datasetType:
            raise DatasetTypeConflictError(
                f"Cannot import {where}: dataset type {name!r} has dimensions {list(datasetType.dimensions)} "
                f"and storage class {storageClass.name!r} there, but {list(registered.dimensions)} and "
                f"{registered.storageClass.name!r} here; nothing was imported."
            )
        out[name] = datasetType
    for dataset in manifest.datasets:
        if dataset.datasetType not in out:
            raise ManifestError(
                f"Export manifest {where}: dataset {dataset.id} is of type {dataset.datasetType!r}, which its "
                "datasetTypes section does not define."
            )
    return out


def _importRecords(butler: Butler, manifest: Manifest, where: str) -> None:
    universe = butler.registry.dimensions
    for element, records in manifest.dimensionRecords.items():
        if element not in manifest.dimensions or element not in universe:
            raise ManifestError(
                f"Export manifest {where}: it has records of {element!r}, which its dimensions section "
                "does not define."
            )
        fieldTypes = universe[element].fields
        for record in records:
            butler.registry.syncDimensionData(element, recordFromManifest(record, fieldTypes, element, where))


def _importChain(butler: Butler, name: str, children: list[str], where: str) -> None:
    from ..registry.collections import CollectionType

    registry = butler.registry
    if name in registry.queryCollections():
        kind = registry.getCollectionType(name)
        if kind != CollectionType.CHAINED:
            raise CollectionError(
                f"Cannot import {where}: it has chain {name!r}, but {name!r} is a {kind} collection here; "
                "nothing was imported."
            )
        current = registry.getCollectionChain(name)
        if current == children:
            return
        raise CollectionError(
            f"Cannot import {where}: chain {name!r} is {children} there but {current} here; change one of "
            "them first; nothing was imported."
        )
    registry.setCollectionChain(name, children)


class _Export:
    """An opened export: where it is, its manifest and how to reach its files."""

    def __init__(self, where: str, manifest: Manifest) -> None:
        self.where = where
        self.manifest = manifest

    def checkFile(self, files: tuple[ExportedFile, ...]) -> None:
        """Refuse a file that is not a plain file of the recorded size inside the export."""

    def localPath(self, relPath: str) -> str:
        """Return the local file holding the export's ``relPath``."""
        raise NotImplementedError

    def transferFor(self, transfer: str) -> str:
        """Return the transfer mode that places the files given by `localPath`."""
        return transfer


class _DirectoryExport(_Export):
    def __init__(self, root: str, manifest: Manifest) -> None:
        super().__init__(root, manifest)
        self.root = root
        self._plainFolders: set[str] = {root}

    def checkFile(self, files: tuple[ExportedFile, ...]) -> None:
        for exported in files:
            relPath = exported.path
            full = os.path.join(self.root, relPath)
            folder = os.path.dirname(full)
            if folder not in self._plainFolders:  # each folder resolved once, not once per file
                if os.path.realpath(folder) != folder:
                    raise self._linked(relPath)
                self._plainFolders.add(folder)
            try:
                info = os.lstat(full)
            except FileNotFoundError as exc:
                raise DatasetIntegrityError(
                    f"Cannot import {self.where}: its file {relPath!r} is missing; nothing was imported."
                ) from exc
            if stat.S_ISLNK(info.st_mode):
                raise self._linked(relPath)
            if not stat.S_ISREG(info.st_mode):
                raise UnsafePathError(
                    f"Cannot import {self.where}: {relPath!r} is not a regular file; nothing was imported."
                )
            if info.st_size != exported.fileSize:
                raise DatasetIntegrityError(
                    f"Cannot import {self.where}: file {relPath!r} has {info.st_size} bytes, not the "
                    f"{exported.fileSize} its manifest records; nothing was imported."
                )

    def _linked(self, relPath: str) -> UnsafePathError:
        return UnsafePathError(
            f"Cannot import {self.where}: {relPath!r} is or goes through a symbolic link; an export holds "
            "plain files only; nothing was imported."
        )

    def localPath(self, relPath: str) -> str:
        return os.path.join(self.root, relPath)


class _ZipExport(_Export):
    def __init__(self, where: str, manifest: Manifest, archive: zipfile.ZipFile, scratch: str) -> None:
        super().__init__(where, manifest)
        self.archive = archive
        self.scratch = scratch
        self.extracted: dict[str, str] = {}

    def checkFile(self, files: tuple[ExportedFile, ...]) -> None:
        for exported in files:
            relPath = exported.path
            try:
                info = self.archive.getinfo(relPath)
            except KeyError as exc:
                raise DatasetIntegrityError(
                    f"Cannot import {self.where}: it has no entry {relPath!r} for a file its manifest names; "
                    "nothing was imported."
                ) from exc
            mode = info.external_attr >> 16
            if info.is_dir() or stat.S_IFMT(mode) not in (0, stat.S_IFREG):  # 0: no type recorded
                raise UnsafePathError(
                    f"Cannot import {self.where}: entry {relPath!r} is not a regular file (a folder or a "
                    "symbolic link); nothing was imported."
                )
            if info.file_size != exported.fileSize:
                raise DatasetIntegrityError(
                    f"Cannot import {self.where}: entry {relPath!r} has {info.file_size} bytes, not the "
                    f"{exported.fileSize} its manifest records; nothing was imported."
                )
            self.extracted[relPath] = self._extract(info)

    def _extract(self, info: zipfile.ZipInfo) -> str:
        """Copy an entry, at most its recorded size, into a file of our own naming in the scratch folder."""
        target = os.path.join(self.scratch, f"{len(self.extracted)}")
        written = 0
        try:
            with self.archive.open(info) as stream, open(target, "xb") as out:
                while chunk := stream.read(min(_CHUNK, info.file_size - written + 1)):
                    written += len(chunk)
                    if written > info.file_size:
                        break
                    out.write(chunk)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:  # bad CRC, truncated, unsupported
            raise DatasetIntegrityError(
                f"Cannot import {self.where}: entry {info.filename!r} cannot be read ({exc}); nothing was imported."
            ) from exc
        if written != info.file_size:
            raise DatasetIntegrityError(
                f"Cannot import {self.where}: entry {info.filename!r} holds more or fewer bytes than its "
                f"{info.file_size} recorded; nothing was imported."
            )
        return target

    def localPath(self, relPath: str) -> str:
        return self.extracted[relPath]

    def transferFor(self, transfer: str) -> str:
        return "hardlink"  # our own extracted files, in the datastore root: linked, not copied again


@contextlib.contextmanager
def _openExport(source: str, store: FileDatastore) -> Iterator[_Export]:
    if os.path.isdir(source):
        root = os.path.realpath(source)
        yield _DirectoryExport(root, _readDirectoryManifest(root))
        return
    if not os.path.exists(source):
        raise ExportError(f"Cannot import {source}: there is no such folder or zip file.")
    if not zipfile.is_zipfile(source):
        raise ExportError(
            f"Cannot import {source}: it is neither a folder nor a zip file made by databutler export."
        )
    with zipfile.ZipFile(source) as archive:
        manifest = _readZipManifest(source, archive)
        if not store.files.isLocal:
            raise ExportError(
                f"Cannot import zip file {source} into a datastore that is not on a local disk."
            )
        scratch = tempfile.mkdtemp(prefix=".import-", dir=store.files.rootPath)
        try:
            yield _ZipExport(source, manifest, archive, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _readDirectoryManifest(root: str) -> Manifest:
    found = [(fmt, name) for fmt, name in MANIFEST_NAMES.items() if os.path.lexists(os.path.join(root, name))]
    if len(found) != 1:
        raise ExportError(
            f"Cannot import {root}: it must hold one manifest, export.yaml or export.json (found "
            f"{[n for _, n in found] or 'none'}); is it a databutler export?"
        )
    manifestFormat, name = found[0]
    path = os.path.join(root, name)
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafePathError(f"Cannot import {root}: its {name} is not a regular file (a symbolic link?).")
    if info.st_size > MAX_MANIFEST_SIZE:
        raise ManifestError(
            f"Cannot import {root}: its {name} has {info.st_size} bytes, more than any export needs."
        )
    with open(path, "rb") as stream:
        return readManifest(stream.read(), manifestFormat, path)


def _readZipManifest(source: str, archive: zipfile.ZipFile) -> Manifest:
    names = set(archive.namelist())
    found = [(fmt, name) for fmt, name in MANIFEST_NAMES.items() if name in names]
    if len(found) != 1:
        raise ExportError(
            f"Cannot import {source}: it must hold one manifest, export.yaml or export.json, at its top (found "
            f"{[n for _, n in found] or 'none'}); is it a databutler export?"
        )
    manifestFormat, name = found[0]
    info = archive.getinfo(name)
    if info.file_size > MAX_MANIFEST_SIZE:
        raise ManifestError(
            f"Cannot import {source}: its {name} has {info.file_size} bytes, more than any export needs."
        )
    try:
        with archive.open(info) as stream:
            text = stream.read(MAX_MANIFEST_SIZE + 1)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise ManifestError(f"Cannot import {source}: its {name} cannot be read ({exc}).") from exc
    return readManifest(text, manifestFormat, f"{source}:{name}")
