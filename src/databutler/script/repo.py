"""Plain functions behind the repository commands.

They are create, config-dump, register-dataset-type, stats and verify.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..butler import Butler
from ..butler_config import ButlerConfig, validateRepoConfig
from ..config import Config
from ..dataset_ref import DatasetRef
from ..datastore.base import Datastore
from ..datastores.file import FileDatastore
from ..exceptions import ConfigError, DatasetIntegrityError, DatasetNotFoundError, FormatterError

__all__ = [
    "CleanupReport",
    "RepoStats",
    "VerifyReport",
    "cleanupRepo",
    "createRepo",
    "dumpConfig",
    "findOrphans",
    "registerDatasetType",
    "repoStats",
    "validateConfig",
    "verifyDatasets",
]

PathLike = str | os.PathLike[str]


def createRepo(root: PathLike, config: PathLike | Mapping[str, Any] | None = None) -> Config:
    """Create a data repository at ``root`` with `Butler.makeRepo` and return its configuration.

    ``config`` (a YAML file or mapping) overrides the defaults. Errors are those of
    `Butler.makeRepo` (a `RepositoryExistsError` if ``root`` holds a repository already).
    """
    return Butler.makeRepo(root, config=Config(config) if config is not None else None)


def dumpConfig(root: PathLike, subset: str | None = None) -> str:
    """Return the repository's configuration as YAML, or only the ``subset`` key (dotted).

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    ConfigError
        ``subset`` is not a key of the configuration.
    """
    config = ButlerConfig.fromRepo(root)
    if subset is None:
        return str(config.dump())
    if subset not in config:
        raise ConfigError(
            f"Repository {str(root)!r} has no config key {subset!r}; top-level keys are {sorted(config)}."
        )
    value = config[subset]
    return str(Config({subset: value.toDict() if isinstance(value, Config) else value}).dump())


def validateConfig(root: PathLike) -> None:
    """Check the repository's configuration: every key accepted, every datastore class importable.

    See `databutler.butler_config.validateRepoConfig`.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    ConfigError
        A key is not accepted; the message names it and the accepted ones.
    DatastoreClassError
        A datastore class cannot be imported or is not a Datastore.
    """
    config = ButlerConfig.fromRepo(root)
    validateRepoConfig(config, str(config.configFile or root))


def registerDatasetType(root: PathLike, name: str, storageClass: str, dimensions: Sequence[str]) -> bool:
    """Register dataset type ``name``; return `False` if the same definition was already there.

    Raises
    ------
    DatasetTypeConflictError
        A different dataset type of that name is registered.
    UnknownStorageClassError
        ``storageClass`` is not a known storage class.
    DatasetTypeError
        The name or a dimension is not a valid identifier.
    """
    with Butler(root) as butler:
        return butler.registerDatasetType(name, tuple(dimensions), storageClass)


@dataclass(frozen=True)
class RepoStats:
    """What a repository holds: datasets per type and per run, and its size on disk."""

    root: str
    registry: str
    datastore: str
    datasetTypes: dict[str, int]
    runs: dict[str, int]
    datasets: int
    files: int
    bytesOnDisk: int
    orphans: int = 0
    """Files no record names (left by crashed writers): see `cleanupRepo`."""


def _datasetFileSizes(datastore: Datastore, refs: list[DatasetRef]) -> list[int]:
    """Return the sizes of the files the persistent tiers hold for ``refs``, from their records.

    The registry's own files, and anything else in the folder, are not the datasets'.
    """
    sizes: list[int] = []
    for tier in _fileTiers(datastore):
        for ref in refs:
            infos = tier.files.lookup(ref) or {}
            sizes.extend(info.fileSize for info in infos.values() if info.formatter is not None)
    return sizes


def repoStats(root: PathLike, *, writeable: bool = False) -> RepoStats:
    """Count the repository's datasets by type and run, and the files (and bytes) that hold them.

    The repository is opened read-only unless ``writeable``.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    """
    with Butler(root, writeable=writeable) as butler:
        byType = {t.name: 0 for t in butler.registry.queryDatasetTypes() if not t.isComponent()}
        byRun: Counter[str] = Counter({run: 0 for run in butler.registry.queryRuns()})
        refs = butler.queryDatasets()
        for ref in refs:
            byType[ref.datasetType.name] = byType.get(ref.datasetType.name, 0) + 1
            byRun[str(ref.run)] += 1
        folder = butler.root
        sizes = _datasetFileSizes(butler.datastore, refs)
        return RepoStats(
            root=str(folder),
            registry=str(butler.config.get("registry.db", "")),
            datastore=str(butler.config.get("datastore.cls", "")),
            datasetTypes=dict(sorted(byType.items())),
            runs=dict(sorted(byRun.items())),
            datasets=len(refs),
            files=len(sizes),
            bytesOnDisk=sum(sizes),
            orphans=len(_orphans(butler.datastore, 0.0)),
        )


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verifyDatasets`: datasets that passed, are missing, or are corrupted."""

    checked: int
    missing: list[DatasetRef] = field(default_factory=list)
    corrupted: dict[DatasetRef, str] = field(default_factory=dict)
    orphans: list[str] = field(default_factory=list)
    """URIs of files under the root that no record names (only when every dataset is checked);
    they hold no registered data: `cleanupRepo` removes them."""

    @property
    def isOk(self) -> bool:
        """`True` if every dataset checked is present and intact (orphans do not count)."""
        return not self.missing and not self.corrupted


def _persistentTiers(datastore: Datastore) -> list[Datastore]:
    """Return the datastores that keep files: a chain's non-ephemeral children, or the datastore itself."""
    children = datastore.children
    if not children:
        return [datastore]
    tiers = [tier for child in children for tier in _persistentTiers(child)]
    return [tier for tier in tiers if not tier.isEphemeral] or tiers


def _verifyOne(tier: Datastore, ref: DatasetRef, decode: bool) -> None:
    """Raise if ``tier`` cannot give back ``ref`` intact, or (``decode``) its formatter cannot read it.

    Ingest records a file's size and checksum without decoding it, so only a read finds a file
    that is intact but not in the format its formatter reads.
    """
    if tier.verify(ref) is False:
        raise DatasetIntegrityError(f"Dataset {ref} failed verification in datastore {tier.name!r}.")
    if decode:
        tier.get(ref)


def verifyDatasets(
    root: PathLike,
    datasetType: str | None = None,
    *,
    collections: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
    writeable: bool = False,
    decode: bool = True,
) -> VerifyReport:
    """Re-check every matching dataset against the checksum and size recorded when it was written.

    Each dataset is read back from every persistent datastore (the file tier of the default
    chain), bypassing memory tiers, so what is checked is what is on disk. With ``decode``
    (the default) each is also read with its formatter, so that an ingested file the formatter
    cannot read (ingest records size and checksum without decoding) is reported as corrupted;
    ``decode=False`` checks bytes only (faster). The repository is opened read-only unless
    ``writeable``.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    MissingDatasetTypeError
        The dataset type is not registered.
    """
    missing: list[DatasetRef] = []
    corrupted: dict[DatasetRef, str] = {}
    orphans: list[str] = []
    with Butler(root, writeable=writeable) as butler:
        refs = butler.queryDatasets(datasetType, collections=collections or None, where=where)
        tiers = _persistentTiers(butler.datastore)
        for ref in refs:
            try:
                for tier in tiers:
                    _verifyOne(tier, ref, decode)
            except DatasetNotFoundError:
                missing.append(ref)
            except (DatasetIntegrityError, FormatterError) as exc:
                corrupted[ref] = str(exc)
            except OSError as exc:  # e.g. a file that cannot be read: reported, and on to the next
                corrupted[ref] = f"{type(exc).__name__}: {exc}"
        if datasetType is None and not collections and not where:
            orphans = _orphans(butler.datastore, 0.0)
    return VerifyReport(len(refs), missing, corrupted, orphans)


def _fileTiers(datastore: Datastore) -> list[FileDatastore]:
    return [tier for tier in _persistentTiers(datastore) if isinstance(tier, FileDatastore)]


def _orphans(datastore: Datastore, olderThan: float) -> list[str]:
    """URIs of the unrecorded and leftover files of every file tier."""
    found: list[str] = []
    for tier in _fileTiers(datastore):
        found += tier.findOrphanFiles(olderThan) + tier.removeLeftoverFiles(olderThan, dryRun=True)
    return sorted(found)


def findOrphans(root: PathLike, olderThan: float = 0.0) -> list[str]:
    """Return the URIs of files in the repository that no record names, older than ``olderThan`` s.

    These are complete files left by writers killed between moving a file into place and
    committing its record, and hidden temporary or set-aside files of crashed puts and removes.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    """
    with Butler(root) as butler:
        return _orphans(butler.datastore, olderThan)


@dataclass(frozen=True)
class CleanupReport:
    """What `cleanupRepo` did (or, with ``dryRun``, would do)."""

    removed: list[str]
    """URIs of the files removed: unrecorded, temporary and set-aside ones."""
    kept: int
    """Such files younger than the age guard, left alone."""
    dryRun: bool


def cleanupRepo(root: PathLike, olderThan: float = 3600.0, dryRun: bool = False) -> CleanupReport:
    """Remove the files no record names, once they are ``olderThan`` seconds old.

    Opening the repository first finishes the removals a crashed process committed (see
    `FileDatastore.recover`). Then, in every file tier: set-aside files that a record still
    names are moved back, and unrecorded complete files, temporary files and set-aside files
    older than ``olderThan`` are deleted, each only while no record names its path. The age
    guard spares the files of puts in progress in other processes; use ``olderThan=0`` only
    when no other process is writing.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    """
    removed: list[str] = []
    total = 0
    with Butler(root) as butler:
        for tier in _fileTiers(butler.datastore):
            total += len(tier.findOrphanFiles(0.0)) + len(tier.removeLeftoverFiles(0.0, dryRun=True))
            removed += tier.removeOrphanFiles(olderThan, dryRun=dryRun)
            removed += tier.removeLeftoverFiles(olderThan, dryRun=dryRun)
    return CleanupReport(sorted(removed), max(0, total - len(removed)), dryRun)
