"""Check that the services the tests need answer, and say what to install when they don't.

Dev/test tooling only. Creates the PostgreSQL database when the server answers but the
database does not exist yet.
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlparse


def check_postgres(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    dbname = parsed.path.lstrip("/") or "postgres"
    admin = parsed._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin, connect_timeout=5, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{dbname}"')
    except psycopg.OperationalError as exc:
        sys.exit(
            f"PostgreSQL is not reachable at {parsed.hostname}:{parsed.port or 5432} ({exc}).\n"
            "The tests run on PostgreSQL only. Install and start it, e.g. on Debian:\n"
            "  apt-get install postgresql && pg_ctlcluster 15 main start\n"
            "or point DATABASE_URL at a server (postgres://USER@HOST:PORT/DBNAME)."
        )


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        sys.exit(
            f"Redis is not reachable at {url} ({exc}).\n"
            "The Celery worker tests need Redis. Install and start it, e.g. on Debian:\n"
            "  apt-get install redis-server && redis-server --daemonize yes --bind 127.0.0.1\n"
            "or set TEST_REDIS_URL."
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--redis", required=True)
    args = parser.parse_args()
    check_postgres(args.database)
    check_redis(args.redis)


if __name__ == "__main__":
    main()
