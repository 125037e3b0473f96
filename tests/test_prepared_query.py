"""`PreparedQuery`: a query's SELECT made once and run on the SQLite driver gives what SQLAlchemy gives."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from databutler import DatabaseAccessError, SqlRegistry

_metadata = sa.MetaData()
_table = sa.Table(
    "prepared_probe",
    _metadata,
    sa.Column("n", sa.Integer),
    sa.Column("name", sa.String),
    sa.Column("at", sa.DateTime),  # SQLite's DateTime has a bind processor (datetime -> text)
)
_AT = datetime.datetime(2024, 1, 2, 3, 4, 5)


@pytest.fixture
def registry(tmp_path: Path) -> SqlRegistry:
    registry = SqlRegistry(f"sqlite:///{tmp_path}/registry.sqlite3", create=True)
    with registry._db.write() as connection:
        _metadata.create_all(connection)
        connection.execute(
            sa.insert(_table),
            [{"n": i, "name": f"x{i}", "at": _AT + datetime.timedelta(days=i)} for i in range(10)],
        )
    return registry


@pytest.mark.parametrize(
    ("condition", "count"),
    [
        (_table.c.n.in_([3, 1, 7]), 3),  # an IN list, spelled out when prepared
        (_table.c.n.in_([]), 0),  # an empty IN list
        (sa.and_(_table.c.name == "x4", _table.c.n + 0 == 4), 1),
        (_table.c.at > _AT + datetime.timedelta(days=5), 4),  # a value through its type's bind processor
        (_table.c.at.in_([_AT, _AT + datetime.timedelta(days=2)]), 2),  # the same inside an IN list
        (_table.c.name.like("x%"), 10),
    ],
)
def test_prepared_query_gives_the_rows_connection_execute_gives(
    registry: SqlRegistry, condition: sa.ColumnElement[bool], count: int
) -> None:
    """Check the driver path against SQLAlchemy's own execution of the same statement."""
    statement = sa.select(_table.c.n, _table.c.name).where(condition).order_by(_table.c.n)
    prepared = registry._db.prepareQuery(statement)
    assert prepared.sql is not None  # SQLite: run on the driver
    with registry._db.read() as connection:
        expected = [tuple(row) for row in connection.execute(statement)]
        assert registry._db.queryRows(connection, prepared) == expected
        assert registry._db.queryRows(connection, prepared) == expected  # and again
    assert len(expected) == count
    registry.close()


def test_prepared_query_failure_is_a_typed_error(registry: SqlRegistry) -> None:
    """Check that a driver error on the prepared path is raised as SQLAlchemy's, then typed by read()."""
    prepared = registry._db.prepareQuery(sa.select(_table.c.n))
    with registry._db.write() as connection:
        _table.drop(connection)
    with pytest.raises(DatabaseAccessError, match="no such table"), registry._db.read() as connection:
        registry._db.queryRows(connection, prepared)
    registry.close()


def test_driver_inserts_and_lookups_store_and_read_what_sqlalchemy_does(registry: SqlRegistry) -> None:
    """Check insertRows / selectRows (the per-dataset driver path) against SQLAlchemy's own, a DateTime too."""
    at = _AT + datetime.timedelta(days=20)  # no microseconds: sqlite3 alone would store them as none
    db = registry._db
    with db.write() as connection:
        db.insertRows(connection, sa.insert(_table), [{"n": 20, "name": "x20", "at": at}])
    byAt = sa.select(_table.c.n, _table.c.at).where(_table.c.at == sa.bindparam("at"))
    with db.read() as connection:
        assert [tuple(row) for row in connection.execute(byAt, {"at": at})] == [(20, at)]
        assert db.selectRows(connection, byAt, {"at": at}) == [(20, at)]
        assert db.selectRows(connection, byAt, {"at": _AT}) == [(0, _AT)]  # a row SQLAlchemy wrote
    registry.close()
