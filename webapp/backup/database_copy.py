"""A consistent copy of the database, taken while the studio runs, and its way back into an empty one.

SQLite: its online backup API copies every page under one read lock into a file of its own. PostgreSQL: a
logical dump through SQLAlchemy in one REPEATABLE READ, read-only transaction (one snapshot for every
table): JSON lines, each table's rows in dependency order with typed values, then each table's sequence,
so restored ids continue past every id ever given (ids are never reused). The files of the install are
listed from the same snapshot (webapp.backup.referenced), never from the live database.
"""
from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Iterator

from sqlalchemy import JSON, Connection, Engine, MetaData, Table, Text, cast, create_engine, func, select, text
from sqlalchemy.pool import NullPool

ALEMBIC_TABLE = "alembic_version"
SQLITE_MEMBER = "database/studio.sqlite3"
DUMP_MEMBER = "database/postgresql.jsonl"
INSERT_ROWS = 500


@dataclass
class Snapshot:
    """The database as it was at one moment: its kind, schema revision, a connection that sees only that
    moment, and the file holding the copy (`member`: its path in the archive)."""

    kind: str
    revision: str
    connection: Connection
    member: str
    copy: Path


def database_kind(engine: Engine) -> str:
    return "sqlite" if engine.dialect.name == "sqlite" else "postgresql"


def schema_revision(connection: Connection) -> str | None:
    """The Alembic revision the database is at; None when it was never migrated."""
    try:
        return connection.scalar(text(f"SELECT version_num FROM {ALEMBIC_TABLE}"))
    except Exception:
        connection.rollback()
        return None


@contextmanager
def snapshot(engine: Engine, workdir: Path) -> Iterator[Snapshot]:
    """The database's copy under `workdir`, and a connection that reads that same moment."""
    if database_kind(engine) == "sqlite":
        with _sqlite_snapshot(engine, workdir / "studio.sqlite3") as taken:
            yield taken
    else:
        with _postgresql_snapshot(engine, workdir / "postgresql.jsonl") as taken:
            yield taken


@contextmanager
def _sqlite_snapshot(engine: Engine, copy: Path) -> Iterator[Snapshot]:
    source = engine.raw_connection()
    try:
        target = sqlite3.connect(copy)
        try:
            source.driver_connection.backup(target)  # all pages in one step: one consistent moment
        finally:
            target.close()
    finally:
        source.close()
    reader = create_engine(f"sqlite:///{copy}", poolclass=NullPool)
    try:
        with reader.connect() as connection:
            yield Snapshot("sqlite", schema_revision(connection), connection, SQLITE_MEMBER, copy)
    finally:
        reader.dispose()


@contextmanager
def _postgresql_snapshot(engine: Engine, copy: Path) -> Iterator[Snapshot]:
    with engine.connect().execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True) \
            as connection, connection.begin():
        revision = schema_revision(connection)
        with open(copy, "w", encoding="utf-8") as stream:
            dump(connection, revision, stream)
        yield Snapshot("postgresql", revision, connection, DUMP_MEMBER, copy)


def _tables(connection: Connection) -> list[Table]:
    """The database's tables (but Alembic's own), parents before children."""
    metadata = MetaData()
    metadata.reflect(bind=connection)
    return [table for table in metadata.sorted_tables if table.name != ALEMBIC_TABLE]


def _encoded(value):
    """A column's value in JSON with its type kept: what JSON has no form for is tagged."""
    if isinstance(value, datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, (bytes, memoryview)):
        return {"bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    return value


def _decoded(value):
    if not isinstance(value, dict):
        return value
    (tag, raw), = value.items()
    if tag == "json":  # a JSON column's stored text: JSON's null is not SQL's NULL
        loaded = json.loads(raw)
        return JSON.NULL if loaded is None else loaded
    return {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "decimal": Decimal,
            "bytes": base64.b64decode}[tag](raw)


def _readable(column):
    """What to select of a column: a JSON column as its stored text (so SQL NULL and JSON null differ)."""
    return cast(column, Text).label(column.name) if isinstance(column.type, JSON) else column


def dump(connection: Connection, revision: str | None, stream: IO[str]) -> None:
    """Write every table's rows (parents first), then where each table's id sequence stands."""
    tables = _tables(connection)
    _write(stream, {"revision": revision, "tables": [table.name for table in tables]})
    for table in tables:
        json_columns = [column.name for column in table.columns if isinstance(column.type, JSON)]
        _write(stream, {"table": table.name, "columns": [column.name for column in table.columns]})
        order = list(table.primary_key.columns) or list(table.columns)
        rows = connection.execution_options(yield_per=1000).execute(
            select(*[_readable(column) for column in table.columns]).order_by(*order))
        for row in rows:
            _write(stream, [{"json": value} if name in json_columns and value is not None else _encoded(value)
                            for name, value in zip(row._fields, row)])
    _write(stream, {"sequences": _sequences(connection, tables)})


def _write(stream: IO[str], item) -> None:
    stream.write(json.dumps(item, ensure_ascii=False))
    stream.write("\n")


def _id_column(table: Table):
    """The table's integer id column, when its key is one."""
    columns = list(table.primary_key.columns)
    try:
        return columns[0] if len(columns) == 1 and columns[0].type.python_type is int else None
    except NotImplementedError:  # a type without a Python counterpart is no id
        return None


def _sequences(connection: Connection, tables: list[Table]) -> list[list]:
    """[table, column, last value given] for each table whose id comes from a sequence."""
    found = []
    for table in tables:
        column = _id_column(table)
        sequence = column is not None and connection.scalar(
            select(func.pg_get_serial_sequence(table.name, column.name)))
        if sequence:
            found.append([table.name, column.name, connection.scalar(text(f"SELECT last_value FROM {sequence}"))])
    return found


def load(connection: Connection, stream: IO[str]) -> None:
    """Put a dump's rows into a database migrated to the dump's revision (in the caller's transaction):
    the rows the migrations seeded go first, then every table's rows, then the sequences continue past
    the highest id the source ever gave."""
    by_name = {table.name: table for table in _tables(connection)}
    for table in reversed(list(by_name.values())):
        connection.execute(table.delete())
    next(stream)  # the header
    table, columns, rows = None, [], []
    for line in stream:
        item = json.loads(line)
        if isinstance(item, list):
            rows.append(dict(zip(columns, map(_decoded, item))))
            if len(rows) >= INSERT_ROWS:
                rows = _insert(connection, table, rows)
            continue
        rows = _insert(connection, table, rows)
        if "table" in item:
            table, columns = by_name[item["table"]], item["columns"]
            for column in table.columns:
                if isinstance(column.type, JSON):
                    column.type.none_as_null = True
        else:
            _continue_sequences(connection, by_name, item["sequences"])


def _insert(connection: Connection, table: Table | None, rows: list[dict]) -> list:
    if rows:
        connection.execute(table.insert(), rows)
    return []


def _continue_sequences(connection: Connection, by_name: dict[str, Table], sequences: list[list]) -> None:
    for name, column_name, last_value in sequences:
        column = by_name[name].columns[column_name]
        highest = connection.scalar(select(func.coalesce(func.max(column), 0)))
        connection.execute(select(func.setval(func.pg_get_serial_sequence(name, column_name),
                                              max(int(last_value or 1), int(highest), 1))))


def place_sqlite_copy(copy: Path, database: Path) -> None:
    """Put a restored SQLite copy at the database's path (through a temporary name beside it)."""
    staged = database.with_name(f".{database.name}.restoring")
    shutil.copyfile(copy, staged)
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    staged.replace(database)
