"""ButlerConfig: the configuration of a data repository, kept in its ``butler.yaml``; makeRepo.

A repository's config has two sections: ``registry`` (``db``: an SQLAlchemy URL) and
``datastore`` (``cls`` and that datastore's own keys), beside ``storageClasses`` and the
``repositoryId`` that `makeRepo` writes (the registry stores it too, so a registry belongs to one
repository). Values may contain ``<butlerRoot>``, which stands for the repository's folder
wherever it is when opened, so a repository can be moved or copied whole.

Every key is checked against what its component accepts: a misspelt key is a `ConfigError`
naming it and the accepted ones, never silently ignored. A ``datastore`` section without its
own ``cls`` adjusts the default chain: keys the chain takes (``readThrough``, ``name``) stay on
it, keys only its file tier takes (``templates``, ``formatters``, ``root``, ``checksum``...) go to
the file tier.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import ROOT_PLACEHOLDER, Config, configSearchPath
from .datastore.base import Datastore
from .exceptions import (
    ConfigError,
    ConfigFileNotFoundError,
    RepositoryExistsError,
)

__all__ = [
    "BUTLER_ROOT_TOKEN",
    "REPOSITORY_ID_KEY",
    "REPO_CONFIG_NAME",
    "TOP_LEVEL_KEYS",
    "ButlerConfig",
    "makeRepo",
    "repoConfigPath",
    "validateRepoConfig",
]

BUTLER_ROOT_TOKEN = ROOT_PLACEHOLDER
"""The same as `databutler.config.ROOT_PLACEHOLDER` (kept for code that imports this name)."""

REPO_CONFIG_NAME = "butler.yaml"
"""Name of the config file at the top of every repository."""

DEFAULTS_FILE = "butler.yaml"
"""Name of the defaults file on the config search path."""

REPOSITORY_ID_KEY = "repositoryId"
"""Top-level key: the repository's id, also stored in its registry and checked at open."""

TOP_LEVEL_KEYS = frozenset({"registry", "datastore", "storageClasses", REPOSITORY_ID_KEY})
"""The keys a repository config may have at its top."""

REGISTRY_KEYS = frozenset({"db", "busyTimeout", "namespace", "dimensions"})
"""The keys of the ``registry`` section (see `databutler.registry.RegistryConfig`)."""


def validateRepoConfig(config: Mapping[str, Any], where: str = "") -> None:
    """Check every key of a repository config against what its component accepts.

    Parameters
    ----------
    config : mapping
        A full repository config (defaults merged).
    where : str
        Where it comes from, for messages (e.g. the file's path).

    Raises
    ------
    ConfigError
        A top-level, ``registry`` or datastore key is not accepted (the message names it and
        the accepted ones), or a section is not a mapping.
    DatastoreClassError
        A datastore ``cls`` cannot be imported or is not a Datastore.
    """
    data = config.toDict() if isinstance(config, Config) else dict(config)
    at = f" {where!r}" if where else ""
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise ConfigError(
            f"Butler config{at} has unknown top-level key(s) {unknown}; accepted: {sorted(TOP_LEVEL_KEYS)}."
        )
    for section in ("registry", "datastore"):
        if section in data and not isinstance(data[section], dict):
            raise ConfigError(
                f"Butler config{at} section {section!r} must be a mapping, not {data[section]!r}."
            )
    unknown = sorted(set(data.get("registry", {})) - REGISTRY_KEYS)
    if unknown:
        raise ConfigError(
            f"Butler config{at}: the registry does not accept key(s) {unknown}; it accepts {sorted(REGISTRY_KEYS)}."
        )
    datastore = data.get("datastore", {})
    if "cls" in datastore:
        Datastore.classFromConfig(datastore["cls"], "datastore.cls").validateConfig(datastore)


def _routeDatastoreKeys(defaults: dict[str, Any], given: dict[str, Any]) -> None:
    """Move the keys of a ``datastore`` section without ``cls`` to where they take effect.

    Over a default chain, keys the chain accepts stay on it; keys its children accept go to
    each non-ephemeral child that accepts them (the file tier); any other key is an error.
    """
    section = defaults.get("datastore")
    if not isinstance(section, dict) or "cls" not in section:
        return
    chainClass = Datastore.classFromConfig(section["cls"], "datastore.cls")
    children = section.get("datastores")
    if chainClass.configKeys is None or not isinstance(children, list):
        return
    targets: list[tuple[dict[str, Any], type[Datastore]]] = []
    for child in children:
        inner = child.get("datastore", child) if isinstance(child, dict) else None
        if isinstance(inner, dict) and "cls" in inner:
            childClass = Datastore.classFromConfig(inner["cls"], "datastore.datastores[].cls")
            if not childClass.isEphemeral:
                targets.append((inner, childClass))
    for key in [k for k in given if k not in chainClass.configKeys]:
        accepting = [inner for inner, c in targets if c.configKeys is None or key in c.configKeys]
        if key == "constraints":  # which tier? a dataset kept only in memory would be lost
            accepting = []
        if not accepting:
            childKeys = set().union(*(c.configKeys or () for _, c in targets))
            raise ConfigError(
                f"datastore.{key}: neither the default {chainClass.__name__} nor its persistent tiers "
                f"accept it; the chain accepts {sorted(chainClass.configKeys)}, its tiers "
                f"{sorted(childKeys)}."
            )
        value = given.pop(key)
        for inner in accepting:
            merged = Config({key: inner[key]}) if isinstance(inner.get(key), dict) else Config()
            merged.update({key: value})
            inner[key] = merged[key].toDict() if isinstance(merged[key], Config) else merged[key]


def _substitute(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(ROOT_PLACEHOLDER, root)
    if isinstance(value, dict):
        return {k: _substitute(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, root) for v in value]
    return value


def repoConfigPath(root: str | os.PathLike[str]) -> Path:
    """Return the ``butler.yaml`` of the repository at ``root`` (a folder or the file itself)."""
    path = Path(root)
    return path if path.suffix in (".yaml", ".yml") else path / REPO_CONFIG_NAME


class ButlerConfig(Config):
    """The configuration of a data repository: packaged defaults beneath the config given.

    Defaults come from ``butler.yaml`` on the config search path (``$DATABUTLER_CONFIG_PATH``,
    then the packaged ``configs/``). A ``datastore`` section that names its own ``cls`` replaces
    the default datastore section whole, so keys meant for another datastore never leak in.

    Parameters
    ----------
    other : str, path-like, Mapping or Config, optional
        Configuration to apply over the defaults (a path is read as YAML).
    searchPaths : sequence of path-like
        Folders searched for the defaults file before the usual search path.

    Raises
    ------
    ConfigFileNotFoundError
        ``other`` names a file that does not exist, or no defaults file is found.
    ConfigError
        A section is not a mapping, ``datastore.cls`` is missing, or a key is not accepted by
        its component (see `validateRepoConfig`).
    """

    def __init__(
        self,
        other: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        searchPaths: Sequence[str | os.PathLike[str]] = (),
    ) -> None:
        given = Config(other)
        super().__init__()
        self.configFile = given.configFile
        defaults = self._readDefaults(searchPaths)
        data = given.toDict()
        for section in ("registry", "datastore"):
            if section in data and not isinstance(data[section], dict):
                raise ConfigError(
                    f"Butler config section {section!r} must be a mapping, not {data[section]!r}."
                )
        if isinstance(data.get("datastore"), dict) and "cls" in data["datastore"]:
            defaults.pop("datastore", None)
        elif isinstance(data.get("datastore"), dict):
            _routeDatastoreKeys(defaults, data["datastore"])
        self.update(defaults)
        self.update(data)
        self.validate()
        validateRepoConfig(self, str(self.configFile or ""))

    @staticmethod
    def _readDefaults(searchPaths: Sequence[str | os.PathLike[str]]) -> dict[str, Any]:
        found = [d / DEFAULTS_FILE for d in configSearchPath(searchPaths) if (d / DEFAULTS_FILE).is_file()]
        if not found:
            raise ConfigFileNotFoundError(
                f"Defaults file {DEFAULTS_FILE!r} was found nowhere on the config search path."
            )
        merged = Config()
        for path in found:  # highest priority first: lower ones only fill gaps
            merged.mergeDefaults(Config(path))
        return merged.toDict()

    def validate(self) -> None:
        """Check that the config names a registry database and a datastore class.

        Raises
        ------
        ConfigError
            ``registry.db`` or ``datastore.cls`` is missing.
        """
        for key in ("registry.db", "datastore.cls"):
            if key not in self:
                where = f" {str(self.configFile)!r}" if self.configFile else ""
                raise ConfigError(f"Butler config{where} is missing required key {key!r}.")

    @classmethod
    def fromRepo(cls, root: str | os.PathLike[str]) -> ButlerConfig:
        """Read the config of the repository at ``root`` (its folder or its ``butler.yaml``).

        Raises
        ------
        ConfigFileNotFoundError
            There is no repository at ``root``.
        ConfigError
            Its ``butler.yaml`` is malformed.
        """
        path = repoConfigPath(root)
        if not path.is_file():
            folder = str(path.parent)
            raise ConfigFileNotFoundError(
                f"No data repository at {folder!r}: {str(path)!r} does not exist. "
                f"Create one with Butler.makeRepo({folder!r}) or `databutler create {folder}`."
            )
        config = cls.__new__(cls)
        Config.__init__(config, path)
        config.validate()
        return config

    def resolved(self, root: str | os.PathLike[str]) -> Config:
        """Return a plain Config with ``<butlerRoot>`` replaced by the absolute path of ``root``."""
        return Config(_substitute(self.toDict(), str(Path(root).absolute())))


def makeRepo(root: str | os.PathLike[str], config: Config | Mapping[str, Any] | str | None = None) -> Config:
    """Create a data repository at ``root``; see `Butler.makeRepo`, which documents it."""
    text = os.fspath(root)
    if "://" in text:
        raise ConfigError(
            f"Cannot make a repository at {text!r}: a repository root is a local folder (its "
            "butler.yaml lives there). To keep the datasets at that URI, make a local repository "
            f"whose datastore is there, with a registry database of its own: makeRepo('repo', "
            f"{{'datastore': {{'root': {text!r}}}, 'registry': {{'db': 'postgresql://...'}}}})."
        )
    folder = Path(root)
    configPath = folder / REPO_CONFIG_NAME
    if configPath.exists():
        raise RepositoryExistsError(
            f"{str(folder)!r} already holds a data repository ({str(configPath)!r}); "
            f"open it with Butler({str(folder)!r}) or choose another folder."
        )
    full = ButlerConfig(config)
    if REPOSITORY_ID_KEY in full:
        raise ConfigError(
            f"Config for a new repository gives {REPOSITORY_ID_KEY!r}; makeRepo chooses the id itself."
        )
    datastoreClass = Datastore.classFromConfig(full["datastore.cls"], "datastore.cls")
    folder.mkdir(parents=True, exist_ok=True)
    resolvedRoot = str(folder.absolute())
    datastoreClass.setConfigRoot(ROOT_PLACEHOLDER, full, full.copy())
    repositoryId = str(uuid.uuid4())
    full[REPOSITORY_ID_KEY] = repositoryId
    from .registry import SqlRegistry  # SQLAlchemy is imported only when needed

    resolved = full.resolved(folder)
    with SqlRegistry.fromConfig(resolved, root=resolvedRoot, create=True) as registry:
        registry.claim(repositoryId, resolvedRoot)
        # Opening the datastore once creates its records tables now, so that opening the
        # repository later never has to write (a reader then never waits behind a writer).
        Datastore.fromConfig(resolved["datastore"], registry=registry).close()
    full.dumpToFile(configPath)
    return full
