"""The query language of ``where`` strings: grammar (`parser`), tree (`expressions`), SQL (`compiler`)."""

from .compiler import ColumnResolver, ResolvedColumn, compileExpression, timeToNanoseconds
from .dataset_where import DatasetWhere, compileDatasetWhere
from .parser import parseExpression

__all__ = [
    "ColumnResolver",
    "DatasetWhere",
    "ResolvedColumn",
    "compileDatasetWhere",
    "compileExpression",
    "parseExpression",
    "timeToNanoseconds",
]
