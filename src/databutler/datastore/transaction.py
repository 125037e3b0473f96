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
    deferCommitActions : bool, optional
        If true and this is the outermost transaction, `commit` keeps the on-commit actions
        instead of running them; the caller runs them with `runCommitActions` once everything
        else that could still fail (such as a registry commit) has succeeded. Used by the Butler,
        which must not delete a removed dataset's files before the registry has committed.
    """

    def __init__(self, parent: DatastoreTransaction | None = None, deferCommitActions: bool = False) -> None:
        self.parent = parent
        self.deferCommitActions = deferCommitActions
        self._undo: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self._onCommit: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self._deferred: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        self._batches: dict[Any, list[Any]] = {}

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

    def registerOnCommitBatch(self, key: Any, name: str, func: Callable[[list[Any]], Any], item: Any) -> None:
        """Add ``item`` to the batch ``key``, run as one ``func(items)`` call after the commit.

        After the outermost commit, ``func(items)`` runs once with every item added to that
        batch in this transaction and the nested ones.

        For work that is cheaper done at once, such as deleting the files of many removed
        datasets in one records transaction. Dropped on rollback, like `registerOnCommit`.
        """
        items = self._batches.get(key)
        if items is None:
            items = self._batches[key] = []
            self._onCommit.append((name, func, (items,)))
        items.append(item)

    def rollback(self) -> list[BaseException]:
        """Run every undo action, newest first, and forget them.

        Returns
        -------
        failures : list of Exception
            Exceptions raised by undo actions (each also logged).
        """
        failures: list[BaseException] = []
        self._onCommit.clear()
        self._batches.clear()
        self._deferred.clear()
        while self._undo:
            name, func, args = self._undo.pop()
            try:
                func(*args)
            except Exception as exc:  # keep undoing the rest
                log.warning("Could not undo %s during rollback: %s", name, exc)
                failures.append(exc)
        return failures

    def commit(self) -> None:
        """End this level successfully: a nested level hands its actions to its parent.

        At the outermost level the undo actions are forgotten and the on-commit ones run
        (oldest first; failures are logged).
        With ``deferCommitActions`` the outermost level keeps the on-commit actions for
        `runCommitActions` instead of running them.
        """
        if self.parent is not None:
            parent = self.parent
            parent._undo.extend(self._undo)
            for key, items in self._batches.items():  # a batch the parent has too joins it
                theirs = parent._batches.get(key)
                if theirs is not None:
                    theirs.extend(items)
                    self._onCommit = [a for a in self._onCommit if not (len(a[2]) == 1 and a[2][0] is items)]
                else:
                    parent._batches[key] = items
            parent._onCommit.extend(self._onCommit)
            self._undo.clear()
            self._onCommit.clear()
            self._batches.clear()
            return
        self._undo.clear()
        self._batches.clear()
        actions, self._onCommit = self._onCommit, []
        if self.deferCommitActions:
            self._deferred.extend(actions)
            return
        self._runActions(actions)

    def takeCommitActions(self, other: DatastoreTransaction) -> None:
        """Move the on-commit actions ``other`` deferred into this transaction's deferred ones.

        For a datastore made of others (a chain): after its children's transactions commit with
        deferred actions, the chain's own transaction collects them so one `runCommitActions`
        runs them all.

        Parameters
        ----------
        other : DatastoreTransaction
            A committed transaction opened with ``deferCommitActions``.
        """
        self._deferred.extend(other._deferred)
        other._deferred.clear()

    def runCommitActions(self) -> None:
        """Run, oldest first, the on-commit actions a deferred commit kept, and forget them.

        Does nothing if there are none (also for a nested or rolled-back transaction). Failures
        are logged: the commit itself has happened.
        """
        actions, self._deferred = self._deferred, []
        self._runActions(actions)

    @staticmethod
    def _runActions(actions: list[tuple[str, Callable[..., Any], tuple[Any, ...]]]) -> None:
        for name, func, args in actions:
            try:
                func(*args)
            except Exception as exc:  # the commit itself has happened; finish the rest
                log.warning("Could not %s after commit: %s", name, exc)

    def __len__(self) -> int:
        """Return the number of undo actions recorded at this level."""
        return len(self._undo)
