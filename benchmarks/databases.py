"""Throwaway PostgreSQL databases for the benchmarks: made on a local server, dropped after."""

from __future__ import annotations

import uuid


def postgres_database(admin_url: str) -> str | None:
    """The URL of a new empty database on the server of ``admin_url`` (any database there the
    user may connect to), or None, with the reason printed, if the server is unreachable."""
    import psycopg

    name = f"bidir_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable at {admin_url}: {exc}")
        return None
    return admin_url.rsplit("/", 1)[0] + "/" + name


def drop_database(admin_url: str, url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")
