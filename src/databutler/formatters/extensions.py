"""The formatter for a file outside any datastore, chosen by the file's extension.

The mapping lives in ``fileFormats.yaml`` (packaged in ``databutler/configs``; a folder on
``$DATABUTLER_CONFIG_PATH`` may add or replace entries). It is what ``databutler put`` reads and
``databutler get -o`` writes (`databutler.script.files`). Adding a format is one formatter
module (its `Formatter.importFile` and `Formatter.exportFile`) and one line there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..config import configSearchPath
from ..exceptions import ConfigError, FormatterError, StorageClassError
from ..storage_class import importDottedName
from .base import Formatter

__all__ = ["FORMATS_CONFIG_FILE", "FormatterRegistry"]

FORMATS_CONFIG_FILE = "fileFormats.yaml"
"""The config file, on the config search path, mapping extensions to formatter classes."""


class FormatterRegistry:
    """Formatter classes by file extension (``".json"``), each built once when first used.

    Parameters
    ----------
    classNames : mapping
        Extension (with or without its dot, any case) → fully-qualified formatter class name.

    Raises
    ------
    ConfigError
        An entry is not an extension and a class name.
    """

    def __init__(self, classNames: Mapping[str, str]) -> None:
        self._classNames: dict[str, str] = {}
        for extension, className in classNames.items():
            if not isinstance(extension, str) or not extension.strip(".") or not isinstance(className, str):
                raise ConfigError(
                    f"{FORMATS_CONFIG_FILE}: each entry maps an extension to a formatter class name, "
                    f"not {extension!r}: {className!r}."
                )
            self._classNames["." + extension.lower().lstrip(".")] = className
        self._formatters: dict[str, Formatter] = {}

    @classmethod
    def fromDefaults(cls) -> FormatterRegistry:
        """Return the registry of every ``fileFormats.yaml`` on the config search path.

        Higher-priority files (``$DATABUTLER_CONFIG_PATH``) are read last, so their entries for
        an extension replace the packaged ones.

        Raises
        ------
        ConfigError
            A file is not a mapping under ``fileFormats``.
        """
        classNames: dict[str, str] = {}
        for folder in reversed(configSearchPath()):
            path = folder / FORMATS_CONFIG_FILE
            if not path.is_file():
                continue
            with open(path, encoding="utf-8") as fh:
                content = yaml.safe_load(fh) or {}
            section = content.get("fileFormats") if isinstance(content, dict) else None
            if not isinstance(section, dict):
                raise ConfigError(
                    f"{path}: expected a 'fileFormats' mapping of extension to formatter class."
                )
            classNames.update(section)
        return cls(classNames)

    @property
    def extensions(self) -> tuple[str, ...]:
        """The extensions known, with their dots, in config order."""
        return tuple(self._classNames)

    def formatterFor(self, path: str | os.PathLike[str]) -> Formatter:
        """Return the formatter for ``path``'s extension.

        Raises
        ------
        FormatterError
            The extension is not known.
        ConfigError
            Its class cannot be imported or is not a `Formatter`.
        """
        extension = Path(path).suffix.lower()
        className = self._classNames.get(extension)
        if className is None:
            raise FormatterError(
                f"Cannot handle {str(path)!r}: its extension {extension or '(none)'!r} is not one of "
                f"{', '.join(self.extensions)}; add it to {FORMATS_CONFIG_FILE}."
            )
        formatter = self._formatters.get(className)
        if formatter is None:
            where = f"{FORMATS_CONFIG_FILE} entry {extension!r}"
            try:
                formatterClass: Any = importDottedName(className, where)
            except StorageClassError as exc:
                raise ConfigError(str(exc)) from exc
            if not (isinstance(formatterClass, type) and issubclass(formatterClass, Formatter)):
                raise ConfigError(f"{where}: {className!r} is not a Formatter subclass.")
            formatter = self._formatters[className] = formatterClass()
        return formatter
