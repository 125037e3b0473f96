"""How data IDs are written to, read from and queried in the registry's tables; dataset ids.

See `databutler.registry.schema` for why a data ID is stored both as canonical JSON (for
uniqueness and exact lookup) and as one row per dimension (for ``where`` queries).
"""

from __future__ import annotations

import json
import operator
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa

from ..dataset_ref import DataIdValue, normalizeDataId, unstorableText
from ..dataset_type import DatasetType
from ..exceptions import DataIdError
from . import schema

__all__ = [
    "CHUNK",
    "DIMENSION_ROW_KEYS",
    "RefDataIdEncoder",
    "WhereTerm",
    "chunks",
    "decodeDataId",
    "dimensionRows",
    "encodeDataId",
    "newDatasetId",
    "parseWhere",
    "toUuid",
    "whereConditions",
]

CHUNK = 500
"""Most values bound in one IN (...) list."""

_MIN_INT = -(2**63)
_MAX_INT = 2**63 - 1
_MAX_STR = 512
_MAX_ENCODED = 2000  # bytes; PostgreSQL index entries hold at most ~2700

WhereTerm = tuple[str, list[int], list[str]]
"""One ``where`` entry: a dimension, the int values and the str values it may take."""


def encodeDataId(
    datasetType: DatasetType, dataId: Mapping[str, Any] | None
) -> tuple[Mapping[str, DataIdValue], str]:
    """Validate ``dataId`` for ``datasetType``; return it normalized and as canonical JSON.

    Raises
    ------
    DataIdError
        Keys differ from the dimensions, a value is not an int or str, an int does not fit
        in 64 bits, a string is longer than 512 characters or holds text a registry cannot
        store (a lone surrogate, a NUL), or the whole data ID is more than 2000 bytes as JSON.
    """
    normalized = normalizeDataId(datasetType, dataId)
    parts = []
    for key, value in sorted(normalized.items()):
        _checkStorable(datasetType, key, value)
        # Keys are dimension names (identifiers: nothing to escape); ints print as JSON does.
        text = str(value) if type(value) is int else json.dumps(value, ensure_ascii=False)
        parts.append(f'"{key}":{text}')
    encoded = "{" + ",".join(parts) + "}"
    size = len(encoded) if encoded.isascii() else len(encoded.encode())
    if size > _MAX_ENCODED:
        raise DataIdError(
            f"Data ID {dict(normalized)!r} of {datasetType.name!r} is {size} bytes as JSON; the "
            f"registry stores at most {_MAX_ENCODED} (it must fit in one index entry)."
        )
    return normalized, encoded


def _checkStorable(datasetType: DatasetType, key: str, value: DataIdValue) -> None:
    if isinstance(value, int):
        if not _MIN_INT <= value <= _MAX_INT:
            raise DataIdError(
                f"Data ID value {key}={value} of {datasetType.name!r} does not fit in a signed 64-bit "
                "integer, which is what the registry stores; use a str for larger identifiers."
            )
    elif len(value) > _MAX_STR:
        raise DataIdError(
            f"Data ID value {key}={value[:40]!r}... of {datasetType.name!r} is {len(value)} characters; "
            f"the registry stores at most {_MAX_STR}."
        )
    else:
        problem = unstorableText(value)
        if problem is not None:
            raise DataIdError(
                f"Data ID value {key}={value!r} of {datasetType.name!r} cannot be stored: {problem}."
            )


def decodeDataId(encoded: str) -> Mapping[str, DataIdValue]:
    """Return the read-only data ID stored as ``encoded`` by `encodeDataId`."""
    return MappingProxyType(json.loads(encoded))


DIMENSION_ROW_KEYS = ("datasetId", "dimension", "intValue", "strValue")
"""The columns of a `dimensionRows` row, in order."""


def dimensionRows(datasetId: uuid.UUID, dataId: Mapping[str, DataIdValue]) -> list[tuple[Any, ...]]:
    """Return the ``dataset_dimension`` rows of one dataset, as tuples of `DIMENSION_ROW_KEYS`."""
    return [
        (datasetId, key, value, None) if isinstance(value, int) else (datasetId, key, None, value)
        for key, value in dataId.items()
    ]


class RefDataIdEncoder:
    """`encodeDataId` for the data IDs of many refs of one dataset type, each already normalized.

    A ref's data ID has been through `normalizeDataId`; what the registry adds is the coercion
    to the universe's types (`DimensionUniverse.coerceDataId`) and the checks and JSON of
    `encodeDataId`. When every value already has its dimension's type and fits (the usual
    case), coercion changes nothing and the canonical text is built from keys encoded once;
    any other data ID goes the whole way, so the result, and every error, is the same.

    Parameters
    ----------
    datasetType : DatasetType
        The (parent) dataset type of the refs.
    universe : DimensionUniverse
        The registry's dimensions.
    """

    __slots__ = ("_count", "_plan", "_universe", "datasetType")

    def __init__(self, datasetType: DatasetType, universe: Any) -> None:
        self.datasetType = datasetType
        self._universe = universe
        keys = sorted(datasetType.dimensions)
        self._count = len(keys)
        self._plan: tuple[tuple[str, str, bool], ...] | None = (
            tuple((key, f'"{key}":', universe[key].valueType == "int") for key in keys)
            if all(key in universe for key in keys)
            else None
        )

    def encode(self, dataId: Mapping[str, Any]) -> tuple[Mapping[str, DataIdValue], str]:
        """Return what ``encodeDataId(datasetType, universe.coerceDataId(dataId))`` returns.

        Raises
        ------
        DataIdError
            As `DimensionUniverse.coerceDataId` and `encodeDataId` do.
        """
        text = self._fastText(dataId)
        if text is not None:
            return dataId, text
        what = f"Data ID of {self.datasetType.name!r}:"
        coerced = self._universe.coerceDataId(dataId, what) if isinstance(dataId, Mapping) else dataId
        return encodeDataId(self.datasetType, coerced)

    def _fastText(self, dataId: Mapping[str, Any]) -> str | None:
        """Return the canonical text of ``dataId`` if its values need no coercion and pass every check, else `None`."""
        plan = self._plan
        if plan is None or not isinstance(dataId, MappingProxyType) or len(dataId) != self._count:
            return None
        parts = []
        for key, prefix, isInt in plan:
            value = dataId.get(key)
            if isInt:
                if type(value) is not int or not _MIN_INT <= value <= _MAX_INT:
                    return None
                parts.append(prefix + str(value))
            else:
                if type(value) is not str or not value or len(value) > _MAX_STR or unstorableText(value):
                    return None
                parts.append(prefix + json.dumps(value, ensure_ascii=False))
        encoded = "{" + ",".join(parts) + "}"
        size = len(encoded) if encoded.isascii() else len(encoded.encode())
        return encoded if size <= _MAX_ENCODED else None


def parseWhere(datasetType: DatasetType, where: Mapping[str, Any] | None) -> list[WhereTerm]:
    """Check a ``where`` mapping (dimension → value or list of values) against ``datasetType``.

    Raises
    ------
    DataIdError
        A key is not a dimension of ``datasetType``, a value is not an int or str, an int does
        not fit in 64 bits, or a str is not text a registry can store (see `unstorableText`).
    """
    if where is None:
        return []
    if not isinstance(where, Mapping):
        raise DataIdError(
            f"where for {datasetType.name!r} must be a mapping of dimension to value(s), "
            f"such as {{'visit': [1, 2]}}, not {type(where).__name__}."
        )
    terms: list[WhereTerm] = []
    for dimension, given in where.items():
        if dimension not in datasetType.dimensions:
            raise DataIdError(
                f"where names {dimension!r}, which is not a dimension of dataset type "
                f"{datasetType.name!r}; its dimensions are {list(datasetType.dimensions)}."
            )
        isMany = isinstance(given, Sequence | set | frozenset) and not isinstance(given, str)
        values: Iterable[Any] = given if isMany else [given]
        ints: list[int] = []
        strs: list[str] = []
        for value in values:
            if isinstance(value, str):
                problem = unstorableText(value)
                if problem is not None:
                    raise DataIdError(
                        f"where value {dimension}={value!r} for {datasetType.name!r} cannot be "
                        f"matched: {problem}, so no data ID has it."
                    )
                strs.append(value)
                continue
            try:
                if isinstance(value, bool):
                    raise TypeError(value)
                number = operator.index(value)
            except TypeError:
                raise DataIdError(
                    f"where value {dimension}={value!r} for {datasetType.name!r} must be an int or "
                    f"str (or a list of them), not {type(value).__name__}."
                ) from None
            if not _MIN_INT <= number <= _MAX_INT:
                raise DataIdError(
                    f"where value {dimension}={number} for {datasetType.name!r} does not fit in a signed "
                    "64-bit integer, so no data ID has it (use a str for larger identifiers)."
                )
            ints.append(number)
        terms.append((dimension, ints, strs))
    return terms


def whereConditions(
    datasetType: DatasetType, terms: Sequence[WhereTerm]
) -> tuple[list[sa.ColumnElement[bool]], bool]:
    """Return the conditions on ``dataset`` that select the data IDs ``terms`` allow.

    The flag returned is `True` when the conditions look values up in ``dataset_dimension``.

    When the terms give one value for every dimension they name a single data ID, which is
    found through the canonical ``data_id`` and its unique index. Otherwise one term *leads*:
    ``dataset.id IN (SELECT dataset_id FROM dataset_dimension WHERE dimension = … AND value
    IN …)``, an indexed range; every other term is checked per candidate with a correlated
    ``EXISTS`` on the (dataset_id, dimension) primary key. The lead is the term most likely
    to be selective: integer values (visits, exposures) before strings (bands, instruments),
    then the fewest values. (PostgreSQL's planner, which has statistics, may reorder.)
    """
    dataset = schema.datasetTable
    single = {name: (ints or strs)[0] for name, ints, strs in terms if len(ints) + len(strs) == 1}
    if len(terms) == len(datasetType.dimensions) and len(single) == len(terms):
        return [dataset.c.dataId == encodeDataId(datasetType, single)[1]], False
    if any(not ints and not strs for _, ints, strs in terms):
        return [sa.false()], False
    ordered = sorted(terms, key=lambda term: (bool(term[2]), len(term[1]) + len(term[2])))
    conditions: list[sa.ColumnElement[bool]] = []
    for index, (name, ints, strs) in enumerate(ordered):
        dimension = schema.datasetDimensionTable.alias(f"where{index}")
        matches: list[sa.ColumnElement[bool]] = []
        if ints:
            matches.append(dimension.c.intValue.in_(ints))
        if strs:
            matches.append(dimension.c.strValue.in_(strs))
        if index == 0:
            lead = sa.select(dimension.c.datasetId).where(dimension.c.dimension == name, sa.or_(*matches))
            conditions.append(dataset.c.id.in_(lead))
        else:
            conditions.append(
                sa.exists().where(
                    dimension.c.datasetId == dataset.c.id, dimension.c.dimension == name, sa.or_(*matches)
                )
            )
    return conditions, bool(conditions)


def chunks(values: Sequence[Any]) -> Iterator[Sequence[Any]]:
    """Yield ``values`` in slices short enough to bind as one IN (...) list."""
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def newDatasetId() -> uuid.UUID:
    """Return a new time-ordered UUID (version 7, RFC 9562) for a dataset.

    Its leading 48 bits are the Unix time in milliseconds and the other 74 free bits random,
    so ids are as unique as version 4 ones but sort by creation time: new rows land at the end
    of the id indexes instead of on a random page, which keeps inserts into a large registry
    cheap (fewer pages dirtied per commit).
    """
    millis = time.time_ns() // 1_000_000 & (1 << 48) - 1
    value = millis << 80 | int.from_bytes(os.urandom(10), "big")
    value = value & ~(0xF << 76) | 0x7 << 76  # version 7
    value = value & ~(0x3 << 62) | 0x2 << 62  # RFC 4122 variant
    return uuid.UUID(int=value)


def toUuid(value: uuid.UUID | str) -> uuid.UUID:
    """Return ``value`` as a UUID.

    Raises
    ------
    TypeError
        ``value`` is not a UUID or the string of one.
    """
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise TypeError(f"Dataset id {value!r} is not a UUID.") from None
