"""Compile a ``where`` expression tree into a SQLAlchemy condition.

The compiler knows nothing of tables: a `ColumnResolver` says what column a name stands for
(a dataset's dimension value, a dimension record's field) and what type it holds. Every value
from the expression or from ``bind`` reaches the database as a bound parameter, so no input
can change the SQL: the text of the statement depends only on the shape of the expression.

Types are checked here, with messages that name the column of the expression: an ``int``
dimension compared with ``'abc'`` is an error, ``'101'`` is coerced to ``101`` (as data IDs
are); a timespan is only used with ``OVERLAPS``.
"""

from __future__ import annotations

import datetime
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from ...dataset_ref import unstorableText
from ...exceptions import DatabaseValueError, DataIdError, InvalidQueryError
from .expressions import (
    And,
    Bind,
    Compare,
    Expression,
    Glob,
    In,
    Literal,
    Name,
    Not,
    Operand,
    Or,
    Overlaps,
    Range,
    TimespanLiteral,
)

__all__ = [
    "ColumnResolver",
    "ResolvedColumn",
    "compileExpression",
    "timeToNanoseconds",
]

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
_MIN_INT = -(2**63)
_MAX_INT = 2**63 - 1
_FIRST_TIME = "1677-09-21T00:12:43.145225"
_LAST_TIME = "2262-04-11T23:47:16.854775"

_OPS: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
    "=": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def timeToNanoseconds(value: datetime.datetime) -> int:
    """Return ``value`` as integer nanoseconds since 1970-01-01 UTC (naive means UTC).

    Raises
    ------
    DatabaseValueError
        ``value`` is outside the years 1677 to 2262, which 64-bit nanoseconds (what the
        registry stores) cannot reach.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    delta = value - _EPOCH
    nanoseconds = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000
    if not _MIN_INT < nanoseconds < _MAX_INT:  # the two ends mean "unbounded" in a validity range
        raise DatabaseValueError(
            f"Time {value.isoformat()} cannot be stored: the registry keeps times as 64-bit nanoseconds "
            f"since 1970, from {_FIRST_TIME} to {_LAST_TIME} UTC; use None for an unbounded end."
        )
    return nanoseconds


@dataclass(frozen=True)
class ResolvedColumn:
    """What a name stands for.

    ``valueType`` is ``"int"``, ``"str"``, ``"float"``, ``"time"`` (stored as nanoseconds,
    see `timeToNanoseconds`), ``"timespan"`` (``begin``/``end`` columns, half-open) or `None`
    when the type is not declared, in which case ``byType`` gives the column to compare with
    an ``int`` or a ``str`` value.
    """

    valueType: str | None
    column: ColumnElement[Any] | None = None
    begin: ColumnElement[Any] | None = None
    end: ColumnElement[Any] | None = None
    byType: Mapping[str, ColumnElement[Any]] = field(default_factory=dict)

    def columnFor(self, valueType: str) -> ColumnElement[Any]:
        """Return the column holding values of ``valueType`` (the one column, if there is only one)."""
        if self.column is not None:
            return self.column
        return self.byType[valueType]


class ColumnResolver(Protocol):
    """Says what the names of an expression stand for; raises `InvalidQueryError` for unknown ones."""

    def resolve(self, name: Name) -> ResolvedColumn:
        """Return the column(s) ``name`` stands for and the type of value it holds.

        Raises
        ------
        InvalidQueryError
            ``name`` is not a dimension or record field that this resolver knows.
        """


class _Glob(ColumnElement[bool]):
    """``GLOB`` on SQLite, ``LIKE`` on others (both case-sensitive, unlike SQLite's LIKE)."""

    inherit_cache = False
    type = sa.Boolean()

    def __init__(self, column: ColumnElement[Any], pattern: str) -> None:
        self.column = column
        # SQLite GLOB: "[" starts a character class, so a literal one is written "[[]".
        self.globPattern = sa.bindparam(None, pattern.replace("[", "[[]"), type_=sa.String)
        escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        self.likePattern = sa.bindparam(None, escaped.replace("*", "%").replace("?", "_"), type_=sa.String)


@compiles(_Glob)
def _compileGlobLike(element: _Glob, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(element.likePattern, **kw)
    return f"({column} LIKE {pattern} ESCAPE '\\')"


@compiles(_Glob, "sqlite")
def _compileGlobSqlite(element: _Glob, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    pattern = compiler.process(element.globPattern, **kw)
    return f"({column} GLOB {pattern})"


class _Compiler:
    def __init__(self, text: str, resolver: ColumnResolver, bind: Mapping[str, Any]) -> None:
        self.text = text
        self.resolver = resolver
        self.bind = bind
        self.usedBinds: set[str] = set()
        self.recorded: list[ColumnElement[bool]] = []  # of one OVERLAPS: its record timespans exist

    def error(self, column: int, message: str) -> InvalidQueryError:
        return InvalidQueryError(f"In where expression {self.text!r} at column {column}: {message}")

    # -- values --

    def bindValue(self, node: Bind) -> Any:
        if node.name not in self.bind:
            known = ", ".join(sorted(self.bind)) or "none"
            raise self.error(
                node.column, f"bind parameter :{node.name} has no value in bind= (given: {known})."
            )
        self.usedBinds.add(node.name)
        return self.bind[node.name]

    def operandValue(self, node: Literal | Bind) -> Any:
        return node.value if isinstance(node, Literal) else self.bindValue(node)

    def coerce(self, target: ResolvedColumn, value: Any, where: Name, column: int) -> Any:
        """Return ``value`` as the type of ``target`` (whose type is known), or raise."""
        kind = target.valueType
        if kind == "int":
            if isinstance(value, bool):
                raise self.error(column, f"{where} holds integers; {value!r} is a bool.")
            if isinstance(value, int):
                return value
            if isinstance(value, str):
                try:
                    return int(value.strip())
                except ValueError:
                    pass
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise self.error(column, f"{where} holds integers; {value!r} is not one.")
        if kind == "str":
            if isinstance(value, str):
                return value
            raise self.error(
                column, f"{where} holds strings; compare it with a quoted string, not {value!r}."
            )
        if kind == "float":
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            raise self.error(column, f"{where} holds numbers; {value!r} is not one.")
        if kind == "time":
            if isinstance(value, datetime.datetime):
                return timeToNanoseconds(value)
            raise self.error(column, f"{where} holds times; write one as T'2024-01-01T00:00:00'.")
        raise self.error(column, f"{where} is a timespan; use it with OVERLAPS.")

    def checkStorable(self, name: Name, value: Any, column: int) -> None:
        """Raise `DataIdError` for a value no registry column could hold (so no match is possible)."""
        if isinstance(value, str):
            problem = unstorableText(value)
            if problem is not None:
                raise DataIdError(
                    f"In where expression {self.text!r} at column {column}: the value for {name} {problem}."
                )
        elif isinstance(value, int) and not isinstance(value, bool) and not _MIN_INT <= value <= _MAX_INT:
            raise DataIdError(
                f"In where expression {self.text!r} at column {column}: {value} for {name} does not fit in a "
                "signed 64-bit integer, which is what the registry stores."
            )

    def valueAndColumn(self, target: ResolvedColumn, name: Name, value: Any, column: int) -> tuple[Any, Any]:
        """Return (column, value) for comparing ``name`` with ``value``."""
        if target.valueType is None:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise self.error(column, f"{name} takes an int or a str value, not {value!r}.")
            kind = "str" if isinstance(value, str) else "int"
            self.checkStorable(name, value, column)
            return target.columnFor(kind), value
        if isinstance(value, str):  # before coercion: a NUL in '1\x00' is named as such
            self.checkStorable(name, value, column)
        coerced = self.coerce(target, value, name, column)
        if target.valueType == "int":  # after coercion: '1e30' and 1e30 are integers too big
            self.checkStorable(name, coerced, column)
        return target.columnFor(target.valueType), coerced

    # -- conditions --

    def compile(self, node: Expression) -> ColumnElement[bool]:
        if isinstance(node, And):
            return sa.and_(*(self.compile(item) for item in node.operands))
        if isinstance(node, Or):
            return sa.or_(*(self.compile(item) for item in node.operands))
        if isinstance(node, Not):
            return sa.not_(self.compile(node.operand))
        if isinstance(node, Compare):
            return self.compare(node)
        if isinstance(node, In):
            return self.in_(node)
        if isinstance(node, Glob):
            return self.glob(node)
        return self.overlaps(node)

    def compare(self, node: Compare) -> ColumnElement[bool]:
        left, op, right = node.left, node.op, node.right
        if not isinstance(left, Name) and isinstance(right, Name):
            left, right, op = right, left, _FLIPPED[op]
        if not isinstance(left, Name):
            raise self.error(node.column, "a comparison needs a dimension or record field on one side.")
        target = self.resolver.resolve(left)
        if target.valueType == "timespan":
            raise self.error(node.column, f"{left} is a timespan; compare it with OVERLAPS, not {op}.")
        if isinstance(right, TimespanLiteral):
            raise self.error(right.column, "a timespan can only be used with OVERLAPS.")
        if isinstance(right, Name):
            other = self.resolver.resolve(right)
            kind = target.valueType or other.valueType or "int"
            if other.valueType not in (None, kind) or other.valueType == "timespan":
                raise self.error(node.column, f"{left} and {right} hold different types.")
            return _OPS[op](target.columnFor(kind), other.columnFor(kind))
        value = self.operandValue(right)
        if isinstance(value, list | tuple | set | frozenset):
            raise self.error(right.column, f"a list is only allowed in IN (...), not with {op}.")
        columnElement, coerced = self.valueAndColumn(target, left, value, right.column)
        return _OPS[op](columnElement, coerced)

    def in_(self, node: In) -> ColumnElement[bool]:
        if not isinstance(node.operand, Name):
            raise self.error(node.column, "IN needs a dimension or record field on its left.")
        target = self.resolver.resolve(node.operand)
        if target.valueType == "timespan":
            raise self.error(node.column, f"{node.operand} is a timespan; use OVERLAPS.")
        values: list[tuple[Any, int]] = []
        ranges: list[Range] = []
        for item in node.items:
            if isinstance(item, Range):
                if item.stop < item.start:
                    raise self.error(
                        item.column,
                        f"the range {item.start}..{item.stop} is empty; write the smaller end first.",
                    )
                for bound in (item.start, item.stop, item.step):
                    self.checkStorable(node.operand, bound, item.column)
                ranges.append(item)
            elif isinstance(item, Literal):
                values.append((item.value, item.column))
            else:
                given = self.bindValue(item)
                if isinstance(given, list | tuple | set | frozenset):
                    values.extend((value, item.column) for value in given)
                else:
                    values.append((given, item.column))
        conditions: list[ColumnElement[bool]] = []
        byColumn: dict[int, tuple[ColumnElement[Any], list[Any]]] = {}
        for value, column in values:
            columnElement, coerced = self.valueAndColumn(target, node.operand, value, column)
            byColumn.setdefault(id(columnElement), (columnElement, []))[1].append(coerced)
        for columnElement, coerced in byColumn.values():
            conditions.append(columnElement.in_(coerced))
        for item in ranges:
            if target.valueType not in (None, "int"):
                raise self.error(item.column, f"{node.operand} does not hold integers; a range needs them.")
            columnElement = target.columnFor("int")
            condition: ColumnElement[bool] = columnElement.between(item.start, item.stop)
            if item.step > 1:
                condition = sa.and_(condition, (columnElement - item.start) % item.step == 0)
            conditions.append(condition)
        result = sa.or_(*conditions) if conditions else sa.false()
        return sa.not_(result) if node.negated else result

    def glob(self, node: Glob) -> ColumnElement[bool]:
        target = self.resolver.resolve(node.operand)
        if target.valueType not in (None, "str"):
            raise self.error(node.column, f"GLOB needs a string column; {node.operand} is not one.")
        pattern = self.operandValue(node.pattern)
        if not isinstance(pattern, str):
            raise self.error(node.pattern.column, f"a GLOB pattern is a string, not {pattern!r}.")
        self.checkStorable(node.operand, pattern, node.pattern.column)
        return _Glob(target.columnFor("str"), pattern)

    def timeBounds(self, node: Operand, column: int) -> tuple[Any, Any, bool]:
        """Return (begin, end, isInstant) of a timespan or time operand: columns or nanoseconds.

        A record's timespan column comes as `_OpenEnd` columns: NULL there is an open end.
        """
        if isinstance(node, Name):
            target = self.resolver.resolve(node)
            if target.valueType == "timespan":
                assert target.begin is not None and target.end is not None
                # Both ends NULL: the record has no timespan, so the condition is NULL (unknown,
                # false under NOT too), as a lookup through a visit's record treats it; one NULL
                # end is unbounded.
                present = sa.func.coalesce(target.begin, target.end) >= sa.literal(_MIN_INT, sa.BigInteger)
                self.recorded.append(present)
                return _OpenEnd(target.begin), _OpenEnd(target.end), False
            if target.valueType == "time":
                return target.column, target.column, True
            raise self.error(column, f"{node} is not a time or timespan; OVERLAPS needs one on each side.")
        if isinstance(node, TimespanLiteral):
            return self.literalTimespan(node.begin, node.end, node.column)
        value = self.operandValue(node)
        if isinstance(value, datetime.datetime):
            return timeToNanoseconds(value), timeToNanoseconds(value), True
        if (
            isinstance(value, Sequence)
            and not isinstance(value, str)
            and len(value) == 2
            and all(v is None or isinstance(v, datetime.datetime) for v in value)
        ):
            return self.literalTimespan(value[0], value[1], node.column)
        raise self.error(node.column, f"OVERLAPS needs a time or a (begin, end) timespan, not {value!r}.")

    def literalTimespan(
        self, begin: datetime.datetime | None, end: datetime.datetime | None, column: int
    ) -> tuple[int | None, int | None, bool]:
        """Return the bounds of a timespan given in the expression or ``bind``; refuse an empty one."""
        first, last = _nanos(begin), _nanos(end)
        if first is not None and last is not None and first >= last:
            assert begin is not None and end is not None
            raise self.error(
                column,
                f"the timespan ({begin.isoformat()}, {end.isoformat()}) is empty (its end is not after "
                "its begin), so nothing overlaps it; write the earlier time first.",
            )
        return first, last, False

    def overlaps(self, node: Overlaps) -> ColumnElement[bool]:
        if not isinstance(node.left, Name) and not isinstance(node.right, Name):
            raise self.error(
                node.column, "OVERLAPS needs a record field (such as visit.timespan) on one side."
            )
        self.recorded = []
        aBegin, aEnd, aInstant = self.timeBounds(node.left, node.column)
        bBegin, bEnd, bInstant = self.timeBounds(node.right, node.column)
        # A timespan is [begin, end) (None: unbounded); a time t is the instant [t, t].
        if aInstant and bInstant:
            return _less(aBegin, bBegin, "=")
        if aInstant:
            (aBegin, aEnd), (bBegin, bEnd) = (bBegin, bEnd), (aBegin, aEnd)
        conditions: list[ColumnElement[bool]] = list(self.recorded)
        if aInstant or bInstant:  # a is the timespan, b the instant
            if aBegin is not None:
                conditions.append(_less(aBegin, bBegin, "<="))
            if aEnd is not None:
                conditions.append(_less(bBegin, aEnd, "<"))
        else:
            if aBegin is not None and bEnd is not None:
                conditions.append(_less(aBegin, bEnd, "<"))
            if bBegin is not None and aEnd is not None:
                conditions.append(_less(bBegin, aEnd, "<"))
        return sa.and_(*conditions) if conditions else sa.true()


def _nanos(value: datetime.datetime | None) -> int | None:
    return None if value is None else timeToNanoseconds(value)


@dataclass(frozen=True)
class _OpenEnd:
    """An end column of a record's timespan, where NULL means unbounded."""

    column: ColumnElement[Any]


def _less(left: Any, right: Any, op: str) -> ColumnElement[bool]:
    """``left op right`` where either side is a column or integer nanoseconds (bound).

    An `_OpenEnd` side that is NULL (unbounded) makes the comparison true.
    """
    nullable = [side.column for side in (left, right) if isinstance(side, _OpenEnd)]
    left, right = (side.column if isinstance(side, _OpenEnd) else side for side in (left, right))
    if isinstance(left, int):
        left = sa.literal(left, sa.BigInteger)
    condition: ColumnElement[bool] = _OPS[op](left, right)
    return sa.or_(*(column.is_(None) for column in nullable), condition) if nullable else condition


def compileExpression(
    text: str, tree: Expression, resolver: ColumnResolver, bind: Mapping[str, Any] | None = None
) -> ColumnElement[bool]:
    """Return the SQLAlchemy condition of ``tree`` (parsed from ``text``).

    Raises
    ------
    InvalidQueryError
        A name is unknown (the resolver says what exists), a value has the wrong type, a bind
        parameter has no value, or an operator is used with the wrong kind of operand.
    DataIdError
        A value is text a registry cannot store (a NUL, a lone surrogate) or an integer
        beyond 64 bits.
    """
    return _Compiler(text, resolver, bind or {}).compile(tree)
