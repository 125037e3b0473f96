"""Writing an export: the manifest and the datasets' files, to a folder or a zip file (`Butler.export`)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..butler import isPlainName
from ..dataset_ref import DatasetRef
from ..datastore.base import Datastore
from ..datastores.file import FileDatastore
from ..exceptions import ArgumentTypeError, DatasetNotFoundError, ExportError
from .manifest import MANIFEST_NAMES, ExportedDataset, ExportedFile, Manifest, dumpManifest, recordToManifest

if TYPE_CHECKING:
    from ..butler import Butler

__all__ = ["EXPORT_FORMATS", "EXPORT_TRANSFERS", "copyLocalFile", "exportDatasets", "fileDatastoreOf"]

EXPORT_FORMATS = ("directory", "zip")
"""What `Butler.export` can write: a folder, or one zip file (entries stored, not compressed)."""

EXPORT_TRANSFERS = ("copy", "hardlink", "link")
"""How `Butler.export` puts the files in a folder: copies (the default); hard links to the stored
files (same file system only); hard links where possible, else copies."""


def fileDatastoreOf(datastore: Datastore) -> FileDatastore | None:
    """Return ``datastore`` if it keeps files, else the first of its children (depth first) that does."""
    if isinstance(datastore, FileDatastore):
        return datastore
    for child in datastore.children:
        found = fileDatastoreOf(child)
        if found is not None:
            return found
    return None


def exportDatasets(
    butler: Butler,
    path: str | os.PathLike[str],
    refs: Iterable[DatasetRef] | None = None,
    *,
    datasetTypes: str | Sequence[str] | None = None,
    where: Mapping[str, Any] | str | None = None,
    bind: Mapping[str, Any] | None = None,
    collections: str | Sequence[str] | None = None,
    format: str = "directory",
    manifestFormat: str = "json",
    transfer: str = "copy",
) -> Manifest:
    """Write datasets, with what is needed to import them elsewhere, to ``path``; see `Butler.export`."""
    if format not in EXPORT_FORMATS:
        raise ExportError(f"Unknown export format {format!r}; use 'directory' or 'zip'.")
    if manifestFormat not in MANIFEST_NAMES:
        raise ExportError(f"Unknown manifest format {manifestFormat!r}; use 'yaml' or 'json'.")
    if transfer not in EXPORT_TRANSFERS:
        raise ExportError(f"Unknown export transfer {transfer!r}; use one of {', '.join(EXPORT_TRANSFERS)}.")
    if transfer != "copy" and format == "zip":
        raise ExportError(f"A zip export holds copies of the files; transfer={transfer!r} is for a folder.")
    destination = os.path.abspath(os.fspath(path))
    _checkDestination(destination, format)
    chosen = _chooseRefs(butler, refs, datasetTypes, where, bind, collections)
    store = fileDatastoreOf(butler.datastore)
    if store is None:
        raise ExportError(
            f"Repository {str(butler.root)!r} keeps no files (datastore {butler.datastore.name!r}), so there "
            "is nothing to export."
        )
    stored = store.storedFiles(chosen)
    missing = [ref for ref in chosen if ref not in stored]
    if missing:
        raise DatasetNotFoundError(
            f"Cannot export {len(missing)} dataset(s) the file datastore of {str(butler.root)!r} does not hold, "
            f"e.g. {missing[0]}; nothing was exported."
        )
    manifest = _buildManifest(butler, chosen, stored, collections)
    sources = {f.path: store.files.fullPath(f.path) for d in manifest.datasets for f in d.files}
    text = dumpManifest(manifest, manifestFormat)
    if transfer != "copy" and not store.files.isLocal:
        raise ExportError(
            f"Cannot export with transfer={transfer!r} from datastore {store.name!r}: it is not on a local "
            "disk; use 'copy'."
        )
    if format == "zip":
        _writeZip(destination, sources, MANIFEST_NAMES[manifestFormat], text, store)
    else:
        _writeDirectory(destination, sources, MANIFEST_NAMES[manifestFormat], text, store, transfer)
    return manifest


def _checkDestination(destination: str, format: str) -> None:
    if format == "zip":
        if os.path.lexists(destination):
            raise ExportError(f"Cannot export to {destination}: it exists; name a new zip file.")
        if not os.path.isdir(os.path.dirname(destination)):
            raise ExportError(f"Cannot export to {destination}: its folder does not exist.")
    elif os.path.lexists(destination) and (not os.path.isdir(destination) or os.listdir(destination)):
        raise ExportError(
            f"Cannot export to {destination}: it exists and is not an empty folder; name a new one."
        )


def _chooseRefs(
    butler: Butler,
    refs: Iterable[DatasetRef] | None,
    datasetTypes: str | Sequence[str] | None,
    where: Mapping[str, Any] | str | None,
    bind: Mapping[str, Any] | None,
    collections: str | Sequence[str] | None,
) -> list[DatasetRef]:
    if refs is not None:
        if isinstance(refs, str | DatasetRef):
            raise ArgumentTypeError(f"export takes an iterable of DatasetRefs, not {type(refs).__name__}.")
        if datasetTypes is not None or where is not None:
            raise ArgumentTypeError("export takes refs or a query (datasetTypes=, where=), not both.")
        chosen = list(refs)
        wrong = [r for r in chosen if not isinstance(r, DatasetRef)]
        if wrong:
            raise ArgumentTypeError(
                f"export takes DatasetRefs, not {type(wrong[0]).__name__} {wrong[0]!r:.80}."
            )
    else:
        names = [datasetTypes] if isinstance(datasetTypes, str) else list(datasetTypes or ["*"])
        types = butler.queryDatasetTypes(names)
        for name in names:  # a plain name (not a glob pattern) must be registered: a typo is no empty export
            if isinstance(name, str) and isPlainName(name):
                butler.getDatasetType(name)
        chosen = []
        for datasetType in types:
            if not datasetType.isComponent():
                chosen.extend(
                    butler.queryDatasets(datasetType, collections=collections, where=where, bind=bind)
                )
    return list(dict.fromkeys(r.makeCompositeRef() if r.isComponent() else r for r in chosen))


def _buildManifest(
    butler: Butler,
    refs: list[DatasetRef],
    stored: dict[DatasetRef, list[Any]],
    collections: str | Sequence[str] | None,
) -> Manifest:
    registry = butler.registry
    universe = registry.dimensions
    manifest = Manifest()
    datasetTypes = {ref.datasetType.name: ref.datasetType for ref in refs}
    used: list[str] = []

    def use(name: str) -> None:
        if name in used or name not in universe:
            return
        dimension = universe[name]
        for other in (*dimension.requires, *dimension.implies):
            use(other)
        used.append(name)

    for datasetType in datasetTypes.values():
        for name in datasetType.dimensions:
            use(name)
        manifest.datasetTypes.append(
            {
                "name": datasetType.name,
                "dimensions": list(datasetType.dimensions),
                "storageClass": datasetType.storageClass.name,
            }
        )
    manifest.dimensions = {name: universe[name].toConfig() for name in used}
    manifest.dimensionRecords = _records(butler, refs, used)
    runs = sorted({str(ref.run) for ref in refs})
    manifest.collections = [{"name": run, "type": "RUN"} for run in runs]
    manifest.collections += _chains(butler, collections, set(runs))
    for ref in refs:
        files = tuple(
            ExportedFile(
                path=info.path,
                formatter=str(info.formatter),
                storageClass=info.storageClass.name,
                component=info.component,
                fileSize=info.fileSize,
                checksum=info.checksum,
            )
            for info in stored[ref]
        )
        manifest.datasets.append(
            ExportedDataset(ref.datasetType.name, str(ref.run), ref.id, dict(ref.dataId), files)
        )
    return manifest


def _records(butler: Butler, refs: list[DatasetRef], used: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Return the records of the dimension values the refs' data IDs use (and those they imply)."""
    universe = butler.registry.dimensions
    withRecords = [name for name in used if universe[name].hasRecords]
    if not withRecords:
        return {}
    wanted: dict[str, set[tuple[Any, ...]]] = {name: set() for name in withRecords}
    for ref in refs:
        for name in withRecords:
            keys = (*universe[name].requires, name)
            if all(k in ref.dataId for k in keys):
                wanted[name].add(tuple(ref.dataId[k] for k in keys))
    out: dict[str, list[dict[str, Any]]] = {}
    for name in reversed(withRecords):  # a record's implied values are wanted too; they come earlier
        keys = (*universe[name].requires, name)
        chosen = []
        for record in butler.registry.queryDimensionRecords(name):
            values = record.toDict()
            if tuple(values.get(k) for k in keys) not in wanted[name]:
                continue
            chosen.append(recordToManifest(values))
            for implied in universe[name].implies:
                if implied in wanted and values.get(implied) is not None:
                    impliedKeys = (*universe[implied].requires, implied)
                    if all(values.get(k) is not None for k in impliedKeys):
                        wanted[implied].add(tuple(values[k] for k in impliedKeys))
        if chosen:
            out[name] = chosen
    return {name: out[name] for name in withRecords if name in out}


def _chains(butler: Butler, collections: str | Sequence[str] | None, runs: set[str]) -> list[dict[str, Any]]:
    """Return the CHAINED collections among ``collections`` (and chains within them), children first."""
    from ..registry.collections import CollectionType

    names = [collections] if isinstance(collections, str) else list(collections or ())
    registry = butler.registry
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        kind = registry.getCollectionType(name)
        if kind == CollectionType.CHAINED:
            children = registry.getCollectionChain(name)
            for child in children:
                visit(child)
            out.append({"name": name, "type": "CHAINED", "children": list(children)})
        elif kind == CollectionType.RUN and name not in runs:
            out.insert(0, {"name": name, "type": "RUN"})  # an empty run a chain names

    for name in names:
        visit(name)
    return out


def _copyInto(source: str, target: str, store: FileDatastore, transfer: str) -> None:
    if store.files.isLocal:
        try:
            if transfer == "copy":
                copyLocalFile(source, target)
            else:
                _linkInto(source, target, transfer)
        except FileNotFoundError as exc:  # the target's folder was just made: it is the source
            raise DatasetNotFoundError(
                f"Cannot export {source}: the file is gone; nothing was exported."
            ) from exc
    else:
        store.files.fs.get_file(source, target)


def _linkInto(source: str, target: str, transfer: str) -> None:
    """Make ``target`` a hard link to ``source``; for ``link``, a copy where no hard link can be made."""
    try:
        os.link(source, target)
    except (FileNotFoundError, FileExistsError):
        raise
    except OSError as exc:
        if transfer == "hardlink":
            raise ExportError(
                f"Cannot hard-link {source} into the export at {target}: {exc}; use transfer='link' (hard "
                "links where possible, else copies) or 'copy'; nothing was exported."
            ) from exc
        copyLocalFile(source, target)  # another file system, or no hard links there


def copyLocalFile(source: str, target: str) -> None:
    """Copy the local file ``source`` to the new file ``target`` (never replacing one), in the kernel.

    Four system calls for a small file (two opens, one ``sendfile``, one ``fstat``) besides
    the closes, where `shutil.copyfile` makes ten or so (it checks both paths are not the same
    file and whether each is a named pipe first); the bytes never come into Python. Where
    ``sendfile`` cannot copy between these files, the bytes are read and written in pieces.

    Raises
    ------
    FileNotFoundError
        ``source`` is missing (or ``target``'s folder is).
    FileExistsError
        Something is at ``target`` already.
    ExportError
        ``source`` is not a regular file (a named pipe, say: opened without waiting for a writer).
    """
    inFd, size = _openRegular(source)
    try:
        outFd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        try:
            copied = 0
            try:
                while copied < size:  # a file that shrank meanwhile ends the copy early
                    sent = os.sendfile(outFd, inFd, None, size - copied)
                    if sent == 0:
                        break
                    copied += sent
            except OSError as exc:  # no sendfile between these file systems: read and write instead
                if exc.errno not in _NO_SENDFILE or copied:
                    raise
                while chunk := os.read(inFd, _CHUNK):
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(outFd, view) :]
        finally:
            os.close(outFd)
    finally:
        os.close(inFd)


def _openRegular(source: str) -> tuple[int, int]:
    """Open the local file ``source`` for reading; return its descriptor and size.

    ``O_NONBLOCK`` makes a named pipe open at once (a plain open waits for a writer, for ever)
    and does nothing to a regular file; the ``fstat`` of the open file then refuses anything
    else, with no second look at the path.

    Raises
    ------
    ExportError
        ``source`` is not a regular file.
    """
    fd = os.open(source, os.O_RDONLY | _CLOEXEC | _NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ExportError(
                f"Cannot export {source}: it is not a regular file (a named pipe, a device or a folder) "
                "but the datastore recorded a file there; run 'databutler verify'; nothing was exported."
            )
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def _writeEntry(archive: zipfile.ZipFile, source: str, relPath: str) -> None:
    """Add the local file ``source`` to ``archive`` as ``relPath`` (stored), read through `_openRegular`."""
    fd, size = _openRegular(source)
    with os.fdopen(fd, "rb") as stream, archive.open(relPath, "w", force_zip64=size > _ZIP64_FROM) as out:
        shutil.copyfileobj(stream, out, _CHUNK)


_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_ZIP64_FROM = (1 << 31) - 1
_NO_SENDFILE = frozenset({errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV})
_CHUNK = 1 << 20


def _writeDirectory(
    destination: str,
    sources: dict[str, str],
    manifestName: str,
    text: bytes,
    store: FileDatastore,
    transfer: str,
) -> None:
    created = not os.path.exists(destination)
    os.makedirs(destination, exist_ok=True)
    try:
        folders: set[str] = set()
        for relPath, source in sources.items():
            target = os.path.join(destination, relPath)
            folder = os.path.dirname(target)
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            _copyInto(source, target, store, transfer)
        with open(os.path.join(destination, manifestName), "xb") as stream:  # last: a partial export has none
            stream.write(text)
    except BaseException:
        if created:
            shutil.rmtree(destination, ignore_errors=True)
        else:
            for entry in os.listdir(destination):
                full = os.path.join(destination, entry)
                shutil.rmtree(full, ignore_errors=True) if os.path.isdir(full) else os.remove(full)
        raise


def _writeZip(
    destination: str, sources: dict[str, str], manifestName: str, text: bytes, store: FileDatastore
) -> None:
    handle, temp = tempfile.mkstemp(prefix=".export-", suffix=".zip.tmp", dir=os.path.dirname(destination))
    os.close(handle)
    try:
        with zipfile.ZipFile(temp, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            archive.writestr(manifestName, text)
            for relPath, source in sources.items():
                if store.files.isLocal:
                    try:
                        _writeEntry(archive, source, relPath)
                    except FileNotFoundError as exc:
                        raise DatasetNotFoundError(
                            f"Cannot export {source}: the file is gone; nothing was exported."
                        ) from exc
                else:
                    with store.files.fs.open(source, "rb") as stream, archive.open(relPath, "w") as out:
                        shutil.copyfileobj(stream, out, 1 << 20)
        os.replace(temp, destination)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temp)
        raise
