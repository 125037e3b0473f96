"""`RemovalWatch`: the dataset removal token, read beside every lookup, and who is told of a change.

Dataset ids are deterministic (UUIDv5 of run, dataset type and data ID), so a dataset removed
by one process and put again with other content by another comes back under the same id. A
cache keyed by id (a Butler's memory tier) would then answer with the old content, though the
registry's answer is right. So every removal of datasets replaces a token, the
``butler_attribute`` row ``datasetRemovalVersion``, in the transaction that removes them
(`RemovalWatch.noteRemoval`), and the lookups by data ID and by id read it *in their own
statement* (`withRemovalVersion` adds it as a column)::

    SELECT d.id, d.run_id, (SELECT value FROM butler_attribute WHERE name = '...') FROM ...

A token other than the one last read means another process (or another registry) removed
datasets since: the listeners (`addListener`; a Butler's drops its memory tier's copies of
persistent datasets) run before the lookup answers. A token that this registry's own
committed removals produced, starting from the one last read, needs nothing: the remover
dropped its own copies. Removing a run replaces the token too, and a lookup by data ID in
runs returns it even when it finds nothing (one row of NULLs beside it): a registry that
caches the id of a run removed elsewhere, perhaps made again under its name with a new id,
forgets its run ids (`DatasetTypeManager.forgetRunIds`) and looks again.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa

from . import schema
from .connections import ConnectionManager, dialectInsert

__all__ = ["REMOVAL_VERSION_NAME", "RemovalWatch", "withRemovalVersion"]

REMOVAL_VERSION_NAME = "datasetRemovalVersion"
"""The ``butler_attribute`` row whose value changes (a new random token) with every removal of datasets."""

_attribute = schema.attributeTable
_VERSION = (
    sa.select(_attribute.c.value)
    .where(_attribute.c.name == sa.literal_column(f"'{REMOVAL_VERSION_NAME}'"))  # no parameter to bind
    .scalar_subquery()
    .label("removalVersion")
)
_READ_VERSION = sa.select(_attribute.c.value).where(_attribute.c.name == REMOVAL_VERSION_NAME)
_LOCK_VERSION = _READ_VERSION.with_for_update()
_REPLACE_VERSION = (
    sa.update(_attribute).where(_attribute.c.name == REMOVAL_VERSION_NAME).values(value=sa.bindparam("token"))
)
_S = TypeVar("_S", bound=sa.Select[Any])


def withRemovalVersion(statement: _S) -> _S:
    """Return ``statement`` with the removal token as its last column (NULL before any removal)."""
    return statement.add_columns(_VERSION)  # type: ignore[return-value]


class RemovalWatch:
    """The removal token one registry last read, and the listeners told when it changes.

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections; the token at construction is the first one seen.
    """

    def __init__(self, db: ConnectionManager) -> None:
        self._db = db
        self._lock = threading.RLock()  # a listener may look datasets up itself
        self._listeners: list[Callable[[], None]] = []
        self._notifying: str | None = None
        """The token whose listeners are running (in the thread holding the lock)."""
        with db.read() as connection:
            self.seen: str | None = connection.execute(_READ_VERSION).scalar_one_or_none()
        """The token the last lookup read (`None`: no dataset was ever removed)."""

    def addListener(self, listener: Callable[[], None]) -> None:
        """Call ``listener()`` whenever a lookup reads a token this registry did not produce."""
        self._listeners.append(listener)

    def check(self, token: str | None) -> None:
        """Take ``token``, read by a lookup, that differs from `seen`; run the listeners unless it is ours.

        Called on the slow path only (the lookups compare with `seen` themselves). `seen` takes
        ``token`` only once the listeners have run: until then another thread's lookup that
        read it comes here too and waits, instead of answering from copies not yet dropped. A
        lookup a listener makes itself (this thread holds the lock) goes on at once.
        """
        with self._lock:
            if token == self.seen or token == self._notifying:
                return
            steps = self._steps(self.seen)
            ours = token in steps
            # The steps up to ``token`` are behind us; after another's token no walk reaches any.
            for step in steps[: steps.index(token) if ours else len(steps) - 1]:
                self._db.cacheDrop(("removalAfter", step))
            if not ours:
                self._notifying = token
                try:
                    for listener in self._listeners:
                        listener()
                finally:
                    self._notifying = None
            self.seen = token

    def _steps(self, token: str | None) -> list[str | None]:
        """Return ``token`` and the tokens this registry's own removals made after it, in order.

        Those committed, or in this thread's transaction. Tokens are random and each is written
        once, so the walk has no cycle.
        """
        steps = [token]
        while (following := self._db.cacheGet(("removalAfter", steps[-1]))) is not None:
            steps.append(following)
        return steps

    def noteRemoval(self, connection: sa.Connection) -> None:
        """Replace the token on ``connection``, in the transaction that removes datasets.

        The old token is read under a row lock (SQLite's write transaction holds the whole
        database): when it is the last one this registry saw (or produced itself since), the
        new one is remembered as ours, from the commit on (`ConnectionManager.cachePut`).
        """
        token = uuid.uuid4().hex
        old = connection.execute(_LOCK_VERSION).scalar_one_or_none()
        if old is None:
            # No row to lock: another registry's first removal may be inserting one this
            # transaction cannot see yet (PostgreSQL). The INSERT waits for it; if it
            # committed, its token is the old one (read again, now locked), else ours is first.
            first = dialectInsert(self._db, _attribute).values(name=REMOVAL_VERSION_NAME, value=token)
            first = first.on_conflict_do_nothing(index_elements=[_attribute.c.name])
            if not connection.execute(first).rowcount:
                old = connection.execute(_LOCK_VERSION).scalar_one()
        if old is not None:
            connection.execute(_REPLACE_VERSION, {"token": token})
        if old == self._steps(self.seen)[-1]:
            self._db.cachePut(("removalAfter", old), token)
