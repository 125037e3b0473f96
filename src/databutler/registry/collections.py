"""Collection types: what a collection argument may name."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from typing import cast

import sqlalchemy as sa

from ..dataset_ref import checkRunName
from ..exceptions import (
    CollectionError,
    InvalidQueryError,
    MissingRunError,
    ReadOnlyRepositoryError,
)
from . import schema
from .connections import ConnectionManager, dialectInsert

__all__ = [
    "CHAIN_VERSION_NAME",
    "ChainedCollectionManager",
    "CollectionType",
    "chainMetadata",
    "chainTable",
    "collectionTypes",
    "createMissingTables",
]


class CollectionType(enum.StrEnum):
    """The kinds of collection: a RUN holds the datasets written into it."""

    RUN = "RUN"
    TAGGED = "TAGGED"
    CHAINED = "CHAINED"
    CALIBRATION = "CALIBRATION"


def collectionTypes(types: str | Sequence[str] | None) -> set[CollectionType]:
    """Return ``types`` as a set of `CollectionType` (every type for `None`).

    Raises
    ------
    InvalidQueryError
        A name is not a collection type.
    """
    if types is None:
        return set(CollectionType)
    names = [types] if isinstance(types, str) else list(types)
    out = set()
    for name in names:
        try:
            out.add(CollectionType(str(name).upper()))
        except ValueError:
            raise InvalidQueryError(
                f"{name!r} is not a collection type; use one of {[t.value for t in CollectionType]}."
            ) from None
    return out


chainMetadata = sa.MetaData(naming_convention=schema.metadata.naming_convention)

chainTable = sa.Table(
    # A CHAINED collection: its ordered children (runs or other chains), by name.
    "collection_chain",
    chainMetadata,
    sa.Column("parent", sa.String(128), primary_key=True),
    sa.Column("position", sa.Integer, primary_key=True),
    sa.Column("child", sa.String(128), nullable=False),
    sqlite_with_rowid=False,
)
chainNameTable = sa.Table(
    # Every CHAINED collection, so an empty chain exists too.
    "collection_chain_name",
    chainMetadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sqlite_with_rowid=False,
)


CHAIN_VERSION_NAME = "collectionChainVersion"
"""The ``butler_attribute`` row whose value changes (a new random token) with every chain change
and every removal of a run."""
_attribute = schema.attributeTable
_READ_VERSION = sa.select(_attribute.c.value).where(_attribute.c.name == sa.bindparam("name"))


def createMissingTables(db: ConnectionManager, metadata: sa.MetaData) -> bool:
    """Create the tables of ``metadata`` that the database lacks (an older registry's migration).

    Return `False` if some are missing and cannot be created (a read-only registry, which then
    holds nothing those tables would: the verbs that read them find nothing).
    """
    with db.read() as connection:
        inspector = sa.inspect(connection)
        missing = [t for t in metadata.sorted_tables if not inspector.has_table(t.name, schema=db.namespace)]
    if not missing:
        return True
    try:
        with db.write() as connection:
            metadata.create_all(connection, tables=missing, checkfirst=True)
    except (
        ReadOnlyRepositoryError,
        sa.exc.OperationalError,
        sa.exc.ProgrammingError,
        sa.exc.InternalError,
    ):
        return False
    return True


class ChainedCollectionManager:
    """CHAINED collections of one registry: ordered search paths of runs and other chains.

    `SqlRegistry` holds one; its chain verbs are this manager's, and the dataset type and run
    manager asks it to expand a chain whenever a collection argument names one
    (`DatasetTypeManager.resolveRuns`).

    Parameters
    ----------
    db : ConnectionManager
        The registry's connections.
    leafType : callable
        Return the type of a RUN, TAGGED or CALIBRATION collection of that name, or `None` if
        there is none.

    Notes
    -----
    Resolving a chain (`resolve`) costs one read of a version token, a row of
    ``butler_attribute`` that every change to a chain replaces in the same transaction; the
    runs a chain stands for are cached under that token, so another process's change (a new
    token) is seen by the next query, and a rolled-back change (whose token never comes back)
    leaves nothing stale behind. A verb that changes a chain must call `noteChange`, and so
    does removing a run (`DatasetTypeManager.removeRun`): a lookup through chains of runs
    checks the token in its own statement (see `databutler.registry.chain_search`).
    """

    def __init__(self, db: ConnectionManager, leafType: Callable[[str], CollectionType | None]) -> None:
        self._db = db
        self._leafType = leafType
        self._present = True  # False: a read-only registry made before chains, so none exist

    def version(self) -> str:
        """Return the current chain version token ("" before any chain was ever changed)."""
        with self._db.read() as connection:
            rows = self._db.selectRows(connection, _READ_VERSION, {"name": CHAIN_VERSION_NAME})
        return str(rows[0][0]) if rows else ""

    def noteChange(self, connection: sa.Connection) -> None:
        """Replace the version token on ``connection`` (in the transaction that changes a chain)."""
        token = uuid.uuid4().hex
        statement = (
            dialectInsert(self._db, _attribute)
            .values(name=CHAIN_VERSION_NAME, value=token)
            .on_conflict_do_update(index_elements=[_attribute.c.name], set_={"value": token})
        )
        connection.execute(statement)

    def resolve(self, name: str) -> list[str] | None:
        """Return the collections chain ``name`` stands for, in search order, or `None` if it is no chain.

        Cached under the current version token (see the class docstring). The names are of
        RUN, TAGGED and CALIBRATION collections.
        """
        if not self._present:
            return None
        key = ("flatChain", name, self.version())
        cached = cast("tuple[str, ...] | None", self._db.cacheGet(key))
        if cached is not None:
            return list(cached)
        if not self.isChain(name):
            return None
        runs = self.flatten(name)
        self._db.cachePut(key, tuple(runs))
        return runs

    def createTables(self) -> None:
        """Create the chain tables that registries made before chains lack (nothing else is touched)."""
        self._present = createMissingTables(self._db, chainMetadata)

    def chainNames(self) -> set[str]:
        """Return the names of every CHAINED collection."""
        if not self._present:
            return set()
        with self._db.read() as connection:
            return set(connection.execute(sa.select(chainNameTable.c.name)).scalars())

    def isChain(self, name: str) -> bool:
        """Return whether ``name`` is a CHAINED collection."""
        return self._children(name) is not None

    def _children(self, parent: str) -> list[str] | None:
        """Return the children of chain ``parent`` in order, or `None` if it is not a chain."""
        if not self._present:
            return None
        with self._db.read() as connection:
            found = connection.execute(
                sa.select(chainNameTable.c.name).where(chainNameTable.c.name == parent)
            ).first()
            if found is None:
                return None
            rows = connection.execute(
                sa.select(chainTable.c.child)
                .where(chainTable.c.parent == parent)
                .order_by(chainTable.c.position)
            )
            return list(rows.scalars())

    def registerChain(self, name: str) -> bool:
        """Register an empty CHAINED collection ``name``; return `True` if it is new.

        Raises
        ------
        CollectionError
            A run of that name exists.
        """
        checkRunName(name)
        leaf = self._leafType(name)
        if leaf is not None:
            raise CollectionError(f"{name!r} is a {leaf.value} collection; a chain needs a name of its own.")
        statement = dialectInsert(self._db, chainNameTable).values(name=name).on_conflict_do_nothing()
        with self._db.write() as connection:
            inserted = bool(connection.execute(statement).rowcount)
            if inserted:
                self.noteChange(connection)
            return inserted

    def getCollectionChain(self, parent: str) -> list[str]:
        """Return the children of chain ``parent``, in search order (`Registry.getCollectionChain`)."""
        children = self._children(parent)
        if children is None:
            raise CollectionError(f"{parent!r} is not a CHAINED collection; register it with registerChain.")
        return children

    def setCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Make ``children`` the whole of chain ``parent`` (`Registry.setCollectionChain`)."""
        children = [children] if isinstance(children, str) else list(children)
        if len(set(children)) != len(children):
            raise CollectionError(f"Chain {parent!r}: a child is given twice in {children}.")
        with self._db.write() as connection:  # checked under the write lock: no concurrent cycle
            for child in children:
                self.flatten(child, ())  # raises for an unknown collection
                if child == parent or parent in self._chainsWithin(child):
                    raise CollectionError(
                        f"Chain {parent!r} cannot contain {child!r}: {child!r} is or contains {parent!r}, "
                        "a cycle; take it out of the list."
                    )
            self.registerChain(parent)
            self.noteChange(connection)
            connection.execute(sa.delete(chainTable).where(chainTable.c.parent == parent))
            if children:
                connection.execute(
                    sa.insert(chainTable),
                    [{"parent": parent, "position": i, "child": c} for i, c in enumerate(children)],
                )

    def prependCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Put ``children`` at the front of chain ``parent`` (moving them if already in it)."""
        new = [children] if isinstance(children, str) else list(children)
        self.setCollectionChain(parent, new + [c for c in self.getCollectionChain(parent) if c not in new])

    def extendCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Put ``children`` at the end of chain ``parent`` (moving them if already in it)."""
        new = [children] if isinstance(children, str) else list(children)
        self.setCollectionChain(parent, [c for c in self.getCollectionChain(parent) if c not in new] + new)

    def parentsOf(self, name: str) -> list[str]:
        """Return the chains that have ``name`` as a direct child, sorted."""
        if not self._present:
            return []
        with self._db.read() as connection:
            rows = connection.execute(
                sa.select(chainTable.c.parent).where(chainTable.c.child == name).distinct()
            )
            return sorted(rows.scalars())

    def removeChain(self, name: str) -> None:
        """Delete chain ``name`` (its children are untouched)."""
        with self._db.write() as connection:
            self.noteChange(connection)
            connection.execute(sa.delete(chainTable).where(chainTable.c.parent == name))
            connection.execute(sa.delete(chainNameTable).where(chainNameTable.c.name == name))

    def removeFromCollectionChain(self, parent: str, children: Sequence[str]) -> None:
        """Take ``children`` out of chain ``parent`` (those not in it are ignored)."""
        gone = {children} if isinstance(children, str) else set(children)
        self.setCollectionChain(parent, [c for c in self.getCollectionChain(parent) if c not in gone])

    def _chainsWithin(self, name: str) -> set[str]:
        """Return the chains reachable from ``name`` (itself included, if it is a chain)."""
        found: set[str] = set()
        pending = [name]
        while pending:
            current = pending.pop()
            children = self._children(current)
            if children is None or current in found:
                continue
            found.add(current)
            pending.extend(children)
        return found

    def flatten(self, name: str, seen: tuple[str, ...] = ()) -> list[str]:
        """Return the collections ``name`` stands for, in search order, chains flattened.

        A RUN, TAGGED or CALIBRATION collection stands for itself.

        Raises
        ------
        MissingRunError
            ``name`` is not a registered collection.
        """
        if self._leafType(name) is not None:
            return [name]
        children = self._children(name)
        if children is None:
            raise MissingRunError(
                f"Collection {name!r} is not registered (as a run, a chain, or a tagged or "
                "calibration collection); register it first (registerRun, setCollectionChain, or "
                "registerCollection)."
            )
        if name in seen:
            return []  # refused when set; never loops
        out: list[str] = []
        for child in children:
            for run in self.flatten(child, (*seen, name)):
                if run not in out:
                    out.append(run)
        return out
