"""Datastore transactions: undo actions run in reverse when the body raises."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["DatastoreTransaction"]

log = logging.getLogger(__name__)


class DatastoreTransaction:
    """A list of undo actions, optionally nested inside a parent transaction.

    On commit, a nested transaction hands its undo actions to its parent, so that a failure
    later in the outer transaction undoes them too. On rollback the actions run newest first;
    an action that fails is logged and the rest still run.

    Parameters
    ----------
    parent : DatastoreTransaction, optional
        The enclosing transaction.
    """

    def __init__(self, parent: DatastoreTransaction | None = None) -> None:
        self.parent = parent
        self._undo: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self._onCommit: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []

    def registerUndo(self, name: str, undoFunc: Callable[..., Any], *args: Any) -> None:
        """Add an action to run if this transaction is rolled back.

        Parameters
        ----------
        name : str
            What is undone, for logs.
        undoFunc : callable
            Called as ``undoFunc(*args)`` on rollback.
        """
        self._undo.append((name, undoFunc, args))

    def registerOnCommit(self, name: str, func: Callable[..., Any], *args: Any) -> None:
        """Add an action to run once the outermost transaction commits (dropped on rollback).

        For work that cannot be undone, such as deleting a removed dataset's file: it is put
        off until nothing can roll the removal back.

        Parameters
        ----------
        name : str
            What is done, for logs.
        func : callable
            Called as ``func(*args)`` after the outermost commit; a failure is logged.
        """
        self._onCommit.append((name, func, args))

    def rollback(self) -> list[BaseException]:
        """Run every undo action, newest first, and forget them.

        Returns
        -------
        failures : list of Exception
            Exceptions raised by undo actions (each also logged).
        """
        failures: list[BaseException] = []
        self._onCommit.clear()
        while self._undo:
            name, func, args = self._undo.pop()
            try:
                func(*args)
            except Exception as exc:  # keep undoing the rest
                log.warning("Could not undo %s during rollback: %s", name, exc)
                failures.append(exc)
        return failures

    def commit(self) -> None:
        """Hand undo and on-commit actions to the parent, or at the outermost level forget the
        undo actions and run the on-commit ones (oldest first; failures are logged)."""
        if self.parent is not None:
            self.parent._undo.extend(self._undo)
            self.parent._onCommit.extend(self._onCommit)
            self._undo.clear()
            self._onCommit.clear()
            return
        self._undo.clear()
        actions, self._onCommit = self._onCommit, []
        for name, func, args in actions:
            try:
                func(*args)
            except Exception as exc:  # the commit itself has happened; finish the rest
                log.warning("Could not %s after commit: %s", name, exc)

    def __len__(self) -> int:
        return len(self._undo)
