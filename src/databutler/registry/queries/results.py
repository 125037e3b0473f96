"""Query results: a list that can also say how many it holds, whether any, and why none."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["QueryResults"]

T = TypeVar("T")
_NOTHING: Any = object()


class QueryResults(list[T]):
    """The results of a query, in order, with `count`, `any` and `explainNoResults`.

    It is a `list`, so code that used the plain lists returned before keeps working.

    Parameters
    ----------
    items : iterable
        The results.
    explain : callable, optional
        Returns the reasons a query found nothing; called only by `explainNoResults`.
    """

    def __init__(self, items: Iterable[T] = (), explain: Callable[[], list[str]] | None = None) -> None:
        """Hold ``items`` and the function that explains an empty result."""
        super().__init__(items)
        self._explain = explain

    def count(self, value: Any = _NOTHING) -> int:
        """Return the number of results (with an argument: how often ``value`` occurs, as for a list)."""
        if value is _NOTHING:
            return len(self)
        return super().count(value)

    def any(self) -> bool:
        """Return `True` if there is at least one result."""
        return len(self) > 0

    def explainNoResults(self) -> list[str]:
        """Return why the query found nothing: which collection, dataset type or condition emptied it.

        Each message names the thing and what was found instead (for example the collections
        that do hold the dataset type, or that a condition alone matches nothing). Empty when
        there are results.
        """
        if self or self._explain is None:
            return []
        return self._explain()
