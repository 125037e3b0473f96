"""Storage classes: named kinds of in-memory object, and the delegates that handle them.

A `StorageClass` says which Python type a dataset is (``pytype``), which named components it
has, which read ``parameters`` it accepts, how a datastore should protect it from callers
(``copyMode``) and which `StorageClassDelegate` knows how to take it apart, put it together,
apply parameters, measure its size and copy or freeze it.
"""

from __future__ import annotations

import copy as _copy
import importlib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Any, ClassVar

from .config import Config, configSearchPath
from .delegates.copying import jsonLikeCopier, jsonLikeDeepcopy, jsonLikeSize
from .exceptions import (
    DatasetTypeMismatchError,
    InvalidParameterError,
    MissingOptionalDependencyError,
    StorageClassConflictError,
    StorageClassError,
    UnknownComponentError,
    UnknownStorageClassError,
)

__all__ = [
    "COPY_MODES",
    "CopyMode",
    "StorageClass",
    "StorageClassDelegate",
    "StorageClassFactory",
    "importDottedName",
]


class CopyMode(StrEnum):
    """How a datastore protects stored objects from callers (each member is also its str)."""

    REFERENCE = "reference"
    """Share the caller's object: fastest; a caller's change is everyone's."""
    COPY = "copy"
    """Store and hand out shallow, type-aware copies."""
    DEEPCOPY = "deepcopy"
    """Store and hand out deep copies (JSON-like data is copied by a fast copier)."""
    FREEZE = "freeze"
    """Store one owned, read-only copy and hand out read-only views of it."""


COPY_MODES: tuple[str, ...] = tuple(CopyMode)
"""The names of the copy modes, in `CopyMode` order: reference, copy, deepcopy, freeze."""

_ENTRY_KEYS = frozenset({"pytype", "delegate", "parameters", "components", "copyMode", "inheritsFrom"})
"""The keys a ``storageClasses`` entry may have."""

_EXTRA_FOR_MODULE = {"numpy": "numpy", "pandas": "pandas", "pyarrow": "arrow", "astropy": "astropy"}


def importDottedName(dottedName: str, purpose: str) -> Any:
    """Import ``package.module.Name`` and return the named object.

    Parameters
    ----------
    dottedName : str
        Fully-qualified name, e.g. ``"numpy.ndarray"``.
    purpose : str
        What the name is for, used in error messages.

    Raises
    ------
    MissingOptionalDependencyError
        The top-level package is not installed.
    StorageClassError
        The module exists but does not define the name.
    """
    moduleName, _, attrName = dottedName.rpartition(".")
    if not moduleName:
        import builtins

        if hasattr(builtins, dottedName):
            return getattr(builtins, dottedName)
        raise StorageClassError(f"{purpose}: {dottedName!r} is not a fully-qualified name (module.Name).")
    try:
        module = importlib.import_module(moduleName)
    except ModuleNotFoundError as exc:
        top = (exc.name or moduleName).split(".")[0]
        extra = _EXTRA_FOR_MODULE.get(top)
        hint = f"pip install 'databutler[{extra}]'" if extra else f"install the {top!r} package"
        raise MissingOptionalDependencyError(
            f"{purpose} needs {dottedName!r}, but {top!r} is not installed; {hint}."
        ) from exc
    try:
        return getattr(module, attrName)
    except AttributeError as exc:
        raise StorageClassError(f"{purpose}: module {moduleName!r} has no attribute {attrName!r}.") from exc


class StorageClass:
    """A named kind of in-memory object.

    Parameters
    ----------
    name : str
        The storage class name, e.g. ``"NumpyArray"``.
    pytype : type or str, optional
        The Python type, or its dotted name imported on first use. Defaults to `object`.
    components : mapping of str to StorageClass, optional
        Named components of a composite.
    parameters : iterable of str
        Read parameters that `get` accepts for this storage class.
    delegate : type or str, optional
        A `StorageClassDelegate` subclass, or its dotted name. Defaults to the base delegate.
    copyMode : str
        One of `COPY_MODES`: how datastores protect stored objects of this class.

    Raises
    ------
    StorageClassError
        ``name`` is empty, a component is not a StorageClass, or ``copyMode`` is unknown.
    """

    __slots__ = (
        "_delegate",
        "_delegateSpec",
        "_pytype",
        "_pytypeSpec",
        "components",
        "copyMode",
        "name",
        "parameters",
    )

    def __init__(
        self,
        name: str,
        pytype: type | str | None = None,
        components: Mapping[str, StorageClass] | None = None,
        parameters: Iterable[str] = (),
        delegate: type[StorageClassDelegate] | str | None = None,
        copyMode: str = "deepcopy",
    ) -> None:
        if not isinstance(name, str) or not name.isidentifier():
            raise StorageClassError(f"Storage class name must be an identifier, got {name!r}.")
        if isinstance(parameters, str):
            raise StorageClassError(f"Storage class {name!r}: parameters must be a list of names, not a str.")
        if copyMode not in COPY_MODES:
            raise StorageClassError(
                f"Storage class {name!r}: copyMode {copyMode!r} is not one of {', '.join(COPY_MODES)}."
            )
        comps = dict(components or {})
        for compName, comp in comps.items():
            if not isinstance(comp, StorageClass):
                raise StorageClassError(
                    f"Storage class {name!r}: component {compName!r} must be a StorageClass, "
                    f"not {type(comp).__name__} (names are resolved by StorageClassFactory)."
                )
        self.name = name
        self._pytypeSpec: type | str = pytype if pytype is not None else object
        self._pytype: type | None = pytype if isinstance(pytype, type) else None
        if pytype is None:
            self._pytype = object
        self.components: Mapping[str, StorageClass] = MappingProxyType(comps)
        self.parameters: frozenset[str] = frozenset(parameters)
        self._delegateSpec: type[StorageClassDelegate] | str | None = delegate
        self._delegate: StorageClassDelegate | None = None
        self.copyMode = CopyMode(copyMode)

    @property
    def pytype(self) -> type:
        """The Python type; imported on first use when given as a dotted name."""
        if self._pytype is None:
            obj = importDottedName(str(self._pytypeSpec), f"Storage class {self.name!r}")
            if not isinstance(obj, type):
                raise StorageClassError(
                    f"Storage class {self.name!r}: pytype {self._pytypeSpec!r} is not a type."
                )
            self._pytype = obj
        return self._pytype

    @property
    def pytypeName(self) -> str:
        """The dotted name of ``pytype``, without importing it."""
        spec = self._pytypeSpec
        return spec if isinstance(spec, str) else f"{spec.__module__}.{spec.__qualname__}"

    @property
    def delegateName(self) -> str:
        """The dotted name of the delegate class, without importing it."""
        spec = self._delegateSpec
        if spec is None:
            return f"{StorageClassDelegate.__module__}.StorageClassDelegate"
        return spec if isinstance(spec, str) else f"{spec.__module__}.{spec.__qualname__}"

    def delegate(self) -> StorageClassDelegate:
        """Return the delegate for this storage class (built once, then reused)."""
        if self._delegate is None:
            spec = self._delegateSpec
            cls: Any = StorageClassDelegate if spec is None else spec
            if isinstance(cls, str):
                cls = importDottedName(cls, f"Delegate of storage class {self.name!r}")
            if not (isinstance(cls, type) and issubclass(cls, StorageClassDelegate)):
                raise StorageClassError(
                    f"Storage class {self.name!r}: delegate {self.delegateName!r} is not a StorageClassDelegate."
                )
            self._delegate = cls(self)
        return self._delegate

    def isComposite(self) -> bool:
        """Return `True` if this storage class declares components."""
        return bool(self.components)

    def validateInstance(self, instance: Any) -> bool:
        """Return `True` if ``instance`` is of this storage class's ``pytype``.

        Raises
        ------
        MissingOptionalDependencyError
            ``pytype`` lives in an optional library that is not installed.
        """
        return isinstance(instance, self._pytype or self.pytype)

    def checkInstance(self, instance: Any, what: str) -> None:
        """Refuse ``instance`` unless it is of ``pytype`` and the delegate can hold it exactly.

        Every datastore calls this on put, so every tier gives the same answer.

        Parameters
        ----------
        instance : object
            The object to be stored.
        what : str
            The dataset, for the message (``"calexp@{visit: 1}"``).

        Raises
        ------
        DatasetTypeMismatchError
            ``instance`` is not of ``pytype``.
        UnstorableDatasetError
            The delegate cannot hold it exactly (`StorageClassDelegate.checkStorable`).
        MissingOptionalDependencyError
            ``pytype`` lives in an optional library that is not installed.
        """
        if not isinstance(instance, self._pytype or self.pytype):
            raise DatasetTypeMismatchError(
                f"Cannot put {type(instance).__module__}.{type(instance).__qualname__} as {what}: storage "
                f"class {self.name!r} expects {self.pytypeName}."
            )
        self.delegate().checkStorable(instance)

    def _key(self) -> tuple[Any, ...]:
        comps = tuple(sorted((k, v._key()) for k, v in self.components.items()))
        return (self.name, self.pytypeName, comps, self.parameters, self.delegateName, self.copyMode)

    def __eq__(self, other: object) -> bool:
        """Return `True` if both have the same name, type, components, parameters, delegate and copy mode."""
        if self is other:
            return True
        if not isinstance(other, StorageClass):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        """Hash the name, which equal storage classes share."""
        return hash(self.name)

    def __repr__(self) -> str:
        """Show the name and the Python type's name."""
        return f"StorageClass({self.name!r}, pytype={self.pytypeName!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the storage class by its definition, so it rebuilds without a factory."""
        return (
            StorageClass,
            (
                self.name,
                self.pytypeName,
                dict(self.components),
                sorted(self.parameters),
                self.delegateName,
                self.copyMode,
            ),
        )


class StorageClassDelegate:
    """Knows how to handle objects of one storage class.

    The base delegate works for any type: it reads a component as an attribute, a
    ``get<Component>()`` method or a mapping key; assembles by calling ``pytype(**components)``;
    estimates sizes with a bounded recursive walk; copies with `copy`/`deepcopy`. JSON-like data
    (builtin dicts, lists and tuples of immutable scalars, see `databutler.delegates.copying`)
    is deep-copied and sized by a fast path of its own. Type families with read parameters
    subclass it and override `applyParameters`.

    Parameters
    ----------
    storageClass : StorageClass
        The storage class this delegate serves.
    """

    canFreeze: ClassVar[bool] = False
    """Whether `freeze` gives a truly read-only object for this type."""

    sizeWalkLimit: ClassVar[int] = 10_000
    """At most this many objects are visited when estimating the size of a container."""

    def __init__(self, storageClass: StorageClass) -> None:
        self.storageClass = storageClass
        # A subclass with a deepcopy of its own keeps it for every object (no JSON-like path).
        self._ownDeepcopy = type(self).deepcopy is not StorageClassDelegate.deepcopy

    def checkStorable(self, inMemoryDataset: Any) -> None:
        """Refuse an instance of ``pytype`` that this storage class cannot hold exactly.

        For example a masked array is an `numpy.ndarray`, but the ``NumpyArray`` storage class
        would drop its mask. A delegate refuses by type only (the in-memory datastore asks once
        per concrete type of a dataset type); what depends on the content is for formatters to
        refuse (`Formatter.validate`). The default accepts every instance.

        Raises
        ------
        UnstorableDatasetError
            ``inMemoryDataset`` would not come back as it is; the message says what to do.
        """

    # -- components --

    def _checkComponent(self, componentName: str) -> None:
        if componentName not in self.storageClass.components:
            known = ", ".join(sorted(self.storageClass.components)) or "none"
            raise UnknownComponentError(
                f"Storage class {self.storageClass.name!r} has no component {componentName!r}; "
                f"its components are: {known}."
            )

    def getComponent(self, composite: Any, componentName: str) -> Any:
        """Return component ``componentName`` of ``composite``.

        Raises
        ------
        UnknownComponentError
            The storage class declares no such component, or the object does not have it.
        """
        self._checkComponent(componentName)
        if isinstance(composite, Mapping) and componentName in composite:
            return composite[componentName]
        getter = getattr(composite, "get" + componentName[:1].upper() + componentName[1:], None)
        if callable(getter):
            return getter()
        if hasattr(composite, componentName):
            return getattr(composite, componentName)
        raise UnknownComponentError(
            f"Object of type {type(composite).__name__} (storage class {self.storageClass.name!r}) has no "
            f"attribute, get method or key for component {componentName!r}."
        )

    def disassemble(self, composite: Any) -> dict[str, Any]:
        """Return ``{componentName: component}`` for every component present in ``composite``."""
        out = {}
        for name in self.storageClass.components:
            try:
                value = self.getComponent(composite, name)
            except UnknownComponentError:
                continue
            if value is not None:
                out[name] = value
        return out

    def assemble(self, components: Mapping[str, Any]) -> Any:
        """Build a composite from its components, by default ``pytype(**components)``."""
        for name in components:
            self._checkComponent(name)
        return self.storageClass.pytype(**components)

    # -- parameters --

    def checkParameters(self, parameters: Mapping[str, Any] | None) -> None:
        """Raise `InvalidParameterError` for any parameter the storage class does not accept."""
        if not parameters:
            return
        if not isinstance(parameters, Mapping):
            raise InvalidParameterError(
                f"Parameters must be a mapping of name to value, not {type(parameters).__name__}."
            )
        unknown = set(parameters) - self.storageClass.parameters
        if unknown:
            accepted = ", ".join(sorted(self.storageClass.parameters)) or "none"
            raise InvalidParameterError(
                f"Storage class {self.storageClass.name!r} does not accept parameter(s) "
                f"{', '.join(sorted(map(str, unknown)))}; accepted: {accepted}."
            )

    def handleParameters(self, inMemoryDataset: Any, parameters: Mapping[str, Any] | None = None) -> Any:
        """Return ``inMemoryDataset`` with ``parameters`` applied (a slice, a column subset...).

        Raises
        ------
        InvalidParameterError
            A parameter is not accepted by the storage class, or its value is unusable.
        """
        self.checkParameters(parameters)
        if not parameters:
            return inMemoryDataset
        try:
            return self.applyParameters(inMemoryDataset, parameters)
        except InvalidParameterError:
            raise
        except (TypeError, ValueError, KeyError, IndexError) as exc:
            raise InvalidParameterError(
                f"Could not apply parameters {dict(parameters)!r} to storage class "
                f"{self.storageClass.name!r}: {exc}"
            ) from exc

    def applyParameters(self, inMemoryDataset: Any, parameters: Mapping[str, Any]) -> Any:
        """Apply already-checked parameters; subclasses with parameters override this."""
        raise InvalidParameterError(
            f"Storage class {self.storageClass.name!r} declares parameters {sorted(parameters)} but its "
            f"delegate {type(self).__name__} does not implement them."
        )

    # -- size and ownership --

    def getSize(self, inMemoryDataset: Any) -> int:
        """Estimate the bytes held by ``inMemoryDataset`` (bounded recursive walk)."""
        fast = jsonLikeSize(inMemoryDataset)
        if fast is not None:
            return fast
        seen: set[int] = set()
        stack = [inMemoryDataset]
        total = 0
        limit = self.sizeWalkLimit
        while stack and len(seen) < limit:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            total += sys.getsizeof(obj, 64)
            if isinstance(obj, str | bytes | bytearray | int | float | complex | bool) or obj is None:
                continue
            if isinstance(obj, Mapping):
                stack.extend(obj.keys())
                stack.extend(obj.values())
            elif isinstance(obj, list | tuple | set | frozenset):
                stack.extend(obj)
            else:
                nbytes = getattr(obj, "nbytes", None)
                if isinstance(nbytes, int):
                    total += nbytes
                attrs = getattr(obj, "__dict__", None)
                if isinstance(attrs, dict):
                    stack.extend(attrs.values())
        return total

    def copy(self, inMemoryDataset: Any) -> Any:
        """Return a shallow, type-aware copy."""
        return _copy.copy(inMemoryDataset)

    def deepcopy(self, inMemoryDataset: Any) -> Any:
        """Return a deep copy (JSON-like data by the fast copier, anything else by `copy.deepcopy`)."""
        found = jsonLikeDeepcopy(inMemoryDataset)
        return found[0] if found is not None else _copy.deepcopy(inMemoryDataset)

    def deepcopyWithCopier(self, inMemoryDataset: Any) -> tuple[Any, Callable[[Any], Any]]:
        """Return a deep copy to store and the cheapest function that deep-copies it for readers.

        For JSON-like data that is a dict's or list's own ``copy`` when it is flat, else the
        JSON-like copier; for anything else (or with a `deepcopy` of a subclass's own) it is
        `deepcopy`.
        """
        if not self._ownDeepcopy:
            found = jsonLikeDeepcopy(inMemoryDataset)
            if found is not None:
                return found
        return self.deepcopy(inMemoryDataset), self.deepcopy

    def deepcopier(self, stored: Any) -> Callable[[Any], Any]:
        """Return the cheapest function that deep-copies ``stored``, an object nobody else holds."""
        if not self._ownDeepcopy:
            copier = jsonLikeCopier(stored)
            if copier is not None:
                return copier
        return self.deepcopy

    def canFreezeInstance(self, inMemoryDataset: Any) -> bool:
        """Whether this object can be frozen; others of a freezing type are deep-copied instead."""
        return self.canFreeze

    def freeze(self, inMemoryDataset: Any) -> Any:
        """Return an owned, read-only copy to store; only for types with ``canFreeze``."""
        raise StorageClassError(
            f"Storage class {self.storageClass.name!r} ({self.storageClass.pytypeName}) cannot be frozen; "
            f"use copyMode 'copy' or 'deepcopy' for it."
        )

    def frozenView(self, stored: Any) -> Any:
        """Return a read-only view of a frozen stored object for one caller."""
        return stored


def _resolveSearchFiles(fileName: str) -> list[str]:
    return [str(p / fileName) for p in configSearchPath() if (p / fileName).is_file()]


class StorageClassFactory:
    """Name → `StorageClass`, filled from ``storageClasses`` YAML; an ordinary object.

    Use `fromDefaults` for a factory holding the packaged definitions (and those found in
    ``$DATABUTLER_CONFIG_PATH``).
    """

    defaultConfigFile: ClassVar[str] = "storageClasses.yaml"

    def __init__(self) -> None:
        self._storageClasses: dict[str, StorageClass] = {}

    @classmethod
    def fromDefaults(cls) -> StorageClassFactory:
        """Return a new factory filled from every ``storageClasses.yaml`` on the search path.

        Higher-priority files (``$DATABUTLER_CONFIG_PATH``) are read last, so their definitions
        of a name replace the packaged ones.
        """
        factory = cls()
        for path in reversed(_resolveSearchFiles(cls.defaultConfigFile)):
            factory.addFromConfig(path, replace=True)
        return factory

    def copy(self) -> StorageClassFactory:
        """Return a new factory with the same storage classes."""
        new = type(self)()
        new._storageClasses = dict(self._storageClasses)
        return new

    def __contains__(self, storageClassOrName: object) -> bool:
        """Return `True` if the name is registered, or the storage class is registered as it is."""
        if isinstance(storageClassOrName, StorageClass):
            return self._storageClasses.get(storageClassOrName.name) == storageClassOrName
        return isinstance(storageClassOrName, str) and storageClassOrName in self._storageClasses

    def __len__(self) -> int:
        """Return the number of registered storage classes."""
        return len(self._storageClasses)

    def keys(self) -> list[str]:
        """Return the registered names, sorted."""
        return sorted(self._storageClasses)

    def getStorageClass(self, storageClassName: str) -> StorageClass:
        """Return the storage class called ``storageClassName``.

        Raises
        ------
        UnknownStorageClassError
            No storage class of that name is registered.
        """
        try:
            return self._storageClasses[storageClassName]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._storageClasses)) or "none"
            raise UnknownStorageClassError(
                f"Unknown storage class {storageClassName!r}; known: {known}. "
                f"Define it in storageClasses.yaml or register it with registerStorageClass."
            ) from None

    def registerStorageClass(self, storageClass: StorageClass, replace: bool = False) -> None:
        """Register ``storageClass``; an identical one is a no-op.

        Raises
        ------
        StorageClassConflictError
            A different storage class of that name is already registered and ``replace`` is false.
        """
        if not isinstance(storageClass, StorageClass):
            raise TypeError(f"registerStorageClass takes a StorageClass, not {type(storageClass).__name__}.")
        existing = self._storageClasses.get(storageClass.name)
        if existing is not None and existing != storageClass and not replace:
            raise StorageClassConflictError(
                f"Storage class {storageClass.name!r} is already registered as {existing._key()!r}; "
                f"refusing to replace it with {storageClass._key()!r}."
            )
        if existing is None or existing != storageClass:
            self._storageClasses[storageClass.name] = storageClass

    def addFromConfig(
        self, config: Config | Mapping[str, Any] | str | os.PathLike[str], replace: bool = False
    ) -> None:
        """Register every storage class defined in ``config``.

        ``config`` is a path, mapping or Config holding a ``storageClasses`` mapping (or that
        mapping itself). Each entry may give ``pytype``, ``delegate``, ``parameters``,
        ``components`` (name → storage class name, defined here or already registered),
        ``copyMode`` and ``inheritsFrom``: the name of another storage class (defined here or
        already registered) whose definition this one starts from. Its ``pytype``, ``delegate``
        and ``copyMode`` are kept unless the entry gives its own; its ``parameters`` and
        ``components`` are extended by the entry's.

        Raises
        ------
        StorageClassError
            An entry is malformed, or a component names an unknown storage class.
        StorageClassConflictError
            An entry conflicts with a registered storage class and ``replace`` is false.
        """
        cfg = Config(config)
        section = cfg.get("storageClasses", cfg)
        definitions = section.toDict() if isinstance(section, Config) else {}
        where = f" in {str(cfg.configFile)!r}" if cfg.configFile else ""
        building: set[str] = set()

        def build(name: str) -> StorageClass:
            if name not in definitions:
                return self.getStorageClass(name)
            if name in building:
                raise StorageClassError(
                    f"Storage class {name!r}{where} contains itself through its components, "
                    "or inherits from itself through inheritsFrom."
                )
            entry = definitions[name]
            if entry is None:
                entry = {}
            if isinstance(entry, str):
                entry = {"pytype": entry}
            if not isinstance(entry, dict):
                raise StorageClassError(f"Storage class {name!r}{where} must be a mapping, not {entry!r}.")
            unknownKeys = set(entry) - _ENTRY_KEYS
            if unknownKeys:
                raise StorageClassError(
                    f"Storage class {name!r}{where} has unknown key(s) {sorted(unknownKeys)}; "
                    f"expected {', '.join(sorted(_ENTRY_KEYS))}."
                )
            parentName = entry.get("inheritsFrom")
            if parentName is not None and not isinstance(parentName, str):
                raise StorageClassError(
                    f"Storage class {name!r}{where}: inheritsFrom names one storage class, not {parentName!r}."
                )
            building.add(name)
            try:
                parent = build(parentName) if parentName is not None else None
                comps = {c: build(scName) for c, scName in (entry.get("components") or {}).items()}
            except UnknownStorageClassError as exc:
                what = "inheritsFrom" if parentName is not None and parentName not in self else "component"
                raise StorageClassError(f"Storage class {name!r}{where}: {what} {exc}") from exc
            finally:
                building.discard(name)
            parameters = entry.get("parameters") or ()
            if isinstance(parameters, str):
                raise StorageClassError(
                    f"Storage class {name!r}{where}: parameters must be a list of names, not a str."
                )
            if parent is None:
                storageClass = StorageClass(
                    name,
                    pytype=entry.get("pytype"),
                    components=comps,
                    parameters=parameters,
                    delegate=entry.get("delegate"),
                    copyMode=entry.get("copyMode", "deepcopy"),
                )
            else:  # the parent's definition, with this entry's keys over it
                storageClass = StorageClass(
                    name,
                    pytype=entry.get("pytype", parent._pytypeSpec),
                    components={**parent.components, **comps},
                    parameters=parent.parameters | set(parameters),
                    delegate=entry.get("delegate", parent._delegateSpec),
                    copyMode=entry.get("copyMode", parent.copyMode),
                )
            self.registerStorageClass(storageClass, replace=replace)
            return self._storageClasses[name]

        for name in definitions:
            build(name)
