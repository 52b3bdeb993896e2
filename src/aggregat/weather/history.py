"""Import a weather history (forecasts as they were issued, parsed from GRIB by another tool).

Sources: CSV or Parquet files, or a BigQuery table or query (``bigquery:project.dataset.table``,
``bigquery:SELECT ...``, read page by page with the official client). The long format, the
natural output of a GRIB parser, needs no mapping::

    model,run_time,valid_time,site_id,variable,value[,unit]
    AROME,2025-01-01T00:00Z,2025-01-01T01:00Z,paris,2t,276.4

``variable`` is an ecCodes shortName in GRIB units (K, %, m s-1, Pa, J m-2 and kg m-2 accumulated
from the run start); ``unit`` may say otherwise for the usual alternatives (°C, hPa, m, fraction).
The wide format has one column per variable. Times without an offset are UTC, as in GRIB.

How: DuckDB checks every row in one pass over the files (a bad row is named by file, line and
column and nothing is written, or skipped and counted with ``skip_bad_rows``), then writes the good
rows converted to GRIB units into a staging folder partitioned by model and run day; each
partition is read alone (a few hundred thousand rows) and goes through
:func:`aggregat.weather.assemble.assemble_columns`, the very conversion extraction uses, into the
bank's ``weather_forecast`` partitions. Memory stays bounded whatever the size of the history.
A run already in the bank keeps its other sites; the imported sites' rows are replaced, so a
re-import changes nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from aggregat.errors import ConfigError, InputError
from aggregat.weather.assemble import assemble_columns
from aggregat.weather.products import PARAMETERS, PRODUCTS, get_product

log = logging.getLogger(__name__)

COLUMNS = ("model", "run_time", "valid_time", "site_id", "variable", "value")
# ecCodes shortName -> catalogue parameter (Météo-France writes prmsl and 10si; ECMWF msl, 10fg).
SHORT_NAMES = {
    "2t": "t2m", "2r": "rh2m", "2d": "d2m", "10u": "u10", "10v": "v10", "10si": "ws10",
    "10fg": "gust10", "msl": "msl", "prmsl": "msl", "ssrd": "ssrd", "tp": "tp", "tcc": "tcc",
    "lcc": "lcc", "mcc": "mcc", "hcc": "hcc",
}
# Other units a history may hold, as (factor, offset) to the catalogue's GRIB units.
_UNIT_ALIASES = {
    "K": {"k": (1.0, 0.0), "c": (1.0, 273.15), "°c": (1.0, 273.15), "degc": (1.0, 273.15)},
    "%": {"%": (1.0, 0.0), "percent": (1.0, 0.0), "(0-1)": (100.0, 0.0), "fraction": (100.0, 0.0),
          "1": (100.0, 0.0)},
    "m s-1": {"ms-1": (1.0, 0.0), "m/s": (1.0, 0.0), "ms**-1": (1.0, 0.0)},
    "Pa": {"pa": (1.0, 0.0), "hpa": (100.0, 0.0)},
    "J m-2": {"jm-2": (1.0, 0.0), "jm**-2": (1.0, 0.0)},
    "kg m-2": {"kgm-2": (1.0, 0.0), "kgm**-2": (1.0, 0.0), "mm": (1.0, 0.0), "m": (1000.0, 0.0)},
}
_CSV_BLOCK = 64 << 20
_PARAMS = tuple(PARAMETERS)  # staged rows carry a parameter's position, not its name
_PARAM_INDEX = {name: i for i, name in enumerate(_PARAMS)}


@dataclass
class HistoryReport:
    """What one weather history import did."""

    files: list[str]
    rows: int = 0  # input rows imported
    runs: int = 0  # model runs written
    partitions: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    sites_matched: list[str] = field(default_factory=list)
    sites_unknown: list[str] = field(default_factory=list)  # imported, not in the sites file
    variables_unmapped: dict[str, int] = field(default_factory=dict)  # skipped: name -> rows
    skipped_bad_rows: int = 0
    bad_examples: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)  # "arome-0025 2025-01-01T00Z: steps 7-9"
    seconds: float = 0.0

    def summary(self) -> str:
        parts = [f"imported {self.rows} rows: {self.runs} run(s) of "
                 f"{', '.join(self.models) or 'no model'} in {self.seconds:.1f} s"]
        parts.append(f"{len(self.sites_matched)} site(s) matched")
        if self.sites_unknown:
            more = " ..." if len(self.sites_unknown) > 5 else ""
            parts.append(f"{len(self.sites_unknown)} not in the sites file "
                         f"({', '.join(self.sites_unknown[:5])}{more})")
        if self.variables_unmapped:
            names = ", ".join(f"{k} ({v} rows)" for k, v in sorted(self.variables_unmapped.items()))
            parts.append(f"variables skipped (not in the catalogue): {names}")
        if self.skipped_bad_rows:
            parts.append(f"{self.skipped_bad_rows} bad row(s) skipped "
                         f"({'; '.join(self.bad_examples)})")
        if self.gaps:
            parts.append(f"{len(self.gaps)} run(s) with missing steps "
                         f"({'; '.join(self.gaps[:3])}{' ...' if len(self.gaps) > 3 else ''})")
        return "; ".join(parts)


@dataclass(frozen=True)
class Mapping:
    """How a history file's names map to ours (all optional; see ``docs/weather.md``)."""

    columns: dict[str, str] = field(default_factory=dict)  # our column -> theirs
    models: dict[str, str] = field(default_factory=dict)  # their model name -> catalogue id
    variables: dict[str, str] = field(default_factory=dict)  # their variable -> ecCodes shortName
    units: dict[str, str] = field(default_factory=dict)  # shortName -> unit (wide files)
    model: str | None = None  # the model of every row, when the file has no model column

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None) -> Mapping:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read the mapping file ({exc})",
                              param="mapping") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})", param="mapping") from None
        known = {"columns", "models", "variables", "units", "model"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown key {unknown[0]!r} (known: "
                              f"{', '.join(sorted(known))})", param="mapping")
        for section in ("columns", "models", "variables", "units"):
            if not isinstance(data.get(section, {}), dict):
                raise ConfigError(f"{path}: [{section}] must be a table", param="mapping")
        bad = sorted(set(data.get("columns", {})) - {*COLUMNS, "unit"})
        if bad:
            raise ConfigError(f"{path}: [columns] {bad[0]!r} is not one of ours "
                              f"({', '.join(COLUMNS)}, unit)", param="mapping")
        return cls({k: str(v) for k, v in data.get("columns", {}).items()},
                   {str(k): str(v) for k, v in data.get("models", {}).items()},
                   {str(k): str(v) for k, v in data.get("variables", {}).items()},
                   {str(k): str(v) for k, v in data.get("units", {}).items()},
                   data.get("model"))


def _norm_unit(unit: str) -> str:
    return unit.strip().lower().replace(" ", "")


def _connect(tmp: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    # Bounded memory whatever the input size: DuckDB spills to the staging folder.
    con.execute(f"SET temp_directory = '{tmp / 'spill'}'")
    con.execute("SET memory_limit = '1GB'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _csv_to_parquet(path: Path, out: Path) -> Path:
    """A CSV as Parquet with its text as read plus each record's line, streamed in blocks
    (DuckDB's CSV reader gives no line numbers, and an error must name its line)."""
    options = pacsv.ReadOptions(block_size=_CSV_BLOCK)
    try:
        reader = pacsv.open_csv(path, read_options=options,
                                convert_options=pacsv.ConvertOptions(column_types=_all_text(path)))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})",
                         param="paths") from None
    writer = None
    row = 0
    try:
        for batch in reader:
            lines = pa.array(np.arange(row + 2, row + 2 + batch.num_rows, dtype=np.int64))
            table = pa.Table.from_batches([batch]).append_column("_line", lines)
            if writer is None:
                writer = pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
            row += batch.num_rows
    except pa.ArrowInvalid as exc:
        raise InputError(f"{path}, after line {row + 1}: {str(exc).splitlines()[0]}; fix the "
                         "file", param="paths") from None
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise InputError(f"{path}: no rows", param="paths")
    return out


BIGQUERY = "bigquery:"  # a history in BigQuery: bigquery:project.dataset.table or a query


def _bigquery_to_parquet(spec: str, out: Path) -> Path:
    """A BigQuery table or query's rows streamed, page by page, into a local Parquet file (the
    rest of the import then reads it like any history file)."""
    from aggregat.energy.bigquery import read_bigquery

    writer = None
    try:
        for batch in read_bigquery(spec[len(BIGQUERY):].strip()):
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_batch(batch)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise InputError(f"{spec}: no rows", param="paths")
    return out


def _all_text(path: Path) -> dict[str, pa.DataType]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = fh.readline().strip().lstrip("\ufeff")
    return {name.strip('"'): pa.string() for name in header.split(",")}


def _column_names(con: duckdb.DuckDBPyConnection, source: str) -> list[str]:
    return [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def import_history(bank, paths: Sequence[str | os.PathLike[str]], *, fmt: str = "long",
                   mapping: Mapping | None = None, skip_bad_rows: bool = False,
                   known_sites: Sequence[str] | None = None) -> HistoryReport:
    """Import weather history files (CSV or Parquet) into ``bank``'s ``weather_forecast``."""
    from aggregat.bank import has_weather_run, weather_run_partition, write_weather_run
    from aggregat.bank.datasets import WEATHER_FORECAST

    started = time.perf_counter()
    mapping = mapping or Mapping()
    if fmt not in ("long", "wide"):
        raise ConfigError(f"format {fmt!r}: use long or wide", param="format")
    files: list[Path | str] = [str(p) if str(p).startswith(BIGQUERY) else Path(p)
                               for p in paths]
    if not files:
        raise ConfigError("give at least one history file", param="paths")
    for path in files:
        if isinstance(path, Path) and not path.is_file():
            raise InputError(f"{path}: no such file", param="paths")
    report = HistoryReport([str(p) for p in files])
    tmp = Path(tempfile.mkdtemp(prefix="aggregat-history-"))
    con = _connect(tmp)
    try:
        sources = []
        for i, path in enumerate(files):
            if isinstance(path, str):  # bigquery:TABLE or bigquery:SELECT ...
                local = _bigquery_to_parquet(path, tmp / f"in-{i}.parquet")
                src = (f"(SELECT *, file_row_number + 1 AS _line FROM "
                       f"read_parquet({_lit(str(local))}, file_row_number = true))")
                kind = "row"
            elif path.suffix.lower() == ".parquet":
                src = (f"(SELECT *, file_row_number + 1 AS _line FROM "
                       f"read_parquet({_lit(str(path))}, file_row_number = true))")
                kind = "row"
            else:
                src = f"read_parquet({_lit(str(_csv_to_parquet(path, tmp / f'in-{i}.parquet')))})"
                kind = "line"
            sources.append((path, src, kind))
        sites = _check_and_stage(con, sources, fmt, mapping, skip_bad_rows, report,
                                 tmp / "staged")
        known = set(known_sites or [])
        seen_sites: set[str] = set()
        ready: list[tuple[str, pd.Timestamp, Path]] = []
        (tmp / "ready").mkdir()
        # Everything is checked and converted before the bank is touched: an error (a duplicate
        # value) leaves the bank as it was.
        for part_dir in sorted((tmp / "staged").glob("product=*/run_day=*")):
            product = get_product(part_dir.parent.name.split("=", 1)[1])
            table = pq.read_table(part_dir)
            cols = {name: table.column(name).to_numpy() for name in
                    ("run_s", "step", "site_idx", "param_idx", "value", "_file", "_line")}
            order = np.argsort(cols["run_s"], kind="stable")
            runs, starts = np.unique(cols["run_s"][order], return_index=True)
            for k, run_s in enumerate(runs):
                pick = order[starts[k]:starts[k + 1] if k + 1 < len(runs) else len(order)]
                run = pd.Timestamp(int(run_s), unit="s", tz="UTC")
                new = _assemble(product, run, {n: c[pick] for n, c in cols.items()}, sites,
                                report, sources)
                seen_sites.update(new["location"].unique())
                out = tmp / "ready" / f"{product.id}-{run:%Y%m%d%H}.parquet"
                new.to_parquet(out, index=False)
                ready.append((product.id, run, out))
        for model, run, out in ready:
            new = pd.read_parquet(out)
            if has_weather_run(bank, model, run):
                keys, part = weather_run_partition(model, run)
                old = bank.read_partition(WEATHER_FORECAST.name, keys, part=part)
                old = old[~old["location"].isin(set(new["location"]))]
                if len(old):
                    new = pd.concat([old, new], ignore_index=True)
            report.partitions.append(write_weather_run(bank, model, run, new))
            report.runs += 1
            if model not in report.models:
                report.models.append(model)
        report.sites_matched = sorted(seen_sites & known) if known else sorted(seen_sites)
        report.sites_unknown = sorted(seen_sites - known) if known else []
    finally:
        con.close()
        shutil.rmtree(tmp, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    return report


def _as_time(expr: str, kind: str) -> str:
    if kind.startswith("TIMESTAMP"):
        return f"CAST({expr} AS TIMESTAMPTZ)"  # naive Parquet times: UTC (the session's zone)
    return f"TRY_CAST(CAST({expr} AS VARCHAR) AS TIMESTAMPTZ)"


def _as_number(expr: str, kind: str) -> tuple[str, str]:
    """(value as DOUBLE, "present but not a number") for a column of DuckDB type ``kind``."""
    if kind in _NUMERIC:
        return f"CAST({expr} AS DOUBLE)", "false"
    text = f"CAST({expr} AS VARCHAR)"
    return (f"TRY_CAST({text} AS DOUBLE)",
            f"({text} IS NOT NULL AND trim({text}) <> '' AND TRY_CAST({text} AS DOUBLE) IS NULL)")


_NUMERIC = {"DOUBLE", "FLOAT", "REAL", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "HUGEINT",
            "UINTEGER", "UBIGINT", "USMALLINT", "UTINYINT", "DECIMAL"}


def _check_and_stage(con, sources, fmt: str, mapping: Mapping, skip_bad_rows: bool,
                     report: HistoryReport, staged: Path) -> list[str]:
    """Normalise every row (names, times, units), stop at the first bad one (or count them), and
    write the good ones in GRIB units, partitioned by product and run day.

    Names and units are few: they are resolved once in Python from their distinct values, and
    rows are then joined on them exactly; times are compared as epoch seconds (DuckDB's
    time-zone functions are slow on tens of millions of rows)."""
    col = {c: mapping.columns.get(c, c) for c in (*COLUMNS, "unit")}
    selects = []
    for i, (path, src, _kind) in enumerate(sources):
        types = {row[0]: row[1].split("(")[0]
                 for row in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall()}
        names = list(types)
        needed = [c for c in COLUMNS if not (c == "model" and mapping.model)]
        if fmt == "wide":
            needed = [c for c in needed if c not in ("variable", "value")]
        missing = [col[c] for c in needed if col[c] not in names]
        if missing:
            raise InputError(f"{path}: no column {missing[0]!r} (columns: "
                             f"{', '.join(n for n in names if n != '_line')}); rename it or map it "
                             "in mapping [columns]", param=("paths", "mapping"))
        model = _lit(mapping.model) if mapping.model else f"CAST({_quote(col['model'])} AS VARCHAR)"
        run, valid = _quote(col["run_time"]), _quote(col["valid_time"])
        base = (f"{i} AS _file, _line, {model} AS model_raw, "
                f"{_as_time(run, types[col['run_time']])} AS run_time, "
                f"{_as_time(valid, types[col['valid_time']])} AS valid_time, "
                f"CAST({run} AS VARCHAR) AS run_raw, CAST({valid} AS VARCHAR) AS valid_raw, "
                f"CAST({_quote(col['site_id'])} AS VARCHAR) AS site")
        if fmt == "long":
            unit = (f"CAST({_quote(col['unit'])} AS VARCHAR)" if col["unit"] in names
                    else "NULL")
            value, not_number = _as_number(_quote(col["value"]), types[col["value"]])
            selects.append(f"SELECT {base}, CAST({_quote(col['variable'])} AS VARCHAR) AS "
                           f"variable, {value} AS value, {not_number} AS not_number, "
                           f"CAST({_quote(col['value'])} AS VARCHAR) AS value_raw, "
                           f"{unit} AS unit_raw, {_lit(col['value'])} AS value_col FROM {src}")
        else:
            keys = {col[c] for c in COLUMNS} | {"_line"}
            for name in names:
                if name in keys:
                    continue
                unit = mapping.units.get(mapping.variables.get(name, name))
                value, not_number = _as_number(_quote(name), types[name])
                selects.append(f"SELECT {base}, {_lit(name)} AS variable, {value} AS value, "
                               f"{not_number} AS not_number, CAST({_quote(name)} AS VARCHAR) AS "
                               f"value_raw, {_lit(unit) if unit else 'NULL'} AS unit_raw, "
                               f"{_lit(name)} AS value_col FROM {src}")
    if not selects:
        raise InputError(f"{sources[0][0]}: no variable columns", param="paths")
    con.execute("CREATE TEMP VIEW raw AS " + " UNION ALL ".join(selects))
    found = con.execute("SELECT model_raw, variable, coalesce(unit_raw, ''), site, count(*) "
                        "FROM raw GROUP BY ALL").fetchall()
    kinds: dict[tuple, int] = {}
    for m, v, u, _site, n in found:
        kinds[(m, v, u)] = kinds.get((m, v, u), 0) + int(n)
    sites = sorted({site for *_, site, _n in found if site is not None and site.strip()})
    con.execute("CREATE TEMP TABLE sites (site VARCHAR, site_idx INTEGER)")
    con.executemany("INSERT INTO sites VALUES (?, ?)", [(x, i) for i, x in enumerate(sites)])
    con.execute("CREATE TEMP TABLE kinds (model_raw VARCHAR, variable VARCHAR, unit_raw VARCHAR, "
                "product VARCHAR, param_idx INTEGER, factor DOUBLE, offs DOUBLE, "
                "problem VARCHAR)")
    rows, report.variables_unmapped = [], {}
    for (m, v, u), n in kinds.items():
        product, param, factor, offs, problem = _resolve(m, v, u, mapping)
        if param is None and problem is None:
            report.variables_unmapped[str(v)] = report.variables_unmapped.get(str(v), 0) + n
        rows.append((m, v, u, product, _PARAM_INDEX.get(param), factor, offs, problem))
    con.executemany("INSERT INTO kinds VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute("""
        CREATE TEMP VIEW verdict AS
        SELECT r.*, k.product, k.param_idx, k.factor, k.offs, s.site_idx,
               epoch(r.run_time) AS run_s, epoch(r.valid_time) AS valid_s,
               CASE
                 WHEN k.problem = 'model' THEN 'model'
                 WHEN r.run_time IS NULL OR epoch(r.run_time) % 3600 <> 0 THEN 'run_time'
                 WHEN r.valid_time IS NULL OR epoch(r.valid_time) < epoch(r.run_time)
                      OR epoch(r.valid_time) % 3600 <> 0 THEN 'valid_time'
                 WHEN r.site IS NULL OR trim(r.site) = '' THEN 'site_id'
                 WHEN k.param_idx IS NULL THEN NULL
                 WHEN r.not_number THEN 'value'
                 WHEN k.problem = 'unit' THEN 'unit'
                 ELSE '' END AS bad
        FROM raw r JOIN kinds k ON k.model_raw IS NOT DISTINCT FROM r.model_raw
             AND k.variable IS NOT DISTINCT FROM r.variable
             AND k.unit_raw = coalesce(r.unit_raw, '')
        LEFT JOIN sites s ON s.site = r.site
    """)
    bad, good = con.execute("SELECT count(*) FILTER (bad <> ''), count(*) FILTER "
                            "(bad = '' AND value IS NOT NULL) FROM verdict").fetchone()
    if bad:
        examples = con.execute("""
            SELECT _file, _line, bad, model_raw, run_raw, valid_raw, site, variable, value_raw,
                   unit_raw, value_col
            FROM verdict WHERE bad <> '' ORDER BY _file, _line LIMIT 3""").fetchall()
        lines = [_explain(sources, mapping, *row) for row in examples]
        if not skip_bad_rows:
            raise InputError(f"{lines[0]}; fix the row (or use skip_bad_rows to skip bad rows, "
                             "counted)", param=("paths", "mapping", "skip_bad_rows"))
        report.skipped_bad_rows, report.bad_examples = int(bad), lines
    report.rows = int(good)
    con.execute(f"""
        COPY (
            SELECT product, CAST(run_s // 86400 AS BIGINT) AS run_day,
                   CAST(run_s AS BIGINT) AS run_s,
                   CAST((valid_s - run_s) // 3600 AS INTEGER) AS step, site_idx, param_idx,
                   value * factor + offs AS value, CAST(_file AS INTEGER) AS _file, _line
            FROM verdict WHERE bad = '' AND value IS NOT NULL
        ) TO {_lit(str(staged))} (FORMAT PARQUET, PARTITION_BY (product, run_day))
    """)
    if not staged.exists():
        staged.mkdir(parents=True)
    return sites


def _resolve(model: str | None, variable: str | None, unit: str, mapping: Mapping
             ) -> tuple[str | None, str | None, float | None, float | None, str | None]:
    """(product, parameter, factor, offset, problem) of one kind of row; problem is ``model``
    or ``unit``; no parameter and no problem: a variable outside the catalogue (skipped)."""
    if model is None or not model.strip():
        return None, None, None, None, "model"
    ours = {k.lower(): v for k, v in mapping.models.items()}.get(model.strip().lower())
    try:
        product = get_product(ours or model.strip()).id
    except ConfigError:
        return None, None, None, None, "model"
    short = mapping.variables.get(variable, variable) if variable is not None else None
    name = SHORT_NAMES.get(short or "")
    if name not in PARAMETERS:
        return product, None, None, None, None
    grib = PARAMETERS[name].grib_units
    aliases = {**_UNIT_ALIASES.get(grib, {}), _norm_unit(grib): (1.0, 0.0)}
    conversion = aliases.get(_norm_unit(unit or grib))
    if conversion is None:
        return product, name, None, None, "unit"
    return product, name, *conversion, None


def _explain(sources, mapping: Mapping, f, line, bad, model, run, valid, site, variable, value,
             unit, value_col) -> str:
    path, _src, kind = sources[f]
    col = {c: mapping.columns.get(c, c) for c in (*COLUMNS, "unit")}
    where = f"{path}, {kind} {line}"
    if bad == "model":
        return (f"{where}, column {col['model']!r}: unknown model {model!r}; use a catalogue id "
                f"({', '.join(PRODUCTS)}) or map it in mapping [models]")
    if bad in ("run_time", "valid_time") and bad == "run_time":
        return (f"{where}, column {col['run_time']!r}: {run!r} is not a run time on the hour "
                "(write 2025-01-01T00:00Z)")
    if bad == "valid_time":
        return (f"{where}, column {col['valid_time']!r}: {valid!r} is not a time a whole number "
                f"of hours after the run {run!r}")
    if bad == "site_id":
        return f"{where}, column {col['site_id']!r}: empty site id"
    if bad == "value":
        return f"{where}, column {value_col!r}: {value!r} is not a number"
    name = SHORT_NAMES.get(mapping.variables.get(variable, variable), "")
    expected = PARAMETERS[name].grib_units if name else "?"
    return (f"{where}, column {col['unit'] if unit is not None else value_col!r}: unit "
            f"{unit!r} of {variable} is not {expected} nor a known alternative; convert it or "
            "fix the unit")


def _duplicate(product, run, rows: dict[str, np.ndarray], cell: np.ndarray, sites, sources
               ) -> None:
    order = np.argsort(cell, kind="stable")
    same = np.flatnonzero(cell[order][1:] == cell[order][:-1])[0]
    a, b = order[same], order[same + 1]
    path, _src, kind = sources[int(rows["_file"][a])]
    raise InputError(f"{path}, {kind} {int(rows['_line'][a])}: "
                     f"{_PARAMS[int(rows['param_idx'][a])]} of {product.id} run "
                     f"{run:%Y-%m-%dT%HZ} at {sites[int(rows['site_idx'][a])]} step "
                     f"{int(rows['step'][a])} h is given more than once (again at {kind} "
                     f"{int(rows['_line'][b])} of {sources[int(rows['_file'][b])][0]}); keep one "
                     "row", param="paths")


def _assemble(product, run: pd.Timestamp, rows: dict[str, np.ndarray], sites: list[str],
              report: HistoryReport, sources) -> pd.DataFrame:
    """One run's rows (GRIB units, integer codes) -> the bank frame, through extraction's
    conversion."""
    used, loc = np.unique(rows["site_idx"], return_inverse=True)
    n_loc = len(used)
    step_values, step = np.unique(rows["step"], return_inverse=True)
    param = rows["param_idx"]
    cell = (param.astype(np.int64) * len(step_values) + step) * n_loc + loc
    if np.bincount(cell).max(initial=0) > 1:
        _duplicate(product, run, rows, cell, sites, sources)
    instant: dict[str, dict[int, np.ndarray]] = {}
    accumulated: dict[str, dict[int, tuple[int, np.ndarray]]] = {}
    for p in np.unique(param):
        mask = param == p
        grid = np.full((len(step_values), n_loc), np.nan)
        grid[step[mask], loc[mask]] = rows["value"][mask]
        present = np.flatnonzero(~np.isnan(grid).all(axis=1))
        meta = PARAMETERS[_PARAMS[int(p)]]
        if meta.accumulated_from_start:
            accumulated[meta.name] = {int(step_values[i]): (0, grid[i]) for i in present}
        else:
            instant[meta.column] = {int(step_values[i]): grid[i] * meta.scale + meta.offset
                                    for i in present}
    present = [int(s) for s in step_values]
    expected = [s for s in product.steps if present[0] <= s <= present[-1]]
    holes = sorted(set(expected) - set(present))
    if holes:
        report.gaps.append(f"{product.id} {run:%Y-%m-%dT%HZ}: step(s) "
                           f"{', '.join(map(str, holes[:6]))}{' ...' if len(holes) > 6 else ''}")
    run_dt = run.to_pydatetime()
    return assemble_columns(
        instant, accumulated, [sites[i] for i in used], model=product.id, run_time=run_dt,
        available_at=run_dt + timedelta(hours=product.availability_delay_h),
        expected_steps=product.steps)
