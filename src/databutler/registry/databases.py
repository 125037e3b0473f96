"""Which database a registry uses, and how to connect to it.

Two back ends, chosen by the URL in ``registry.db``:

- **SQLite** (``sqlite:///path/to/registry.sqlite3``), the default: a file in the repository.
  Every connection turns on write-ahead logging (readers never block the writer), a busy
  timeout (a writer waits for the lock instead of failing), foreign keys, and
  ``synchronous=NORMAL`` (safe against corruption in WAL mode; a power cut may lose the last
  commits), and checkpoints the log every 10,000 pages (~40 MB) rather than 1,000, which
  halves the cost of a small commit (each checkpoint syncs the database file). Write
  transactions start with ``BEGIN IMMEDIATE`` so that two processes never both read under a
  shared lock and then deadlock upgrading it: the second simply waits its turn.
  Single reads run without BEGIN, each statement in SQLite's own implicit transaction.
- **PostgreSQL** (``postgresql://user@host:port/dbname``), for a registry shared by many
  processes and machines. The driver is psycopg 3; a plain ``postgresql://`` or
  ``postgres://`` URL is given the ``+psycopg`` driver. ``namespace`` picks a PostgreSQL
  schema, so several registries can live in one database.

A registry opened **read-only** never writes. SQLite is opened with ``mode=ro``; where its
folder cannot be written (a read-only mount, a folder without write permission) and no process
has the database open (no ``-wal``/``-shm`` files, which a reader could not create), it is
opened ``immutable=1``: SQLite then takes no locks and reads the file as it is. Such a reader
does not see commits made after it opened; reopen it to see them. PostgreSQL connections are
opened with ``default_transaction_read_only`` on, so the server refuses any write.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Engine
from sqlalchemy.pool import NullPool, QueuePool, StaticPool

from ..config import ROOT_PLACEHOLDER, ConfigSubset
from ..exceptions import ConfigError, MissingOptionalDependencyError

__all__ = [
    "ROOT_PLACEHOLDER",
    "SQLITE_BEGIN",
    "RegistryConfig",
    "isSqliteUrl",
    "makeEngine",
    "parseUrl",
    "sqliteFile",
    "sqliteReadOnlyUri",
]

SQLITE_BEGIN = "BEGIN IMMEDIATE"
"""How a SQLite write transaction starts: taking the write lock at once, waiting for it."""


class RegistryConfig(ConfigSubset):
    """Configuration of a registry: the ``registry`` section.

    Keys: ``db`` (a SQLAlchemy URL, where ``<butlerRoot>`` stands for the repository root),
    ``busyTimeout`` (seconds a SQLite writer waits for the lock) and ``namespace`` (a
    PostgreSQL schema, or null for the default one). Defaults are in ``configs/registry.yaml``.

    Raises
    ------
    ConfigError
        ``db`` is missing.
    """

    component = "registry"
    requiredKeys = ("db",)
    defaultConfigFile = "registry.yaml"


def parseUrl(url: str | URL) -> URL:
    """Return ``url`` as a SQLAlchemy URL, giving PostgreSQL URLs the psycopg 3 driver.

    Raises
    ------
    ConfigError
        ``url`` is not a database URL, or names a back end other than SQLite or PostgreSQL.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise ConfigError(
            f"Registry database {str(url)!r} is not a database URL; use e.g. "
            "'sqlite:///path/registry.sqlite3' or 'postgresql://user@host:5432/dbname'."
        ) from exc
    backend, _, driver = parsed.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "postgresql":
        if driver not in ("", "psycopg"):
            raise ConfigError(
                f"Registry database {parsed.render_as_string(hide_password=True)!r}: the PostgreSQL "
                f"driver must be psycopg (version 3), not {driver!r}; use 'postgresql+psycopg://'."
            )
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    raise ConfigError(
        f"Registry database {parsed.render_as_string(hide_password=True)!r} uses {backend!r}; "
        "the registry supports 'sqlite' and 'postgresql'."
    )


def isSqliteUrl(url: URL) -> bool:
    """Return `True` if ``url`` names a SQLite database."""
    return url.get_backend_name() == "sqlite"


def sqliteFile(url: URL) -> Path | None:
    """Return the file of a SQLite ``url``, or `None` for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def sqliteReadOnlyUri(path: Path) -> str:
    """Return the SQLite URI that opens the database file ``path`` for reading only.

    ``mode=ro`` where SQLite can make or use the write-ahead log's ``-shm`` index (the folder
    is writable, or a process has the database open, so the files are there); otherwise
    ``immutable=1`` (see the module docstring).
    """
    absolute = path.absolute()
    uri = "file:" + quote(absolute.as_posix())
    folder = absolute.parent
    inUse = Path(f"{absolute}-shm").exists() and Path(f"{absolute}-wal").exists()
    if inUse or os.access(folder, os.W_OK):
        return uri + "?mode=ro"
    return uri + "?immutable=1"


def makeEngine(url: URL, *, busyTimeout: float = 30.0, pooled: bool = True, readOnly: bool = False) -> Engine:
    """Return an engine for ``url``, set up as the module docstring describes.

    Parameters
    ----------
    url : URL
        A URL from `parseUrl`.
    busyTimeout : float
        Seconds a connection waits for a lock before giving up (SQLite's busy timeout,
        PostgreSQL's ``lock_timeout``).
    pooled : bool
        Pool connections; `False` (SQLite files only) opens and closes each connection
        itself, for connections held for a long time, such as a thread's read connection.
    readOnly : bool
        Open the database for reading only (see the module docstring).

    Raises
    ------
    MissingOptionalDependencyError
        A PostgreSQL URL is given but psycopg is not installed.
    """
    if isSqliteUrl(url):
        return _makeSqliteEngine(url, busyTimeout, pooled, readOnly)
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise MissingOptionalDependencyError(
            "A PostgreSQL registry needs psycopg 3; pip install 'databutler[postgres]'."
        ) from exc
    # A writer waits at most busyTimeout for another session's lock, as on SQLite, then fails
    # with an error naming who holds it (see connections.translateDatabaseError).
    options = f"-c lock_timeout={max(1, round(busyTimeout * 1000))}"
    if readOnly:
        options += " -c default_transaction_read_only=on"
    return sa.create_engine(url, connect_args={"options": options})


def _makeSqliteEngine(url: URL, busyTimeout: float, pooled: bool, readOnly: bool) -> Engine:
    connectArgs: dict[str, Any] = {"timeout": busyTimeout, "check_same_thread": False}
    path = sqliteFile(url)
    inMemory = path is None
    readOnly = readOnly and path is not None
    if readOnly:
        assert path is not None
        uri = sqliteReadOnlyUri(path)
        engine = sa.create_engine(
            "sqlite://",
            creator=lambda: sqlite3.connect(uri, uri=True, timeout=busyTimeout, check_same_thread=False),
            poolclass=QueuePool if pooled else NullPool,
        )
    elif inMemory:
        # One shared connection, or every connection would see its own empty database.
        engine = sa.create_engine(url, connect_args=connectArgs, poolclass=StaticPool)
    elif pooled:
        engine = sa.create_engine(url, connect_args=connectArgs)
    else:
        engine = sa.create_engine(url, connect_args=connectArgs, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def onConnect(dbapiConnection: sqlite3.Connection, connectionRecord: Any) -> None:
        # Autocommit at the driver: the sqlite3 module never begins transactions by itself.
        # A lone read runs in SQLite's own implicit transaction; writes begin explicitly with
        # SQLITE_BEGIN (see ConnectionManager.transaction). No SQLAlchemy "begin" listener is
        # used: any connection event would make every execute pay for event dispatch.
        dbapiConnection.isolation_level = None
        cursor = dbapiConnection.cursor()
        try:
            if not inMemory and not readOnly:
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA wal_autocheckpoint = 10000")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return engine
