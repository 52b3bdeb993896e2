"""BigQuery as the energy side: measured load in (``energy sync``), forecasts out (``publish``).

Chosen by ``[energy] source = "bigquery"`` / ``publish_to = "bigquery"`` (config.EnergySettings).
Everything goes through the official ``google-cloud-bigquery`` client (the ``bigquery`` extra).

Credentials come from the environment only: a service-account JSON file named by
``GOOGLE_APPLICATION_CREDENTIALS``, or application default credentials. With
``BIGQUERY_EMULATOR_HOST`` set (``host:port`` or a URL), the client talks to that emulator with
anonymous credentials instead.

- :func:`read_bigquery`: a table or a query as an iterator of Arrow record batches (pages of the
  REST API), for sync and for any other reader (the weather history import).
- :func:`sync_load_bigquery`: the same guarantees as the energy-DB sync (energy/sync.py):
  ordered by the watermark column, read from ``watermark - sync_lookback_days``, each batch
  upserted into the bank before the watermark is saved.
- :func:`publish_bigquery`: one MERGE job per issue on (target_id, issue_time, valid_time): new
  rows inserted, changed rows updated, rows of the issue no longer forecast deleted; an unchanged
  row is left alone, so republishing changes nothing (not even ``published_at``). The rows travel
  as one array-of-struct query parameter: no staging table to create, load and drop.

Errors are one masked line (:class:`~aggregat.errors.EnergyDBError`, or ConfigError for a
setting). Transient errors are retried within ``[energy] timeout_s`` (the client's own default
would go on for 10 minutes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd

from aggregat.config import BIGQUERY_TABLE, EnergySettings, mask
from aggregat.errors import ConfigError, EnergyDBError

if TYPE_CHECKING:
    import pyarrow as pa
    from google.cloud import bigquery

    from aggregat.energy.publish import PublishReport
    from aggregat.energy.sync import SyncReport
    from aggregat.plausibility import Plausibility

log = logging.getLogger(__name__)

EMULATOR_VAR = "BIGQUERY_EMULATOR_HOST"
_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,299}")


def _check_installed() -> None:
    try:
        import google.cloud.bigquery  # noqa: F401
    except ImportError:
        raise ConfigError("BigQuery is configured ([energy] source or publish_to) but "
                          "google-cloud-bigquery is not installed: pip install "
                          "'aggregat[bigquery]'") from None


def client(project: str | None = None, location: str | None = None) -> bigquery.Client:
    """A BigQuery client: the emulator of ``$BIGQUERY_EMULATOR_HOST`` (anonymous), else the
    environment's credentials (``GOOGLE_APPLICATION_CREDENTIALS`` or application defaults)."""
    _check_installed()
    from google.auth.exceptions import GoogleAuthError
    from google.cloud import bigquery

    host = os.environ.get(EMULATOR_VAR, "").strip()
    if host:
        from google.auth.credentials import AnonymousCredentials

        endpoint = host if "://" in host else f"http://{host}"
        project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")
        if not project:  # no credentials to find a default project in
            raise ConfigError(f"{EMULATOR_VAR} is set but no project is known: set [energy] "
                              "bigquery_project (or GOOGLE_CLOUD_PROJECT)")
        return bigquery.Client(project=project, location=location,
                               credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": endpoint})
    try:
        return bigquery.Client(project=project, location=location)
    except (GoogleAuthError, OSError) as exc:
        raise ConfigError(
            f"BigQuery credentials not usable ({_one_line(exc)}): set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON file, or run `gcloud auth "
            f"application-default login` (or set {EMULATOR_VAR} for an emulator)") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    # google.api_core errors: "404 GET https://...: Not found: Table p:d.t"; keep the reason.
    text = re.sub(r"^(\d{3}) (GET|POST|PUT|PATCH|DELETE) \S+: ", r"\1 ", text)
    first = text.splitlines()[0] if text else type(exc).__name__
    return mask(f"{type(exc).__name__}: {first}")[:300]


def _fail(what: str, exc: BaseException, hint: str = "") -> EnergyDBError:
    return EnergyDBError(f"{what} failed on BigQuery: {_one_line(exc)}" + (f"; {hint}" if hint
                                                                           else ""))


def _api_errors() -> tuple[type[BaseException], ...]:
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from requests.exceptions import RequestException

    return (GoogleAPIError, GoogleAuthError, RequestException)


def _call_options(timeout_s: float, retries: int, backoff_s: float = 1.0) -> dict[str, Any]:
    """Per-request timeout and retry of transient errors (the client's default keeps retrying
    for 10 minutes): within ``timeout_s`` in all, none with ``retries = 0``."""
    from google.cloud import bigquery as bqmod

    retry = (bqmod.DEFAULT_RETRY.with_deadline(timeout_s).with_delay(initial=backoff_s)
             if retries > 0 else None)
    return {"retry": retry, "timeout": timeout_s}


def _options(settings: EnergySettings) -> dict[str, Any]:
    return _call_options(settings.timeout_s, settings.retries, settings.retry_backoff_s)


def _job_options(options: dict[str, Any], *, insert: bool = False) -> dict[str, Any]:
    """``options`` for a query job: its own retry (rate limits, backend errors) bounded too. At
    insert none: any job_retry there adds the client's fixed 10-minute retry of the insert."""
    from google.cloud.bigquery.retry import DEFAULT_JOB_RETRY

    job_retry = (DEFAULT_JOB_RETRY.with_deadline(options["timeout"])
                 if options["retry"] is not None and not insert else None)
    return {**options, "job_retry": job_retry}


def is_table_id(query_or_table: str) -> bool:
    """Whether ``query_or_table`` names a table (``project.dataset.table``, backticks allowed)."""
    return bool(BIGQUERY_TABLE.fullmatch(query_or_table.strip().strip("`")))


def _project_of(table: str | None) -> str | None:
    return table.split(":")[-1].split(".")[0] if table else None


def read_bigquery(query_or_table: str, *, project: str | None = None,
                  location: str | None = None, params: Sequence[Any] = (),
                  page_rows: int | None = None, timeout_s: float = 60.0, retries: int = 3,
                  bq_client: bigquery.Client | None = None) -> Iterator[pa.RecordBatch]:
    """The rows of a table (``project.dataset.table``) or of a query, as Arrow record batches of
    at most ``page_rows`` rows (one per page of the API; the Storage Read API is not used).

    ``params``: query parameters (``bigquery.ScalarQueryParameter``) for ``@name`` in a query.
    ``project``: the project running the query job (default: the table's, else the client's).
    ``timeout_s``: per request, and for all retries of transient errors (``retries = 0``: none).
    Errors are :class:`EnergyDBError` lines; nothing is read before the first batch is asked for.
    """
    bq = bq_client or client(project or _project_of(_table_or_none(query_or_table)), location)
    errors = _api_errors()
    options = _call_options(timeout_s, retries)
    try:
        if is_table_id(query_or_table):
            rows = bq.list_rows(query_or_table.strip().strip("`"), page_size=page_rows,
                                **options)
        else:
            from google.cloud import bigquery as bqmod

            config = bqmod.QueryJobConfig(query_parameters=list(params))
            job = bq.query(query_or_table, job_config=config,
                           **_job_options(options, insert=True))
            rows = job.result(page_size=page_rows, **_job_options(options))
        yield from rows.to_arrow_iterable()
    except errors as exc:
        raise _fail("read", exc, "check the table or query and the credentials") from None


def _table_or_none(text: str) -> str | None:
    return text.strip().strip("`") if is_table_id(text) else None


# -- sync --------------------------------------------------------------------------------------
def _source(settings: EnergySettings) -> tuple[str, bool]:
    """The configured load source, and whether it is a query (else a table)."""
    table, query = settings.bigquery_load_table, settings.bigquery_load_query
    if bool(table) == bool(query):
        raise ConfigError("[energy] source = \"bigquery\" needs exactly one of "
                          "bigquery_load_table (project.dataset.table) or bigquery_load_query "
                          "(a SELECT returning the load_*_col columns); set one")
    return (query, True) if query else (table, False)


def source_identity(settings: EnergySettings) -> tuple[str, str]:
    """(sync_state partition key, source id) of the BigQuery load source: hashes, because the
    table or query may hold a secret (``${PROJECT}``) and the bank must not."""
    text, is_query = _source(settings)
    digest = hashlib.sha256(f"bigquery\0{'query' if is_query else 'table'}\0{text}".encode())
    return f"bigquery-{digest.hexdigest()[:16]}", digest.hexdigest()[16:32]


def _column(name: str | None, setting: str) -> str:
    if not name or not _COLUMN.fullmatch(name):
        raise ConfigError(f"[energy] {setting} = {name!r} is not a plain column name (letters, "
                          "digits, _); fix the setting")
    return f"`{name}`"


def load_query(settings: EnergySettings, since: datetime | None) -> tuple[str, list[Any]]:
    """The SELECT of one sync: mapped columns, from ``since`` (inclusive), watermark order."""
    from google.cloud import bigquery as bqmod

    text, is_query = _source(settings)
    cols = [_column(settings.load_target_col, "load_target_col"),
            _column(settings.load_time_col, "load_time_col"),
            _column(settings.load_value_col, "load_value_col")]
    if settings.load_updated_col:
        cols.append(_column(settings.load_updated_col, "load_updated_col"))
    wm = cols[3] if settings.load_updated_col else cols[1]
    source = f"({text}) AS src" if is_query else f"`{text}`"
    sql = f"SELECT {', '.join(cols)} FROM {source}"
    params: list[Any] = []
    if since is not None:
        sql += f" WHERE {wm} >= @since"
        params.append(bqmod.ScalarQueryParameter("since", "TIMESTAMP", since))
    return sql + f" ORDER BY {wm}", params


def sync_load_bigquery(bank, settings: EnergySettings, *, full: bool = False,
                       plausibility: Plausibility | None = None,
                       bq_client: bigquery.Client | None = None) -> SyncReport:
    """Copy new and corrected measured load from BigQuery into the bank (module doc)."""
    from aggregat.energy.sync import SyncReport, copy_chunks, load_state
    from aggregat.plausibility import Plausibility

    started = time.perf_counter()
    plausibility = plausibility or Plausibility(settings.max_load_mw)
    text, is_query = _source(settings)
    key, source_id = source_identity(settings)
    watermark = None if full else load_state(bank, settings, (key, source_id))
    since = (watermark - timedelta(days=settings.sync_lookback_days)
             if watermark is not None else None)
    sql, params = load_query(settings, since)
    label = "BigQuery query" if is_query else f"BigQuery table {mask(text)}"
    report = SyncReport(table=label, watermark_before=watermark, watermark_after=watermark,
                        full=watermark is None)
    project = settings.bigquery_project or _project_of(None if is_query else text)
    bq = bq_client or client(project, settings.bigquery_location)
    names = ["target_id", "time", "load_mw"] + (["updated_at"] if settings.load_updated_col
                                                 else [])

    def chunks() -> Iterator[pd.DataFrame]:
        for batch in read_bigquery(sql, params=params, page_rows=settings.sync_fetch_rows,
                                   timeout_s=settings.timeout_s, retries=settings.retries,
                                   bq_client=bq):
            yield batch.rename_columns(names).to_pandas()

    try:
        copy_chunks(chunks(), bank, settings, (key, source_id), report, plausibility)
    except EnergyDBError as exc:
        raise EnergyDBError(f"energy sync from {label}: {exc}; the bank keeps what earlier runs "
                            "copied; rerun later") from None
    report.duration_s = time.perf_counter() - started
    (log.warning if report.rows_rejected else log.debug)(report.summary())
    return report


# -- publish -----------------------------------------------------------------------------------
FORECAST_SCHEMA = (("target_id", "STRING", "REQUIRED"), ("issue_time", "TIMESTAMP", "REQUIRED"),
                   ("valid_time", "TIMESTAMP", "REQUIRED"), ("p10_mw", "FLOAT64", "NULLABLE"),
                   ("p50_mw", "FLOAT64", "NULLABLE"), ("p90_mw", "FLOAT64", "NULLABLE"),
                   ("model_version", "STRING", "REQUIRED"),
                   ("published_at", "TIMESTAMP", "REQUIRED"))
_KEY = ("target_id", "issue_time", "valid_time")
_VALUES = ("p10_mw", "p50_mw", "p90_mw", "model_version")


def forecast_table_id(settings: EnergySettings) -> str:
    if not settings.bigquery_forecast_table:
        raise ConfigError("[energy] publish_to = \"bigquery\" needs bigquery_forecast_table = "
                          "\"project.dataset.table\"; set it")
    return settings.bigquery_forecast_table


def merge_statement(table: str) -> str:
    """One MERGE of the rows of ``@rows`` (array of structs) into ``table`` for issue ``@issue``
    and targets ``@targets``: insert new keys, update changed values, delete the issue's rows
    that are no longer forecast; unchanged rows are not touched."""
    cols = ", ".join(c for c, _, _ in FORECAST_SCHEMA)
    values = ", ".join(f"S.{c}" for c, _, _ in FORECAST_SCHEMA)
    on = " AND ".join(f"T.{c} = S.{c}" for c in _KEY)
    changed = " OR ".join(f"T.{c} IS DISTINCT FROM S.{c}" for c in _VALUES)
    update = ", ".join(f"{c} = S.{c}" for c in (*_VALUES, "published_at"))
    # The struct's fields named one by one: emulators expand UNNEST of structs unevenly.
    fields = ", ".join(f"r.{c}" for c, _, _ in FORECAST_SCHEMA)
    return (f"MERGE `{table}` T USING (SELECT {fields} FROM UNNEST(@rows) AS r) S ON {on} "
            f"WHEN MATCHED AND ({changed}) THEN UPDATE SET {update} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values}) "
            "WHEN NOT MATCHED BY SOURCE AND T.issue_time = @issue "
            "AND T.target_id IN UNNEST(@targets) THEN DELETE")


def _ensure_table(bq: bigquery.Client, table: str, options: dict[str, Any]) -> None:
    from google.cloud import bigquery as bqmod

    spec = bqmod.Table(table, schema=[bqmod.SchemaField(n, t, mode=m)
                                      for n, t, m in FORECAST_SCHEMA])
    bq.create_table(spec, exists_ok=True, **options)


def _row_param(record: dict) -> Any:
    from google.cloud import bigquery as bqmod

    return bqmod.StructQueryParameter(None, *(
        bqmod.ScalarQueryParameter(name, kind, record[name]) for name, kind, _ in FORECAST_SCHEMA))


def merge_forecasts(bq: bigquery.Client, table: str, issue_time: datetime,
                    targets: list[str], records: list[dict],
                    options: dict[str, Any] | None = None) -> int:
    """Run the MERGE of one issue (one query job); returns the rows it changed."""
    from google.cloud import bigquery as bqmod

    row_type = bqmod.StructQueryParameterType(*(
        bqmod.ScalarQueryParameterType(kind, name=name) for name, kind, _ in FORECAST_SCHEMA))
    config = bqmod.QueryJobConfig(query_parameters=[
        bqmod.ArrayQueryParameter("rows", row_type, [_row_param(r) for r in records]),
        bqmod.ScalarQueryParameter("issue", "TIMESTAMP", issue_time),
        bqmod.ArrayQueryParameter("targets", "STRING", targets),
    ])
    options = options or _call_options(60.0, 3)
    job = bq.query(merge_statement(table), job_config=config,
                   **_job_options(options, insert=True))
    job.result(**_job_options(options))
    return int(job.num_dml_affected_rows or 0)


def publish_bigquery(bank, settings: EnergySettings, issue_time: datetime, *,
                     target_ids: list[str] | None = None,
                     bq_client: bigquery.Client | None = None) -> PublishReport:
    """Merge the bank's forecasts of ``issue_time`` into ``bigquery_forecast_table`` (module
    doc); the table is created (unpartitioned schema of energy/schema.py) if missing."""
    from aggregat.energy.publish import PublishReport, issue_records

    table = forecast_table_id(settings)
    issue_time, records, targets, published_at = issue_records(bank, issue_time, target_ids)
    started = time.perf_counter()
    bq = bq_client or client(settings.bigquery_project or _project_of(table),
                             settings.bigquery_location)
    try:
        _ensure_table(bq, table, _options(settings))
        changed = merge_forecasts(bq, table, issue_time, targets, records, _options(settings))
    except _api_errors() as exc:
        raise _fail(f"energy publish of issue {issue_time:%Y-%m-%dT%H:%MZ} into "
                    f"{mask(table)}", exc,
                    "forecast kept in the bank; will be published by the next run") from None
    report = PublishReport(issue_time, len(records), targets, f"BigQuery table {mask(table)}",
                           published_at, time.perf_counter() - started, rows_changed=changed)
    log.debug(report.summary())
    return report


def check_bigquery(settings: EnergySettings) -> tuple[list[str], list[str]]:
    """(problems, notes) of the BigQuery side, one masked line each, for ``env check``: the
    client can be made, the load table has the mapped columns, the forecast table's dataset
    exists. A load query is not run (it may be costly)."""
    problems: list[str] = []
    notes: list[str] = []
    errors = _api_errors()
    try:
        if settings.source == "bigquery":
            text, is_query = _source(settings)
            project = settings.bigquery_project or _project_of(None if is_query else text)
            bq = client(project, settings.bigquery_location)
            if is_query:
                notes.append("measured load from a query (not run by the check)")
            else:
                have = {f.name for f in bq.get_table(text, **_options(settings)).schema}
                wanted = [settings.load_target_col, settings.load_time_col,
                          settings.load_value_col, settings.load_updated_col]
                missing = [c for c in wanted if c and c not in have]
                if missing:
                    problems.append(f"load table {mask(text)} lacks column(s) {missing} (has "
                                    f"{sorted(have)}); fix the [energy] mapping")
                else:
                    notes.append(f"load table {mask(text)}")
        if settings.publish_to == "bigquery":
            table = forecast_table_id(settings)
            bq = client(settings.bigquery_project or _project_of(table),
                        settings.bigquery_location)
            dataset = table.rsplit(".", 1)[0]
            bq.get_dataset(dataset, **_options(settings))
            notes.append(f"forecast table {mask(table)} (created at the first publish if missing)")
    except ConfigError as exc:
        problems.append(str(exc))
    except errors as exc:
        problems.append(_one_line(exc))
    return problems, notes
