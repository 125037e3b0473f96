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
from ..butler_config import ButlerConfig
from ..config import Config
from ..dataset_ref import DatasetRef
from ..datastore.base import Datastore
from ..exceptions import ConfigError, DatasetIntegrityError, DatasetNotFoundError, FormatterError

__all__ = [
    "RepoStats",
    "VerifyReport",
    "createRepo",
    "dumpConfig",
    "registerDatasetType",
    "repoStats",
    "verifyDatasets",
]

PathLike = str | os.PathLike[str]


def createRepo(root: PathLike, config: PathLike | Mapping[str, Any] | None = None) -> Config:
    """Create a data repository at ``root``; ``config`` (a YAML file or mapping) overrides defaults.

    Returns
    -------
    config : Config
        What was written to ``<root>/butler.yaml``.

    Raises
    ------
    RepositoryExistsError
        ``root`` already holds a repository.
    ConfigError
        The configuration is malformed.
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


def repoStats(root: PathLike) -> RepoStats:
    """Count the repository's datasets by type and run, and its files and bytes on disk.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    """
    with Butler(root) as butler:
        byType = {t.name: 0 for t in butler.registry.queryDatasetTypes() if not t.isComponent()}
        byRun: Counter[str] = Counter({run: 0 for run in butler.registry.queryRuns()})
        refs = butler.queryDatasets()
        for ref in refs:
            byType[ref.datasetType.name] = byType.get(ref.datasetType.name, 0) + 1
            byRun[str(ref.run)] += 1
        folder = butler.root
        sizes = [p.stat().st_size for p in folder.rglob("*") if p.is_file()]
        return RepoStats(
            root=str(folder),
            registry=str(butler.config.get("registry.db", "")),
            datastore=str(butler.config.get("datastore.cls", "")),
            datasetTypes=dict(sorted(byType.items())),
            runs=dict(sorted(byRun.items())),
            datasets=len(refs),
            files=len(sizes),
            bytesOnDisk=sum(sizes),
        )


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verifyDatasets`: datasets that passed, are missing, or are corrupted."""

    checked: int
    missing: list[DatasetRef] = field(default_factory=list)
    corrupted: dict[DatasetRef, str] = field(default_factory=dict)

    @property
    def isOk(self) -> bool:
        """`True` if every dataset checked is present and intact."""
        return not self.missing and not self.corrupted


def _persistentTiers(datastore: Datastore) -> list[Datastore]:
    """Return the datastores that keep files: a chain's non-ephemeral children, or the datastore itself."""
    children = getattr(datastore, "datastores", None)
    if not children:
        return [datastore]
    tiers = [tier for child in children for tier in _persistentTiers(child)]
    return [tier for tier in tiers if not tier.isEphemeral] or tiers


def _verifyOne(tier: Datastore, ref: DatasetRef) -> None:
    """Raise if ``tier`` cannot give back ``ref`` intact: its own ``verify``, else a full read."""
    verify = getattr(tier, "verify", None)
    if callable(verify):
        if verify(ref) is False:
            raise DatasetIntegrityError(f"Dataset {ref} failed verification in datastore {tier.name!r}.")
    else:
        tier.get(ref)  # FileDatastore checks size and checksum of every file it reads


def verifyDatasets(
    root: PathLike,
    datasetType: str | None = None,
    *,
    collections: Sequence[str] | None = None,
    where: Mapping[str, Any] | None = None,
) -> VerifyReport:
    """Re-check every matching dataset against the checksum and size recorded when it was written.

    Each dataset is read back from every persistent datastore (the file tier of the default
    chain), bypassing memory tiers, so what is checked is what is on disk.

    Raises
    ------
    ConfigFileNotFoundError
        There is no repository at ``root``.
    MissingDatasetTypeError
        The dataset type is not registered.
    """
    missing: list[DatasetRef] = []
    corrupted: dict[DatasetRef, str] = {}
    with Butler(root) as butler:
        refs = butler.queryDatasets(datasetType, collections=collections or None, where=where)
        tiers = _persistentTiers(butler.datastore)
        for ref in refs:
            try:
                for tier in tiers:
                    _verifyOne(tier, ref)
            except DatasetNotFoundError:
                missing.append(ref)
            except (DatasetIntegrityError, FormatterError) as exc:
                corrupted[ref] = str(exc)
    return VerifyReport(len(refs), missing, corrupted)
