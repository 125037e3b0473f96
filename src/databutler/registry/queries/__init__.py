"""The query language of ``where`` strings: grammar (`parser`), tree (`expressions`), SQL (`compiler`)."""

from .compiler import ColumnResolver, ResolvedColumn, compileExpression, timeToNanoseconds
from .dataset_where import DatasetWhere, compileDatasetWhere
from .expressions import Expression


def parseExpression(text: str) -> Expression:
    """Return the expression tree of ``text`` (see `databutler.registry.queries.parser`).

    The parser module (and lark) is imported on the first string expression, not with the
    registry: a program that never parses one does not pay for it.
    """
    from . import parser

    return parser.parseExpression(text)


__all__ = [
    "ColumnResolver",
    "DatasetWhere",
    "ResolvedColumn",
    "compileDatasetWhere",
    "compileExpression",
    "parseExpression",
    "timeToNanoseconds",
]
