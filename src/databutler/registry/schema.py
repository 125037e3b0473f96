"""Every table of the SQL registry, in SQLAlchemy Core.

The schema, and why it is shaped this way::

    butler_attribute    name PK, value                      -- schema version and other facts
    dataset_type        id PK, name UNIQUE, dimensions, storage_class
    run                 id PK, name UNIQUE
    dataset             id (UUID) PK, dataset_type_id FK, run_id FK, data_id
                        UNIQUE (dataset_type_id, run_id, data_id)
    dataset_dimension   dataset_id FK PK, dimension PK, int_value, str_value
                        INDEX (dimension, int_value) WHERE int_value IS NOT NULL,
                        INDEX (dimension, str_value) WHERE str_value IS NOT NULL
    dataset_location    dataset_id FK PK, datastore_name PK

Datastores define their own records tables (a FileDatastore's ``fileDatastoreRecords``, in
``datastores/file/_records.py``); the registry creates them in this database when a datastore
registers them (`databutler.registry.records`).

A data ID is stored twice, each copy for one job:

- ``dataset.data_id`` is the *canonical* data ID: compact JSON with the keys sorted, e.g.
  ``{"detector":10,"visit":903334}``. JSON keeps each value's type (``1`` is not ``"1"``), so
  a data ID round-trips exactly, and one string per data ID lets a single UNIQUE constraint
  enforce "one dataset per (type, data ID, run)" in the database itself, which is what keeps
  concurrent writers honest. Finding a dataset by its full data ID is one lookup in that
  constraint's index.
- ``dataset_dimension`` holds one row per dimension, the value in ``int_value`` or
  ``str_value`` by its type, so that partial queries (``where={"visit": [1, 2]}``) are
  ordinary indexed joins rather than pattern matches on JSON, and are written the same way for
  SQLite and PostgreSQL.

Dataset types keep their storage class by *name*; the registry resolves it through its
`StorageClassFactory`, so the Python definition of a storage class can evolve without a
schema change. Dimensions are stored as a comma-separated, sorted list (dimension names are
identifiers, so no escaping is needed).

SQL names are lower case with underscores, so they need no quoting in ``psql``; each column
has a camelCase ``key`` for Python (``dataset.c.datasetTypeId``). Tables are defined without a
schema; `SqlRegistry` maps them into a PostgreSQL schema (its ``namespace``) at execution
time, so several registries can share one database.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

__all__ = [
    "SCHEMA_VERSION",
    "attributeTable",
    "createAll",
    "dataIdColumn",
    "datasetDimensionTable",
    "datasetIdColumn",
    "datasetLocationTable",
    "datasetTable",
    "datasetTypeTable",
    "metadata",
    "runTable",
]

SCHEMA_VERSION = "1"
"""Stored under ``schemaVersion`` in ``butler_attribute``; bumped on any incompatible change."""

_NAME_LENGTH = 128

_CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}
"""SQLite keeps these tables in their primary key's B-tree (``WITHOUT ROWID``) instead of in a
rowid B-tree plus a separate primary-key index: one page fewer to write per table per commit,
which is a good part of a small commit's cost. The SQL that reads and writes them is the same,
so registries made before (with rowid tables) work unchanged."""
DATA_ID_LENGTH = 4096
"""The longest canonical data ID a ``data_id`` column holds, in characters."""

metadata = sa.MetaData(
    naming_convention={
        "pk": "%(table_name)s_pkey",
        "uq": "%(table_name)s_%(column_0_N_name)s_key",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
        "ck": "%(table_name)s_%(constraint_name)s_check",
    }
)

attributeTable = sa.Table(
    "butler_attribute",
    metadata,
    sa.Column("name", sa.String(_NAME_LENGTH), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

datasetTypeTable = sa.Table(
    "dataset_type",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(_NAME_LENGTH), nullable=False, unique=True),
    sa.Column("dimensions", sa.Text, nullable=False),
    sa.Column("storage_class", sa.String(_NAME_LENGTH), nullable=False, key="storageClass"),
)

runTable = sa.Table(
    "run",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(_NAME_LENGTH), nullable=False, unique=True),
)

datasetTable = sa.Table(
    "dataset",
    metadata,
    sa.Column("id", sa.Uuid(as_uuid=True), primary_key=True),
    sa.Column(
        "dataset_type_id",
        sa.Integer,
        sa.ForeignKey(datasetTypeTable.c.id),
        nullable=False,
        key="datasetTypeId",
    ),
    sa.Column("run_id", sa.Integer, sa.ForeignKey(runTable.c.id), nullable=False, key="runId"),
    sa.Column("data_id", sa.String(DATA_ID_LENGTH), nullable=False, key="dataId"),
    # One index serves every lookup: findDataset (all three columns equal, or runs IN a list),
    # and listing a type's datasets in some runs (a prefix). A separate (run, type) index would
    # cost every insert and, before PostgreSQL has statistics, lure its planner into scanning
    # a whole run to find one data ID.
    sa.UniqueConstraint("datasetTypeId", "runId", "dataId"),
    **_CLUSTERED,
)


def datasetIdColumn(**options: Any) -> sa.Column[Any]:
    """Return a ``dataset_id`` column (key ``datasetId``) of rows that belong to a dataset.

    A foreign key to ``dataset.id``: a row goes when its dataset does. ``options`` are the
    column's other keywords (``primary_key=True`` or ``nullable=False``).
    """
    return sa.Column(
        "dataset_id",
        sa.Uuid(as_uuid=True),
        sa.ForeignKey(datasetTable.c.id, ondelete="CASCADE"),
        key="datasetId",
        **options,
    )


def dataIdColumn() -> sa.Column[str]:
    """Return a ``data_id`` column (key ``dataId``): a canonical data ID, as in ``dataset``."""
    return sa.Column("data_id", sa.String(DATA_ID_LENGTH), nullable=False, key="dataId")


_PARTIAL_INDEXES: list[tuple[sa.Index, sa.TextClause]] = []
"""Partial indexes and their condition, for `createAll` to give PostgreSQL."""


def _valueIndex(key: str, column: str) -> sa.Index:
    """Return an index on (dimension, ``column``) holding only the rows whose ``column`` is set.

    The PostgreSQL ``WHERE`` is added by `createAll`: a dialect's keyword here would import
    that dialect in every process that imports this module (about 20 ms for PostgreSQL's).
    """
    condition = sa.text(f"{column} IS NOT NULL")
    index = sa.Index(None, "dimension", key, sqlite_where=condition)
    _PARTIAL_INDEXES.append((index, condition))
    return index


def createAll(connection: sa.Connection) -> None:
    """Create every table and index of `metadata` that is missing, in ``connection``'s dialect."""
    if connection.dialect.name == "postgresql":
        for index, condition in _PARTIAL_INDEXES:
            index.dialect_options["postgresql"]["where"] = condition
    metadata.create_all(connection)


datasetDimensionTable = sa.Table(
    "dataset_dimension",
    metadata,
    datasetIdColumn(primary_key=True),
    sa.Column("dimension", sa.String(_NAME_LENGTH), primary_key=True),
    sa.Column("int_value", sa.BigInteger, nullable=True, key="intValue"),
    sa.Column("str_value", sa.String(_NAME_LENGTH * 4), nullable=True, key="strValue"),
    sa.CheckConstraint("(int_value IS NULL) <> (str_value IS NULL)", name="one_value"),
    # Partial: a row is in the index of its value's type only (a query for int_value = ...
    # implies int_value IS NOT NULL, so both databases use them), one index page per row.
    _valueIndex("intValue", "int_value"),
    _valueIndex("strValue", "str_value"),
    **_CLUSTERED,
)

datasetLocationTable = sa.Table(
    "dataset_location",
    metadata,
    datasetIdColumn(primary_key=True),
    sa.Column("datastore_name", sa.String(_NAME_LENGTH), primary_key=True, key="datastoreName"),
    **_CLUSTERED,
)
