"""A ``where`` string over a dataset type's data IDs: the joins and the condition.

Each dimension the expression names is one join with ``dataset_dimension`` on its primary key
(``dataset_id``, ``dimension``); its value is ``int_value`` or ``str_value``. A condition on
the value (``visit > 100``) is then a range on the partial index (dimension, int_value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.expression import ColumnElement, FromClause

from ...dataset_type import DatasetType
from ...dimensions import DimensionUniverse
from ...exceptions import InvalidQueryError
from .. import schema
from .compiler import ResolvedColumn, compileExpression
from .expressions import Name

__all__ = ["DatasetWhere", "compileDatasetWhere"]


class DatasetWhere:
    """Resolves the names of an expression to a dataset type's dimension values, joining as needed.

    Parameters
    ----------
    datasetType : DatasetType
        The (parent) dataset type queried.
    universe : DimensionUniverse, optional
        The dimensions' types and records; without it a dimension is matched by the type of
        the value it is compared with, and there are no record fields.
    recordTables : mapping, optional
        Dimension name → its record table (see `databutler.registry.dimension_records`).
    """

    def __init__(
        self,
        datasetType: DatasetType,
        universe: DimensionUniverse | None = None,
        recordTables: Mapping[str, sa.Table] | None = None,
    ) -> None:
        self.datasetType = datasetType
        self.universe = universe
        self.recordTables = recordTables or {}
        self.aliases: dict[str, Any] = {}
        self.records: dict[str, Any] = {}
        self.needsDistinct = False

    def _known(self) -> str:
        dimensions = list(self.datasetType.dimensions)
        fields: list[str] = []
        if self.universe is not None:
            for name in dimensions:
                dimension = self.universe.get(name)
                if dimension is not None:
                    fields += [f"{name}.{f}" for f in (*dimension.implies, *dimension.fields)]
        text = f"its dimensions are {dimensions}"
        return text + (f" and record fields {fields}" if fields else "")

    def _unknown(self, name: Name) -> InvalidQueryError:
        what = "record field" if name.field is not None else "dimension"
        return InvalidQueryError(
            f"The where expression names {str(name)!r} (column {name.column}), which is not a {what} "
            f"of dataset type {self.datasetType.name!r}; {self._known()}."
        )

    def resolve(self, name: Name) -> ResolvedColumn:
        """Return the column(s) ``name`` stands for, joining its dimension value or record once.

        Raises
        ------
        InvalidQueryError
            ``name`` is not a dimension of the dataset type nor a record field of one; the
            message lists those that exist.
        """
        dimensions = self.datasetType.dimensions
        if name.field is None and name.element in dimensions:
            return self._value(name.element)
        if name.field is None and self.universe is not None:
            # A dimension the dataset type lacks but one of its dimensions implies: band of a visit.
            for owner in dimensions:
                if owner in self.universe and name.element in self.universe[owner].implies:
                    return self._recordColumn(owner, name.element, name)
            raise self._unknown(name)
        if name.element not in dimensions or self.universe is None or name.field is None:
            raise self._unknown(name)
        return self._recordColumn(name.element, name.field, name)

    def _value(self, element: str) -> ResolvedColumn:
        alias = self.aliases.get(element)
        if alias is None:
            alias = schema.datasetDimensionTable.alias(f"dim{len(self.aliases)}")
            self.aliases[element] = alias
        byType = {"int": alias.c.intValue, "str": alias.c.strValue}
        if self.universe is not None and element in self.universe:
            valueType = self.universe[element].valueType
            return ResolvedColumn(valueType, column=byType[valueType])
        return ResolvedColumn(None, byType=byType)

    def _recordColumn(self, element: str, field: str, name: Name) -> ResolvedColumn:
        assert self.universe is not None
        dimension = self.universe.get(element)
        table = self.recordTables.get(element)
        if (
            dimension is None
            or table is None
            or (field not in dimension.fields and field not in dimension.implies)
        ):
            raise self._unknown(name)
        record = self.records.get(element)
        if record is None:
            record = table  # each record table joins once: no alias, whose columns SQLAlchemy would copy
            self.records[element] = record
            for key in self.universe.requiredKeys(element):
                if key in self.datasetType.dimensions:
                    self._value(key)
                else:
                    self.needsDistinct = True  # e.g. detector records of several instruments
        if field in dimension.implies:
            return ResolvedColumn(self.universe[field].valueType, column=record.c[field])
        fieldType = dimension.fields[field]
        if fieldType == "timespan":
            return ResolvedColumn("timespan", begin=record.c[f"{field}Begin"], end=record.c[f"{field}End"])
        return ResolvedColumn(fieldType, column=record.c[field])

    def joined(self, table: FromClause) -> FromClause:
        """Return ``table`` (the dataset table) joined with every dimension value and record used."""
        joined = table
        for dimension, alias in self.aliases.items():
            joined = joined.join(
                alias, sa.and_(alias.c.datasetId == table.c.id, alias.c.dimension == dimension)
            )
        for element, record in self.records.items():
            assert self.universe is not None
            keys = [key for key in self.universe.requiredKeys(element) if key in self.aliases]
            onClause = sa.and_(*(record.c[key] == self._value(key).columnFor("int") for key in keys))
            joined = joined.join(record, onClause)
        return joined


def compileDatasetWhere(
    datasetType: DatasetType,
    where: str,
    bind: Mapping[str, Any] | None = None,
    universe: DimensionUniverse | None = None,
    recordTables: Mapping[str, sa.Table] | None = None,
) -> tuple[FromClause, ColumnElement[bool], DatasetWhere]:
    """Return (the dataset table with its joins, the condition, the resolver used).

    Raises
    ------
    InvalidQueryError
        ``where`` does not parse, names an unknown dimension or field, or a value does not fit.
    """
    resolver = DatasetWhere(datasetType, universe, recordTables)
    from .parser import parseExpression  # lark is imported on the first string expression

    condition = compileExpression(where, parseExpression(where), resolver, bind)
    return resolver.joined(schema.datasetTable), condition, resolver
