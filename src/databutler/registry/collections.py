"""Collection types: what a collection argument may name."""

from __future__ import annotations

import enum
from collections.abc import Sequence

from ..exceptions import InvalidQueryError

__all__ = ["CollectionType", "collectionTypes"]


class CollectionType(enum.StrEnum):
    """The kinds of collection: a RUN holds the datasets written into it."""

    RUN = "RUN"
    TAGGED = "TAGGED"
    CHAINED = "CHAINED"
    CALIBRATION = "CALIBRATION"


def collectionTypes(types: str | Sequence[str] | None) -> set[CollectionType]:
    """Return ``types`` as a set of `CollectionType` (every type for `None`).

    Raises
    ------
    InvalidQueryError
        A name is not a collection type.
    """
    if types is None:
        return set(CollectionType)
    names = [types] if isinstance(types, str) else list(types)
    out = set()
    for name in names:
        try:
            out.add(CollectionType(str(name).upper()))
        except ValueError:
            raise InvalidQueryError(
                f"{name!r} is not a collection type; use one of {[t.value for t in CollectionType]}."
            ) from None
    return out
