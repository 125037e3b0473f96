"""DatasetType: what kind of dataset something is — a name, its dimensions and storage class."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from .exceptions import DatasetTypeError, UnknownComponentError
from .storage_class import StorageClass, StorageClassFactory

__all__ = ["DatasetType"]

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_NAME = 128


@cache
def _defaultFactory() -> StorageClassFactory:
    # Read-only use: DatasetType only looks names up in it. Never registered into.
    return StorageClassFactory.fromDefaults()


def _validatePart(part: str, what: str, full: str) -> None:
    if not _NAME_RE.match(part) or len(full) > _MAX_NAME:
        raise DatasetTypeError(
            f"Invalid {what} {full!r}: use letters, digits and '_' (not starting with a digit), "
            f"at most {_MAX_NAME} characters, with one '.' only to name a component."
        )


@dataclass(frozen=True, slots=True, eq=False)
class DatasetType:
    """A named kind of dataset: ``name``, ``dimensions`` (the data-ID keys), ``storageClass``.

    Parameters
    ----------
    name : str
        ``"calexp"``, or ``"calexp.wcs"`` for a component type.
    dimensions : iterable of str
        The data-ID keys, e.g. ``("visit", "detector")``; kept sorted.
    storageClass : StorageClass or str
        The storage class, or its name looked up in ``storageClassFactory`` (by default a
        factory of the packaged definitions).
    parentStorageClass : StorageClass or str, optional
        For a component type, the storage class of the composite it is read from.
    storageClassFactory : StorageClassFactory, optional
        Where storage class names are looked up.

    Raises
    ------
    DatasetTypeError
        The name or a dimension is not a valid identifier, or dimensions is a bare string.
    UnknownStorageClassError
        ``storageClass`` is a name the factory does not know.
    """

    name: str
    dimensions: tuple[str, ...]
    storageClass: StorageClass
    parentStorageClass: StorageClass | None = None
    storageClassFactory: StorageClassFactory | None = field(default=None, compare=False, repr=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check the name and dimensions, sort the dimensions and resolve the storage classes by name."""
        name = self.name
        if not isinstance(name, str):
            raise DatasetTypeError(f"Dataset type name must be a str, not {type(name).__name__}.")
        parts = name.split(".")
        if len(parts) > 2:
            raise DatasetTypeError(f"Invalid dataset type name {name!r}: at most one '.' (parent.component).")
        for part in parts:
            _validatePart(part, "dataset type name", name)
        dims = self.dimensions
        if isinstance(dims, str) or not isinstance(dims, Iterable):
            raise DatasetTypeError(
                f"Dataset type {name!r}: dimensions must be an iterable of names such as "
                f"('visit', 'detector'), not {dims!r}."
            )
        dimTuple = tuple(sorted(set(dims)))
        for dim in dimTuple:
            if not isinstance(dim, str):
                raise DatasetTypeError(f"Dataset type {name!r}: dimension {dim!r} is not a str.")
            _validatePart(dim, f"dimension of dataset type {name!r}:", dim)
        factory = self.storageClassFactory
        object.__setattr__(self, "dimensions", dimTuple)
        object.__setattr__(self, "storageClass", _resolve(self.storageClass, factory, name))
        if self.parentStorageClass is not None:
            object.__setattr__(self, "parentStorageClass", _resolve(self.parentStorageClass, factory, name))
        object.__setattr__(self, "_hash", hash((name, dimTuple, self.storageClass.name)))

    def __eq__(self, other: object) -> bool:
        """Return `True` if name, dimensions, storage class and parent storage class all match."""
        if self is other:
            return True
        if not isinstance(other, DatasetType):
            return NotImplemented
        return (
            self.name == other.name
            and self.dimensions == other.dimensions
            and self.storageClass == other.storageClass
            and self.parentStorageClass == other.parentStorageClass
        )

    def __hash__(self) -> int:
        """Hash the name, the dimensions and the storage class name (computed once)."""
        return self._hash

    def __repr__(self) -> str:
        """Show the name, the dimensions and the storage class name."""
        return f"DatasetType({self.name!r}, {self.dimensions!r}, {self.storageClass.name!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the dataset type by its fields; the storage class factory is not pickled."""
        return (DatasetType, (self.name, self.dimensions, self.storageClass, self.parentStorageClass))

    def nameAndComponent(self) -> tuple[str, str | None]:
        """Return ``(parentName, componentName)``; the component is `None` for a parent type."""
        parent, _, comp = self.name.partition(".")
        return parent, comp or None

    def component(self) -> str | None:
        """Return the component name, or `None` if this is not a component type."""
        return self.nameAndComponent()[1]

    def isComponent(self) -> bool:
        """Return `True` if this is a component dataset type."""
        return "." in self.name

    def isComposite(self) -> bool:
        """Return `True` if the storage class declares components."""
        return self.storageClass.isComposite()

    def componentTypeName(self, component: str) -> str:
        """Return the name of component ``component`` of this type, ``"parent.component"``.

        Raises
        ------
        UnknownComponentError
            The storage class has no such component.
        """
        if component not in self.storageClass.components:
            known = ", ".join(sorted(self.storageClass.components)) or "none"
            raise UnknownComponentError(
                f"Dataset type {self.name!r} (storage class {self.storageClass.name!r}) has no component "
                f"{component!r}; its components are: {known}."
            )
        return f"{self.name}.{component}"

    def makeComponentDatasetType(self, component: str) -> DatasetType:
        """Return the dataset type of component ``component``.

        Raises
        ------
        UnknownComponentError
            The storage class has no such component.
        """
        return DatasetType(
            self.componentTypeName(component),
            self.dimensions,
            self.storageClass.components[component],
            parentStorageClass=self.storageClass,
        )

    def makeCompositeDatasetType(self) -> DatasetType:
        """Return the parent dataset type of a component type.

        Raises
        ------
        DatasetTypeError
            This is not a component type.
        """
        if self.parentStorageClass is None:
            raise DatasetTypeError(f"Dataset type {self.name!r} is not a component type with a known parent.")
        return DatasetType(self.nameAndComponent()[0], self.dimensions, self.parentStorageClass)


def _resolve(storageClass: Any, factory: StorageClassFactory | None, name: str) -> StorageClass:
    if isinstance(storageClass, StorageClass):
        return storageClass
    if isinstance(storageClass, str):
        return (factory or _defaultFactory()).getStorageClass(storageClass)
    raise DatasetTypeError(
        f"Dataset type {name!r}: storageClass must be a StorageClass or its name, "
        f"not {type(storageClass).__name__}."
    )
