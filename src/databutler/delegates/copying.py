"""Deep copies and sizes of JSON-like data: builtin containers of immutable leaves.

A *JSON-like* object is a ``dict``, ``list`` or ``tuple`` (exactly those types, not
subclasses) whose keys are immutable scalars and whose values are immutable scalars (``str``,
``int``, ``float``, ``bool``, ``complex``, ``bytes``, ``None``) or JSON-like containers, nested
at most `MAX_DEPTH` deep. Such an object is copied here by a few comprehensions, about ten times
faster than `copy.deepcopy`, which must memoize every object it visits: a flat ``dict`` or
``list`` is copied by its own ``copy`` method, and immutable leaves and tuples of them are
shared rather than copied.

One difference from `copy.deepcopy`: a container reachable twice from the top (two keys naming
the same list) becomes two independent copies, as it would after a round trip through JSON.
Nothing can be reached from both a copy and its original. A cycle, a subclass or any other
type is not JSON-like, and callers fall back to `copy.deepcopy` for it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

__all__ = [
    "IMMUTABLE_SCALARS",
    "MAX_DEPTH",
    "copyJsonLike",
    "jsonLikeCopier",
    "jsonLikeDeepcopy",
    "jsonLikeSize",
]

IMMUTABLE_SCALARS: frozenset[type] = frozenset({str, int, float, bool, complex, bytes, type(None)})
"""Leaf types that are shared, never copied (exact types: a subclass may carry mutable state)."""

MAX_DEPTH = 100
"""Containers nested deeper than this are not JSON-like (this also stops at a cycle)."""


class _NotJsonLike(Exception):
    """Raised inside the walk when an object is not JSON-like."""


def _copy(obj: Any, depth: int) -> Any:
    kind = type(obj)
    if kind in IMMUTABLE_SCALARS:
        return obj
    if depth > MAX_DEPTH:
        raise _NotJsonLike
    scalars = IMMUTABLE_SCALARS
    if kind is dict:
        out = {}
        for key, value in obj.items():
            if type(key) not in scalars:
                raise _NotJsonLike
            out[key] = value if type(value) in scalars else _copy(value, depth + 1)
        return out
    if kind is list:
        return [v if type(v) in scalars else _copy(v, depth + 1) for v in obj]
    if kind is tuple:
        if scalars.issuperset(map(type, obj)):
            return obj  # immutable all the way down: shared
        return tuple(v if type(v) in scalars else _copy(v, depth + 1) for v in obj)
    raise _NotJsonLike


def copyJsonLike(obj: Any) -> Any:
    """Return a deep copy of JSON-like ``obj`` that shares only immutable leaves with it.

    Raises
    ------
    TypeError
        ``obj`` is not JSON-like (use `copy.deepcopy` for it).
    """
    try:
        return _copy(obj, 0)
    except _NotJsonLike:
        raise TypeError(
            f"{type(obj).__qualname__} object is not JSON-like data; use copy.deepcopy."
        ) from None
    except RecursionError:
        raise TypeError("The object nests too deeply to be copied as JSON-like data.") from None


def _identity(obj: Any) -> Any:
    return obj


def _isFlat(obj: Any) -> bool:
    """Whether ``obj`` is a dict or list whose keys and values are all immutable scalars."""
    scalars = IMMUTABLE_SCALARS
    kind = type(obj)
    if kind is dict:
        return scalars.issuperset(map(type, obj.values())) and scalars.issuperset(map(type, obj))
    if kind is list or kind is tuple:
        return scalars.issuperset(map(type, obj))
    return False


def jsonLikeDeepcopy(obj: Any) -> tuple[Any, Callable[[Any], Any]] | None:
    """Deep-copy ``obj`` once; return the copy and the cheapest function that copies it again.

    `None` if ``obj`` is not JSON-like. The function suits the copy (and ``obj``: they have the
    same shape), so a store can choose it once, when it takes an object in, and use it for every
    reader afterwards: a flat dict or list is copied by its own ``copy`` method, an immutable
    value (or a tuple of immutable scalars) is shared as it is, anything else by `copyJsonLike`.
    """
    kind = type(obj)
    if kind in IMMUTABLE_SCALARS:
        return obj, _identity
    if _isFlat(obj):
        if kind is tuple:
            return obj, _identity
        return obj.copy(), kind.copy
    if kind is dict or kind is list or kind is tuple:
        try:
            copied = _copy(obj, 0)
        except (_NotJsonLike, RecursionError):
            return None
        return copied, copyJsonLike
    return None


def jsonLikeCopier(obj: Any) -> Callable[[Any], Any] | None:
    """Return the cheapest function that deep-copies ``obj``, or `None` if it is not JSON-like.

    Unlike `jsonLikeDeepcopy` this copies nothing when ``obj`` is flat or immutable; a nested
    object is walked once to check it.
    """
    kind = type(obj)
    if kind in IMMUTABLE_SCALARS:
        return _identity
    if _isFlat(obj):
        return _identity if kind is tuple else kind.copy
    found = jsonLikeDeepcopy(obj)
    return None if found is None else found[1]


def jsonLikeSize(obj: Any) -> int | None:
    """Return the bytes held by JSON-like ``obj`` (`sys.getsizeof` of every part), or `None`.

    `None` means the object is not JSON-like; size it some other way.
    """
    kind = type(obj)
    size = sys.getsizeof
    if kind in IMMUTABLE_SCALARS:
        return size(obj)
    if _isFlat(obj):
        total = size(obj) + sum(map(size, obj))
        return total + sum(map(size, obj.values())) if kind is dict else total
    total = 0
    stack = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        total += size(item)
        if kind in IMMUTABLE_SCALARS:
            continue
        if depth > MAX_DEPTH:
            return None
        if kind is dict:
            if not IMMUTABLE_SCALARS.issuperset(map(type, item)):
                return None
            total += sum(map(size, item))
            stack.extend((v, depth + 1) for v in item.values())
        elif kind is list or kind is tuple:
            stack.extend((v, depth + 1) for v in item)
        else:
            return None
    return total
