"""Connections to the energy database: any SQLAlchemy URL, retries, masked errors.

SQLite is the embedded default, PostgreSQL the production reference. PostgreSQL goes through the
pure-Python ``pg8000`` driver only: ``psycopg`` and ``psycopg2-binary`` make the interpreter
segfault at exit when ``eccodes`` is loaded in the same process (see ARCHITECTURE, known traps), so
a ``postgresql://`` or ``postgresql+psycopg://`` URL is rewritten to ``postgresql+pg8000://``.

A unix socket is given as a query parameter, e.g.
``postgresql+pg8000://postgres@/energy?unix_sock=/run/postgresql/.s.PGSQL.5432``.

Every message that can reach a user is masked: the URL is rendered without its password and
driver errors go through :func:`aggregat.config.mask` (which knows every resolved secret).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from aggregat.config import EnergySettings, mask, register_secret
from aggregat.errors import ConfigError, EnergyDBError

log = logging.getLogger(__name__)

T = TypeVar("T")

# An SQL identifier we accept from the configuration: letters, digits, underscores; optionally
# one "schema." prefix. Anything else (quotes, spaces, semicolons, comments) is refused, so a
# configured name can never carry SQL; SQLAlchemy then quotes it as the dialect requires.
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")

# Errors worth retrying: the server is down, restarting, or the connection dropped.
RETRYABLE = (sa.exc.OperationalError, sa.exc.InterfaceError)


def validate_identifier(name: str, setting: str) -> tuple[str | None, str]:
    """Split ``[schema.]name`` after checking it is a plain identifier; ConfigError otherwise."""
    parts = name.split(".") if isinstance(name, str) else [""]
    if not 1 <= len(parts) <= 2 or not all(_IDENT.fullmatch(p) for p in parts):
        raise ConfigError(
            f"[energy] {setting} = {name!r} is not a plain SQL identifier (letters, digits, _; "
            "optionally schema.name); fix the setting"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def safe_url(url: str | URL) -> str:
    """``url`` as text without its password, for messages and logs."""
    try:
        return mask(make_url(url).render_as_string(hide_password=True))
    except Exception:  # not even parseable: mask whatever it is
        return mask(str(url))


def describe_error(exc: BaseException) -> str:
    """One masked line describing a driver error (without the SQL statement and parameters)."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    return mask(f"{type(orig).__name__}: {text}")[:300]


def _normalise_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(
            f"energy_db {mask(url)!r} is not a SQLAlchemy URL; fix the setting"
        ) from None
    if parsed.password:
        register_secret(str(parsed.password))
    backend, _, driver = parsed.drivername.partition("+")
    if backend in ("postgresql", "postgres") and driver != "pg8000":
        # psycopg crashes at exit alongside eccodes; pg8000 is pure Python and safe.
        parsed = parsed.set(drivername="postgresql+pg8000")
    return parsed


def make_engine(url: str, settings: EnergySettings | None = None, *,
                must_exist: bool = False) -> Engine:
    """An engine for ``url`` with pool pre-ping, timeouts and UTC sessions.

    SQLite files get their parent folder created, unless ``must_exist``: then a missing SQLite
    file is a ConfigError naming it (sqlite would create an empty database on connect, and a
    sync or publish would then run against the wrong, empty file). PostgreSQL sessions run in UTC
    so that ``timestamp`` columns compare with the UTC instants we bind.
    """
    settings = settings or EnergySettings()
    parsed = _normalise_url(url)
    backend = parsed.get_backend_name()
    kwargs: dict = {"pool_pre_ping": True}
    connect_args: dict = {}
    if backend == "sqlite":
        connect_args["timeout"] = settings.timeout_s  # wait on a locked database
        is_file = parsed.database and parsed.database != ":memory:" and not parsed.query.get("uri")
        if must_exist and is_file and not Path(parsed.database).is_file():
            raise ConfigError(
                f"energy_db {safe_url(parsed)}: SQLite file {Path(parsed.database).resolve()} "
                "does not exist; fix energy_db in aggregat.toml (a relative path is relative to "
                "the current folder) or create it with `aggregat energy init-db`")
        if is_file and not must_exist:
            # If this fails, connecting fails too, with the message of the operation.
            with contextlib.suppress(OSError):
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif backend == "postgresql":
        connect_args["timeout"] = settings.timeout_s
        kwargs["pool_recycle"] = 1800
    try:
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
    except Exception as exc:
        raise ConfigError(f"energy_db {safe_url(parsed)}: {describe_error(exc)}") from None

    if backend == "postgresql":
        @sa.event.listens_for(engine, "connect")
        def _utc(dbapi_conn, _record):  # noqa: ANN001
            cur = dbapi_conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.close()
            dbapi_conn.commit()
    return engine


def with_retries(
    action: Callable[[], T], settings: EnergySettings, what: str, engine: Engine,
    on_failure: str = "",
) -> T:
    """Run ``action`` retrying connection errors with exponential backoff.

    ``action`` must be safe to repeat (one transaction, or idempotent steps). After the last
    attempt, or on a non-retryable database error, raise :class:`EnergyDBError` with a masked
    one-line message: ``{what} failed on energy DB {url}: {error}; {on_failure}``.
    """
    attempts = max(1, settings.retries + 1)
    for attempt in range(1, attempts + 1):
        try:
            return action()
        except RETRYABLE as exc:
            if attempt == attempts:
                raise EnergyDBError(
                    f"{what} failed: energy DB {safe_url(engine.url)} unreachable after "
                    f"{attempts} attempts ({describe_error(exc)})"
                    + (f"; {on_failure}" if on_failure else "")
                ) from None
            delay = settings.retry_backoff_s * 2 ** (attempt - 1)
            log.warning("%s: energy DB error (%s), retry %d/%d in %.1fs", what,
                        describe_error(exc), attempt, attempts - 1, delay)
            engine.dispose()  # drop connections the server may have closed
            time.sleep(delay)
        except sa.exc.SQLAlchemyError as exc:
            raise EnergyDBError(
                f"{what} failed on energy DB {safe_url(engine.url)}: {describe_error(exc)}"
                + (f"; {on_failure}" if on_failure else "")
            ) from None
    raise AssertionError("unreachable")


def to_db_time(value: datetime, engine: Engine) -> datetime:
    """A UTC instant as the dialect stores it (naive UTC for SQLite, aware elsewhere)."""
    value = value.astimezone(UTC)
    return value.replace(tzinfo=None) if engine.dialect.name == "sqlite" else value


def table_ref(name: str, setting: str, *columns: str) -> sa.TableClause:
    """A lightweight table clause for a configured (validated) name with untyped columns."""
    schema, table = validate_identifier(name, setting)
    return sa.table(table, *(sa.column(c) for c in columns), schema=schema)


def require_table(conn: sa.Connection, name: str, setting: str, hint: str) -> None:
    """EnergyDBError unless table ``name`` exists."""
    schema, table = validate_identifier(name, setting)
    if not sa.inspect(conn).has_table(table, schema=schema):
        raise EnergyDBError(
            f"table {name!r} ([energy] {setting}) not found in energy DB "
            f"{safe_url(conn.engine.url)}; {hint}"
        )


def check_energy_db(url: str, settings: EnergySettings) -> list[str]:
    """Problems of the configured energy DB, one masked line each ([] when all is well).

    Checks that it is reachable, that the measured-load table has the mapped columns, and that a
    write transaction can start (for ``aggregat env check``). A missing forecast table is not a
    problem: the first publish creates it.
    """
    problems: list[str] = []
    try:
        engine = make_engine(url, settings)
    except (ConfigError, EnergyDBError) as exc:
        return [str(exc)]
    where = safe_url(engine.url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("SELECT 1"))
            schema, table = validate_identifier(settings.load_table, "load_table")
            inspector = sa.inspect(conn)
            if not inspector.has_table(table, schema=schema):
                problems.append(f"energy DB {where}: table {settings.load_table!r} "
                                "([energy] load_table) not found; fix the setting or run "
                                "`aggregat energy init-db`")
            else:
                present = {c["name"] for c in inspector.get_columns(table, schema=schema)}
                for setting in ("load_target_col", "load_time_col", "load_value_col",
                                "load_updated_col"):
                    column = getattr(settings, setting)
                    if column and column not in present:
                        problems.append(f"energy DB {where}: column {column!r} ([energy] "
                                        f"{setting}) not in table {settings.load_table!r}")
            validate_identifier(settings.forecast_table, "forecast_table")
            if settings.publish_procedure:
                validate_identifier(settings.publish_procedure, "publish_procedure")
    except ConfigError as exc:
        problems.append(str(exc))
    except sa.exc.SQLAlchemyError as exc:
        problems.append(f"energy DB {where} unreachable or unusable: {describe_error(exc)}")
    finally:
        engine.dispose()
    return problems
