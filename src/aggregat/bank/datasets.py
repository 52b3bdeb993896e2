"""Schemas of the bank's datasets and the checks every write goes through.

A :class:`Dataset` names its partition keys (the folder levels ``{key}={value}``), its columns with
their types, and the sort order of rows inside a file (which makes a rewrite byte-identical and
lets Parquet statistics prune row groups). :func:`conform` turns a DataFrame or Arrow table into
the stored Arrow schema or raises a :class:`BankError` naming the dataset and the column.

Datasets that are not registered here (e.g. one owned by another module) are stored as given;
:func:`register_dataset` adds a schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from aggregat.errors import BankError

TS = pa.timestamp("us", tz="UTC")
KINDS: dict[str, pa.DataType] = {
    "str": pa.string(),
    "ts": TS,
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}

# A partition value or part name becomes a path segment: no separators, no "..", no leading dot
# (temporary files start with ".tmp-"), nothing a shell or an object store would mangle.
SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:+@-]{0,127}$")
SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+-]{0,127}$")
SAFE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class Column:
    """One column of a dataset: ``kind`` is a key of :data:`KINDS`."""

    name: str
    kind: str
    required: bool = True
    nullable: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return KINDS[self.kind]


@dataclass(frozen=True)
class Dataset:
    """A partitioned dataset: folder keys, columns, row order inside a file."""

    name: str
    keys: tuple[str, ...]
    columns: tuple[Column, ...]
    sort_by: tuple[str, ...] = ()
    key_formats: dict[str, str] = field(default_factory=dict)  # key -> regex of its values
    float32_extras: bool = False  # extra float columns (new weather variables) stored as float32
    doc: str = ""

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.arrow_type) for c in self.columns])


WEATHER_VARIABLES = (
    "t2m_c", "rh2m_pct", "u10_ms", "v10_ms", "wind_speed_10m_ms", "wind_dir_10m_deg", "gust10_ms",
    "msl_hpa", "ssrd_wm2", "tp_mm", "tcc_pct", "lcc_pct", "mcc_pct", "hcc_pct",
)
_DATE = r"^\d{4}-\d{2}-\d{2}$"

WEATHER_FORECAST = Dataset(
    name="weather_forecast",
    keys=("model", "run_date"),
    columns=(
        Column("model", "str"),
        Column("run_time", "ts"),
        Column("available_at", "ts"),
        Column("valid_time", "ts"),
        Column("step_h", "int16"),
        Column("location", "str"),
        *(Column(v, "float32", required=False, nullable=True) for v in WEATHER_VARIABLES),
    ),
    sort_by=("valid_time", "location"),
    key_formats={"run_date": _DATE},
    float32_extras=True,
    doc="Site/area weather per model run; part 'run=HH' per run of the day.",
)
LOAD = Dataset(
    name="load",
    keys=("target", "month"),
    columns=(
        Column("target_id", "str"),
        Column("time", "ts"),
        Column("load_mw", "float64", nullable=True),
        Column("updated_at", "ts"),
    ),
    sort_by=("time",),
    key_formats={"month": r"^\d{4}-\d{2}$"},
    doc="Measured load per target, one row per (target_id, time), newest updated_at kept.",
)
FORECAST = Dataset(
    name="forecast",
    keys=("target", "issue_date"),
    columns=(
        Column("target_id", "str"),
        Column("issue_time", "ts"),
        Column("valid_time", "ts"),
        Column("p10_mw", "float64", nullable=True),
        Column("p50_mw", "float64", nullable=True),
        Column("p90_mw", "float64", nullable=True),
        Column("model_version", "str"),
        Column("is_baseline", "bool"),
        # Set when the job used an earlier weather run than planned (runs late at the sources):
        # "arome-0025 2026-11-27T21Z instead of 2026-11-28T00Z (...)". Not published.
        Column("weather_run_fallback", "str", required=False, nullable=True),
        # Input guards that tripped ("flatline,weather_drift"): the rows are the weekly
        # baseline (forecast.core.guards). Not published.
        Column("guard_flags", "str", required=False, nullable=True),
        # How P50 was made coherent with the portfolio hierarchy (bottom_up, ols, mint_shrink;
        # forecast.portfolio); P10/P90 moved with it. Not published.
        Column("reconciliation", "str", required=False, nullable=True),
    ),
    sort_by=("valid_time",),
    key_formats={"issue_date": _DATE},
    doc="Load forecasts per target and issue time; part 'issue=HHMM'.",
)

FORECAST_EXPLAIN = Dataset(
    name="forecast_explain",
    keys=("target", "issue_date"),
    columns=(
        Column("target_id", "str"),
        Column("issue_time", "ts"),
        Column("valid_time", "ts"),
        Column("group", "str"),           # temperature, calendar, lags, ..., base
        Column("contribution_mw", "float64", nullable=True),
    ),
    sort_by=("valid_time", "group"),
    key_formats={"issue_date": _DATE},
    doc="What each feature group contributes to P50 (forecast.core.explain), keyed like "
        "forecast: the groups of a row sum to its P50; part 'issue=HHMM'.",
)

DATASETS: dict[str, Dataset] = {d.name: d for d in (WEATHER_FORECAST, LOAD, FORECAST,
                                                    FORECAST_EXPLAIN)}


def register_dataset(dataset: Dataset) -> None:
    """Add (or replace) the schema of a dataset, so writes to it are validated."""
    check_name(dataset.name, "dataset")
    DATASETS[dataset.name] = dataset


def get_dataset(name: str) -> Dataset | None:
    """The registered schema of ``name``, or None for a free-form dataset."""
    return DATASETS.get(name)


def check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        raise BankError(f"invalid {what} name {name!r}: use lower-case letters, digits and '_'")
    return name


def check_value(dataset: str, key: str, value: str) -> str:
    """A partition value must be a safe path segment."""
    check_name(key, f"partition key of {dataset}")
    if not isinstance(value, str) or not SAFE_SEGMENT.match(value) or ".." in value:
        raise BankError(
            f"{dataset}: partition value {key}={value!r} is not a safe path segment "
            "(letters, digits, '_', '.', ':', '+', '@', '-'; no '/', no '..')")
    return value


def check_keys(dataset: str, keys: dict[str, str]) -> dict[str, str]:
    """Keys in the dataset's order, each value a safe path segment in the expected format."""
    spec = get_dataset(dataset)
    for key, value in keys.items():
        check_value(dataset, key, value)
    if spec is None:
        return dict(keys)
    if set(keys) != set(spec.keys):
        raise BankError(f"{dataset}: partition keys must be {list(spec.keys)}, got {list(keys)}")
    for key, pattern in spec.key_formats.items():
        if not re.match(pattern, keys[key]):
            raise BankError(f"{dataset}: partition value {key}={keys[key]!r} does not match "
                            f"{pattern}")
    return {k: keys[k] for k in spec.keys}


def check_part(dataset: str, part: str) -> str:
    if not isinstance(part, str) or not SAFE_PART.match(part):
        raise BankError(f"{dataset}: part name {part!r} is not a safe file name")
    return part


def to_table(dataset: str, data: pd.DataFrame | pa.Table) -> pa.Table:
    """Arrow table of ``data``, column by column so a bad column is named."""
    if isinstance(data, pa.Table):
        return data
    if not isinstance(data, pd.DataFrame):
        raise BankError(f"{dataset}: expected a DataFrame or an Arrow table, got "
                        f"{type(data).__name__}")
    arrays, names = [], []
    for name in data.columns:
        if not isinstance(name, str):
            raise BankError(f"{dataset}: column names must be strings, got {name!r}")
        try:
            arrays.append(pa.array(data[name], from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise BankError(f"{dataset}: column {name!r} cannot be stored ({exc})") from None
        names.append(name)
    if len(set(names)) != len(names):
        raise BankError(f"{dataset}: duplicate column names {names}")
    return pa.Table.from_arrays(arrays, names=names)


def _cast(dataset: str, col: Column, arr: pa.ChunkedArray) -> pa.ChunkedArray:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.cast(t.value_type)
        t = arr.type
    kind = col.kind
    where = f"{dataset}: column {col.name!r}"
    if kind == "ts":
        if not pa.types.is_timestamp(t):
            raise BankError(f"{where} must be a UTC timestamp, got {t}")
        if t.tz is None:
            raise BankError(f"{where} has tz-naive timestamps; localize them to UTC first")
        return arr.cast(TS)
    if kind == "str":
        if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            raise BankError(f"{where} must be text, got {t}")
        return arr.cast(pa.string())
    if kind.startswith("int"):
        if not (pa.types.is_integer(t) or pa.types.is_null(t)):
            raise BankError(f"{where} must be integers, got {t}")
        try:
            return arr.cast(col.arrow_type)
        except pa.ArrowInvalid:
            raise BankError(f"{where}: values out of range for {kind}") from None
    if kind.startswith("float"):
        if not (pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_null(t)):
            raise BankError(f"{where} must be numbers, got {t}")
        return arr.cast(col.arrow_type, safe=False)
    if kind == "bool":
        if not (pa.types.is_boolean(t) or pa.types.is_null(t)):
            raise BankError(f"{where} must be booleans, got {t}")
        return arr.cast(pa.bool_())
    raise BankError(f"{where}: unknown kind {kind!r} in the schema")  # pragma: no cover


def conform(dataset: str, data: pd.DataFrame | pa.Table) -> pa.Table:
    """The table to store: validated against the schema, cast, and sorted.

    Free-form (unregistered) datasets are only converted to Arrow and stripped of pandas metadata.
    """
    table = to_table(dataset, data)
    spec = get_dataset(dataset)
    if spec is None:
        return table.replace_schema_metadata(None)
    names = table.column_names
    arrays, out_names = [], []
    for col in spec.columns:
        if col.name not in names:
            if col.required:
                raise BankError(f"{dataset}: missing required column {col.name!r}")
            continue
        try:
            arr = _cast(dataset, col, table.column(col.name))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise BankError(f"{dataset}: column {col.name!r} cannot be cast to {col.kind} "
                            f"({' '.join(str(exc).split())})") from None
        if not col.nullable and arr.null_count:
            raise BankError(f"{dataset}: column {col.name!r} has {arr.null_count} empty values")
        arrays.append(arr)
        out_names.append(col.name)
    for name in names:
        if spec.column(name) is not None:
            continue
        arr = table.column(name)
        if spec.float32_extras and pa.types.is_floating(arr.type):
            arr = arr.cast(pa.float32())
        arrays.append(arr)
        out_names.append(name)
    out = pa.Table.from_arrays(arrays, names=out_names)
    order = [(c, "ascending") for c in spec.sort_by if c in out_names]
    if order and out.num_rows > 1:
        out = out.take(pc.sort_indices(out, sort_keys=order))
    return out.combine_chunks()


def empty_frame(dataset: str, columns: list[str] | None = None) -> pd.DataFrame:
    """An empty DataFrame with the dataset's columns and dtypes (what a read of nothing returns)."""
    spec = get_dataset(dataset)
    if spec is None:
        return pd.DataFrame(columns=columns or [])
    schema = spec.schema
    if columns is not None:
        schema = pa.schema([schema.field(c) if c in schema.names else pa.field(c, pa.null())
                            for c in columns])
    return schema.empty_table().to_pandas()
