"""``aggregat env check --access``: does every user and credential have only the rights it needs?

For each environment (one, or every environment of the config file):

- energy DB, sync user (``[energy] sync_db``, else ``energy_db``): can read the load table and
  writes nothing: no INSERT/UPDATE/DELETE/TRUNCATE on any table, owns no table or the database,
  no CREATE on a schema or the database, not superuser, CREATEROLE or CREATEDB, member of no role
  that is (nor of ``pg_write_all_data`` and the server-file roles);
- publish user (``publish_db``, else ``energy_db``): the same rules, except SELECT, INSERT and
  DELETE on the forecast table (what a publish does), or EXECUTE on ``publish_procedure`` and no
  table at all when publish calls one;
- SQLite has no users or grants: sync and publish write with the file's OS permissions, so only
  "not world-writable" is checked, and the rest is reported as not checkable;
- between environments: another environment's credentials cannot write this one's root or bank
  (a probe object is PUT with them; it must be denied, and is deleted if it was not) nor its
  PostgreSQL database (its users connect to this database; any write right is a violation), no
  two environments share a root, bank or database, and no secret value is shared (resolved
  values compared, never printed);
- dashboard: with ``[dashboard] actions = true``, ``AGGREGAT_<ENV>_DASHBOARD_TOKEN`` is set.

Each finding is one masked line with the fix; a check never raises.
"""

from __future__ import annotations

import os
import stat
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from aggregat.config import (
    Environment,
    environment_names,
    load_environment,
    mask,
    register_secret,
    secret_var,
)
from aggregat.errors import AggregatError

OK, VIOLATION, WARNING, UNCHECKED = "ok", "violation", "warning", "unchecked"

# Roles whose members can write anything or reach the server's files and programs.
_POWER_ROLES = ("pg_write_all_data", "pg_write_server_files", "pg_execute_server_program",
                "pg_read_server_files")
_SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') " \
                  "AND n.nspname NOT LIKE 'pg\\_%'"
_WRITES = ("INSERT", "UPDATE", "DELETE", "TRUNCATE")
# What a publish into the forecast table does: delete the rows (WHERE reads), insert.
_PUBLISH_NEEDS = ("SELECT", "INSERT", "DELETE")


@dataclass
class Finding:
    """One access rule checked for one environment."""

    env: str
    check: str  # energy DB: sync user | energy DB: publish user | storage | secrets | dashboard
    status: str  # ok | violation | warning | unchecked
    message: str
    fix: str = ""

    def line(self) -> str:
        """``prod: <what> — <fix>``, masked."""
        return mask(f"{self.env}: {self.message}" + (f" — {self.fix}" if self.fix else ""))

    def as_dict(self) -> dict:
        return {"env": self.env, "check": self.check, "status": self.status,
                "message": mask(self.message), "fix": mask(self.fix)}


@dataclass
class AccessReport:
    """The access review of one or more environments."""

    envs: list[str]
    findings: list[Finding] = field(default_factory=list)

    @property
    def violations(self) -> list[Finding]:
        return [f for f in self.findings if f.status == VIOLATION]

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def exit_code(self) -> int:
        """0 when no rule is violated, 1 otherwise (as ``env check`` with a problem)."""
        return 0 if self.ok else 1

    def summary(self) -> str:
        others = [f for f in self.findings if f.status in (WARNING, UNCHECKED)]
        tail = f", {len(others)} warning(s) or not checked" if others else ""
        names = ", ".join(self.envs)
        if self.ok:
            return f"access ok: {names} ({len(self.findings)} checks{tail})"
        return f"{len(self.violations)} access violation(s) in {names}{tail}"


def _guard(env: str, check: str, fn: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return fn()
    except Exception as exc:  # a check reports, it never crashes the review
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        if not isinstance(exc, AggregatError):
            text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        return [Finding(env, check, UNCHECKED, f"{check}: not checked ({mask(text)[:300]})")]


# -- PostgreSQL grants ---------------------------------------------------------------------
def _quoted(name: str, setting: str) -> str:
    from aggregat.energy.db import validate_identifier

    schema, table = validate_identifier(name, setting)  # plain identifiers: no quote inside
    return ".".join(f'"{p}"' for p in (schema, table) if p)


def _rights(conn) -> dict:
    """The connected user's attributes, memberships, ownerships and write rights."""
    import sqlalchemy as sa

    q = lambda sql, **kw: conn.execute(sa.text(sql), kw).all()  # noqa: E731
    user, db, su, createrole, createdb, owns_db, db_create = q(
        "SELECT current_user, current_database(), r.rolsuper, r.rolcreaterole, r.rolcreatedb, "
        "pg_has_role(current_user, d.datdba, 'MEMBER'), "
        "has_database_privilege(current_database(), 'CREATE') "
        "FROM pg_roles r, pg_database d "
        "WHERE r.rolname = current_user AND d.datname = current_database()")[0]
    roles = [r for (r,) in q(
        "SELECT r.rolname FROM pg_roles r WHERE r.rolname <> current_user "
        "AND pg_has_role(current_user, r.oid, 'MEMBER') "
        "AND (r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolname = ANY(:power)) "
        "ORDER BY 1", power=list(_POWER_ROLES))]
    schemas = [s for (s,) in q(
        f"SELECT n.nspname FROM pg_namespace n WHERE {_SYSTEM_SCHEMAS} "
        "AND has_schema_privilege(n.oid, 'CREATE') ORDER BY 1")]
    tables = {}
    checks = ", ".join(f"has_table_privilege(c.oid, '{p}')" for p in _WRITES)
    for schema, name, owner, *can in q(
            f"SELECT n.nspname, c.relname, pg_has_role(current_user, c.relowner, 'MEMBER'), "
            f"{checks} FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            f"WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_SYSTEM_SCHEMAS} ORDER BY 1, 2"):
        writes = [p for p, yes in zip(_WRITES, can, strict=True) if yes]
        if owner or writes:
            tables[f"{schema}.{name}"] = (bool(owner), writes)
    return {"user": user, "db": db, "superuser": su, "createrole": createrole,
            "createdb": createdb, "owns_db": owns_db, "db_create": db_create, "roles": roles,
            "schemas": schemas, "tables": tables}


def _table_rights(conn, name: str, setting: str, privileges: Iterable[str]) -> list[str] | None:
    """The ``privileges`` the user lacks on table ``name``; None if there is no such table."""
    import sqlalchemy as sa

    oid = conn.execute(sa.text("SELECT to_regclass(:t)::oid"),
                       {"t": _quoted(name, setting)}).scalar()
    if oid is None:
        return None
    return [p for p in privileges if not conn.execute(
        sa.text("SELECT has_table_privilege(CAST(:oid AS oid), :p)"),
        {"oid": oid, "p": p}).scalar()]


def _procedure_executable(conn, name: str) -> bool | None:
    """Whether the user may EXECUTE procedure ``name``; None if there is no such procedure."""
    import sqlalchemy as sa

    from aggregat.energy.db import validate_identifier

    schema, proc = validate_identifier(name, "publish_procedure")
    rows = conn.execute(sa.text(
        "SELECT has_function_privilege(p.oid, 'EXECUTE') FROM pg_proc p "
        "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.proname = :proc "
        "AND (n.nspname = :schema OR (:schema IS NULL AND pg_function_is_visible(p.oid)))"),
        {"proc": proc, "schema": schema}).all()
    return None if not rows else any(r[0] for r in rows)


def _excess(env: str, check: str, who: str, rights: dict,
            allowed_tables: dict[str, set[str]]) -> list[Finding]:
    """Violations of 'no DDL, no role rights, writes only where allowed' for one user."""
    user, db = rights["user"], rights["db"]
    out = []

    def bad(message: str, fix: str) -> None:
        out.append(Finding(env, check, VIOLATION, f'{who} "{user}" {message}', fix))

    for attr, what, alter in (("superuser", "is superuser", "NOSUPERUSER"),
                              ("createrole", "can create roles (CREATEROLE)", "NOCREATEROLE"),
                              ("createdb", "can create databases (CREATEDB)", "NOCREATEDB")):
        if rights[attr]:
            bad(what, f"ALTER ROLE {user} {alter}")
    for role in rights["roles"]:
        bad(f'is a member of role "{role}" (superuser, role or database creation, or writes '
            "everything)", f"REVOKE {role} FROM {user}")
    if rights["owns_db"]:
        bad(f"owns database {db}", f"ALTER DATABASE {db} OWNER TO <admin role>")
    if rights["db_create"]:
        bad(f"can CREATE in database {db}", f"REVOKE CREATE ON DATABASE {db} FROM {user} "
            "(and from PUBLIC)")
    for schema in rights["schemas"]:
        bad(f"can CREATE in schema {schema}", f"REVOKE CREATE ON SCHEMA {schema} FROM {user} "
            "(and from PUBLIC)")
    for table, (owner, writes) in rights["tables"].items():
        short = table.removeprefix("public.")
        if owner:
            bad(f"owns table {table} (can ALTER or DROP it)",
                f"ALTER TABLE {table} OWNER TO <admin role>")
        extra = [p for p in writes
                 if p not in allowed_tables.get(table, allowed_tables.get(short, set()))]
        if extra:
            bad(f"can {', '.join(extra)} table {table}",
                f"REVOKE {', '.join(extra)} ON {table} FROM {user}")
    return out


def _pg_user(env: Environment, role: str) -> list[Finding]:
    import sqlalchemy as sa

    from aggregat.energy.db import describe_error, make_engine, safe_url

    check = f"energy DB: {role} user"
    who = f"{role} user"
    settings = env.energy.model_copy(update={"timeout_s": min(env.energy.timeout_s, 10.0)})
    engine = make_engine(env.energy_url(role), settings)
    e = env.energy
    try:
        with engine.connect() as conn:
            rights = _rights(conn)
            out: list[Finding] = []
            user = rights["user"]
            if role == "sync":
                allowed: dict[str, set[str]] = {}
                missing = _table_rights(conn, e.load_table, "load_table", ["SELECT"])
                if missing is None:
                    out.append(Finding(env.name, check, VIOLATION,
                                       f"load table {e.load_table} not found as {who} "
                                       f'"{user}"', "create it or fix [energy] load_table"))
                elif missing:
                    out.append(Finding(env.name, check, VIOLATION,
                                       f'{who} "{user}" cannot SELECT from {e.load_table}',
                                       f"GRANT SELECT ON {e.load_table} TO {user}"))
            elif e.publish_procedure:
                allowed = {}
                can = _procedure_executable(conn, e.publish_procedure)
                if not can:
                    state = "does not exist" if can is None else f'is not executable by "{user}"'
                    out.append(Finding(
                        env.name, check, VIOLATION,
                        f"publish procedure {e.publish_procedure} {state}",
                        f"GRANT EXECUTE ON PROCEDURE {e.publish_procedure} TO {user}"
                        if can is not None else "create it or fix [energy] publish_procedure"))
            else:
                table = e.forecast_table if "." in e.forecast_table \
                    else f"public.{e.forecast_table}"
                allowed = {table: {"INSERT", "DELETE"}, e.forecast_table: {"INSERT", "DELETE"}}
                missing = _table_rights(conn, e.forecast_table, "forecast_table", _PUBLISH_NEEDS)
                if missing is None:
                    out.append(Finding(
                        env.name, check, VIOLATION,
                        f"forecast table {e.forecast_table} does not exist, so the first publish "
                        f'would need CREATE rights for "{user}"',
                        "create it as the owner (`aggregat energy init-db` with the admin URL), "
                        f"then GRANT SELECT, INSERT, DELETE ON {e.forecast_table} TO {user}"))
                elif missing:
                    out.append(Finding(
                        env.name, check, VIOLATION,
                        f'{who} "{user}" lacks {", ".join(missing)} on {e.forecast_table}',
                        f"GRANT {', '.join(missing)} ON {e.forecast_table} TO {user}"))
            out += _excess(env.name, check, who, rights, allowed)
    except sa.exc.SQLAlchemyError as exc:
        return [Finding(env.name, check, UNCHECKED,
                        f"{who}: energy DB {safe_url(engine.url)} unreachable "
                        f"({describe_error(exc)})", "run the review where the DB is reachable")]
    finally:
        engine.dispose()
    if not out:
        what = ("reads the load table, writes nothing" if role == "sync" else
                f"executes {e.publish_procedure} only" if e.publish_procedure else
                f"writes {e.forecast_table} only")
        out.append(Finding(env.name, check, OK, f'{who} "{user}" {what}, no DDL or role rights'))
    return out


def _sqlite(env: Environment) -> list[Finding]:
    from sqlalchemy.engine import make_url

    path = make_url(env.energy_db).database or ""
    check = "energy DB"
    unchecked = Finding(env.name, check, UNCHECKED,
                        f"energy DB is SQLite ({path}): it has no users or grants, sync and "
                        "publish write with the file's OS permissions; only 'not world-writable' "
                        "is checked", "use PostgreSQL with one user each for sync and publish")
    if not path or path == ":memory:" or not Path(path).is_file():
        return [unchecked]
    if Path(path).stat().st_mode & stat.S_IWOTH:
        return [unchecked, Finding(env.name, check, VIOLATION,
                                   f"energy DB file {path} is world-writable",
                                   f"chmod o-w {path}")]
    return [unchecked]


def _energy_users(env: Environment) -> list[Finding]:
    from sqlalchemy.engine import make_url

    backends = {make_url(env.energy_url(r)).get_backend_name() for r in ("sync", "publish")}
    if backends == {"sqlite"}:
        return _guard(env.name, "energy DB", lambda: _sqlite(env))
    out = []
    sync_user = make_url(env.energy_url("sync")).username
    if sync_user and sync_user == make_url(env.energy_url("publish")).username:
        out.append(Finding(env.name, "energy DB: sync user", VIOLATION,
                           f'sync and publish share the energy-DB user "{sync_user}", so sync '
                           "can write", f"give sync a read-only user: [env.{env.name}.energy] "
                           'sync_db = "postgresql+pg8000://<reader>:${SYNC_DB_PASSWORD}@..."'))
    for role in ("sync", "publish"):
        if make_url(env.energy_url(role)).get_backend_name() == "postgresql":
            out += _guard(env.name, f"energy DB: {role} user", lambda r=role: _pg_user(env, r))
    return out


# -- between environments ------------------------------------------------------------------
def _db_address(url: str) -> tuple:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return (u.get_backend_name(), u.host, u.port, u.database, u.query.get("unix_sock"))


def _store_urls(env: Environment) -> dict[str, str]:
    """The root, and the bank, datalake, registry where they are not under it."""
    urls = {"root": env.root}
    for name in ("bank", "datalake", "registry"):
        url = getattr(env, name)
        if not url.rstrip("/").startswith(env.root.rstrip("/") + "/"):
            urls[name] = url
    return urls


def _probe_write(url: str, options: dict) -> bool:
    """True if a probe object can be written under ``url`` with ``options`` (then deleted)."""
    from aggregat.storage import Store

    store = Store(url, options)
    rel = f".aggregat-access-probe-{uuid.uuid4().hex[:8]}"
    try:
        store.fs.pipe_file(store.full(rel), b"access probe")
    except PermissionError:
        return False
    store.remove(rel)
    return True


def _cross_storage(target: Environment, other: Environment) -> list[Finding]:
    out = []
    creds = ("its storage_options" if other.storage_options else
             "no storage_options: this process's default credentials")
    for name, url in _store_urls(target).items():
        if "://" not in url or url.startswith("file://"):
            continue
        check = "storage"
        if _probe_write(url, other.storage_options):
            out.append(Finding(
                target.name, check, VIOLATION,
                f"{other.name}'s credentials ({creds}) can write {target.name}'s {name} {url}",
                f"give {other.name} credentials limited to its own bucket "
                f"([env.{other.name}] storage_options) and deny them on {url}"))
        else:
            out.append(Finding(target.name, check, OK,
                               f"{other.name}'s credentials cannot write {name} {url}"))
    return out


def _with_user(target_url: str, user_url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(user_url)
    return make_url(target_url).set(username=u.username, password=u.password) \
        .render_as_string(hide_password=False)


def _cross_db(target: Environment, other: Environment) -> list[Finding]:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from aggregat.energy.db import make_engine

    if make_url(target.energy_db).get_backend_name() != "postgresql":
        return []
    out = []
    users = {make_url(other.energy_url(r)).username: other.energy_url(r)
             for r in ("sync", "publish") if make_url(other.energy_url(r)).get_backend_name()
             == "postgresql"}
    users.setdefault(make_url(other.energy_db).username, other.energy_db)
    db = make_url(target.energy_db).database
    check = "energy DB: other environments"
    for user, url in users.items():
        if make_url(url).get_backend_name() != "postgresql":
            continue
        settings = target.energy.model_copy(update={"timeout_s": 10.0})
        engine = make_engine(_with_user(target.energy_db, url), settings)
        try:
            with engine.connect() as conn:
                rights = _rights(conn)
        except sa.exc.SQLAlchemyError:
            out.append(Finding(target.name, check, OK,
                               f'{other.name}\'s user "{user}" cannot connect to database {db}'))
            continue
        finally:
            engine.dispose()
        excess = _excess(target.name, check, f"{other.name}'s user", rights, {})
        if excess:
            out += excess
        else:
            out.append(Finding(target.name, check, WARNING,
                               f'{other.name}\'s user "{user}" can connect to database {db} '
                               "(and write nothing)",
                               f"REVOKE CONNECT ON DATABASE {db} FROM PUBLIC, then GRANT "
                               f"CONNECT to {target.name}'s users only"))
    return out


def _shared(a: Environment, b: Environment) -> list[Finding]:
    out = []
    for what, x, y in (("root", a.root, b.root), ("bank", a.bank, b.bank)):
        if x.rstrip("/") == y.rstrip("/"):
            out.append(Finding(a.name, "storage", VIOLATION,
                               f"{a.name} and {b.name} share the {what} {x}",
                               f"give each environment its own {what}"))
    if _db_address(a.energy_db) == _db_address(b.energy_db):
        out.append(Finding(a.name, "energy DB: other environments", VIOLATION,
                           f"{a.name} and {b.name} use the same energy database",
                           "give each environment its own database"))
    return out


def _all_secrets(env: Environment) -> dict[str, str]:
    secrets = env.secrets()
    token = os.environ.get(secret_var(env.name, "DASHBOARD_TOKEN"))
    if token:
        register_secret(token)
        secrets[secret_var(env.name, "DASHBOARD_TOKEN")] = token
    return secrets


def _shared_secrets(a: Environment, b: Environment) -> list[Finding]:
    mine, theirs = _all_secrets(a), _all_secrets(b)
    out = []
    for var_a, value in sorted(mine.items()):
        for var_b in sorted(v for v, other in theirs.items() if other == value):
            out.append(Finding(a.name, "secrets", VIOLATION,
                               f"secret {var_a} has the same value as {var_b}",
                               f"give {a.name} and {b.name} different credentials"))
    if not out:
        out.append(Finding(a.name, "secrets", OK,
                           f"no secret value shared with {b.name} ({len(mine)} compared)"))
    return out


# -- dashboard -----------------------------------------------------------------------------
def _dashboard(env: Environment) -> list[Finding]:
    var = secret_var(env.name, "DASHBOARD_TOKEN")
    if not env.dashboard.actions:
        return [Finding(env.name, "dashboard", OK, "dashboard actions are off")]
    if os.environ.get(var):
        return [Finding(env.name, "dashboard", OK, f"dashboard actions are on, {var} is set")]
    return [Finding(env.name, "dashboard", VIOLATION,
                    f"dashboard actions are on but {var} is not set",
                    f"export {var} (a long random value) or set [env.{env.name}.dashboard] "
                    "actions = false")]


# -- all -----------------------------------------------------------------------------------
def check_access(env: Environment | None = None, *,
                 config: str | os.PathLike[str] | None = None) -> AccessReport:
    """Review ``env`` (None: every environment of ``config``) against the others; never raises
    for a check (a config error of ``env`` itself raises, as for any command)."""
    source = env.source_file if env is not None else config
    names = environment_names(source)
    loaded: dict[str, Environment] = {}
    report = AccessReport([env.name] if env is not None else list(names))
    for name in names:
        if env is not None and name == env.name:
            loaded[name] = env
            continue
        try:
            loaded[name] = load_environment(name, source)
        except AggregatError as exc:
            if env is None:
                raise
            report.findings.append(Finding(
                name, "environments", UNCHECKED,
                f"not loaded, so not compared with {env.name} ({mask(str(exc))[:300]})",
                "run the review where every environment's secrets are set"))
    if env is not None and env.name not in loaded:
        loaded[env.name] = env
    reviewed = [loaded[n] for n in report.envs]
    for e in reviewed:
        report.findings += _guard(e.name, "energy DB", lambda e=e: _energy_users(e))
        report.findings += _guard(e.name, "dashboard", lambda e=e: _dashboard(e))
    for a, b in combinations(loaded.values(), 2):
        if a.name not in report.envs and b.name not in report.envs:
            continue
        report.findings += _guard(a.name, "shared resources", lambda a=a, b=b: _shared(a, b))
        report.findings += _guard(a.name, "secrets", lambda a=a, b=b: _shared_secrets(a, b))
        for target, other in ((a, b), (b, a)):
            report.findings += _guard(target.name, "storage",
                                      lambda t=target, o=other: _cross_storage(t, o))
            report.findings += _guard(target.name, "energy DB: other environments",
                                      lambda t=target, o=other: _cross_db(t, o))
    return report
