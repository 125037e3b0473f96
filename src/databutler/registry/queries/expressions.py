"""The abstract syntax tree of a ``where`` expression: small frozen value types, no SQL.

`databutler.registry.queries.parser` builds these from text; the compiler
(`databutler.registry.queries.compiler`) turns them into SQLAlchemy expressions. Every node
keeps the ``column`` (1-based) where it starts in the text, for error messages.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "And",
    "Bind",
    "Compare",
    "Expression",
    "Glob",
    "In",
    "Literal",
    "LiteralValue",
    "Name",
    "Not",
    "Operand",
    "Or",
    "Overlaps",
    "Range",
    "TimespanLiteral",
    "conjuncts",
    "elementsOf",
    "toText",
]

LiteralValue: TypeAlias = int | float | str | datetime.datetime
"""A literal's Python value: times are timezone-aware UTC datetimes."""


@dataclass(frozen=True, slots=True)
class Literal:
    """A number, a string (``'r'``) or a time (``T'2024-01-01T00:00:00'``)."""

    value: LiteralValue
    column: int


@dataclass(frozen=True, slots=True)
class TimespanLiteral:
    """``(T'begin', T'end')``: the half-open interval [begin, end); either end may be `None`."""

    begin: datetime.datetime | None
    end: datetime.datetime | None
    column: int


@dataclass(frozen=True, slots=True)
class Name:
    """A dimension (``visit``) or a record field of one (``visit.band``)."""

    element: str
    field: str | None
    column: int

    def __str__(self) -> str:
        """Show the name as written: ``element`` or ``element.field``."""
        return self.element if self.field is None else f"{self.element}.{self.field}"


@dataclass(frozen=True, slots=True)
class Bind:
    """``:name``: a value taken from the query's ``bind`` mapping."""

    name: str
    column: int


@dataclass(frozen=True, slots=True)
class Range:
    """``start..stop`` or ``start..stop:step`` inside ``IN (...)``: both ends included."""

    start: int
    stop: int
    step: int
    column: int


Operand: TypeAlias = Literal | TimespanLiteral | Name | Bind


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` with ``op`` one of ``= != < <= > >=``."""

    op: str
    left: Operand
    right: Operand
    column: int


@dataclass(frozen=True, slots=True)
class In:
    """``operand [NOT] IN (item, ...)``; items are literals, ranges or binds (a bind may be a list)."""

    operand: Operand
    items: tuple[Literal | Range | Bind, ...]
    negated: bool
    column: int


@dataclass(frozen=True, slots=True)
class Glob:
    """``GLOB(name, 'pattern')``: ``*`` matches any run of characters, ``?`` one character."""

    operand: Name
    pattern: Literal | Bind
    column: int


@dataclass(frozen=True, slots=True)
class Overlaps:
    """``left OVERLAPS right``: two timespans, or a timespan and a time, share an instant."""

    left: Operand
    right: Operand
    column: int


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT operand``; ``column`` is where the ``NOT`` starts in the expression text."""

    operand: Expression
    column: int


@dataclass(frozen=True, slots=True)
class And:
    """``a AND b AND ...``, flattened; ``column`` is where the first operand starts."""

    operands: tuple[Expression, ...]
    column: int


@dataclass(frozen=True, slots=True)
class Or:
    """``a OR b OR ...``, flattened; ``column`` is where the first operand starts."""

    operands: tuple[Expression, ...]
    column: int


Expression: TypeAlias = Compare | In | Glob | Overlaps | Not | And | Or


def elementsOf(node: Expression | Operand) -> set[str]:
    """Return the dimension names (``visit`` of ``visit.band`` too) that ``node`` mentions."""
    if isinstance(node, Name):
        return {node.element}
    if isinstance(node, And | Or):
        return set().union(*(elementsOf(item) for item in node.operands))
    if isinstance(node, Not):
        return elementsOf(node.operand)
    if isinstance(node, Compare | Overlaps):
        return elementsOf(node.left) | elementsOf(node.right)
    if isinstance(node, In | Glob):
        return elementsOf(node.operand)
    return set()


def _literalText(value: LiteralValue) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, datetime.datetime):
        return f"T'{value.isoformat()}'"
    return repr(value)


def toText(node: Expression | Operand | Range) -> str:
    """Return ``node`` written back in the query language (parsing it gives ``node`` again)."""
    if isinstance(node, Literal):
        return _literalText(node.value)
    if isinstance(node, TimespanLiteral):
        begin = "NULL" if node.begin is None else _literalText(node.begin)
        end = "NULL" if node.end is None else _literalText(node.end)
        return f"({begin}, {end})"
    if isinstance(node, Name):
        return str(node)
    if isinstance(node, Bind):
        return f":{node.name}"
    if isinstance(node, Range):
        return f"{node.start}..{node.stop}" + (f":{node.step}" if node.step != 1 else "")
    if isinstance(node, Compare):
        return f"{toText(node.left)} {node.op} {toText(node.right)}"
    if isinstance(node, In):
        items = ", ".join(toText(item) for item in node.items)
        return f"{toText(node.operand)} {'NOT IN' if node.negated else 'IN'} ({items})"
    if isinstance(node, Glob):
        return f"GLOB({toText(node.operand)}, {toText(node.pattern)})"
    if isinstance(node, Overlaps):
        return f"{toText(node.left)} OVERLAPS {toText(node.right)}"
    if isinstance(node, Not):
        return f"NOT ({toText(node.operand)})"
    joiner = " AND " if isinstance(node, And) else " OR "
    return joiner.join(
        f"({toText(item)})" if isinstance(item, And | Or) else toText(item) for item in node.operands
    )


def conjuncts(node: Expression) -> list[Expression]:
    """Return the terms of a top-level AND (nested ANDs flattened), or ``[node]``."""
    if isinstance(node, And):
        return [term for item in node.operands for term in conjuncts(item)]
    return [node]
