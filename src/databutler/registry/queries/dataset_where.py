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
from ...exceptions import InvalidQueryError
from .. import schema
from .compiler import ResolvedColumn, compileExpression
from .expressions import Name
from .parser import parseExpression

__all__ = ["DatasetWhere", "compileDatasetWhere"]


class DatasetWhere:
    """Resolves the names of an expression to a dataset type's dimension values, joining as needed.

    Parameters
    ----------
    datasetType : DatasetType
        The (parent) dataset type queried.
    dimensionTypes : mapping, optional
        Dimension name → ``"int"`` or ``"str"``; a dimension not listed is matched by the type
        of the value it is compared with.
    """

    def __init__(self, datasetType: DatasetType, dimensionTypes: Mapping[str, str] | None = None) -> None:
        self.datasetType = datasetType
        self.dimensionTypes = dict(dimensionTypes or {})
        self.aliases: dict[str, Any] = {}

    def resolve(self, name: Name) -> ResolvedColumn:
        """Return the value columns of dimension ``name`` in the dataset's data ID, joining its row once.

        Raises
        ------
        InvalidQueryError
            ``name`` is not a dimension of the dataset type, or names a record field.
        """
        if name.element not in self.datasetType.dimensions:
            raise InvalidQueryError(
                f"The where expression names {str(name)!r} (column {name.column}), which is not a "
                f"dimension of dataset type {self.datasetType.name!r}; its dimensions are "
                f"{list(self.datasetType.dimensions)}."
            )
        if name.field is not None:
            raise InvalidQueryError(
                f"The where expression names the record field {str(name)!r} (column {name.column}), "
                f"but dimension {name.element!r} has no record fields here; compare {name.element!r} "
                "itself."
            )
        alias = self.aliases.get(name.element)
        if alias is None:
            alias = schema.datasetDimensionTable.alias(f"dim{len(self.aliases)}")
            self.aliases[name.element] = alias
        byType = {"int": alias.c.intValue, "str": alias.c.strValue}
        valueType = self.dimensionTypes.get(name.element)
        if valueType is not None:
            return ResolvedColumn(valueType, column=byType[valueType])
        return ResolvedColumn(None, byType=byType)

    def joined(self, table: FromClause) -> FromClause:
        """Return ``table`` (the dataset table) joined with every dimension value used."""
        joined = table
        for dimension, alias in self.aliases.items():
            joined = joined.join(
                alias, sa.and_(alias.c.datasetId == table.c.id, alias.c.dimension == dimension)
            )
        return joined


def compileDatasetWhere(
    datasetType: DatasetType,
    where: str,
    bind: Mapping[str, Any] | None = None,
    dimensionTypes: Mapping[str, str] | None = None,
) -> tuple[FromClause, ColumnElement[bool], bool]:
    """Return (the dataset table with its joins, the condition, whether any dimension is joined).

    Raises
    ------
    InvalidQueryError
        ``where`` does not parse, names an unknown dimension, or a value does not fit.
    """
    resolver = DatasetWhere(datasetType, dimensionTypes)
    condition = compileExpression(where, parseExpression(where), resolver, bind)
    return resolver.joined(schema.datasetTable), condition, bool(resolver.aliases)
