"""Where and how a FileDatastore writes each dataset: templates plus formatters.

A dataset whose dataset type or storage class has a formatter is written whole to
``<template><extension>``. A composite without one is disassembled: its folder is
``<template>`` and each component present goes to ``<template>/<component><extension>``,
written by the component's own formatter.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ...config import Config
from ...dataset_ref import DatasetRef
from ...dataset_type import DatasetType
from ...exceptions import ConfigError, DatasetTypeMismatchError, FormatterError, StorageClassError
from ...formatters.base import Formatter
from ...storage_class import StorageClass, importDottedName
from ._templates import FileTemplates

__all__ = ["FileLayout", "FilePlan", "configSection"]

FilePlan = list[tuple[str | None, str, Formatter, Any, StorageClass]]
"""Files to write: ``(component or None, relative path, formatter, object, storage class)``."""


def configSection(value: Any, key: str) -> dict[str, Any]:
    """Return the config section ``value`` as a plain dict (``{}`` for null).

    Raises
    ------
    ConfigError
        It is not a mapping.
    """
    if value is None:
        return {}
    if isinstance(value, Config):
        return value.toDict()
    if not isinstance(value, Mapping):
        raise ConfigError(f"datastore.{key} must be a mapping, not {value!r}.")
    return dict(value)


class FileLayout:
    """Templates and formatters of one FileDatastore.

    Parameters
    ----------
    templates : mapping
        The ``templates`` config section.
    formatters : mapping
        The ``formatters`` config section: dataset type or storage class name → formatter class.
    datastoreName : str
        For messages.

    Raises
    ------
    FileTemplateError
        A template is invalid.
    """

    def __init__(
        self, templates: Mapping[str, Any], formatters: Mapping[str, Any], datastoreName: str
    ) -> None:
        self.templates = FileTemplates(templates)
        self.formatterNames = {str(k): v for k, v in formatters.items()}
        self.datastoreName = datastoreName
        self._formatters: dict[str, Formatter] = {}

    def getFormatter(self, className: str, where: str = "recorded formatter") -> Formatter:
        """Return an instance of formatter class ``className`` (one per class, reused).

        Raises
        ------
        ConfigError
            It cannot be imported, is not a Formatter subclass, or is an abstract one.
        """
        formatter = self._formatters.get(className)
        if formatter is None:
            try:
                cls = importDottedName(className, where)
            except StorageClassError as exc:
                raise ConfigError(f"Datastore {self.datastoreName!r}: {exc}") from exc
            if not (isinstance(cls, type) and issubclass(cls, Formatter)):
                raise ConfigError(
                    f"Datastore {self.datastoreName!r}: {where} {className!r} is not a Formatter subclass."
                )
            if inspect.isabstract(cls):
                raise ConfigError(
                    f"Datastore {self.datastoreName!r}: {where} {className!r} is an abstract Formatter "
                    "class, which cannot read or write anything; name a concrete one."
                )
            formatter = self._formatters[className] = cls()
        return formatter

    def getRecordedFormatter(self, className: str) -> Formatter:
        """Return the formatter a record names, if this datastore may read with it.

        A record can name a formatter class only if this datastore's configuration names it,
        or it is one of databutler's own formatters that cannot run code (not pickle). So a
        changed or hostile records database can neither make a read unpickle nor import an
        arbitrary module.

        Raises
        ------
        FormatterError
            The recorded formatter is not allowed here.
        ConfigError
            It cannot be imported or is not a Formatter subclass.
        """
        configured = className in self.formatterNames.values()
        if not configured and not className.startswith("databutler.formatters."):
            raise FormatterError(
                f"Datastore {self.datastoreName!r}: a record names formatter {className!r}, which its "
                f"configuration does not; add it under datastore.formatters to read these files."
            )
        formatter = self.getFormatter(className)
        if formatter.canRunCode and not configured:
            raise FormatterError(
                f"Datastore {self.datastoreName!r}: a record names {className!r}, which can run code when "
                f"reading, but this datastore's configuration does not use it; name it under "
                f"datastore.formatters only if you trust these files."
            )
        return formatter

    def formatterFor(self, datasetType: DatasetType) -> Formatter | None:
        """Return the formatter configured for ``datasetType``, or `None` if there is none.

        Looked up by dataset type name (``calexp`` or ``calexp.image``), then storage class name.

        Raises
        ------
        ConfigError
            The configured name cannot be imported or is not a Formatter.
        """
        for key in (datasetType.name, datasetType.storageClass.name):
            className = self.formatterNames.get(key)
            if className is not None:
                if not isinstance(className, str):
                    raise ConfigError(f"datastore.formatters.{key} must be a class name, not {className!r}.")
                return self.getFormatter(className, f"datastore.formatters.{key}")
        return None

    def noFormatter(self, datasetType: DatasetType) -> ConfigError:
        """Return the error for a dataset type that has no formatter."""
        return ConfigError(
            f"Datastore {self.datastoreName!r} has no formatter for dataset type {datasetType.name!r} or "
            f"storage class {datasetType.storageClass.name!r}; add one under datastore.formatters (pickle, "
            f"never a default, is databutler.formatters.pickle.PickleFormatter)."
        )

    def plan(self, inMemoryDataset: Any, ref: DatasetRef) -> tuple[FilePlan, str | None]:
        """Return the files to write for ``ref`` and, for a disassembled composite, its folder.

        Raises
        ------
        ConfigError
            No formatter for the dataset (or one of its components).
        DatasetTypeMismatchError
            A component is not of its storage class's type, or there are no components.
        UnsafePathError
            A value in the path is unsafe.
        """
        datasetType = ref.datasetType
        storageClass = datasetType.storageClass
        relPath = self.templates.render(ref)
        formatter = self.formatterFor(datasetType)
        if formatter is not None:
            return [(None, relPath + formatter.extension, formatter, inMemoryDataset, storageClass)], None
        if not storageClass.isComposite():
            raise self.noFormatter(datasetType)
        plan: FilePlan = []
        for component, value in storageClass.delegate().disassemble(inMemoryDataset).items():
            componentType = datasetType.makeComponentDatasetType(component)
            componentFormatter = self.formatterFor(componentType)
            if componentFormatter is None:
                raise self.noFormatter(componentType)
            componentType.storageClass.checkInstance(value, f"component {component!r} of {ref}")
            fileName = f"{relPath}/{component}{componentFormatter.extension}"
            plan.append((component, fileName, componentFormatter, value, componentType.storageClass))
        if not plan:
            raise DatasetTypeMismatchError(f"Composite {ref} has no components to write.")
        return plan, relPath

    def validate(self, inMemoryDataset: Any, datasetType: DatasetType) -> None:
        """Ask the formatter(s) that `plan` would choose to validate ``inMemoryDataset``.

        Raises
        ------
        ConfigError
            No formatter for the dataset (or one of its components).
        DatasetTypeMismatchError
            A component is not of its storage class's type.
        UnstorableDatasetError
            A formatter cannot store it exactly.
        """
        formatter = self.formatterFor(datasetType)
        if formatter is not None:
            formatter.validate(inMemoryDataset, datasetType.storageClass)
            return
        if not datasetType.storageClass.isComposite():
            raise self.noFormatter(datasetType)
        for component, value in datasetType.storageClass.delegate().disassemble(inMemoryDataset).items():
            componentType = datasetType.makeComponentDatasetType(component)
            componentFormatter = self.formatterFor(componentType)
            if componentFormatter is None:
                raise self.noFormatter(componentType)
            componentType.storageClass.checkInstance(
                value, f"component {component!r} of {datasetType.name!r}"
            )
            componentFormatter.validate(value, componentType.storageClass)

    def predictPath(self, ref: DatasetRef) -> str:
        """Return the relative path ``ref`` would be written to (a component's file or its parent's).

        Raises
        ------
        ConfigError
            No formatter for the dataset.
        UnsafePathError
            A value in the path is unsafe.
        """
        component = ref.datasetType.component()
        parentRef = ref.makeCompositeRef() if component is not None else ref
        relPath = self.templates.render(parentRef)
        formatter = self.formatterFor(parentRef.datasetType)
        if formatter is not None:
            return relPath + formatter.extension
        if not parentRef.datasetType.isComposite():
            raise self.noFormatter(parentRef.datasetType)
        if component is None:
            return relPath
        componentFormatter = self.formatterFor(ref.datasetType)
        if componentFormatter is None:
            raise self.noFormatter(ref.datasetType)
        return f"{relPath}/{component}{componentFormatter.extension}"
