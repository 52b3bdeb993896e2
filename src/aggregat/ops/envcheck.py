"""``aggregat env check``: is every configured connection reachable and writable, settings complete?

Each check returns a :class:`Check` with a one-line, masked message; a check never raises. What is
checked:

- settings: weather models and packages known, sites/areas files exist and parse, forecast
  targets name known sites, time zone and schedule times valid;
- storage (datalake, bank, registry, quarantine): write, read back and delete a probe object;
- energy DB: connect, ``SELECT 1``, the load table and its mapped columns exist, the forecast
  table exists (or will be created at the first publish) or the publish procedure is set;
- BigQuery, where ``[energy] source`` or ``publish_to`` uses it: credentials, the load table
  and its mapped columns, the forecast table's dataset;
- weather sources: one HEAD request with a short timeout to each HTTP source's base URL, with
  its credentials (skipped offline); a mirror's folder exists;
- Dask scheduler, if configured: a TCP connection to its address.
"""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from aggregat.config import Environment, mask
from aggregat.errors import AggregatError

if TYPE_CHECKING:
    from aggregat.weather.sources import Source

OK, WARNING, PROBLEM, SKIPPED = "ok", "warning", "problem", "skipped"
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


@dataclass
class Check:
    """The outcome of one check."""

    name: str
    status: str  # ok | warning | problem | skipped
    message: str
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "message": mask(self.message),
                "seconds": round(self.seconds, 3)}


def _run(name: str, fn: Callable[[], tuple[str, str]]) -> Check:
    start = time.perf_counter()
    try:
        status, message = fn()
    except Exception as exc:  # a check reports, it never crashes the command
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, AggregatError):  # our errors already say what and where
            text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        status, message = PROBLEM, text
    return Check(name, status, " ".join(mask(message).split())[:500],
                 time.perf_counter() - start)


# -- settings ------------------------------------------------------------------------------
def _check_models(env: Environment) -> tuple[str, str]:
    from aggregat.weather.products import get_product

    problems = []
    for model in env.weather.models:
        try:
            product = get_product(model)
        except Exception as exc:
            problems.append(str(exc))
            continue
        unknown = [p for p in env.weather.packages.get(model, []) if p not in product.packages]
        if unknown:
            problems.append(f"[weather.packages] {model}: unknown package(s) {unknown} (known: "
                            f"{', '.join(product.packages)})")
    for model in env.weather.packages:
        if model not in env.weather.models:
            problems.append(f"[weather.packages] names {model!r}, which is not in weather.models")
    if not env.weather.models:
        problems.append("[weather] models is empty: name at least one model")
    if problems:
        return PROBLEM, "; ".join(problems)
    return OK, f"models {', '.join(env.weather.models)}"


def _check_locations(env: Environment) -> tuple[str, str]:
    from aggregat.weather.sites import load_locations

    if not env.sites and not env.areas:
        return PROBLEM, ("no sites or areas configured: set sites = \"sites.csv\" "
                         f"(id,name,lat,lon) in [env.{env.name}] or [defaults]")
    locations = load_locations(env.sites, env.areas)
    known = set(locations.ids)
    problems = []
    for target in env.forecast.targets:
        missing = [s for s in target.sites if s not in known]
        if missing:
            problems.append(f"target {target.id!r} names unknown site(s) {missing[:5]}")
        other = [m for m in target.weather_models if m not in env.weather.models]
        if other:
            problems.append(f"target {target.id!r} uses model(s) {other} not in weather.models")
    if problems:
        return PROBLEM, "; ".join(problems)
    return OK, (f"{len(locations.site_ids)} sites, {len(locations.areas)} areas, "
                f"{len(env.forecast.targets)} targets")


def _check_schedule(env: Environment) -> tuple[str, str]:
    from zoneinfo import ZoneInfo

    problems = []
    try:
        ZoneInfo(env.forecast.timezone)
    except Exception:
        problems.append(f"[forecast] timezone {env.forecast.timezone!r} is not an IANA time zone")
    for key in ("daily_at", "weekly_at"):
        value = getattr(env.jobs, key)
        if not _HHMM.match(value):
            problems.append(f"[jobs] {key} = {value!r}: expected HH:MM")
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    if env.jobs.weekly_on.lower()[:3] not in days:
        problems.append(f"[jobs] weekly_on = {env.jobs.weekly_on!r}: expected one of {days}")
    intraday = ""
    if env.forecast.intraday and not problems:  # the intraday schedule needs a valid time zone
        from aggregat.ops.jobs import intraday_issues

        try:
            intraday_issues(env, "2026-01-01T00:00Z", "2026-01-02T00:00Z")
            intraday = f", intraday every {env.forecast.intraday_every_h:g} h"
        except AggregatError as exc:
            problems.append(str(exc))
    if problems:
        return PROBLEM, "; ".join(problems)
    return OK, (f"daily at {env.jobs.daily_at}, weekly on {env.jobs.weekly_on} at "
                f"{env.jobs.weekly_at}{intraday} ({env.forecast.timezone})")


def _check_calendar(env: Environment) -> tuple[str, str]:
    """The public- and school-holiday codes of [forecast] (the `holidays` package knows them)."""
    from aggregat.forecast.core.calendar import calendar_code, parse_holiday_code, school_zones

    fs, problems = env.forecast, []
    used = {"holidays": fs.holidays, "school_holidays": fs.school_holidays}
    for key, code in used.items():
        if calendar_code(code) is None:
            continue
        try:
            school_zones(code) if key == "school_holidays" else parse_holiday_code(code)
        except AggregatError as exc:
            problems.append(f"[forecast] {key}: {exc}")
    if problems:
        return PROBLEM, "; ".join(problems)
    return OK, ", ".join(f"{k} {v}" for k, v in used.items() if v.strip()) or "no holidays"


# -- storage -------------------------------------------------------------------------------
def probe_store(url: str) -> tuple[str, str]:
    """Write, read back and delete a probe object under ``url``."""
    from aggregat.storage import Store

    store = Store(url)
    rel = f".aggregat-probe-{uuid.uuid4().hex[:8]}"
    payload = uuid.uuid4().bytes
    try:
        store.write_bytes(rel, payload)
    except Exception as exc:
        return PROBLEM, f"{url} is not writable ({type(exc).__name__}: {exc})"
    try:
        same = store.read_bytes(rel) == payload
    except Exception as exc:
        store.remove(rel)
        return PROBLEM, f"{url}: written but not readable ({type(exc).__name__}: {exc})"
    try:
        store.remove(rel)
    except Exception as exc:
        return PROBLEM, f"{url}: probe object {rel} cannot be deleted ({exc})"
    if store.exists(rel):
        return PROBLEM, f"{url}: probe object {rel} is still there after deleting it"
    if not same:
        return PROBLEM, f"{url}: the probe object read back differs from what was written"
    return OK, f"{url} writable"


# -- energy DB -----------------------------------------------------------------------------
def _check_energy_db(env: Environment) -> tuple[str, str]:
    import sqlalchemy as sa

    from aggregat.energy.db import describe_error, make_engine, safe_url, validate_identifier

    settings = env.energy.model_copy(update={"timeout_s": min(env.energy.timeout_s, 10.0)})
    url = sa.engine.make_url(env.energy_db)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not url.query.get("uri") and not Path(url.database).is_file():
        # Connecting would create an empty file: report instead of changing anything.
        return PROBLEM, (f"energy DB file {url.database} does not exist; run `aggregat energy "
                         "init-db` (or `aggregat load import`) or fix energy_db")
    engine = make_engine(env.energy_db, settings)
    where = safe_url(engine.url)
    problems, notes = [], []
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
            inspector = sa.inspect(conn)
            schema, table = validate_identifier(env.energy.load_table, "load_table")
            if env.energy.source == "bigquery":
                notes.append("measured load from BigQuery")
            elif not inspector.has_table(table, schema=schema):
                problems.append(f"load table {env.energy.load_table!r} not found (create it, map "
                                "[energy] load_table, or run `aggregat energy init-db`)")
            else:
                have = {c["name"] for c in inspector.get_columns(table, schema=schema)}
                wanted = [env.energy.load_target_col, env.energy.load_time_col,
                          env.energy.load_value_col, env.energy.load_updated_col]
                missing = [c for c in wanted if c and c not in have]
                if missing:
                    problems.append(f"load table {env.energy.load_table!r} lacks column(s) "
                                    f"{missing} (has {sorted(have)}); fix the [energy] mapping")
            if env.energy.publish_to == "bigquery":
                notes.append("publishes to BigQuery")
            elif env.energy.publish_procedure:
                validate_identifier(env.energy.publish_procedure, "publish_procedure")
                notes.append(f"publishes via procedure {env.energy.publish_procedure}")
            else:
                schema, table = validate_identifier(env.energy.forecast_table, "forecast_table")
                if inspector.has_table(table, schema=schema):
                    notes.append(f"forecast table {env.energy.forecast_table}")
                else:
                    notes.append(f"forecast table {env.energy.forecast_table} will be created at "
                                 "the first publish")
    except sa.exc.SQLAlchemyError as exc:
        return PROBLEM, f"energy DB {where} unreachable: {describe_error(exc)}"
    finally:
        engine.dispose()
    if problems:
        return PROBLEM, f"energy DB {where}: " + "; ".join(problems)
    return OK, f"energy DB {where} reachable; " + "; ".join(notes)


def _check_bigquery(env: Environment) -> tuple[str, str]:
    from aggregat.energy.bigquery import check_bigquery

    problems, notes = check_bigquery(env.energy)
    if problems:
        return PROBLEM, "BigQuery: " + "; ".join(problems)
    return OK, "BigQuery reachable; " + "; ".join(notes)


# -- network -------------------------------------------------------------------------------
def _check_source(source: Source, timeout_s: float) -> tuple[str, str]:
    """One weather source: a mirror's folder exists; an HTTP source's base URL answers (one
    HEAD, with its credentials: a 401 means they are refused)."""
    import urllib3

    from aggregat.weather.mfapi import AuthRefused, TokenUnavailable
    from aggregat.weather.sources import MirrorSource

    url = source.address
    if isinstance(source, MirrorSource):
        if source.fs.exists(source.root):
            return OK, f"mirror {url} exists"
        return PROBLEM, f"mirror {url} does not exist; check [{source.setting}] base_url"
    http = urllib3.PoolManager(timeout=urllib3.Timeout(total=timeout_s), retries=False)
    try:
        auth = source.headers(http)
        resp = http.request("HEAD", source.base_url.rstrip("/") + "/", headers=auth,
                            redirect=True)
    except AuthRefused as exc:
        return PROBLEM, source.refusal(str(exc))
    except (urllib3.exceptions.HTTPError, TokenUnavailable) as exc:
        return PROBLEM, f"Météo-France base URL {url} unreachable ({type(exc).__name__}); check " \
                        f"[{source.setting}] base_url and the network/proxy"
    if resp.status == 401:
        return PROBLEM, source.refusal("HTTP 401")
    if resp.status >= 500:
        return WARNING, f"Météo-France base URL {url} answered HTTP {resp.status}"
    # Buckets often answer 403/404 on the bare prefix: a response means the host is reachable.
    return OK, f"{url} reachable (HTTP {resp.status})"


def _check_scheduler(address: str, timeout_s: float) -> tuple[str, str]:
    parsed = urlparse(address if "://" in address else f"tcp://{address}")
    if not parsed.hostname or not parsed.port:
        return PROBLEM, f"scheduler {address!r}: expected tcp://HOST:PORT"
    with socket.create_connection((parsed.hostname, parsed.port), timeout=timeout_s):
        pass
    return OK, f"Dask scheduler {address} accepts connections"


# -- all -----------------------------------------------------------------------------------
def check_environment(env: Environment, *, offline: bool = False,
                      timeout_s: float = 5.0) -> list[Check]:
    """Run every check of ``env``; never raises."""
    checks = [
        _run("settings: weather models", lambda: _check_models(env)),
        _run("settings: sites and targets", lambda: _check_locations(env)),
        _run("settings: schedule", lambda: _check_schedule(env)),
        _run("settings: calendar", lambda: _check_calendar(env)),
    ]
    for name in ("datalake", "bank", "registry", "quarantine"):
        url = getattr(env, name)
        checks.append(_run(f"storage: {name}", lambda url=url: probe_store(url)))
    if env.energy.source == "bigquery" and env.energy.publish_to == "bigquery":
        checks.append(Check("energy DB", SKIPPED, "not used: load and forecasts go through "
                                                  "BigQuery"))
    else:
        checks.append(_run("energy DB", lambda: _check_energy_db(env)))
    if "bigquery" in (env.energy.source, env.energy.publish_to):
        checks.append(_run("BigQuery", lambda: _check_bigquery(env)))
    from aggregat.weather.sources import configured_sources

    try:
        sources = configured_sources(env)
    except Exception as exc:  # a mirror's fsspec protocol not installed, ...
        sources = []
        checks.append(Check("weather sources", PROBLEM, mask(str(exc))[:500]))
    for source in sources:
        # The one default source keeps its name of old; configured ones go by theirs.
        name = f"weather source {source.name}" if env.weather.sources else "Météo-France"
        if offline:
            checks.append(Check(name, SKIPPED, "skipped (--offline)"))
        else:
            checks.append(_run(name, lambda source=source: _check_source(source, timeout_s)))
    if env.scheduler:
        checks.append(_run("Dask scheduler", lambda: _check_scheduler(env.scheduler, timeout_s)))
    return checks


def problems(checks: list[Check]) -> list[Check]:
    """The checks that failed."""
    return [c for c in checks if c.status == PROBLEM]
