"""Environments (local, dev, prod, ...) read from one ``aggregat.toml``.

Layout of the file::

    default_env = "dev"

    [defaults]                      # merged under every environment
    sites = "sites.csv"

    [env.dev]
    root = "s3://aggregat-dev"      # datalake, bank, registry default to folders under root
    energy_db = "postgresql+pg8000://aggregat:${ENERGY_DB_PASSWORD}@db:5432/energy"

    [env.dev.weather]
    models = ["arome-0025", "arpege-01"]

Secrets never live in the file: ``${NAME}`` in any string is replaced by the environment variable
``AGGREGAT_<ENV>_<NAME>`` (e.g. ``AGGREGAT_DEV_ENERGY_DB_PASSWORD``), and every resolved secret is
masked by :func:`mask` wherever text is printed, logged or stored. A placeholder in the userinfo
of a URL (``scheme://${USER}:${PASSWORD}@host``) is substituted percent-encoded, so a secret may
hold any character (``@ / : # %``, quotes, non-ASCII); SQLAlchemy's ``make_url`` decodes it.

With no config file, the embedded environment ``local`` keeps everything under ``./aggregat-data``
(or ``$AGGREGAT_HOME``): local folders for the datalake and bank, SQLite for the energy DB.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, quote_plus

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from aggregat.errors import ConfigError
from aggregat.parallel import DEFAULT_STALL_S

DEFAULT_ENV = "local"
CONFIG_FILENAME = "aggregat.toml"
# Météo-France moved its open-data bucket here in May 2026 (object.data.gouv.fr before).
DEFAULT_BASE_URL = "https://meteofrance-pnt.s3.rbx.io.cloud.ovh.net/pnt"
DEFAULT_SOURCE = "open-data"  # the name of the one source a config without `sources` has
# Météo-France's OAuth2 token endpoint (client credentials) for its authenticated API.
DEFAULT_TOKEN_URL = "https://portail-api.meteofrance.fr/token"
# Credentials are never written in the file: these settings take a ${NAME} placeholder only.
SECRET_SETTINGS = ("api_key", "client_id", "client_secret")

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# user:password@ in a URL; a literal password there is a secret in the file. The password runs to
# the last @ before the host (it may hold @ itself), never past a / or a space.
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-z][a-z0-9+.\-]*://)(?P<user>[^:/@\s]+):(?P<pw>[^/\s]+)@")
# The same check on a URL of the file: there the password ends at the host's @, never in a query,
# where an e-mail address (apprise's mailtos://…?to=ops@example.com) holds an @ too.
_URL_LITERAL_PASSWORD = re.compile(r"[a-z][a-z0-9+.\-]*://[^:/@?#\s]+:(?P<pw>[^/?#\s]+)@")
# The userinfo of a URL in the file, before substitution (placeholders hold no @ or /).
_USERINFO = re.compile(r"[a-z][a-z0-9+.\-]*://(?P<userinfo>[^/?#@\s]*)@", re.IGNORECASE)

# Every secret value resolved in this process; mask() hides them all.
_SECRETS: set[str] = set()

# project.dataset.table: project ids hold letters, digits, - (and a "domain:" prefix), datasets
# and tables letters, digits, _; nothing that could close a backtick-quoted name in SQL.
BIGQUERY_TABLE = re.compile(r"(?:[a-z][a-z0-9.\-]*:)?[A-Za-z][A-Za-z0-9\-]{1,62}"
                            r"\.[A-Za-z_][A-Za-z0-9_]{0,1023}\.[A-Za-z_][A-Za-z0-9_\-]{0,1023}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Valid ranges: a bad value is a one-line ConfigError at load, not a crash in the middle of a job.
Hour = Annotated[int, Field(ge=0, le=23)]
_HHMM = re.compile(r"^([01]?\d|2[0-3]):[0-5]\d$")
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class SourceSettings(_Section):
    """One place weather files come from (``[env.NAME.weather.source.SOURCE]``).

    ``open-data``: the public bucket layout over HTTP; ``mirror``: the same layout at any fsspec
    URL or folder (copied with fsspec, no HTTP); ``meteofrance-api``: Météo-France's
    authenticated API, with ``api_key`` or OAuth2 ``client_id``/``client_secret``;
    ``ecmwf-open-data``: ECMWF's open data (or a mirror of its layout, e.g. its AWS bucket),
    for the ``ifs-025`` product.
    """

    kind: Literal["open-data", "mirror", "meteofrance-api", "ecmwf-open-data"]
    base_url: str
    api_key: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    token_url: str = DEFAULT_TOKEN_URL
    # Requests per minute at this source, across all download workers (None: no cap).
    requests_per_minute: float | None = Field(None, gt=0)
    # fsspec options of a mirror (endpoint_url, anon, ...); secrets as ${NAME}.
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _credentials_fit_the_kind(self) -> SourceSettings:
        given = [k for k in SECRET_SETTINGS if getattr(self, k)]
        if self.kind != "meteofrance-api":
            if given:
                raise ValueError(f"{', '.join(given)}: only a meteofrance-api source takes "
                                 "credentials; remove them or set kind = \"meteofrance-api\"")
            return self
        oauth = bool(self.client_id or self.client_secret)
        if self.api_key and oauth:
            raise ValueError("give either api_key or client_id + client_secret, not both")
        if oauth and not (self.client_id and self.client_secret):
            raise ValueError("OAuth2 needs both client_id and client_secret")
        if not (self.api_key or oauth):
            raise ValueError("a meteofrance-api source needs api_key = \"${MF_API_KEY}\" "
                             "(or client_id and client_secret)")
        return self


class WeatherSettings(_Section):
    """What to fetch from Météo-France and how."""

    # The single open-data source at this URL; set either this or `sources` (None when
    # `sources` is set; the current open-data address when neither is).
    base_url: str | None = None
    # Source definitions, and the order they are tried in for every file.
    source: dict[str, SourceSettings] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)
    models: list[str] = Field(default_factory=lambda: ["arome-0025", "arpege-01"])
    # Packages per model; a model missing here gets the catalogue's default packages.
    packages: dict[str, list[str]] = Field(default_factory=dict)
    # Run hours (UTC) the daily job fetches and extracts for each model.
    runs: list[Hour] = Field(default_factory=lambda: [0])
    method: Literal["nearest", "bilinear"] = "nearest"
    download_workers: int = Field(8, ge=1)
    retries: int = Field(5, ge=0)
    retry_backoff_s: float = Field(0.5, ge=0)
    retry_backoff_max_s: float = Field(30.0, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    # Newest run looked for by --latest: runs younger than this are not probed.
    min_run_age_h: float = Field(2.0, ge=0)

    @field_validator("sources")
    @classmethod
    def _sources_are_defined(cls, names: list[str], info: ValidationInfo) -> list[str]:
        if names and info.data.get("base_url"):
            raise ValueError("set either base_url (one open-data source) or sources, not both; "
                             "move the URL into a [weather.source.NAME] table")
        if len(set(names)) != len(names):
            raise ValueError("a source is listed twice")
        defined = info.data.get("source")
        for name in names if defined is not None else ():
            if name not in defined:
                raise ValueError(f"source {name!r} has no [weather.source.{name}] table "
                                 f"(defined: {', '.join(defined) or 'none'})")
        return names

    @model_validator(mode="after")
    def _default_source(self) -> WeatherSettings:
        if not self.sources and self.base_url is None:
            self.base_url = DEFAULT_BASE_URL
        return self


_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Columns every copied table gets in the bank: a value column cannot take these names.
_BANK_COLUMNS = ("time", "available_at", "updated_at")
# Datasets of the bank that a copied table cannot replace.
RESERVED_DATASETS = ("weather_forecast", "load", "forecast", "sync_state", "rte_consumption",
                     "rte_tempo")


class TableSettings(_Section):
    """``[env.X.energy.tables.NAME]``: a table (or query) of the energy DB that ``energy sync``
    copies incrementally into the bank dataset NAME (aggregat.energy.tables)."""

    table: str | None = None  # [schema.]name
    query: str | None = None  # or a read-only SELECT (its columns are what it returns)
    time_col: str
    # Columns that, with the time, identify a row (a site id); empty: one row per time.
    keys: list[str] = Field(default_factory=list)
    # Newest-first column the copy resumes from (an update stamp); None: the time column.
    watermark_col: str | None = None
    # Value columns copied; empty: every other column.
    columns: list[str] = Field(default_factory=list)
    # When each row became known (what no-look-ahead features use): "+1h" (time + delay),
    # "D-1 19:00" (local time the day before), or a column; None: the watermark column (when
    # the row was written), else the time itself.
    available: str | None = None

    @field_validator("query")
    @classmethod
    def _select(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^\s*(select|with)\b", value, re.I):
            raise ValueError("write one read-only SELECT (or WITH ... SELECT) statement")
        if value is not None and ";" in value.strip().rstrip(";"):
            raise ValueError("one statement only: remove the ';'")
        return value.strip().rstrip(";") if value is not None else value

    @field_validator("time_col", "watermark_col")
    @classmethod
    def _column(cls, value: str | None) -> str | None:
        if value is not None and not _SQL_NAME.match(value):
            raise ValueError("not a plain column name (letters, digits, _)")
        return value

    @field_validator("keys", "columns")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _SQL_NAME.match(name):
                raise ValueError(f"{name!r} is not a plain column name (letters, digits, _)")
            if name in _BANK_COLUMNS:
                raise ValueError(f"{name!r} is a column the bank adds; rename it in a query "
                                 "(SELECT x AS other_name)")
        return value

    @field_validator("available")
    @classmethod
    def _available(cls, value: str | None) -> str | None:
        from aggregat.timeutil import check_availability

        return None if value is None else check_availability(value)

    def model_post_init(self, _context: Any) -> None:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of table = \"...\" or query = \"SELECT ...\"")


class EnergySettings(_Section):
    """Energy DB mapping: where measured load comes from and where forecasts go."""

    load_table: str = "load_measurements"
    load_target_col: str = "target_id"
    load_time_col: str = "time_utc"
    load_value_col: str = "value_mw"
    load_updated_col: str | None = "updated_at"
    sync_lookback_days: float = Field(3.0, ge=0)
    forecast_table: str = "load_forecasts"
    # Least privilege: the users sync reads with and publish writes with, each its own URL
    # (default: energy_db). `aggregat env check --access` reviews their grants.
    sync_db: str | None = None
    publish_db: str | None = None
    publish_procedure: str | None = None  # e.g. "insertPrevisionElec"; None: upsert into table
    publish_batch_rows: int = Field(5000, ge=1)
    # Connection behaviour (energy/db.py): socket/busy timeout, retries with exponential backoff.
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(1.0, ge=0)
    # Sync: rows fetched per round trip (server-side cursor) and rows per bank write + watermark.
    sync_fetch_rows: int = Field(20000, ge=1)
    sync_batch_rows: int = Field(200000, ge=1)
    # Plausibility of measured load (aggregat.plausibility): values above this (MW), or a
    # target's own max_mw, are rejected by `load import` and `energy sync`, never stored.
    max_load_mw: float = Field(1e5, gt=0)
    # Other tables copied into bank datasets by `energy sync` (name -> table), e.g.
    # [env.X.energy.tables.contracted_power] table = "contracts", time_col = "valid_from".
    tables: dict[str, TableSettings] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _dataset_names(cls, value: dict[str, TableSettings]) -> dict[str, TableSettings]:
        for name in value:
            if not re.match(r"^[a-z][a-z0-9_]{0,63}$", name):
                raise ValueError(f"table name {name!r}: the bank dataset's name, lower-case "
                                 "letters, digits and _")
            if name in RESERVED_DATASETS:
                raise ValueError(f"table name {name!r} is a dataset of aggregat itself; pick "
                                 "another name")
        return value

    # BigQuery (energy/bigquery.py) instead of energy_db, for either way: `source = "bigquery"`
    # reads measured load from bigquery_load_table (or the rows of bigquery_load_query, a SELECT
    # with the load_*_col columns); `publish_to = "bigquery"` merges forecasts into
    # bigquery_forecast_table (created if missing). Credentials come from the environment
    # (GOOGLE_APPLICATION_CREDENTIALS or application default credentials), never from here.
    source: Literal["db", "bigquery"] = "db"
    publish_to: Literal["db", "bigquery"] = "db"
    bigquery_load_table: str | None = None  # project.dataset.table
    bigquery_load_query: str | None = None
    bigquery_forecast_table: str | None = None  # project.dataset.table
    bigquery_project: str | None = None  # project running the jobs; default: the table's
    bigquery_location: str | None = None  # e.g. "EU"; default: the client's

    @field_validator("bigquery_load_table", "bigquery_forecast_table")
    @classmethod
    def _bigquery_table(cls, value: str | None) -> str | None:
        if value is not None and not BIGQUERY_TABLE.fullmatch(value):
            raise ValueError("write a BigQuery table as project.dataset.table (letters, digits, "
                             "_ and - in the project, no quotes)")
        return value


class ExtraFeature(_Section):
    """A bank dataset's column as a feature of a target (``extra_features``)."""

    dataset: str
    column: str
    # known: the value at the valid time, if known (available_at) by the issue time;
    # lagged: values up to the issue time only (lags of 1, 2 and 7 days, the last value).
    kind: Literal["known", "lagged"]
    # Rows of the dataset kept (key column = value); rows left that share a time are summed.
    where: dict[str, str] = Field(default_factory=dict)
    name: str | None = None  # the feature's name; default DATASET__COLUMN

    @property
    def feature(self) -> str:
        return self.name or f"{self.dataset}__{self.column}"

    @field_validator("dataset", "column", "name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", value):
            raise ValueError("letters, digits and _ only")
        return value


class TargetSettings(_Section):
    """A load series and the weather that drives it."""

    id: str
    sites: list[str] = Field(default_factory=list)  # site ids; empty: all sites
    weights: dict[str, float] = Field(default_factory=dict)
    weather_models: list[str] = Field(default_factory=lambda: ["arome-0025", "arpege-01"])
    # Weather variables fed to the model (bank column names); those absent from the bank are
    # skipped. Empty list: calendar and load lags only.
    weather_cols: list[str] = Field(default_factory=lambda: [
        "t2m_c", "rh2m_pct", "wind_speed_10m_ms", "ssrd_wm2", "tcc_pct"])
    # Plausible load (MW), checked on import and sync (aggregat.plausibility): max_mw defaults
    # to [energy] max_load_mw; negative values are implausible unless net_load (on-site
    # generation can exceed consumption), then min_mw defaults to -max.
    min_mw: float | None = None
    max_mw: float | None = None
    net_load: bool = False
    # Bank datasets' columns as features (docs/forecasting.md, "Extra features"), e.g.
    # [{dataset = "rte_consumption", column = "consumption_mw", kind = "lagged"}].
    extra_features: list[ExtraFeature] = Field(default_factory=list)
    # The target this one is part of (a portfolio hierarchy): a parent's load is the sum of its
    # children's; without load of its own in the bank it is computed as that sum. Forecasts are
    # reconciled so that parents equal the sum of their children (docs/forecasting.md).
    parent: str | None = None

    @field_validator("id", "parent")
    @classmethod
    def _safe_id(cls, value: str | None) -> str | None:
        # A target id names bank partitions and registry folders: refused here, at load, rather
        # than by the first job that writes it.
        from aggregat.bank.datasets import SAFE_SEGMENT

        if value is not None and (not SAFE_SEGMENT.match(value) or ".." in value
                                  or "@" in value):
            raise ValueError("use letters, digits and '_', '.', ':', '+', '-' (up to 128; no "
                             "'/', '@' or '..')")
        return value

    @field_validator("extra_features")
    @classmethod
    def _unique_features(cls, value: list[ExtraFeature]) -> list[ExtraFeature]:
        names = [f.feature for f in value]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"feature {dup[0]!r} twice: give one of them a name")
        return value


class GuardSettings(_Section):
    """Input guards (aggregat.forecast.core.guards): training leaves what they flag out, a
    prediction on flagged inputs falls back to the weekly baseline. 0 switches a guard off."""

    enabled: bool = True
    flatline_hours: float = Field(6.0, ge=0)      # identical values this long: a stuck meter
    min_completeness: float = Field(0.8, ge=0, le=1)  # of a day, and of the recent load
    spike_z: float = Field(8.0, ge=0)             # robust z-score of a spike's two differences
    level_shift: float = Field(0.3, ge=0)         # change of the median day mean / the level
    level_shift_days: int = Field(7, ge=2)        # days compared before and after
    weather_drift_z: float = Field(5.0, ge=0)     # mean shift of a weather column, training SDs
    weather_missing: bool = True                  # a weather column the model uses is absent
    lookback_days: float = Field(7.0, gt=0)       # recent load a prediction checks


class ForecastSettings(_Section):
    """Training, prediction and promotion."""

    issue_hour_local: Hour = 10
    timezone: str = "Europe/Paris"
    holidays: str = "FR"
    # School holidays as a feature: "FR" (the share of zones A, B, C on holiday, for a portfolio
    # across France), one zone ("FR-Zone C"), or codes separated by commas; empty: none.
    school_holidays: str = ""
    retrain_after_days: float = Field(7.0, ge=0)
    # The new model must beat the current one by this share of MAE (0.02: 2 %).
    promotion_margin: float = Field(0.02, ge=0, le=1)
    history_days_for_predict: int = Field(14, ge=1)
    # Recent window on which a new model must beat the current one.
    validation_days: int = Field(14, ge=1)
    min_train_days: int = Field(28, ge=1)  # fewer days of load: the model is the (flagged) baseline
    max_lead_h: float = Field(102.0, gt=0)  # longest forecast lead read from the bank
    # Intraday models (`--horizon intraday`): an issue every N hours for the next hours.
    # `intraday = true` wires them into the jobs: `run intraday`, weekly training, backfill,
    # `aggregat schedule` and the health thresholds; off, only the model commands use them.
    intraday: bool = False
    intraday_every_h: float = Field(6.0, gt=0, le=24)
    intraday_hours: float = Field(36.0, gt=0)
    # Blend intraday forecasts with the newest day-ahead forecast issued before them (weight 0
    # at lead 0 up to 1/2 from 6 h; forecast.blend): the two err differently.
    intraday_blend: bool = True
    # Overrides of the core's ModelConfig (learning_rate, max_rounds, num_leaves, ...;
    # p50_members = ["level", "nowcast"] leaves out the members built on the ridge).
    model_params: dict[str, float | int | str | list[str]] = Field(default_factory=dict)
    guards: GuardSettings = Field(default_factory=GuardSettings)
    targets: list[TargetSettings] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(value)
        except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
            raise ValueError("not an IANA time zone; write it like Europe/Paris") from None
        return value

    @field_validator("model_params")
    @classmethod
    def _known_model_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        # Checked here, at load: a typo found only inside training made the run "partial".
        return check_model_params(params) if params else params


class JobSettings(_Section):
    """Schedules and health thresholds."""

    daily_at: str = "05:30"  # local time of `aggregat schedule`
    # "when-available": `aggregat schedule` starts the job once the runs it uses are complete at
    # a source (polled from their expected publication, backoff data_poll_s .. data_poll_max_s);
    # past the deadline (daily: data_deadline, local; intraday: data_wait_min after the issue)
    # the job goes on with the newest complete earlier run and flags it. "at-time": daily_at.
    daily_start: Literal["at-time", "when-available"] = "at-time"
    intraday_start: Literal["at-time", "when-available"] = "at-time"
    data_deadline: str = "07:30"
    intraday_data_wait_min: float = Field(60.0, gt=0)
    data_poll_s: float = Field(60.0, gt=0)
    data_poll_max_s: float = Field(600.0, gt=0)
    weekly_on: str = "sun"
    weekly_at: str = "03:00"
    # `aggregat schedule` evaluates health and alerts every N minutes when [alerts] has channels
    # (late data and warnings are seen between jobs, and a job killed before its own alert hook
    # ran is still reported); 0: only the jobs' own alerts.
    alerts_every_min: int = Field(30, ge=0, le=1440)
    step_warn_s: float = Field(600.0, gt=0)
    stale_warn_h: float = Field(30.0, gt=0)
    # Health thresholds (aggregat health): warning / failed.
    step_fail_s: float = Field(3600.0, gt=0)  # one step's duration
    # Age of the newest weather run, forecast issue, publish.
    stale_fail_h: float = Field(54.0, gt=0)
    load_warn_h: float = Field(72.0, gt=0)  # age of the newest measured load (meters lag behind)
    load_fail_h: float = Field(168.0, gt=0)
    model_age_warn_days: float = Field(15.0, gt=0)  # age of the newest trained model
    model_age_fail_days: float = Field(35.0, gt=0)

    @field_validator("daily_at", "weekly_at", "data_deadline")
    @classmethod
    def _local_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("write a local time as HH:MM, e.g. 05:30")
        return value

    @field_validator("weekly_on")
    @classmethod
    def _weekday(cls, value: str) -> str:
        if value.lower()[:3] not in _WEEKDAYS:
            raise ValueError(f"write a day of the week: one of {', '.join(_WEEKDAYS)}")
        return value


class AlertSettings(_Section):
    """Where alerts go (aggregat.ops.alerts): apprise URLs, one per channel."""

    # e-mail ``mailtos://user:${SMTP_PASSWORD}@smtp.example.com:587?to=ops@example.com``,
    # webhooks ``json://host/path``, ``slack://…``, ``workflows://…`` (Teams); empty: no alerts.
    channels: list[str] = Field(default_factory=list)
    # true: one message per check cycle listing every open problem (when any opened or cleared).
    digest: bool = False
    # Where "what to do" points: the runbook page (docs/runbook.md on the documentation site).
    runbook_url: str = "docs/runbook.md"
    timeout_s: float = Field(15.0, gt=0)  # per channel and message

    @field_validator("channels")
    @classmethod
    def _apprise_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if "://" not in url:
                raise ValueError(f"{mask(url)!r} is not a channel URL: write an apprise URL "
                                 "like mailto://smtp.example.com?to=ops@example.com or "
                                 "json://hooks.example.com/aggregat")
        return value


class DashboardSettings(_Section):
    """``aggregat serve``: its actions (backfill, retrain, re-publish) run only when on here AND
    the token ``AGGREGAT_<ENV>_DASHBOARD_TOKEN`` is set (see :func:`dashboard_token`), which
    ``env check --access`` looks for."""

    actions: bool = False


# storage_options keys that hold credentials: written as ${NAME}, never literally.
_SECRET_OPTION = re.compile(r"secret|password|token|key|credential", re.IGNORECASE)
# gcsfs `token` values that name a method, not a credential.
_NOT_CREDENTIALS = frozenset({"anon", "google_default", "cloud", "browser"})
class RteSettings(_Section):
    """RTE open data (aggregat.rte): France's consumption and Tempo days from the ODRE portal."""

    base_url: str = "https://odre.opendatasoft.com"
    # OpenDataSoft Explore API v2.1: "exports" (one JSON export per window) or "records"
    # (pages of page_size rows).
    api: Literal["exports", "records"] = "exports"
    page_size: int = Field(100, ge=1, le=100)
    realtime_dataset: str = "eco2mix-national-tr"
    consolidated_dataset: str = "eco2mix-national-cons-def"
    # NOT verified against the portal (no network where this was written): check the id and
    # the field names on odre.opendatasoft.com and set them here (docs/rte.md).
    tempo_dataset: str | None = "couleur-tempo"
    tempo_date_field: str = "jour"
    tempo_colour_field: str = "couleur"
    # When values become known (aggregat.timeutil.available_at): realised consumption its time
    # plus a delay; RTE's D-1 and D forecasts and Tempo colours at a local time before the day.
    realised_available: str = "+1h"
    forecast_d1_available: str = "D-1 19:00"
    forecast_d_available: str = "D 07:00"
    tempo_available: str = "D-1 10:40"
    history_days: int = Field(730, ge=1)  # first sync without --since starts this far back
    lookback_days: float = Field(2.0, ge=0)  # each sync re-reads this much before its watermark
    window_days: int = Field(31, ge=1)  # rows per request window (and per bank write + watermark)
    retries: int = Field(5, ge=0)
    retry_backoff_s: float = Field(1.0, ge=0)
    retry_backoff_max_s: float = Field(60.0, ge=0)
    timeout_s: float = Field(60.0, gt=0)

    @field_validator("realised_available", "forecast_d1_available", "forecast_d_available",
                     "tempo_available")
    @classmethod
    def _rule(cls, value: str) -> str:
        from aggregat.timeutil import check_availability, is_column_rule

        value = check_availability(value)
        if is_column_rule(value):
            raise ValueError("write '+1h' or 'D-1 19:00' here, not a column")
        return value

    @field_validator("realtime_dataset", "consolidated_dataset", "tempo_dataset",
                     "tempo_date_field", "tempo_colour_field")
    @classmethod
    def _dataset_id(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", value):
            raise ValueError("an ODRE dataset or field id: letters, digits, '-', '_', '.'")
        return value


class Environment(_Section):
    """The resolved settings of one environment."""

    name: str
    root: str
    datalake: str
    bank: str
    registry: str
    quarantine: str  # where `weather extract` moves corrupt datalake files (+ a .reason each)
    energy_db: str
    sites: str | None = None
    areas: str | None = None
    scheduler: str | None = None  # Dask scheduler address, e.g. tcp://10.0.0.5:8786
    # Longest wait (s) for the next task to end on the Dask cluster; then the step fails (exit 3).
    scheduler_stall_s: float = Field(DEFAULT_STALL_S, gt=0)
    workers: int | None = Field(None, ge=1)  # processes for extraction; None = all cores
    weather: WeatherSettings = Field(default_factory=WeatherSettings)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    forecast: ForecastSettings = Field(default_factory=ForecastSettings)
    jobs: JobSettings = Field(default_factory=JobSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    # fsspec options of every store of this environment (datalake, bank, registry, lock), e.g.
    # {key = "${S3_KEY}", secret = "${S3_SECRET}"}: each environment its own credentials.
    storage_options: dict[str, Any] = Field(default_factory=dict)
    rte: RteSettings = Field(default_factory=RteSettings)
    source_file: str | None = None  # the aggregat.toml it came from, None for the embedded one

    # The secrets resolved for this environment: variable name -> value (never printed).
    _secrets: dict[str, str] = PrivateAttr(default_factory=dict)

    def masked_dump(self) -> dict[str, Any]:
        """Settings as a dict with every secret masked (for ``env show``)."""
        return mask_tree(self.model_dump())

    def energy_url(self, role: Literal["sync", "publish"]) -> str:
        """The energy-DB URL of ``role``: ``[energy] sync_db`` / ``publish_db``, else energy_db."""
        return getattr(self.energy, f"{role}_db") or self.energy_db

    def secrets(self) -> dict[str, str]:
        """The secrets this environment resolved, by variable name (to compare, never to print)."""
        return dict(self._secrets)


def check_model_params(params: dict[str, Any]) -> dict[str, Any]:
    """``[forecast] model_params`` checked against the core's ModelConfig: known keys, numbers
    where it takes numbers, valid ``p50_members``. Raises ValueError naming the key at fault."""
    import dataclasses
    import difflib

    from aggregat.errors import ModelError
    from aggregat.forecast.core.models import ModelConfig, check_members

    defaults = ModelConfig()
    # features and min_train_days come from their own settings, not from model_params.
    known = sorted({f.name for f in dataclasses.fields(ModelConfig)}
                   - {"features", "min_train_days"})
    for key, value in params.items():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ValueError(f"unknown key {key!r}{hint}; known: {', '.join(known)}")
        default = getattr(defaults, key)
        if isinstance(default, int | float) and not isinstance(default, bool):
            number = int if isinstance(default, int) else int | float
            if isinstance(value, bool) or not isinstance(value, number):
                kind = "an integer" if number is int else "a number"
                raise ValueError(f"{key} = {value!r}: must be {kind}")
    if "p50_members" in params:
        members = params["p50_members"]
        try:
            check_members(tuple(members) if isinstance(members, list) else (members,))
        except ModelError as exc:
            raise ValueError(str(exc)) from None
    return params


def _join(root: str, name: str) -> str:
    return root.rstrip("/") + "/" + name


def default_root() -> str:
    """The embedded environment's root: ``$AGGREGAT_HOME`` or ``./aggregat-data``."""
    return os.environ.get("AGGREGAT_HOME") or str(Path.cwd() / "aggregat-data")


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to use: ``explicit``, ``$AGGREGAT_CONFIG`` or ``./aggregat.toml``."""
    candidate = explicit or os.environ.get("AGGREGAT_CONFIG")
    if candidate:
        path = Path(candidate)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist: create it or unset "
                              "AGGREGAT_CONFIG")
        return path
    path = Path.cwd() / CONFIG_FILENAME
    return path if path.is_file() else None


def environment_names(config_file: str | os.PathLike[str] | None = None) -> list[str]:
    """The environments of the config file (its ``[env.NAME]`` sections), else ``["local"]``."""
    path = find_config_file(config_file)
    if path is None:
        return [DEFAULT_ENV]
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
    _check_layout(raw, str(path))
    return sorted(raw.get("env", {})) or [DEFAULT_ENV]


def load_environment(
    name: str | None = None, config_file: str | os.PathLike[str] | None = None
) -> Environment:
    """Resolve environment ``name`` (default: the file's ``default_env``, else ``local``)."""
    path = find_config_file(config_file)
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
    where = str(path or "config")
    _check_layout(raw, where)
    name = name or os.environ.get("AGGREGAT_ENV") or raw.get("default_env") or DEFAULT_ENV
    envs = raw.get("env", {})
    if name in envs:
        section = _deep_merge(raw.get("defaults", {}), envs[name])
    elif name == DEFAULT_ENV:
        section = dict(raw.get("defaults", {}))
    else:
        known = ", ".join(sorted(envs)) or "none"
        where = str(path) if path else f"no {CONFIG_FILENAME} found"
        raise ConfigError(f"environment {name!r} is not defined ({where}; defined: {known})")
    _check_storage_options(section.get("storage_options", {}), f"{where} [env.{name}]")
    resolved: dict[str, str] = {}
    section = _resolve_secrets(section, name, f"{path or 'config'} [env.{name}]", resolved)
    root = section.pop("root", None) or default_root()
    if not isinstance(root, str):
        raise ConfigError(f"{where} [env.{name}] root = {root!r}: must be a string, a folder or "
                          "an fsspec URL (s3://bucket/prefix)")
    base = Path(path).parent if path else Path.cwd()
    root = _absolute(root, base)
    settings: dict[str, Any] = {
        "name": name,
        "root": root,
        "datalake": _join(root, "datalake"),
        "bank": _join(root, "bank"),
        "registry": _join(root, "registry"),
        "quarantine": _join(root, "quarantine"),
        "energy_db": "sqlite:///" + _join(root, "energy.sqlite") if "://" not in root else None,
        "source_file": str(path) if path else None,
    }
    settings.update(section)
    if "sites" not in settings and "://" not in root and (Path(root) / "sites.csv").is_file():
        settings["sites"] = _join(root, "sites.csv")  # the embedded default's sites (the demo's)
    for key in ("datalake", "bank", "registry", "quarantine", "sites", "areas"):
        if isinstance(settings.get(key), str):
            settings[key] = _absolute(settings[key], base)
    _absolute_mirrors(settings.get("weather"), base)
    if settings["energy_db"] is None:
        raise ConfigError(
            f"[env.{name}] energy_db is required when root is remote ({root}): set a SQLAlchemy URL"
        )
    try:
        env = Environment(**settings)
    except ValidationError as exc:
        raise _setting_error(exc, where, name) from None
    env._secrets = resolved
    if env.storage_options:
        from aggregat.storage import register_storage_options

        for url in {env.root, env.datalake, env.bank, env.registry, env.quarantine}:
            register_storage_options(url, env.storage_options)
    return env


_TOP_LEVEL = ("default_env", "defaults", "env")
_SECTIONS = ("weather", "energy", "forecast", "jobs", "alerts", "dashboard", "rte")


def _check_layout(raw: dict[str, Any], where: str) -> None:
    """The file's top level: the types pydantic does not see (they are used before it runs)."""
    unknown = sorted(set(raw) - set(_TOP_LEVEL))
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {', '.join(unknown)}; settings go "
                          "in [defaults] or [env.NAME], the top level has only "
                          f"{', '.join(_TOP_LEVEL)}")
    if "default_env" in raw and not isinstance(raw["default_env"], str):
        raise ConfigError(f"{where}: default_env = {raw['default_env']!r}: must be a string, "
                          "the NAME of an [env.NAME] section")
    if not isinstance(raw.get("defaults", {}), dict):
        raise ConfigError(f"{where}: defaults = {raw['defaults']!r}: must be a table, "
                          "[defaults] with settings under it")
    envs = raw.get("env", {})
    if not isinstance(envs, dict):
        raise ConfigError(f"{where}: env = {envs!r}: must be a table of environments, "
                          "[env.NAME] sections")
    for env_name, section in envs.items():
        if not isinstance(section, dict):
            raise ConfigError(f"{where}: [env] {env_name} = {section!r}: must be a table, "
                              f"an [env.{env_name}] section with settings under it")


def _check_storage_options(options: Any, where: str) -> None:
    """Credentials in ``storage_options`` are ``${NAME}`` placeholders, never literal values."""
    if not isinstance(options, dict):
        raise ConfigError(f"{where} storage_options = {options!r}: must be a table, e.g. "
                          '{key = "${S3_KEY}", secret = "${S3_SECRET}"}')
    for key, value in options.items():
        if (_SECRET_OPTION.search(key) and isinstance(value, str) and value
                and not _PLACEHOLDER.search(value) and value not in _NOT_CREDENTIALS
                and not value.startswith("/")):  # gcsfs: token = a key file's path
            raise ConfigError(f"{where} storage_options.{key} holds a literal credential; write "
                              f'"${{NAME}}" instead and export AGGREGAT_<ENV>_NAME')


def _setting_error(exc: ValidationError, where: str, name: str) -> ConfigError:
    """Pydantic's first error as one line: ``FILE [env.NAME.section] key = value: what``."""
    errors = exc.errors()
    err = errors[0]
    loc = list(err["loc"])
    table = f"env.{name}"
    if len(loc) > 1 and loc[0] in _SECTIONS:
        table += f".{loc.pop(0)}"
    key = ""
    for part in loc:
        text = str(part) if str(part).isprintable() else repr(part)  # a key may hold a newline
        key += f"[{part}]" if isinstance(part, int) else f".{text}" if key else text
    value = err.get("input")
    shown = (f" = {value!r}" if err["type"] != "missing"
             and isinstance(value, str | int | float | bool) else "")
    what = {"missing": "required, not set",
            "extra_forbidden": "unknown setting (`aggregat env show` lists them all)",
            }.get(err["type"], err["msg"].removeprefix("Value error, "))
    more = f" ({len(errors) - 1} more problem(s) after it)" if len(errors) > 1 else ""
    return ConfigError(f"{where} [{table}] {key}{shown}: {what}; fix it in the file{more}")


def _absolute_mirrors(weather: Any, base: Path) -> None:
    """A mirror source's folder, like the datalake's, is relative to the config file."""
    sources = weather.get("source") if isinstance(weather, dict) else None
    for source in sources.values() if isinstance(sources, dict) else ():
        if (isinstance(source, dict) and source.get("kind") == "mirror"
                and isinstance(source.get("base_url"), str)):
            source["base_url"] = _absolute(source["base_url"], base)


def _absolute(value: str, base: Path) -> str:
    if "://" in value or os.path.isabs(value):
        return value
    return str((base / value).resolve())


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def secret_var(env_name: str, secret: str) -> str:
    """Name of the environment variable holding ``secret`` for environment ``env_name``."""
    return f"AGGREGAT_{re.sub(r'[^A-Za-z0-9]', '_', env_name).upper()}_{secret.upper()}"


def _resolve_secrets(tree: Any, env_name: str, where: str,
                     found: dict[str, str] | None = None) -> Any:
    """``tree`` with every ``${NAME}`` substituted; ``found`` collects variable -> value."""
    found = {} if found is None else found
    if isinstance(tree, dict):
        for key in SECRET_SETTINGS:
            value = tree.get(key)
            if value is not None and not (isinstance(value, str) and _PLACEHOLDER.fullmatch(value)):
                raise ConfigError(f"{where} {key}: credentials are never written in the file; "
                                  f"write {key} = \"${{NAME}}\" and export "
                                  f"{secret_var(env_name, 'NAME')}")
        return {k: _resolve_secrets(v, env_name, f"{where} {k}", found) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_resolve_secrets(v, env_name, where, found) for v in tree]
    if not isinstance(tree, str):
        return tree
    literal = _URL_LITERAL_PASSWORD.search(tree)
    if literal and not _PLACEHOLDER.fullmatch(literal.group("pw")):
        raise ConfigError(
            f"{where}: the URL holds a literal password; write ${{NAME}} instead and export "
            f"{secret_var(env_name, 'NAME')}"
        )

    userinfo = [m.span("userinfo") for m in _USERINFO.finditer(tree)]

    def substitute(match: re.Match[str]) -> str:
        var = secret_var(env_name, match.group(1))
        value = os.environ.get(var)
        if value is None:
            raise ConfigError(f"{where}: secret {match.group(0)} is not set; export {var}")
        register_secret(value)
        found[var] = value
        if any(a <= match.start() and match.end() <= b for a, b in userinfo):
            # In a URL's user or password, @ / : # % would end it early: percent-encode.
            return quote(value, safe="")
        return value

    return _PLACEHOLDER.sub(substitute, tree)


def secret_forms(value: str) -> set[str]:
    """``value`` as it can be written out: raw, percent-encoded (urllib, SQLAlchemy), JSON, repr."""
    return {value, quote(value, safe=""), quote(value), quote(value, safe=" +"), quote_plus(value),
            json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
            repr(value)[1:-1]} - {""}


def dashboard_token(env: Environment) -> str | None:
    """The dashboard's action token, ``AGGREGAT_<ENV>_DASHBOARD_TOKEN`` (None when unset or
    empty), registered as a secret so that it is masked like the others."""
    value = os.environ.get(secret_var(env.name, "DASHBOARD_TOKEN")) or None
    if value:
        register_secret(value)
    return value


def register_secret(value: str) -> None:
    """Remember ``value`` (and its encoded forms) as a secret so that :func:`mask` hides it."""
    if value:
        _SECRETS.update(secret_forms(value))


def mask(text: str) -> str:
    """``text`` with every known secret and every URL password replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        text = text.replace(secret, "***")
    return _URL_PASSWORD.sub(lambda m: f"{m.group('scheme')}{m.group('user')}:***@", text)


def mask_tree(tree: Any) -> Any:
    """``tree`` (dicts, lists, scalars) with every string masked, keys included."""
    if isinstance(tree, dict):
        return {mask(k) if isinstance(k, str) else k: mask_tree(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [mask_tree(v) for v in tree]
    return mask(tree) if isinstance(tree, str) else tree


def mask_json(tree: Any, **dumps: Any) -> str:
    """``json.dumps`` of ``tree`` with every string masked (for files that are stored), also
    those that ``dumps["default"]`` makes of other objects."""
    if dumps.get("default") is not None:
        convert = dumps["default"]
        dumps["default"] = lambda value: mask_tree(convert(value))
    return json.dumps(mask_tree(tree), **dumps)
