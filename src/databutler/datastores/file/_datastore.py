"""FileDatastore: datasets as files under a root, on any fsspec file system.

Each dataset is written by a formatter (chosen per dataset type or storage class) to a path
made from a file template; a composite with no formatter of its own is disassembled into one
file per component inside a folder. What was written where is recorded in a SQL table (see
`FileRecordTable`); the records, not the files, say what the datastore holds.
"""

from __future__ import annotations

import functools
import logging
import os
import posixpath
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import fsspec
from typing_extensions import override

from ...config import ROOT_PLACEHOLDER, Config
from ...dataset_ref import DatasetRef
from ...dataset_type import DatasetType
from ...datastore.base import ArtifactRequest, Datastore, DatastoreConfigLike
from ...datastore.bridge import (
    DatasetLocationRegistry,
    InMemoryRecordStorage,
    RecordStorage,
    RecordStorageProvider,
)
from ...datastore.transaction import DatastoreTransaction
from ...exceptions import (
    ConfigError,
    DatasetNotFoundError,
    DatasetTypeError,
    DatasetTypeMismatchError,
    IngestError,
    RecordConflictError,
    StoredItemInfoExistsError,
    StoredItemInfoNotFoundError,
    UnsafePathError,
)
from ...formatters.base import Formatter
from ...formatters.extensions import FormatterRegistry
from ._access import FileAccess, FileWrite, externalUri
from ._ingest import (
    LINK_MODES,
    OUTSIDE_MODES,
    SYMBOLIC_MODES,
    TRANSFER_MODES,
    hashSource,
    makeLink,
    statSource,
    transferWriter,
)
from ._io import CHECKSUM_ALGORITHMS, DEFAULT_CHECKSUM_ALGORITHM, isWithin, newHasher, removeQuietly
from ._layout import FileLayout, configSection
from ._records import FileRecordTable, StoredFileInfo
from ._retrieve import retrieveArtifacts
from ._templates import checkRelativePath
from ._verified import VerifiedIngest, checkedWrite, copyVerified

__all__ = ["FileDatastore"]


class _Prepared(NamedTuple):
    """The temporary files `FileDatastore.prepared` wrote for one put, waiting for its `put`."""

    obj: Any
    """The object they were encoded from (a put of another object does not use them)."""
    basePath: str
    """The path the template gave the ref (a put whose ref renders another does not use them)."""
    datasetType: DatasetType
    folder: str | None
    files: list[tuple[str | None, str, str, Any, tuple[str, int, str | None]]]
    """``(component, relPath, formatterName, storageClass, (tempPath, size, checksum))``."""


log = logging.getLogger(__name__)

RECORDS_FILE = "fileDatastore.sqlite3"
"""Name of the SQLite records file made in a local root when ``records.db`` is not set."""

REGISTRY_RECORDS = "registry"
"""``records.db`` value: keep the records in the registry's own database (as a Butler
repository's file tier does), so they commit in the registry's transactions."""

_COPIES = frozenset({"auto", "copy", "move"})
"""The transfer modes of `FileDatastore.ingestVerified` that copy each file (`copyVerified`)."""

_KNOWN_KEYS = frozenset(
    {
        "cls",
        "name",
        "root",
        "storageOptions",
        "records",
        "checksum",
        "templates",
        "formatters",
        "constraints",
        "storageClasses",
    }
)


class FileDatastore(Datastore[StoredFileInfo]):
    """Stores datasets as files under a root: a local folder or any fsspec URI.

    Parameters
    ----------
    config : DatastoreConfig, Config, mapping or str
        Keys under ``datastore`` (defaults in ``configs/datastores/fileDatastore.yaml``):
        ``root`` (required), ``storageOptions`` (passed to fsspec), ``records.db`` (SQLAlchemy
        URL of the records), ``checksum``, ``templates``, ``formatters``.
    registry : DatasetLocationRegistry, optional
        Told which datasets this datastore holds and no longer holds.

    Raises
    ------
    ConfigError
        ``root`` is missing, a key is unknown or malformed, or ``records.db`` is needed (a
        root other than a local folder or ``memory://``) but not given.

    Attributes
    ----------
    root : str
        The root as a URI (``file:///...``, ``s3://bucket/prefix``...).
    fs : fsspec.AbstractFileSystem
        The file system the root lives on.
    layout : FileLayout
        Its templates and formatters: where and how each dataset is written.
    checksum : bool
        Whether checksums are recorded on put and verified on get.
    checksumAlgorithm : str or None
        What new checksums are computed with (``"xxh3_128"``, ``"blake2b"``), `None` if off.
        A file is always verified with the algorithm recorded with its checksum.
    """

    defaultConfigFile = "datastores/fileDatastore.yaml"
    """Path to configuration defaults, relative to the config search path."""

    isEphemeral = False

    configKeys = _KNOWN_KEYS
    """The keys of its ``datastore`` section (``constraints`` is read by an enclosing chain)."""
    """Files outlive the process."""

    def __init__(self, config: DatastoreConfigLike, registry: DatasetLocationRegistry | None = None) -> None:
        super().__init__(config, registry)
        self._prepared: dict[uuid.UUID, _Prepared] = {}
        cfg = self.config
        root = cfg.get("root")
        if not isinstance(root, str) or not root:
            raise ConfigError(
                f"FileDatastore {self.name!r} needs datastore.root (a folder or URI), not {root!r}."
            )
        options = configSection(cfg.get("storageOptions"), "storageOptions")
        try:
            self.fs, rootPath = fsspec.core.url_to_fs(root, **options)
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"FileDatastore root {root!r} cannot be opened: {exc}") from exc
        self.rootPath: str = rootPath.rstrip("/") or "/"
        self.root: str = self.fs.unstrip_protocol(self.rootPath)
        self.checksumAlgorithm: str | None = _checksumAlgorithm(cfg.get("checksum", True))
        self.checksum: bool = self.checksumAlgorithm is not None
        self.layout = FileLayout(
            configSection(cfg.get("templates"), "templates"),
            configSection(cfg.get("formatters"), "formatters"),
            self.name,
        )
        storage, self._ownsRecordStorage = (
            self._recordStorage()
        )  # every config check before anything is created
        self.fs.makedirs(self.rootPath, exist_ok=True)
        self._recordStorageInUse = storage
        self._records = FileRecordTable(storage, self.name, self.storageClassFactory)
        self.files = FileAccess(
            self.fs, self.rootPath, self.checksumAlgorithm, self.layout, self._records, self.name
        )
        if not storage.isReadOnly:  # a read-only repository is not changed
            self.recover()

    def recover(self) -> int:
        """Finish what a crashed process left half-done: delete the files of committed removals.

        Run when the datastore is opened. A removal deletes the records and notes the files in
        the trash in one transaction and deletes the files only after it commits; this deletes
        the files of trash rows left by a process killed in between (each file only if no record
        names its path by then). A failure (a read-only repository, say) is logged, not raised.

        Returns
        -------
        finished : int
            How many removals were finished.
        """
        try:
            return self.files.recover()
        except Exception as exc:
            log.warning("FileDatastore %r could not finish earlier removals: %s", self.name, exc)
            return 0

    def _recordStorage(self) -> tuple[RecordStorage, bool]:
        """Return where the records live, and whether this datastore opened it (and closes it).

        ``records.db: registry`` (what `Butler.makeRepo` writes) means the registry's
        `Registry.recordStorage`; a datastore so configured refuses to open without such a
        registry rather than start an empty records file. A URL is a database of the
        datastore's own. Unset, the records are a SQLite file in a local root, or in memory for
        ``memory://`` (as ephemeral as the memory file system itself).
        """
        url = self.config.get("records.db")
        if url == REGISTRY_RECORDS:
            registry = self.registry
            storage = registry.recordStorage if isinstance(registry, RecordStorageProvider) else None
            if storage is None:
                raise ConfigError(
                    f"FileDatastore {self.name!r} at {self.root} keeps its records in the registry's "
                    f"database (records.db: {REGISTRY_RECORDS}) but was opened without a SQL registry; "
                    f"open it through its Butler, or pass registry=SqlRegistry.fromConfig(...)."
                )
            return storage, False
        if url is None:
            protocols = {self.fs.protocol} if isinstance(self.fs.protocol, str) else set(self.fs.protocol)
            if "memory" in protocols:
                return InMemoryRecordStorage(), True
            if not protocols & {"file", "local"}:
                raise ConfigError(
                    f"FileDatastore {self.name!r} at {self.root} cannot keep a SQLite file in a remote root; "
                    f"set datastore.records.db to a database URL (e.g. 'sqlite:////local/path/records.sqlite3'), "
                    f"or to {REGISTRY_RECORDS!r} to keep them in the registry's database."
                )
            url = f"sqlite:///{self.rootPath}/{RECORDS_FILE}"
        elif url in ("sqlite://", "sqlite:///:memory:"):
            return InMemoryRecordStorage(), True
        from ...registry.records import SqlRecordStorage  # SQLAlchemy only for SQL records

        try:
            return SqlRecordStorage.fromUrl(str(url)), True
        except ConfigError as exc:
            raise ConfigError(
                f"datastore.records.db must be a database URL such as 'sqlite:///path' or "
                f"{REGISTRY_RECORDS!r}, not {url!r}."
            ) from exc

    @override
    def close(self) -> None:
        """Close the records database connections (a registry's are left to the registry)."""
        if self._ownsRecordStorage:
            self._recordStorageInUse.close()

    # -- put --

    @override
    def put(self, inMemoryDataset: Any, ref: DatasetRef) -> None:
        """Write ``inMemoryDataset`` as the dataset ``ref``: atomically, then record it.

        A path that belongs to another dataset is refused as a `DatasetExistsError` too.

        Raises
        ------
        FormatterError
            The formatter failed; nothing was stored.
        UnsafePathError
            A data ID value or the run cannot be used in a path.
        ConfigError
            No formatter is configured, or the template uses a field the ref lacks.
        """
        self._checkPutArguments(inMemoryDataset, ref)
        # A duplicate is caught when its record is inserted (the temporary file is then removed):
        # no query up front, which would cost every put a round trip to the database.
        ready = self._takePrepared(inMemoryDataset, ref)
        if ready is not None:
            self._store(
                ref,
                [
                    (component, relPath, formatterName, storageClass, functools.partial(_given, written))
                    for component, relPath, formatterName, storageClass, written in ready.files
                ],
                ready.folder,
            )
            return
        plan, folder = self.layout.plan(inMemoryDataset, ref)
        writes: list[FileWrite] = [
            (
                component,
                relPath,
                formatter.name,
                storageClass,
                functools.partial(self.files.writeFile, ref, relPath, formatter, obj, storageClass),
            )
            for component, relPath, formatter, obj, storageClass in plan
        ]
        self._store(ref, writes, folder)

    @override
    def checkRun(self, run: str) -> None:
        """Refuse a run name that a template using ``{run}`` cannot put in a path (`Datastore.checkRun`)."""
        self.layout.templates.checkRun(run)

    @override
    @contextmanager
    def prepared(self, pairs: Sequence[tuple[Any, DatasetRef]]) -> Iterator[None]:
        """Encode each object to temporary files beside the paths its ref will have, before a transaction.

        A `Butler` enters this before it takes the registry's write lock; inside, `put` of the
        same object and ref only records the files and renames them into place (one rename
        each, in the same folder). Temporary files not used by the end of the block (the put
        was refused, or never made) are deleted; a process killed meanwhile leaves only hidden
        ``.<name>.tmp-<hex>`` files, which `removeLeftoverFiles` deletes once old.

        A ref whose path cannot be made (an unsafe data ID value, no formatter) is not
        prepared: its `put` raises, after the registry has checked the data ID.

        Raises
        ------
        FormatterError, DatasetTypeMismatchError
            As `put` would; nothing is left behind.
        """
        mine: list[uuid.UUID] = []
        try:
            for obj, ref in pairs:
                if ref.isComponent() or ref.id in self._prepared:
                    continue  # put will refuse a component; a ref given twice is put (and refused) once
                try:
                    plan, folder = self.layout.plan(obj, ref)
                    for _, relPath, _, _, _ in plan:
                        self.files.insidePath(relPath)
                except (UnsafePathError, ConfigError):
                    continue  # `put` raises it, after the registry's own checks of the data ID
                files: list[tuple[str | None, str, str, Any, tuple[str, int, str | None]]] = []
                try:
                    for component, relPath, formatter, value, storageClass in plan:
                        written = self.files.writeFile(ref, relPath, formatter, value, storageClass)
                        files.append((component, relPath, formatter.name, storageClass, written))
                except BaseException:
                    for *_, (tempPath, _, _) in files:
                        removeQuietly(self.fs, tempPath)
                    raise
                self._prepared[ref.id] = _Prepared(
                    obj, self.layout.templates.render(ref), ref.datasetType, folder, files
                )
                mine.append(ref.id)
            yield
        finally:
            for refId in mine:
                left = self._prepared.pop(refId, None)
                if left is not None:
                    for *_, (tempPath, _, _) in left.files:
                        removeQuietly(self.fs, tempPath)

    def _takePrepared(self, inMemoryDataset: Any, ref: DatasetRef) -> _Prepared | None:
        """Return (and forget) what `prepared` wrote for this object and ref, if it still fits."""
        ready = self._prepared.pop(ref.id, None)
        if ready is None:
            return None
        if (
            ready.obj is inMemoryDataset
            and ready.datasetType == ref.datasetType
            and ready.basePath == self.layout.templates.render(ref)
        ):
            return ready
        for *_, (tempPath, _, _) in ready.files:  # another object or path: encode it again
            removeQuietly(self.fs, tempPath)
        return None

    @override
    def checkPut(self, inMemoryDataset: Any, datasetType: DatasetType) -> None:
        """Check the storage class, then ask the formatter(s) `put` would use to validate the object.

        Raises
        ------
        DatasetTypeMismatchError
            ``inMemoryDataset`` is not of the storage class's type.
        UnstorableDatasetError
            The storage class or a formatter cannot store it exactly.
        ConfigError
            No formatter is configured for it.
        """
        datasetType.storageClass.checkInstance(inMemoryDataset, f"dataset type {datasetType.name!r}")
        self.layout.validate(inMemoryDataset, datasetType)

    def _store(self, ref: DatasetRef, writes: list[FileWrite], folder: str | None) -> None:
        infos = self.files.store(ref, writes, folder)
        try:
            self._notifyAdded([ref])
        except BaseException:
            self._drop(ref, infos)
            raise
        self._registerUndo(f"put of {ref}", self._drop, ref, infos)

    def _drop(self, ref: DatasetRef, infos: list[StoredFileInfo] | None = None) -> None:
        """Forget ``ref`` and delete its files (undo of a put that recorded ``infos``)."""
        if self.files.drop(ref, infos):  # in the trash until the registry transaction commits
            tx = self._currentTransaction()
            parent = tx.parent if tx is not None else None
            if parent is not None:
                parent.registerOnCommit(f"delete the files of undone {ref}", self.files.recover)
                # If the enclosing transaction is undone instead, so is the deletion of the
                # records, and so was their insertion: the files belong to nobody then either.
                parent.registerUndo(f"delete the files of undone {ref}", self.files.drop, ref, infos)
        self._notifyRemoved([ref])

    @override
    def ingest(self, datasets: Iterable[IngestItem], transfer: str = "auto") -> None:
        """Bring existing files in as the datasets they hold, all or none; the files are not decoded.

        Parameters
        ----------
        datasets : iterable of (path, ref, formatter)
            A local file, the resolved ref of the dataset it holds, and the formatter that
            reads it: a `Formatter`, its class or dotted class name, or `None` to choose it
            (the one configured for the dataset type if it writes files of this extension,
            else the one ``fileFormats.yaml`` names for the extension).
        transfer : str
            ``copy`` (``auto``), ``move`` (copy, then delete the source once all is committed),
            ``hardlink``, ``link`` (a hard link, else a symbolic one), ``symlink`` or
            ``relsymlink``: each file lands at its dataset's templated path in the root.
            ``direct`` leaves the file where it is (outside the root) and records its absolute
            ``file://`` URI; removing the dataset never deletes it.

        Raises
        ------
        IngestError
            A file is missing or not a regular file, the mode is unknown, or the transfer
            failed (a hard link across file systems); nothing was ingested.
        FormatterError
            No formatter is known for a file's extension.
        DatasetExistsError
            A dataset is already stored, or its path is taken; nothing was ingested.
        UnsafePathError
            A path would leave the root.
        """
        if not self.files.isLocal:
            raise IngestError(f"Datastore {self.name!r} is not on a local disk; ingest needs one.")
        if transfer not in TRANSFER_MODES:
            transferWriter(self.files.fs, "", "", transfer, None)  # raises the IngestError
        algorithm = self.files.checksumAlgorithm
        inside = self.files.insideChecker()
        formatters: dict[tuple[DatasetType, str], Formatter] = {}
        now = time.time()
        planned: list[tuple[DatasetRef, list[StoredFileInfo]]] = []
        links: list[tuple[str, str]] = []  # (source, final path) of each link, in the order of planned
        items: list[tuple[DatasetRef, list[FileWrite], str | None]] = []  # copies, moves, direct files
        temps: list[str] = []
        sources: list[str] = []
        realFolders: dict[str, str] = {}  # each source folder's real path, resolved once per call
        try:
            for source, ref, formatterSpec in datasets:  # consumed as it goes (a progress bar)
                if ref.isComponent():
                    raise DatasetTypeError(f"Cannot ingest component {ref} on its own; ingest the composite.")
                absolute, expected, isLink = statSource(source, ref)
                if transfer in OUTSIDE_MODES:
                    self._refuseSourceInRoot(ref, absolute, transfer, isLink, realFolders)
                formatter = self._ingestFormatter(ref, absolute, formatterSpec, formatters)
                if transfer == "direct":
                    relPath, target = externalUri(absolute), absolute
                else:
                    relPath = self.layout.templates.render(ref) + formatter.extension
                    try:
                        target = inside(relPath)
                    except UnsafePathError as exc:
                        raise UnsafePathError(f"Cannot ingest {ref}: {exc}") from exc
                storageClass = ref.datasetType.storageClass
                sources.append(absolute)
                try:
                    if transfer in LINK_MODES:  # hashed now, linked once every record is in
                        size, checksum = hashSource(absolute, algorithm, expected)
                        info = StoredFileInfo(
                            now,
                            storageClass,
                            path=relPath,
                            formatter=formatter.name,
                            fileSize=size,
                            checksum=checksum,
                        )
                        planned.append((ref, [info]))
                        links.append((absolute, target))
                        continue
                    written = transferWriter(self.files.fs, absolute, target, transfer, algorithm, expected)()
                except OSError as exc:
                    raise self._ingestFailed(transfer, absolute, ref, exc) from exc
                if written[0] is not None:
                    temps.append(written[0])
                given = functools.partial(_given, written)
                items.append((ref, [(None, relPath, formatter.name, storageClass, given)], None))
            with self.transaction() as tx:
                if links:
                    self.files.linkMany(
                        planned, links, functools.partial(self._linkIn, transfer), inside.confirm
                    )
                elif items:
                    planned = self.files.storeMany(items, inside.confirm)
                temps = []  # renamed into place, or removed by storeMany
                if not planned:
                    return
                self._addedMany(planned)
                if transfer == "move":
                    for absolute in sources:
                        tx.registerOnCommit(
                            f"delete the moved source {absolute}", removeQuietly, self.files.fs, absolute
                        )
        finally:
            for tempPath in temps:  # copies made before a failure
                removeQuietly(self.files.fs, tempPath)

    def _ingestFailed(self, transfer: str, source: str, ref: DatasetRef, exc: OSError) -> IngestError:
        return IngestError(
            f"Cannot {transfer} {source} into datastore {self.name!r} as {ref}: {exc}; nothing was ingested."
        )

    def _linkIn(self, transfer: str, source: str, path: str) -> None:
        """`makeLink` for `FileAccess.linkMany`: a failure other than an entry there is an `IngestError`."""
        try:
            makeLink(source, path, transfer)
        except FileExistsError:
            raise
        except OSError as exc:
            raise IngestError(
                f"Cannot {transfer} {source} to {path} in datastore {self.name!r}: {exc}; nothing was ingested."
            ) from exc

    @override
    def _retrieveArtifacts(self, refs: Iterable[DatasetRef], request: ArtifactRequest) -> list[str]:
        return retrieveArtifacts(self, refs, *request)

    def _refuseSourceInRoot(
        self, ref: DatasetRef, absolute: str, transfer: str, isLink: bool, realFolders: dict[str, str]
    ) -> None:
        """Refuse a source under the root for a mode that deletes it or keeps pointing at it.

        A ``move`` would delete a file the datastore owns (another dataset's, or the
        repository's own configuration), and a symbolic link or a ``direct`` URI to such a file
        would leave the new dataset resting on it (and a cleanup would take a ``direct`` file
        there for an orphan). The source's folder is resolved once per folder (``realFolders``);
        its last component too when it is a symbolic link and the mode keeps pointing at it by
        name (``move`` deletes the link itself, not its target).

        Raises
        ------
        IngestError
            The real path of the source is inside the root.
        """
        if isLink and transfer in SYMBOLIC_MODES:
            real = os.path.realpath(absolute)
        else:
            folder, name = os.path.split(absolute)
            realFolder = realFolders.get(folder)
            if realFolder is None:
                realFolder = realFolders[folder] = os.path.realpath(folder)
            real = os.path.join(realFolder, name)
        root = self.files.realRoot
        if isWithin(real, root):
            raise IngestError(
                f"Cannot ingest {ref} with transfer={transfer!r}: {absolute} is inside the root {root} "
                f"of datastore {self.name!r}, where the datastore owns every file; use 'copy' or "
                "'hardlink' for a file already there; nothing was ingested."
            )

    def _ingestFormatter(
        self,
        ref: DatasetRef,
        path: str,
        spec: Formatter | type | str | None,
        chosen: dict[tuple[DatasetType, str], Formatter] | None = None,
    ) -> Formatter:
        """Return the formatter given by ``spec``, or chosen for ``ref``'s type and ``path``'s extension.

        ``chosen`` keeps the choices of one call by (dataset type, extension).
        """
        if spec is not None:
            if isinstance(spec, Formatter):
                return spec
            if isinstance(spec, type | str):
                name = spec if isinstance(spec, str) else f"{spec.__module__}.{spec.__qualname__}"
                return self.layout.getFormatter(name, f"the formatter given to ingest {ref}")
        extension = posixpath.splitext(path)[1].lower()
        key = (ref.datasetType, extension)
        if chosen is not None and (known := chosen.get(key)) is not None:
            return known
        configured = self.layout.formatterFor(ref.datasetType)
        if configured is not None and configured.extension == extension:
            formatter = configured
        else:
            formatter = _extensionFormatters().formatterFor(path)
        if chosen is not None:
            chosen[key] = formatter
        return formatter

    def ingestVerified(self, datasets: Sequence[VerifiedIngest], transfer: str = "copy") -> None:
        """Bring in files written by a datastore elsewhere, checking each against its size and checksum.

        For an import (`Butler.import_`): each dataset names its files with the component each
        holds (`None` for a whole dataset), the formatter that wrote it and the size and checksum
        it must have. A file is refused before anything is recorded if it differs; a dataset of
        several component files lands in a folder, as a put of a disassembled composite does.
        All or none, in this datastore's transaction; files placed are removed if anything fails.

        Parameters
        ----------
        datasets : sequence of (ref, files)
            ``files`` is a list of ``(component, path, formatterName, fileSize, checksum)``;
            ``path`` is a local regular file, ``checksum`` ``"<algorithm>:<hex>"`` or `None`.
        transfer : str
            As for `ingest`: ``copy`` (``auto``), ``move``, ``hardlink``, ``link``, ``symlink``,
            ``relsymlink``.

        Raises
        ------
        DatasetIntegrityError
            A file's size or checksum is not the one given; nothing was ingested.
        FormatterError
            A formatter is not one this datastore may read with (see
            `FileLayout.getRecordedFormatter`: configured here, or databutler's own and not pickle).
        IngestError
            A file is missing, the mode is unknown or the transfer failed; nothing was ingested.
        DatasetExistsError
            A dataset is already stored, or its path is taken; nothing was ingested.
        """
        if not self.files.isLocal:
            raise IngestError(f"Datastore {self.name!r} is not on a local disk; ingest needs one.")
        if transfer not in TRANSFER_MODES:
            transferWriter(self.files.fs, "", "", transfer, None)  # raises the IngestError
        if transfer == "direct":
            raise IngestError(
                "An import cannot use transfer='direct' (files recorded where they are): an export is a "
                "copy to take in; use copy, move, hardlink, link, symlink or relsymlink."
            )
        algorithm = self.files.checksumAlgorithm
        items: list[tuple[DatasetRef, list[FileWrite], str | None]] = []
        inside = self.files.insideChecker()  # each folder resolved once, all before any file is written
        formatters: dict[str, Formatter] = {}
        for ref, files in datasets:
            base = self.layout.templates.render(ref)
            whole = len(files) == 1 and files[0][0] is None
            writes: list[FileWrite] = []
            for component, source, formatterName, fileSize, checksum in files:
                formatter = formatters.get(formatterName)
                if formatter is None:
                    formatter = formatters[formatterName] = self.layout.getRecordedFormatter(formatterName)
                relPath = base + formatter.extension if whole else f"{base}/{component}{formatter.extension}"
                target = inside(relPath)
                storageClass = (
                    ref.datasetType.storageClass
                    if component is None
                    else ref.datasetType.makeComponentDatasetType(component).storageClass
                )
                if transfer in _COPIES:  # read once: hashed as it is copied
                    check = functools.partial(
                        copyVerified, self.files.fs, source, target, ref, fileSize, checksum, algorithm
                    )
                else:
                    writer = transferWriter(self.files.fs, source, target, transfer, algorithm)
                    check = functools.partial(
                        checkedWrite, self.files.fs, writer, source, ref, fileSize, checksum, algorithm
                    )
                writes.append((component, relPath, formatter.name, storageClass, check))
            items.append((ref, writes, None if whole else base))
        if not items:
            return
        with self.transaction() as tx:
            try:
                stored = self.files.storeMany(items)  # one INSERT of every record, not one per dataset
            except OSError as exc:
                raise IngestError(
                    f"Cannot {transfer} the files of {len(items)} datasets into datastore {self.name!r}: "
                    f"{exc}; nothing was ingested."
                ) from exc
            self._addedMany(stored)
            if transfer == "move":
                for _, files in datasets:
                    for _, source, *_ in files:
                        tx.registerOnCommit(
                            f"delete the moved source {source}", removeQuietly, self.files.fs, source
                        )

    def _addedMany(self, stored: list[tuple[DatasetRef, list[StoredFileInfo]]]) -> None:
        """Tell the registry that ``stored`` are here (once for all) and register their undo.

        If the registry refuses, every one of them is forgotten and its files deleted.
        """
        try:
            self._notifyAdded([ref for ref, _ in stored])
        except BaseException:
            self._dropMany(stored)
            raise
        self._registerUndo(f"ingest of {len(stored)} datasets", self._dropMany, stored)

    def _dropMany(self, stored: list[tuple[DatasetRef, list[StoredFileInfo]]]) -> None:
        """Undo of `ingestVerified`: forget every dataset it stored and delete its files."""
        for ref, infos in stored:
            self._drop(ref, infos)

    def storedFiles(self, refs: Iterable[DatasetRef]) -> dict[DatasetRef, list[StoredFileInfo]]:
        """Return the recorded files of each of ``refs`` stored here (not a composite's folder row).

        Refs not stored here (or stored under another dataset type) are left out. The records
        are read a few hundred datasets per statement, for exports of many datasets.
        """
        wanted = list(refs)
        rows = self._records.fetchMany(ref.id for ref in wanted)
        out: dict[DatasetRef, list[StoredFileInfo]] = {}
        for ref in wanted:
            found = rows.get(ref.id)
            whole = found.get("") if found else None
            if found is None or whole is None or whole[0] != ref.datasetType.nameAndComponent()[0]:
                continue
            out[ref] = [info for _, info in found.values() if info.formatter is not None]
        return out

    @override
    def transfer(self, inputDatastore: Datastore, ref: DatasetRef) -> None:
        """Store here the dataset ``ref`` held by ``inputDatastore``.

        From another FileDatastore whose files were written by the formatters this one would
        use, the files are copied byte for byte (checked against the source's checksums) without
        being decoded; otherwise the dataset is read and put.

        Raises
        ------
        DatasetIntegrityError
            A source file changed since it was written; nothing is stored here.
        """
        if isinstance(inputDatastore, FileDatastore) and not ref.isComponent():
            copies = self.files.copyPlan(inputDatastore.files, ref, inputDatastore._lookup(ref, "transfer"))
            if copies is not None:
                if self._records.has(ref.id) is not None:
                    raise self.files.existsError(ref)
                self._store(ref, *copies)
                return
        super().transfer(inputDatastore, ref)

    # -- get --

    def _lookup(self, ref: DatasetRef, verb: str) -> dict[str, StoredFileInfo]:
        infos = self.files.lookup(ref)
        if infos is None:
            raise self._notFound(ref, verb)
        return infos

    def _notFound(self, ref: DatasetRef, verb: str) -> DatasetNotFoundError:
        return DatasetNotFoundError(
            f"Cannot {verb} {ref}: it is not in datastore {self.name!r} (root {self.root})."
        )

    @override
    def get(self, ref: DatasetRef, parameters: Mapping[str, Any] | None = None) -> Any:
        """Read the dataset ``ref`` from its file(s) into a new object owned by the caller.

        Parameters a formatter can apply while reading (Parquet ``columns``) are pushed down
        to it; the rest are applied by the storage class delegate afterwards.

        Raises
        ------
        DatasetNotFoundError
            Also when a file of the dataset has disappeared.
        DatasetIntegrityError
            A file changed on disk (a `ValueError`).
        """
        target = ref.datasetType.storageClass
        delegate = target.delegate()
        delegate.checkParameters(parameters)
        infos = self._lookup(ref, "get")
        component = ref.datasetType.component()
        whole = infos[""]
        if component is None and whole.formatter is None:  # a disassembled composite
            parts = {
                c: self.files.readFile(ref, info, info.storageClass, None) for c, info in infos.items() if c
            }
            obj = delegate.handleParameters(delegate.assemble(parts), parameters)
        elif component is None or component in infos:
            obj = self.files.readFile(ref, infos[component or ""], target, parameters)
        elif whole.formatter is None:
            return None  # the component was None when the composite was written
        else:
            parentType = ref.datasetType.makeCompositeDatasetType()
            composite = self.files.readFile(ref, whole, parentType.storageClass, None)
            obj = delegate.handleParameters(
                parentType.storageClass.delegate().getComponent(composite, component), parameters
            )
        if not target.validateInstance(obj):
            raise DatasetTypeMismatchError(
                f"Reading {ref} gave a {type(obj).__qualname__}, not the {target.pytypeName} that storage "
                f"class {target.name!r} expects (formatter {whole.formatter or 'per component'})."
            )
        return obj

    @override
    def knows(self, ref: DatasetRef) -> bool:
        """Return `True` if the records list ``ref``, whether or not its files are still there."""
        return self._records.has(ref.id) == ref.datasetType.nameAndComponent()[0]

    @override
    def exists(self, ref: DatasetRef) -> bool:
        """Return `True` if ``ref`` is recorded here and the file(s) it needs are on the file system.

        A file deleted behind the datastore's back leaves its record (`knows` stays true), but
        the dataset does not exist. A component ref needs only the file that holds it; a
        disassembled composite needs every component file.
        """
        infos = self.files.lookup(ref)
        if infos is None:
            return False
        component = ref.datasetType.component()
        needed = [infos.get(component, infos[""])] if component is not None else infos.values()
        return all(self.fs.exists(self.files.fullPath(info.path)) for info in needed if info.formatter)

    @override
    def verify(self, ref: DatasetRef) -> bool:
        """Check every file of ``ref`` against the size and checksum recorded when it was written.

        Checksums are checked even when ``checksum`` is off for reads, if they were recorded.
        Nothing is decoded and nothing is changed.

        Returns
        -------
        intact : bool
            `True` (a damaged or missing file raises instead, naming it).

        Raises
        ------
        DatasetNotFoundError
            ``ref`` is not stored, or one of its files has disappeared.
        DatasetIntegrityError
            A file was changed, truncated or grown on disk.
        """
        for info in self._lookup(ref, "verify").values():
            if info.formatter is not None:
                self.files.readBytes(info, verify=True)
        return True

    def removeLeftoverFiles(self, olderThan: float = 3600.0, dryRun: bool = False) -> list[str]:
        """Delete temporary files left under the root by crashed puts or transactions.

        A process killed in the middle of a put leaves at most a hidden temporary file beside
        the dataset's path (never a partial file at the path itself); this removes those older
        than ``olderThan`` seconds, so that puts still in progress elsewhere are not disturbed.
        A set-aside file (``.<name>.removed-...``) whose original path a record still names,
        with no file there, is moved back instead of deleted (an earlier version's crashed
        removal left it so).

        Parameters
        ----------
        olderThan : float
            Only files last modified at least this many seconds ago are removed.
        dryRun : bool
            Only return what would be removed; change nothing.

        Returns
        -------
        removed : list of str
            The URIs of the files removed (or that would be).
        """
        found = self.files.leftoverFiles(olderThan)
        asides = [p for p in found if ".removed-" in posixpath.basename(p)]
        restored = set(self.files.restoreClaimed(asides, dryRun=dryRun))
        if dryRun:
            return [str(self.fs.unstrip_protocol(path)) for path in found if path not in restored]
        removed = []
        for path in found:
            if path not in restored:
                try:
                    removeQuietly(self.fs, self.files.checkInside(path))
                except UnsafePathError as exc:
                    log.warning("Not deleting %s: %s", path, exc)
                    continue
                removed.append(str(self.fs.unstrip_protocol(path)))
        return removed

    def findOrphanFiles(self, olderThan: float = 0.0) -> list[str]:
        """Return the URIs of complete files under the root that no record names.

        A process killed between moving a put's file into place and committing its records
        leaves one (the default template has ``{id}``, so a retry writes another path). Hidden
        temporary and set-aside files are `removeLeftoverFiles`'s; the repository's own files
        at the top of the root (``butler.yaml``, databases) are never included.

        Parameters
        ----------
        olderThan : float
            Only files last modified at least this many seconds ago.
        """
        return [str(self.fs.unstrip_protocol(p)) for p in self.files.orphanFiles(olderThan)]

    def removeOrphanFiles(self, olderThan: float = 3600.0, dryRun: bool = False) -> list[str]:
        """Delete the files `findOrphanFiles` finds (its ``olderThan`` is ours); return their URIs.

        Each file is deleted while its path is held in the records, so never one whose put
        commits meanwhile; ``olderThan`` (an hour by default) spares files of puts still in
        progress elsewhere. With ``dryRun``, as in `removeLeftoverFiles`, the URIs are only
        returned and nothing is deleted.
        """
        found = self.files.orphanFiles(olderThan)
        if not dryRun:
            found = self.files.removeUnrecorded(found)
        return [str(self.fs.unstrip_protocol(p)) for p in found]

    # -- remove --

    def _currentTransaction(self) -> DatastoreTransaction | None:
        return getattr(self._txLocal, "transaction", None)

    @override
    def remove(self, ref: DatasetRef) -> None:
        """Remove the dataset ``ref``: its record, then its file(s).

        Inside a transaction the files are moved aside and only deleted when the outermost
        transaction commits, so a rollback restores them. If the registry cannot be told, the
        dataset is restored at once and the registry's error is raised.
        """
        if ref.isComponent():
            raise DatasetTypeError(f"Cannot remove component {ref} on its own; remove the composite.")
        infos = self.files.unstore(ref)  # records deleted, files noted in the trash: no file touched
        if infos is None:
            raise self._notFound(ref, "remove")
        try:
            self._notifyRemoved([ref])
        except BaseException:
            self._undoUnstore(ref, infos, [])  # the remove fails as a whole, as a put does
            raise
        committed = self._records.commitsOnExit
        tx = self._currentTransaction()
        if tx is None:
            # Inside a registry transaction the files stay until it commits; the trash rows
            # commit with it and the next `recover` (on open) deletes them.
            if committed:
                self.files.purge([(ref.id, infos)])
            return
        if not committed:
            # Records in the registry's database: its rollback brings them back, and no file
            # has been touched; once it commits, the files go (a crash in between: `recover`).
            tx.registerUndo(f"remove of {ref}", self._restore, ref, infos, [])
            tx.registerOnCommitBatch(
                (id(self), "purge"), "delete the files of removed datasets", self.files.purge, (ref.id, infos)
            )
            return
        # The removal is committed in a records database of our own: the files are set aside
        # (never deleted at their paths, where another writer may store a file now), so that a
        # rollback can bring them back.
        moved = self.files.moveAsideHeld(infos)
        folders = [info for info in infos if info.formatter is None]
        tx.registerUndo(f"remove of {ref}", self._restore, ref, infos, moved)
        tx.registerOnCommit(
            f"delete the files of removed {ref}", self.files.deleteAside, ref.id, moved, folders
        )

    def _restore(self, ref: DatasetRef, infos: list[StoredFileInfo], moved: list[tuple[str, str]]) -> None:
        """Undo a remove: put the records back, then the files."""
        self.files.restore(ref, infos, moved)
        self._notifyAdded([ref])

    def _undoUnstore(
        self, ref: DatasetRef, infos: list[StoredFileInfo], moved: list[tuple[str, str]]
    ) -> None:
        """Put back what a remove took out, when telling the registry failed (it still lists ``ref``).

        A failure is logged, not raised: the caller re-raises the registry's error.
        """
        try:
            self.files.restore(ref, infos, moved)
        except Exception as exc:
            log.warning(
                "Removing %s from datastore %r failed (the registry could not be told) and it could not "
                "be restored: %s",
                ref,
                self.name,
                exc,
            )

    # -- URIs and stored-item info --

    @override
    def getUri(self, ref: DatasetRef, predict: bool = False) -> str:
        """Return the URI of the dataset's file (for a disassembled composite, its folder).

        A ``file://``, ``s3://``, ``memory://``... URI; a component stored inside its
        composite's file has that file's URI.

        Raises
        ------
        UnsafePathError
            Predicting: a value in the path is unsafe.
        """
        try:
            infos = self._lookup(ref, "get a URI for")
        except DatasetNotFoundError:
            if not predict:
                raise
            return self.files.uri(self.layout.predictPath(ref)) + "#predicted"
        component = ref.datasetType.component()
        return self.files.uri(infos.get(component or "", infos[""]).path)

    @override
    def addStoredItemInfo(self, ref: DatasetRef, info: StoredFileInfo) -> None:
        """Record the file ``info`` (where it is, how it was written) for ``ref``.

        Low-level: `put` records every file it writes. A component ref records a component file.

        Raises
        ------
        UnsafePathError
            ``info.path`` is not a relative path inside the root.
        """
        if not isinstance(info, StoredFileInfo):
            raise TypeError(f"addStoredItemInfo takes a StoredFileInfo, not {type(info).__name__}.")
        checkRelativePath(info.path)
        parentName, component = ref.datasetType.nameAndComponent()
        component = component or info.component
        try:
            self._records.insert(ref.id, parentName, [_withComponent(info, component)])
        except RecordConflictError as exc:
            raise StoredItemInfoExistsError(
                f"Datastore {self.name!r} already has stored-item info for {ref} or for path {info.path!r}; "
                f"remove it with removeStoredItemInfo first."
            ) from exc

    @override
    def getStoredItemInfo(self, ref: DatasetRef) -> StoredFileInfo:
        """Return what is recorded about the file holding ``ref``."""
        try:
            infos = self._lookup(ref, "get stored-item info for")
        except DatasetNotFoundError as exc:
            raise StoredItemInfoNotFoundError(
                f"Datastore {self.name!r} has no stored-item info for {ref}."
            ) from exc
        return infos.get(ref.datasetType.component() or "", infos[""])

    @override
    def removeStoredItemInfo(self, ref: DatasetRef) -> None:
        """Remove the records of ``ref`` (a component ref: only its component file's); files stay."""
        count = self._records.delete(ref.id, ref.datasetType.component())
        if not count:
            raise StoredItemInfoNotFoundError(f"Datastore {self.name!r} has no stored-item info for {ref}.")

    @override
    @classmethod
    def setConfigRoot(cls, root: str, config: Config, full: Config) -> None:
        """Point ``config`` at a new repository root and pin its file templates.

        Parameters
        ----------
        root : str
            Folder or URI of the new repository's files.
        config : Config
            Updated in place: ``datastore.root`` (or ``root`` if it has no ``datastore``
            section) unless it names a root of its own, and ``templates``, copied from ``full`` so that the layout of an existing
            repository does not change with the packaged defaults.
        full : Config
            The complete configuration; read only.
        """
        section = config.get("datastore", config)
        fullSection = full.get("datastore", full)
        expanded = cls.makeConfig(fullSection)
        if section.get("root") in (None, "", ROOT_PLACEHOLDER):  # a root the user gave is kept
            section["root"] = root
        section["templates"] = configSection(expanded.get("templates"), "templates")

    def __len__(self) -> int:
        return self._records.count()


IngestItem = tuple[str, DatasetRef, "Formatter | type | str | None"]
"""One file for `FileDatastore.ingest`: its path, the dataset it holds, its formatter (or `None`)."""


@functools.cache
def _extensionFormatters() -> FormatterRegistry:
    return FormatterRegistry.fromDefaults()


def _given(written: tuple[str | None, int, str | None]) -> tuple[str | None, int, str | None]:
    """Return what `FileDatastore.prepared` wrote for a file (the write a prepared put skips)."""
    return written


def _checksumAlgorithm(value: Any) -> str | None:
    """Return the algorithm the ``checksum`` config value names, or `None` for checksums off.

    Raises
    ------
    ConfigError
        ``value`` is neither a boolean, ``none`` nor a known algorithm, or the package the
        algorithm needs is not installed.
    """
    if value is True:
        value = DEFAULT_CHECKSUM_ALGORITHM
    elif value is False or value is None or value == "none":
        return None
    choices = ", ".join(["true", "false", "none", *CHECKSUM_ALGORITHMS])
    if not isinstance(value, str) or value not in CHECKSUM_ALGORITHMS:
        raise ConfigError(
            f"datastore.checksum must be one of {choices} (true means {DEFAULT_CHECKSUM_ALGORITHM}), "
            f"not {value!r}."
        )
    try:
        newHasher(value)
    except ImportError as exc:
        raise ConfigError(
            f"datastore.checksum {value!r} needs a package that is not installed ({exc}); install it "
            f"(pip install xxhash) or choose another of {choices}."
        ) from exc
    return value


def _withComponent(info: StoredFileInfo, component: str | None) -> StoredFileInfo:
    if info.component == component:
        return info
    return StoredFileInfo(
        info.timestamp,
        info.storageClass,
        info.parentID,
        path=info.path,
        formatter=info.formatter,
        component=component,
        fileSize=info.fileSize,
        checksum=info.checksum,
    )
