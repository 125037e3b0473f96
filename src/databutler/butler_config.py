"""ButlerConfig: the configuration of a data repository, kept in its ``butler.yaml``; makeRepo.

A repository's config has two sections: ``registry`` (``db``: an SQLAlchemy URL) and
``datastore`` (``cls`` and that datastore's own keys). Values may contain ``<butlerRoot>``,
which stands for the repository's folder wherever it is when opened, so a repository can be
moved or copied whole.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .config import Config, configSearchPath
from .datastore.base import Datastore
from .exceptions import (
    ConfigError,
    ConfigFileNotFoundError,
    DatabutlerError,
    DatastoreClassError,
    RepositoryExistsError,
)
from .storage_class import importDottedName

__all__ = ["BUTLER_ROOT_TOKEN", "REPO_CONFIG_NAME", "ButlerConfig", "makeRepo", "repoConfigPath"]

BUTLER_ROOT_TOKEN = "<butlerRoot>"
"""Stands for the repository folder in config values; replaced when the repository is opened."""

REPO_CONFIG_NAME = "butler.yaml"
"""Name of the config file at the top of every repository."""

DEFAULTS_FILE = "butler.yaml"
"""Name of the defaults file on the config search path."""


def _substitute(value: Any, root: str) -> Any:
    if isinstance(value, str):
        return value.replace(BUTLER_ROOT_TOKEN, root)
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
        A section is not a mapping, or ``datastore.cls`` is missing.
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
        self.update(defaults)
        self.update(data)
        self.validate()

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
    """Create a data repository at ``root``: write its ``butler.yaml`` and create its registry.

    Parameters
    ----------
    root : str or path-like
        The repository folder; made if missing.
    config : Config, mapping or str, optional
        Configuration over the defaults (``configs/butler.yaml``): an embedded SQLite
        registry and a memory tier in front of a file tier in the repository.

    Returns
    -------
    config : Config
        The configuration written to ``<root>/butler.yaml``.

    Raises
    ------
    RepositoryExistsError
        ``root`` already holds a repository.
    ConfigError
        The configuration is malformed.
    """
    folder = Path(root)
    configPath = folder / REPO_CONFIG_NAME
    if configPath.exists():
        raise RepositoryExistsError(
            f"{str(folder)!r} already holds a data repository ({str(configPath)!r}); "
            f"open it with Butler({str(folder)!r}) or choose another folder."
        )
    full = ButlerConfig(config)
    folder.mkdir(parents=True, exist_ok=True)
    resolvedRoot = str(folder.absolute())
    clsName = str(full["datastore.cls"])
    try:
        datastoreClass = importDottedName(clsName, "datastore.cls")
    except DatabutlerError as exc:
        raise DatastoreClassError(f"datastore.cls: cannot import {clsName!r}: {exc}") from exc
    if not (isinstance(datastoreClass, type) and issubclass(datastoreClass, Datastore)):
        raise DatastoreClassError(f"datastore.cls: {clsName!r} is not a Datastore subclass.")
    datastoreClass.setConfigRoot(BUTLER_ROOT_TOKEN, full, full.copy())
    from .registry import SqlRegistry  # SQLAlchemy is imported only when needed

    registry = SqlRegistry.fromConfig(full.resolved(folder), root=resolvedRoot, create=True)
    registry.close()
    full.dumpToFile(configPath)
    return full
