"""DimensionRecord: the metadata of one dimension value (a visit's band, exposure time, timespan)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

__all__ = ["DimensionRecord", "Timespan"]


class Timespan(NamedTuple):
    """The half-open interval [begin, end) in UTC; either end may be `None` (unbounded)."""

    begin: datetime.datetime | None
    end: datetime.datetime | None


class DimensionRecord:
    """One record of dimension ``element``: its key values, implied dimensions and fields.

    Values are read as attributes (``record.band``, ``record.timespan``) or with `toDict`.
    Records compare equal when element and values are equal.
    """

    __slots__ = ("_values", "element")

    def __init__(self, element: str, values: Mapping[str, Any]) -> None:
        """Store the values of one record of ``element``."""
        object.__setattr__(self, "element", element)
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    element: str
    _values: Mapping[str, Any]

    def __getattr__(self, name: str) -> Any:
        """Return the value of field ``name``."""
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(
                f"A {self.element!r} record has no field {name!r}; it has {list(self._values)}."
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        """Refuse to set any attribute: records are read-only (`AttributeError`)."""
        raise AttributeError("DimensionRecord is read-only.")

    def toDict(self) -> dict[str, Any]:
        """Return the values as a new dict."""
        return dict(self._values)

    def __eq__(self, other: object) -> bool:
        """Return `True` if ``other`` is a record of the same element with equal values."""
        return (
            isinstance(other, DimensionRecord)
            and other.element == self.element
            and dict(other._values) == dict(self._values)
        )

    def __hash__(self) -> int:
        """Hash the element and the values, so equal records hash alike."""
        return hash((self.element, tuple(self._values.items())))

    def __repr__(self) -> str:
        """Show the element and every value by name."""
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"DimensionRecord({self.element!r}, {inner})"
