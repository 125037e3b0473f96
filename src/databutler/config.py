"""Hierarchical YAML configuration with dotted keys and a defaults search path.

`Config` is a nested mapping: ``config["datastore.cls"]`` is ``config["datastore"]["cls"]``.
Keys that themselves contain dots are reached with a tuple: ``config["copyMode", "calexp.wcs"]``.

`ConfigSubset` is the configuration of one component (``datastore``, ``registry``...). It
merges, lowest priority first: the packaged ``configs/`` defaults file, the same file found in
each folder of ``DATABUTLER_CONFIG_PATH`` (earlier folders win), then the configuration given.
"""

from __future__ import annotations

import copy as _copy
import functools
import os
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

import yaml

from .exceptions import ConfigError, ConfigFileNotFoundError

__all__ = ["CONFIG_PATH_ENV", "ROOT_PLACEHOLDER", "Config", "ConfigSubset", "configSearchPath"]

CONFIG_PATH_ENV = "DATABUTLER_CONFIG_PATH"
"""Environment variable: extra folders (``os.pathsep``-separated) searched for config files."""

ROOT_PLACEHOLDER = "<butlerRoot>"
"""Stands for the repository's folder in config values (``registry.db``, ``datastore.root``).

`ButlerConfig.resolved` and ``SqlRegistry.fromConfig`` replace it; the one definition, used by
the registry, the datastores and the repository config alike."""

_PACKAGE_CONFIGS = Path(__file__).parent / "configs"

Key = str | tuple[str, ...]


def configSearchPath(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Return the folders searched for default config files, highest priority first.

    Parameters
    ----------
    extra : sequence of path-like
        Folders searched before everything else.

    Returns
    -------
    paths : list of Path
        ``extra``, then the folders in ``$DATABUTLER_CONFIG_PATH``, then the packaged defaults.
    """
    paths = [Path(p) for p in extra]
    envValue = os.environ.get(CONFIG_PATH_ENV, "")
    paths.extend(Path(p) for p in envValue.split(os.pathsep) if p)
    paths.append(_PACKAGE_CONFIGS)
    return paths


def _splitKey(key: Key) -> tuple[str, ...]:
    if isinstance(key, tuple):
        parts = key
    elif isinstance(key, str):
        parts = tuple(key.split("."))
    else:
        raise TypeError(f"Config keys are str or tuple of str, not {type(key).__name__}: {key!r}")
    if not parts or any(not isinstance(p, str) or not p for p in parts):
        raise ConfigError(f"Config key {key!r} has an empty part; use 'a.b' or ('a', 'b').")
    return parts


def _deepMerge(target: dict[str, Any], other: Mapping[str, Any], overwrite: bool) -> None:
    """Merge ``other`` into ``target``; nested mappings merge, other values replace or are kept."""
    for key, value in other.items():
        if isinstance(value, Config):
            value = value._data
        existing = target.get(key)
        if isinstance(existing, dict) and isinstance(value, Mapping):
            _deepMerge(existing, value, overwrite)
        elif key not in target or overwrite:
            target[key] = _copy.deepcopy(_toPlain(value))


def _toPlain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.toDict()
    if isinstance(value, Mapping):
        return {k: _toPlain(v) for k, v in value.items()}
    return value


def _readYaml(path: Path) -> dict[str, Any]:
    """Return the mapping in a YAML file (a fresh copy; parsed once per file version)."""
    try:
        stat = path.stat()
    except FileNotFoundError as exc:
        raise ConfigFileNotFoundError(f"Config file {str(path)!r} does not exist.") from exc
    except OSError as exc:
        raise ConfigError(f"Config file {str(path)!r} could not be read: {exc}") from exc
    return _copy.deepcopy(_parseYamlFile(str(path), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=256)
def _parseYamlFile(path: str, mtimeNs: int, size: int) -> dict[str, Any]:
    # Keyed on modification time and size, so an edited file is read again.
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigFileNotFoundError(f"Config file {path!r} does not exist.") from exc
    except OSError as exc:
        raise ConfigError(f"Config file {path!r} could not be read: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"Config file {str(path)!r} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {str(path)!r} must hold a mapping at the top level, not {type(data).__name__}."
        )
    return data


class Config(MutableMapping[str, Any]):
    """A nested mapping read from YAML, a dict or another Config.

    Parameters
    ----------
    other : str, path-like, Mapping or Config, optional
        A YAML file to read, a mapping to copy, or a Config to copy.

    Raises
    ------
    ConfigFileNotFoundError
        ``other`` names a file that does not exist.
    ConfigError
        The file is not valid YAML or does not hold a mapping.
    """

    def __init__(self, other: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> None:
        self.configFile: Path | None = None
        if other is None:
            self._data: dict[str, Any] = {}
        elif isinstance(other, Config):
            self._data = _copy.deepcopy(other._data)
            self.configFile = other.configFile
        elif isinstance(other, Mapping):
            self._data = _toPlain(other)
        elif isinstance(other, str | os.PathLike):
            self.configFile = Path(other)
            self._data = _readYaml(self.configFile)
        else:
            raise TypeError(
                f"Config is built from a YAML path, a mapping or a Config, not {type(other).__name__}."
            )

    @classmethod
    def _view(cls, data: dict[str, Any]) -> Config:
        view = cls.__new__(cls)
        view._data = data
        view.configFile = None
        return view

    # -- mapping protocol with dotted keys --

    def _find(self, key: Key) -> Any:
        if isinstance(key, str) and "." in key and key in self._data:
            return self._data[key]  # a literal key that contains dots, such as "calexp.wcs"
        node: Any = self._data
        for part in _splitKey(key):
            if not isinstance(node, dict) or part not in node:
                raise KeyError(key)
            node = node[part]
        return node

    def __getitem__(self, key: Key) -> Any:
        """Return the value at a dotted or tuple key; a nested mapping comes back as a `Config` view."""
        value = self._find(key)
        return Config._view(value) if isinstance(value, dict) else value

    def __setitem__(self, key: Key, value: Any) -> None:
        """Set the value at a dotted or tuple key, creating the mappings on the way."""
        parts = _splitKey(key)
        node = self._data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = _toPlain(value)

    def __delitem__(self, key: Key) -> None:
        """Delete the value at a dotted or tuple key; `KeyError` if nothing is there."""
        parts = _splitKey(key)
        parent = self._find(parts[:-1]) if len(parts) > 1 else self._data
        if not isinstance(parent, dict) or parts[-1] not in parent:
            raise KeyError(key)
        del parent[parts[-1]]

    def __contains__(self, key: object) -> bool:
        """Return `True` if a dotted or tuple key names a value (a leaf or a nested mapping)."""
        if not isinstance(key, str | tuple):
            return False
        try:
            self._find(key)
        except (KeyError, ConfigError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        """Iterate over the top-level keys."""
        return iter(self._data)

    def __len__(self) -> int:
        """Return the number of top-level keys."""
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        """Compare the content with another `Config` or with any mapping, as plain data."""
        if isinstance(other, Config):
            return self._data == other._data
        if isinstance(other, Mapping):
            plain: dict[str, Any] = _toPlain(other)
            return self._data == plain
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """Show the class and the plain data it holds."""
        return f"{type(self).__name__}({self._data!r})"

    # -- the rest --

    def names(self) -> list[str]:
        """Return every leaf key in dotted form, sorted."""
        out: list[str] = []

        def walk(node: dict[str, Any], prefix: str) -> None:
            for key, value in node.items():
                name = f"{prefix}{key}"
                if isinstance(value, dict) and value:
                    walk(value, name + ".")
                else:
                    out.append(name)

        walk(self._data, "")
        return sorted(out)

    def toDict(self) -> dict[str, Any]:
        """Return a deep copy of the contents as plain dicts."""
        return _copy.deepcopy(self._data)

    def copy(self) -> Config:
        """Return a deep copy of this Config, of the same class."""
        new = type(self)._view(_copy.deepcopy(self._data))
        new.configFile = self.configFile
        return new

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Deep-merge ``other`` into this Config; values from ``other`` win."""
        if isinstance(other, Mapping):
            _deepMerge(self._data, other, overwrite=True)
        elif other:
            _deepMerge(self._data, dict(other), overwrite=True)
        if kwargs:
            _deepMerge(self._data, kwargs, overwrite=True)

    def mergeDefaults(self, defaults: Mapping[str, Any]) -> None:
        """Deep-merge ``defaults`` into this Config; values already here win."""
        _deepMerge(self._data, defaults, overwrite=False)

    def dump(self, stream: IO[str] | None = None) -> str | None:
        """Write this Config as YAML to ``stream``, or return it as a string."""
        return yaml.safe_dump(self._data, stream, sort_keys=False, default_flow_style=False)

    def dumpToFile(self, path: str | os.PathLike[str]) -> None:
        """Write this Config as YAML to the file ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            self.dump(fh)


class ConfigSubset(Config):
    """The configuration of one component, with defaults merged from the search path.

    Parameters
    ----------
    other : str, path-like, Mapping or Config, optional
        The configuration. If it holds ``component`` as a top-level key, only that part is used.
    searchPaths : sequence of path-like, optional
        Folders searched for ``defaultConfigFile`` before ``$DATABUTLER_CONFIG_PATH`` and the
        packaged defaults.
    mergeDefaults : bool
        Whether to merge the defaults file at all.

    Raises
    ------
    ConfigFileNotFoundError
        ``defaultConfigFile`` is set but found nowhere on the search path.
    ConfigError
        A required key is missing after defaults are merged.
    """

    component: ClassVar[str | None] = None
    """Top-level key that holds this component's configuration in a full config."""

    requiredKeys: ClassVar[tuple[str, ...]] = ()
    """Keys that must be present once defaults are merged."""

    defaultConfigFile: ClassVar[str | None] = None
    """Defaults file, relative to the search path or absolute; `None` for no defaults."""

    def __init__(
        self,
        other: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        searchPaths: Sequence[str | os.PathLike[str]] = (),
        mergeDefaults: bool = True,
    ) -> None:
        given = Config(other)
        super().__init__()
        self.configFile = given.configFile
        self._data = self._extractComponent(given._data)
        if mergeDefaults and self.defaultConfigFile is not None:
            self.mergeDefaultsFile(self.defaultConfigFile, searchPaths)
        self.validate()

    @classmethod
    def _extractComponent(cls, data: dict[str, Any]) -> dict[str, Any]:
        if cls.component is not None:
            section = data.get(cls.component)
            if isinstance(section, dict):
                return section
        return data

    def mergeDefaultsFile(
        self, fileName: str | os.PathLike[str], searchPaths: Sequence[str | os.PathLike[str]] = ()
    ) -> None:
        """Merge the defaults file ``fileName`` found on the search path beneath this config.

        Every copy found on the search path is merged; higher-priority folders win.

        Raises
        ------
        ConfigFileNotFoundError
            The file is found nowhere on the search path.
        """
        path = Path(fileName)
        candidates = [path] if path.is_absolute() else [d / path for d in configSearchPath(searchPaths)]
        found = [c for c in candidates if c.is_file()]
        if not found:
            where = ", ".join(str(c.parent) for c in candidates)
            raise ConfigFileNotFoundError(
                f"Defaults file {str(fileName)!r} for {type(self).__name__} was not found in: {where}. "
                f"Add its folder to ${CONFIG_PATH_ENV} or give an absolute path."
            )
        for candidate in found:  # highest priority first, so lower ones only fill gaps
            self.mergeDefaults(self._extractComponent(_readYaml(candidate)))

    def validate(self) -> None:
        """Check that every required key is present.

        Raises
        ------
        ConfigError
            A key in ``requiredKeys`` is missing.
        """
        for key in self.requiredKeys:
            if key not in self:
                where = f" (from {str(self.configFile)!r})" if self.configFile else ""
                section = f"{self.component}." if self.component else ""
                raise ConfigError(f"{type(self).__name__}{where} is missing required key {section}{key!r}.")
