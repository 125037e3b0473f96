"""Parse a ``where`` string into the AST of `databutler.registry.queries.expressions`.

The grammar, for a user (keywords in any case)::

    visit > 100 AND detector IN (1..8, 12)          -- ranges include both ends
    exposure IN (1..99:2) OR NOT band = 'r'         -- a stride; NOT, AND, OR, parentheses
    instrument = :inst AND visit IN (:visits)       -- bind parameters, lists allowed in IN
    visit.band = 'r' AND GLOB(physical_filter, 'HSC-*')
    visit.timespan OVERLAPS (T'2024-01-01T00:00', T'2024-01-02')
    visit.timespan OVERLAPS T'2024-01-01T12:00:00'

Strings are single-quoted, a quote inside doubled (``'O''Brien'``). Times are ISO 8601 in UTC
unless they carry an offset. The parser is lark's LALR(1), built once per process; an error
names the column and what could have come there.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

import lark

from ...exceptions import DatabaseValueError, InvalidQueryError
from .compiler import timeToNanoseconds
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
    Or,
    Overlaps,
    Range,
    TimespanLiteral,
)

__all__ = ["parseExpression"]

_GRAMMAR = r"""
?start: or_expr

?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: NOT not_expr                         -> not_
         | predicate

?predicate: operand COMPARE operand             -> compare
          | operand NOT? _IN "(" in_items ")"   -> in_
          | operand OVERLAPS operand            -> overlaps
          | GLOB "(" name "," pattern ")"       -> glob
          | "(" or_expr ")"

in_items: in_item ("," in_item)*
?in_item: RANGE                                 -> range
        | literal
        | bind

?pattern: STRING                                -> string
        | bind

?operand: literal
        | name
        | bind
        | "(" time_or_null "," time_or_null ")" -> timespan

?literal: INT                                   -> int
        | FLOAT                                 -> float
        | STRING                                -> string
        | TIME                                  -> time

?time_or_null: TIME                             -> time
             | NULL                             -> null

name: IDENT ("." IDENT)?
bind: ":" IDENT

_OR.2: /OR\b/i
_AND.2: /AND\b/i
NOT.2: /NOT\b/i
_IN.2: /IN\b/i
OVERLAPS.2: /OVERLAPS\b/i
GLOB.2: /GLOB\b/i
NULL.2: /NULL\b/i
COMPARE: "!=" | "<>" | "<=" | ">=" | "=" | "<" | ">"
RANGE.3: /[+-]?\d+\.\.[+-]?\d+(:\d+)?/
TIME.3: /[Tt]'[^']*'/
FLOAT.2: /[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?|[+-]?\d+[eE][+-]?\d+/
INT: /[+-]?\d+/
STRING: /'([^']|'')*'/
IDENT: /[A-Za-z_][A-Za-z_0-9]*/

%import common.WS
%ignore WS
"""

# What each terminal is called in an error message.
_WORDS = {
    "_OR": "OR",
    "_AND": "AND",
    "NOT": "NOT",
    "_IN": "IN",
    "OVERLAPS": "OVERLAPS",
    "GLOB": "GLOB",
    "NULL": "NULL",
    "COMPARE": "a comparison (= != < <= > >=)",
    "RANGE": "a range (1..8)",
    "TIME": "a time (T'2024-01-01T00:00:00')",
    "FLOAT": "a number",
    "INT": "a number",
    "STRING": "a string ('r')",
    "IDENT": "a name",
    "LPAR": "'('",
    "RPAR": "')'",
    "COMMA": "','",
    "DOT": "'.'",
    "COLON": "':name' (a bind parameter)",
    "$END": "the end",
}


def _describeExpected(expected: set[str]) -> str:
    words = sorted({_WORDS.get(name, name) for name in expected})
    return ", ".join(words)


def _parseTime(text: str, column: int) -> datetime.datetime:
    body = text[2:-1]
    try:
        value = datetime.datetime.fromisoformat(body)
    except ValueError:
        raise InvalidQueryError(
            f"Column {column}: {text!r} is not a time; write an ISO 8601 time such as "
            "T'2024-01-01T12:00:00' (UTC unless an offset such as +02:00 is given)."
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    try:
        timeToNanoseconds(value)
    except DatabaseValueError as exc:
        raise InvalidQueryError(f"Column {column}: {text!r}: {exc}") from None
    return value.astimezone(datetime.UTC)


class _Builder(lark.Transformer[Any, Expression]):
    """Turns lark's parse tree into expression nodes, keeping each node's column."""

    def int(self, items: list[lark.Token]) -> Literal:
        return Literal(int(items[0]), _col(items[0]))

    def float(self, items: list[lark.Token]) -> Literal:
        return Literal(float(items[0]), _col(items[0]))

    def string(self, items: list[lark.Token]) -> Literal:
        return Literal(str(items[0])[1:-1].replace("''", "'"), _col(items[0]))

    def time(self, items: list[lark.Token]) -> Literal:
        return Literal(_parseTime(str(items[0]), _col(items[0])), _col(items[0]))

    def null(self, items: list[lark.Token]) -> None:
        return None

    def timespan(self, items: list[Literal | None]) -> TimespanLiteral:
        begin, end = (item.value if item is not None else None for item in items)
        column = next((item.column - 1 for item in items if item is not None), 0)
        assert begin is None or isinstance(begin, datetime.datetime)
        assert end is None or isinstance(end, datetime.datetime)
        return TimespanLiteral(begin, end, column)

    def name(self, items: list[lark.Token]) -> Name:
        return Name(str(items[0]), str(items[1]) if len(items) > 1 else None, _col(items[0]))

    def bind(self, items: list[lark.Token]) -> Bind:
        return Bind(str(items[0]), _col(items[0]) - 1)

    def range(self, items: list[lark.Token]) -> Range:
        text = str(items[0])
        bounds, _, stride = text.partition(":")
        start, stop = bounds.split("..")
        step = int(stride) if stride else 1
        if step < 1:
            raise InvalidQueryError(f"Column {_col(items[0])}: the stride of {text!r} must be at least 1.")
        return Range(int(start), int(stop), step, _col(items[0]))

    def in_items(self, items: list[Any]) -> tuple[Any, ...]:
        return tuple(items)

    def compare(self, items: list[Any]) -> Compare:
        left, op, right = items
        return Compare("!=" if str(op) == "<>" else str(op), left, right, left.column)

    def in_(self, items: list[Any]) -> In:
        operand = items[0]
        negated = len(items) == 3
        return In(operand, items[-1], negated, operand.column)

    def overlaps(self, items: list[Any]) -> Overlaps:
        return Overlaps(items[0], items[2], items[0].column)

    def glob(self, items: list[Any]) -> Glob:
        return Glob(items[1], items[2], _col(items[0]))

    def not_(self, items: list[Any]) -> Not:
        return Not(items[1], _col(items[0]))

    def and_expr(self, items: list[Any]) -> And:
        return And(tuple(items), items[0].column)

    def or_expr(self, items: list[Any]) -> Or:
        return Or(tuple(items), items[0].column)


def _col(token: lark.Token) -> int:
    return int(token.column or 0)


@functools.cache
def _parser() -> lark.Lark:
    return lark.Lark(_GRAMMAR, parser="lalr", maybe_placeholders=False, propagate_positions=False)


def parseExpression(text: str) -> Expression:
    """Return the expression tree of ``text``.

    Raises
    ------
    InvalidQueryError
        ``text`` is not an expression of the grammar above; the message gives the column, what
        was found there and what was expected.
    """
    if not text.strip():
        raise InvalidQueryError('The where expression is empty; write a condition such as "visit > 100".')
    try:
        tree = _parser().parse(text)
    except lark.exceptions.UnexpectedToken as exc:
        atEnd = exc.token.type == "$END"
        found = "the end" if atEnd else repr(str(exc.token))
        column = len(text.rstrip()) + 1 if atEnd else exc.column
        raise InvalidQueryError(
            f"Cannot parse where expression {text!r} at column {column}: found {found}, expected "
            f"{_describeExpected(set(exc.accepts or exc.expected))}."
        ) from None
    except lark.exceptions.UnexpectedCharacters as exc:
        raise InvalidQueryError(
            f"Cannot parse where expression {text!r} at column {exc.column}: unexpected character "
            f"{text[exc.pos_in_stream or 0]!r}; expected {_describeExpected(set(exc.allowed or ()))}."
        ) from None
    except lark.exceptions.UnexpectedEOF as exc:
        raise InvalidQueryError(
            f"Cannot parse where expression {text!r}: it ends too early; expected "
            f"{_describeExpected(set(exc.expected))}."
        ) from None
    try:
        result: Expression = _Builder().transform(tree)
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, InvalidQueryError):
            raise exc.orig_exc from None
        raise
    return result
