"""`StatementCache`: the statements a registry built for its queries, by the queries' arguments.

Building a query's statement (parsing the ``where`` string, resolving its names, composing the
SQLAlchemy expression) costs a few hundred µs, as much as the SQL of a small query. A query
asked again with the same arguments reuses the statement it built (SQLAlchemy then reuses its
compiled form too). A statement holds its values as bound parameters, never as SQL text, so
reuse changes nothing about injection safety.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

__all__ = ["StatementCache", "freeze"]

T = TypeVar("T")


class _Unhashable(Exception):
    """A value that cannot be part of a cache key (the query is then built afresh)."""


def freeze(value: Any) -> Hashable:
    """Return a hashable key equal only for equal values of the same types.

    ``1``, ``1.0`` and ``True`` compare equal in Python but are different queries (a bool is
    refused as a data ID value): each value is keyed with its type. Lists, tuples and sets
    become tuples, mappings sorted tuples of items.

    Raises
    ------
    _Unhashable
        ``value`` holds something that cannot be hashed.
    """
    if isinstance(value, Mapping):
        return (type(value), tuple(sorted(((str(k), freeze(v)) for k, v in value.items()), key=repr)))
    if isinstance(value, list | tuple):
        return (type(value), tuple(freeze(v) for v in value))
    if isinstance(value, set | frozenset):
        return (type(value), tuple(sorted((freeze(v) for v in value), key=repr)))
    try:
        hash(value)
    except TypeError:
        raise _Unhashable from None
    return (type(value), value)


class StatementCache:
    """A bounded, thread-safe map from a query's arguments to what was built for them.

    Parameters
    ----------
    size : int
        How many entries are kept; the least recently used goes first.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Return how many entries are cached."""
        return len(self._entries)

    def get(self, key: Callable[[], Hashable], build: Callable[[], T]) -> T:
        """Return what is cached under ``key()``, or ``build()``, cached when it returns.

        ``key`` is a function so that freezing arguments that cannot be hashed (see `freeze`)
        simply skips the cache. An error raised by ``build`` is not cached: the same query
        raises it again.
        """
        try:
            frozen = key()
            hash(frozen)
        except (_Unhashable, TypeError):
            return build()
        with self._lock:
            if frozen in self._entries:
                self._entries.move_to_end(frozen)
                return self._entries[frozen]  # type: ignore[no-any-return]
        built = build()
        with self._lock:
            self._entries[frozen] = built
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return built
