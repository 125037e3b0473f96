"""The dimension universe: which dimensions a repository has, their value types, records and relations.

A repository declares its universe in its config when it is made (``registry.dimensions``,
defaults in ``configs/dimensions.yaml``); the registry stores it, so every client of the
repository agrees on it. Each dimension has

- a ``type``: ``int`` or ``str``; data ID values are coerced to it (`coerceValue`);
- optional record ``fields``, each ``int``, ``str``, ``float`` or ``timespan``
  (``visit: {exposureTime: float, timespan: timespan}``);
- optional ``requires``: dimensions that identify it together with its own value (a detector
  belongs to an instrument: detector 10 of one instrument is not detector 10 of another);
- optional ``implies``: dimensions whose value a record of it determines (a visit implies its
  band), stored in its records and usable in queries (``visit.band`` or just ``band``).

Records are optional: a data ID needs no record.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from ..exceptions import ConfigError, DataIdError

__all__ = ["FIELD_TYPES", "VALUE_TYPES", "Dimension", "DimensionUniverse"]

VALUE_TYPES = ("int", "str")
FIELD_TYPES = ("int", "str", "float", "timespan")


@dataclass(frozen=True, slots=True)
class Dimension:
    """One dimension: its name, value type, record fields and relations."""

    name: str
    valueType: str
    fields: Mapping[str, str]
    requires: tuple[str, ...] = ()
    implies: tuple[str, ...] = ()

    @property
    def hasRecords(self) -> bool:
        """`True` if records of this dimension carry anything beyond their key."""
        return bool(self.fields or self.implies)

    def toConfig(self) -> dict[str, Any]:
        """Return the definition in the form of ``configs/dimensions.yaml``."""
        out: dict[str, Any] = {"type": self.valueType}
        if self.fields:
            out["fields"] = dict(self.fields)
        if self.requires:
            out["requires"] = list(self.requires)
        if self.implies:
            out["implies"] = list(self.implies)
        return out


class DimensionUniverse(Mapping[str, Dimension]):
    """Every dimension of a repository, by name.

    Parameters
    ----------
    dimensions : iterable of Dimension
        The dimensions; relations must name dimensions in the universe, without cycles.

    Raises
    ------
    ConfigError
        A relation names an unknown dimension, or ``requires`` relations form a cycle.
    """

    def __init__(self, dimensions: Iterable[Dimension]) -> None:
        self._dimensions = {d.name: d for d in dimensions}
        for dimension in self._dimensions.values():
            for other in (*dimension.requires, *dimension.implies):
                if other not in self._dimensions:
                    raise ConfigError(
                        f"Dimension {dimension.name!r} relates to {other!r}, which is not a dimension "
                        f"of the universe; known: {sorted(self._dimensions)}."
                    )
        for name in self._dimensions:
            self.requiredKeys(name)  # raises on a cycle

    # -- Mapping --

    def __getitem__(self, name: str) -> Dimension:
        """Return dimension ``name``."""
        return self._dimensions[name]

    def __iter__(self) -> Iterator[str]:
        """Iterate over the dimension names."""
        return iter(self._dimensions)

    def __len__(self) -> int:
        """Return the number of dimensions."""
        return len(self._dimensions)

    def __eq__(self, other: object) -> bool:
        """Return `True` if ``other`` defines the same dimensions (types, fields and relations)."""
        return isinstance(other, DimensionUniverse) and self.toConfig() == other.toConfig()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        """Show the dimension names."""
        return f"DimensionUniverse({sorted(self._dimensions)})"

    # -- building --

    @classmethod
    def fromConfig(cls, config: Mapping[str, Any]) -> DimensionUniverse:
        """Build from ``{name: {type: int, fields: {...}, requires: [...], implies: [...]}}``.

        Raises
        ------
        ConfigError
            A dimension's type or a field's type is unknown, or an entry is malformed.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"registry.dimensions must be a mapping of dimension name to definition, not {config!r}."
            )
        dimensions = []
        for name, spec in config.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ConfigError(f"Dimension name {name!r} must be an identifier such as 'visit'.")
            spec = spec or {}
            if not isinstance(spec, Mapping):
                raise ConfigError(f"Dimension {name!r}: its definition must be a mapping, not {spec!r}.")
            unknown = set(spec) - {"type", "fields", "requires", "implies"}
            if unknown:
                raise ConfigError(
                    f"Dimension {name!r} has unknown keys {sorted(unknown)}; use type, fields, requires, implies."
                )
            valueType = spec.get("type", "int")
            if valueType not in VALUE_TYPES:
                raise ConfigError(
                    f"Dimension {name!r} has type {valueType!r}; use one of {list(VALUE_TYPES)}."
                )
            fields = dict(spec.get("fields") or {})
            for fieldName, fieldType in fields.items():
                if not str(fieldName).isidentifier() or fieldType not in FIELD_TYPES:
                    raise ConfigError(
                        f"Dimension {name!r} field {fieldName!r}: the name must be an identifier and the "
                        f"type one of {list(FIELD_TYPES)} (got {fieldType!r})."
                    )
            dimensions.append(
                Dimension(
                    name,
                    valueType,
                    fields,
                    tuple(spec.get("requires") or ()),
                    tuple(spec.get("implies") or ()),
                )
            )
        return cls(dimensions)

    @classmethod
    def default(cls) -> DimensionUniverse:
        """Return the packaged universe of ``configs/dimensions.yaml``."""
        text = resources.files("databutler").joinpath("configs/dimensions.yaml").read_text()
        return cls.fromConfig(yaml.safe_load(text)["dimensions"])

    def toConfig(self) -> dict[str, Any]:
        """Return every definition in the form of ``configs/dimensions.yaml``."""
        return {name: dimension.toConfig() for name, dimension in self._dimensions.items()}

    def toJson(self) -> str:
        """Return `toConfig` as JSON, as the registry stores it."""
        return json.dumps(self.toConfig(), sort_keys=True)

    @classmethod
    def fromJson(cls, text: str) -> DimensionUniverse:
        """Build from the JSON of `toJson`."""
        return cls.fromConfig(json.loads(text))

    def extended(self, dimensions: Iterable[Dimension]) -> DimensionUniverse:
        """Return this universe with ``dimensions`` added (an existing one must be identical).

        Raises
        ------
        ConfigError
            A dimension of that name exists with another definition.
        """
        merged = dict(self._dimensions)
        for dimension in dimensions:
            existing = merged.get(dimension.name)
            if existing is not None and existing != dimension:
                raise ConfigError(
                    f"Dimension {dimension.name!r} is already defined as {existing.toConfig()}; it cannot "
                    f"be redefined as {dimension.toConfig()}."
                )
            merged[dimension.name] = dimension
        return DimensionUniverse(merged.values())

    # -- relations --

    def requiredKeys(self, name: str, _seen: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Return the dimensions that identify a record of ``name``: its requirements (recursively), then itself."""
        if name in _seen:
            raise ConfigError(f"Dimension requirements form a cycle: {' -> '.join((*_seen, name))}.")
        out: list[str] = []
        for other in self._dimensions[name].requires:
            for key in self.requiredKeys(other, (*_seen, name)):
                if key not in out:
                    out.append(key)
        out.append(name)
        return tuple(out)

    def checkDimensions(self, names: Iterable[str], what: str) -> None:
        """Raise `DataIdError` if any of ``names`` is not a dimension of the universe."""
        unknown = [name for name in names if name not in self._dimensions]
        if unknown:
            raise DataIdError(
                f"{what} uses unknown dimension(s) {unknown}; the repository's dimensions are "
                f"{sorted(self._dimensions)} (add one to registry.dimensions when making the repository)."
            )

    # -- values --

    def coerceValue(self, name: str, value: Any, what: str = "Data ID") -> int | str:
        """Return ``value`` as dimension ``name``'s type: ``"101"`` is 101 for an int dimension.

        Raises
        ------
        DataIdError
            The value cannot be read as the dimension's type (the message names both), or is
            a bool, an empty string or a non-integral number.
        """
        dimension = self._dimensions.get(name)
        if dimension is None:
            self.checkDimensions([name], what)
            raise AssertionError  # unreachable
        if isinstance(value, bool):
            raise DataIdError(
                f"{what} value {name}={value!r}: booleans are not allowed; {name} is {dimension.valueType}."
            )
        if dimension.valueType == "int":
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    raise DataIdError(
                        f"{what} value {name}={value!r} is not an integer; dimension {name!r} has type int."
                    ) from None
            if isinstance(value, float):
                if value.is_integer():
                    return int(value)
                raise DataIdError(
                    f"{what} value {name}={value!r} is not an integer; dimension {name!r} has type int."
                )
            try:
                return operator.index(value)
            except TypeError:
                raise DataIdError(
                    f"{what} value {name}={value!r} ({type(value).__name__}) is not an integer; dimension "
                    f"{name!r} has type int."
                ) from None
        if isinstance(value, str):
            if not value:
                raise DataIdError(f"{what} value {name}='' is empty; dimension {name!r} has type str.")
            return value
        try:
            return str(operator.index(value))
        except TypeError:
            raise DataIdError(
                f"{what} value {name}={value!r} ({type(value).__name__}) is not a string; dimension "
                f"{name!r} has type str."
            ) from None

    def coerceDataId(self, dataId: Mapping[str, Any], what: str = "Data ID") -> dict[str, Any]:
        """Return ``dataId`` with each value coerced to its dimension's type; unknown keys are left alone."""
        return {
            key: self.coerceValue(key, value, what) if key in self._dimensions else value
            for key, value in dataId.items()
        }
