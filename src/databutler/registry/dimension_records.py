"""Dimension records in SQL: one table per dimension, built from the repository's universe.

``dimension_<name>`` has the dimension's key (the dimensions it requires, then its own value)
as primary key, a nullable column per implied dimension, and one per record field (a
timespan is two BIGINT columns, ``<field>Begin`` and ``<field>End``, nanoseconds since 1970
UTC, half-open). Tables are created with the registry, or when an older registry is opened
(`SqlRegistry` migrates it), and never hold anything a dataset needs: records are optional.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa

from ..dimensions import DimensionRecord, DimensionUniverse, Timespan
from ..exceptions import ArgumentTypeError, ConflictingRecordError, DataIdError, InvalidQueryError
from . import schema
from .connections import ConnectionManager, dialectInsert
from .queries import ResolvedColumn, compileExpression, parseExpression, timeToNanoseconds
from .queries.expressions import Name

__all__ = ["DimensionRecordStorage", "recordTables"]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_SQL_TYPES: dict[str, Any] = {"int": sa.BigInteger, "str": sa.String(512), "float": sa.Float}


def recordTables(universe: DimensionUniverse) -> dict[str, sa.Table]:
    """Return the record table of every dimension of ``universe``, in a MetaData of their own."""
    metadata = sa.MetaData(naming_convention=schema.metadata.naming_convention)
    tables = {}
    for name, dimension in universe.items():
        columns = [
            sa.Column(key, _SQL_TYPES[universe[key].valueType], primary_key=True)
            for key in universe.requiredKeys(name)
        ]
        columns += [
            sa.Column(implied, _SQL_TYPES[universe[implied].valueType]) for implied in dimension.implies
        ]
        for field, fieldType in dimension.fields.items():
            if fieldType == "timespan":
                columns += [
                    sa.Column(f"{field}Begin", sa.BigInteger),
                    sa.Column(f"{field}End", sa.BigInteger),
                ]
            else:
                columns.append(sa.Column(field, _SQL_TYPES[fieldType]))
        tables[name] = sa.Table(f"dimension_{name}", metadata, *columns, sqlite_with_rowid=False)
    return tables


def _fromNanoseconds(value: int | None) -> datetime.datetime | None:
    return None if value is None else _EPOCH + datetime.timedelta(microseconds=value // 1000)


class RecordColumns:
    """Resolves the names in a ``where`` on one dimension's records: keys, implied dimensions, fields."""

    def __init__(self, universe: DimensionUniverse, element: str, table: Any) -> None:
        self.universe = universe
        self.element = element
        self.table = table

    def known(self) -> list[str]:
        """Return the names a ``where`` on these records may use."""
        dimension = self.universe[self.element]
        return [*self.universe.requiredKeys(self.element), *dimension.implies, *dimension.fields]

    def resolve(self, name: Name) -> ResolvedColumn:
        """Return the column(s) of ``name`` in the record table.

        Raises
        ------
        InvalidQueryError
            The records have no such key, implied dimension or field.
        """
        dimension = self.universe[self.element]
        if name.field is not None and name.element != self.element:
            raise InvalidQueryError(
                f"The where expression names {str(name)!r} (column {name.column}); a query of "
                f"{self.element!r} records knows {self.known()} (also as {self.element}.<field>)."
            )
        key = name.element if name.field is None else name.field
        if key in self.universe.requiredKeys(self.element) or key in dimension.implies:
            return ResolvedColumn(self.universe[key].valueType, column=self.table.c[key])
        fieldType = dimension.fields.get(key)
        if fieldType == "timespan":
            return ResolvedColumn(
                "timespan", begin=self.table.c[f"{key}Begin"], end=self.table.c[f"{key}End"]
            )
        if fieldType is not None:
            return ResolvedColumn(fieldType, column=self.table.c[key])
        raise InvalidQueryError(
            f"The where expression names {str(name)!r} (column {name.column}), which {self.element!r} "
            f"records do not have; they have {self.known()}."
        )


class DimensionRecordStorage:
    """Inserts, syncs and queries dimension records; `SqlRegistry` holds one."""

    def __init__(self, db: ConnectionManager, universe: DimensionUniverse, isSqlite: bool) -> None:
        self._db = db
        self.universe = universe
        self.isSqlite = isSqlite
        self.tables = recordTables(universe)

    def createTables(self, connection: sa.Connection) -> None:
        """Create the record tables that do not exist yet."""
        next(iter(self.tables.values())).metadata.create_all(connection, checkfirst=True)

    def _table(self, element: str) -> sa.Table:
        table = self.tables.get(element)
        if table is None:
            raise DataIdError(
                f"{element!r} is not a dimension of this repository; its dimensions are {sorted(self.universe)}."
            )
        return table

    def _row(self, element: str, record: Mapping[str, Any] | DimensionRecord) -> dict[str, Any]:
        values = record.toDict() if isinstance(record, DimensionRecord) else dict(record)
        dimension = self.universe[element]
        keys = self.universe.requiredKeys(element)
        allowed = [*keys, *dimension.implies, *dimension.fields]
        unknown = sorted(set(values) - set(allowed))
        missing = [key for key in keys if values.get(key) is None]
        if unknown or missing:
            raise DataIdError(
                f"A {element!r} record {values!r} "
                + (f"has unknown fields {unknown}" if unknown else f"lacks {missing}")
                + f"; a {element!r} record has {allowed} (keys {list(keys)} required)."
            )
        row: dict[str, Any] = {}
        for key in (*keys, *dimension.implies):  # every row has every column: one INSERT takes many
            value = values.get(key)
            row[key] = None if value is None else self.universe.coerceValue(key, value, f"{element!r} record")
        for field, fieldType in dimension.fields.items():
            value = values.get(field)
            if fieldType == "timespan":
                begin, end = (None, None) if value is None else value
                for side, part in (("Begin", begin), ("End", end)):
                    if part is not None and not isinstance(part, datetime.datetime):
                        raise DataIdError(
                            f"{element}.{field} is a timespan: give (begin, end) datetimes, not {value!r}."
                        )
                    row[f"{field}{side}"] = None if part is None else timeToNanoseconds(part)
                if begin is not None and end is not None and row[f"{field}Begin"] > row[f"{field}End"]:
                    raise DataIdError(
                        f"{element}.{field} {value!r} ends before it begins; give (begin, end) in that order."
                    )
            elif value is None:
                row[field] = None
            elif fieldType == "float" and isinstance(value, int | float) and not isinstance(value, bool):
                row[field] = float(value)
            elif (fieldType == "int" and isinstance(value, int) and not isinstance(value, bool)) or (
                fieldType == "str" and isinstance(value, str)
            ):
                row[field] = value
            else:
                raise DataIdError(f"{element}.{field} holds {fieldType} values, not {value!r}.")
        return row

    def _record(self, element: str, row: Any) -> DimensionRecord:
        dimension = self.universe[element]
        mapping = row._mapping
        values: dict[str, Any] = {key: mapping[key] for key in self.universe.requiredKeys(element)}
        values.update({key: mapping[key] for key in dimension.implies})
        for field, fieldType in dimension.fields.items():
            if fieldType == "timespan":
                values[field] = Timespan(
                    _fromNanoseconds(mapping[f"{field}Begin"]), _fromNanoseconds(mapping[f"{field}End"])
                )
            else:
                values[field] = mapping[field]
        return DimensionRecord(element, values)

    def insert(self, element: str, records: Iterable[Mapping[str, Any] | DimensionRecord]) -> None:
        """Insert records of ``element``, all or none.

        Raises
        ------
        DataIdError
            ``element`` is unknown, or a record has unknown fields, lacks a key or has a bad value.
        ConflictingRecordError
            A record with the same key exists (use `sync` to insert only what is missing).
        """
        table = self._table(element)
        rows = [self._row(element, record) for record in records]
        if not rows:
            return
        try:
            with self._db.write() as connection:
                connection.execute(sa.insert(table), rows)
        except sa.exc.IntegrityError as exc:
            raise ConflictingRecordError(
                f"A {element!r} record with one of these keys already exists "
                f"({[{k: r[k] for k in self.universe.requiredKeys(element)} for r in rows[:5]]}); "
                "use syncDimensionData to insert only missing records."
            ) from exc

    def sync(self, element: str, record: Mapping[str, Any] | DimensionRecord, update: bool = False) -> bool:
        """Insert ``record`` unless an identical one exists; return `True` if anything was written.

        Raises
        ------
        ConflictingRecordError
            A record with the same key but other values exists and ``update`` is false.
        """
        table = self._table(element)
        row = self._row(element, record)
        keys = self.universe.requiredKeys(element)
        match = sa.and_(*(table.c[key] == row[key] for key in keys))
        with self._db.write() as connection:
            existing = connection.execute(sa.select(table).where(match)).first()
            if existing is None:
                insert = dialectInsert(self._db, table)
                connection.execute(insert.on_conflict_do_nothing(), [row])
                return True
            old = {key: existing._mapping[key] for key in row}
            if old == row:
                return False
            if not update:
                changed = sorted(key for key in row if old[key] != row[key])
                raise ConflictingRecordError(
                    f"The {element!r} record {dict((k, row[k]) for k in keys)} exists with other values of "
                    f"{changed} ({self._record(element, existing).toDict()}); pass update=True to replace them."
                )
            connection.execute(sa.update(table).where(match).values(**row))
            return True

    def query(
        self,
        element: str,
        where: str | None = None,
        *,
        bind: Mapping[str, Any] | None = None,
        dataId: Mapping[str, Any] | None = None,
    ) -> list[DimensionRecord]:
        """Return the records of ``element`` that match, sorted by key (`Registry.queryDimensionRecords`)."""
        table = self._table(element)
        statement = sa.select(table).order_by(*(table.c[key] for key in self.universe.requiredKeys(element)))
        resolver = RecordColumns(self.universe, element, table)
        if where is not None and not isinstance(where, str):
            raise ArgumentTypeError(
                f"queryDimensionRecords takes where as an expression (a str such as \"band = 'r'\"), not "
                f"{type(where).__name__} {where!r:.80}; give a data ID mapping as dataId=."
            )
        if where:
            statement = statement.where(compileExpression(where, parseExpression(where), resolver, bind))
        for key, value in (dataId or {}).items():
            if key not in table.c or (key.endswith(("Begin", "End")) and key not in resolver.known()):
                raise DataIdError(f"{element!r} records have no {key!r}; they have {resolver.known()}.")
            coerced = self.universe.coerceValue(key, value) if key in self.universe else value
            if self.universe[element].fields.get(key) == "float" and isinstance(coerced, int):
                coerced = float(coerced)
            if isinstance(coerced, int) and not -(2**63) <= coerced < 2**63:
                raise DataIdError(
                    f"{element!r} records: {key}={coerced} does not fit in a signed 64-bit integer, which is "
                    "what the registry stores, so no record has it."
                )
            statement = statement.where(table.c[key] == coerced)
        with self._db.read() as connection:
            rows = connection.execute(statement).all()
        return [self._record(element, row) for row in rows]
