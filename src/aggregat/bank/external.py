"""The bank as BigQuery external tables: ``CREATE EXTERNAL TABLE`` statements over its Parquet
files on a ``gs://`` root, so BigQuery queries the bank in place (nothing is copied).

One table per registered dataset (bank/datasets.py), named after it, in a BigQuery dataset of
the caller's choice; the folder levels ``{key}={value}`` become hive partition columns (a date
key as DATE, others as STRING), so a filter on them reads only the matching folders. The
statements are printed, never run: creating tables is the BigQuery administrator's call.

BigQuery refuses hive keys that are also columns of the files ("the hive partitioning keys and
the columns in the underlying files cannot overlap"): a dataset with such a leading key
(``weather_forecast``: ``model``) becomes one table per value of that key (``weather_forecast__
arome_0025`` over ``…/model=arome-0025``, partitioned by the remaining keys) and a view of their
``UNION ALL`` under the dataset's name; another (the ledger, small, keyed by its ``step``
column) is one table over its files without hive partitioning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aggregat.bank.datasets import DATASETS
from aggregat.errors import ConfigError, InputError

_BQ_DATASET = re.compile(r"(?:[A-Za-z][A-Za-z0-9\-]{1,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,1023}")
_DATE_FORMAT = r"^\d{4}-\d{2}-\d{2}$"


@dataclass(frozen=True)
class ExternalTable:
    """One bank dataset as a BigQuery external table."""

    bank_dataset: str
    table: str  # [project.]dataset.table
    uri: str
    statement: str


def _create(table: str, prefix: str, keys: str | None) -> str:
    """One external table over ``prefix``; ``keys``: its hive partition columns (None: none)."""
    if keys is None:
        return (f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}`\n"
                f"OPTIONS (\n  format = 'PARQUET',\n  uris = ['{prefix}/*']\n);")
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}`\n"
            f"WITH PARTITION COLUMNS ({keys})\n"
            "OPTIONS (\n"
            "  format = 'PARQUET',\n"
            f"  uris = ['{prefix}/*'],\n"
            f"  hive_partition_uri_prefix = '{prefix}',\n"
            "  require_hive_partition_filter = false\n"
            ");")


def bigquery_ddl(bank_url: str, bq_dataset: str, datasets: list[str] | None = None,
                 models: list[str] | None = None) -> list[ExternalTable]:
    """``CREATE EXTERNAL TABLE`` statements for the bank at ``bank_url`` (a ``gs://`` URL) in
    BigQuery dataset ``bq_dataset`` (``dataset`` or ``project.dataset``). ``models``: the
    weather models whose tables make up the ``weather_forecast`` view."""
    if not bank_url.startswith("gs://"):
        raise ConfigError(f"bank {bank_url} is not on Google Cloud Storage: BigQuery external "
                          "tables read gs:// only; set root (or bank) to a gs://bucket/prefix "
                          "URL, or copy the bank there with `aggregat bank copy`")
    if not _BQ_DATASET.fullmatch(bq_dataset):
        raise InputError(f"dataset {bq_dataset!r}: write a BigQuery name, [project.]name, of "
                         "letters, digits and _", param="dataset")
    names = datasets or sorted(DATASETS)
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise InputError(f"bank dataset(s) {', '.join(unknown)} have no registered schema; "
                         f"known: {', '.join(sorted(DATASETS))}", param="datasets")
    root = bank_url.rstrip("/")
    out = []
    for name in names:
        spec = DATASETS[name]
        prefix = f"{root}/{name}"
        columns = {c.name for c in spec.columns}
        split = [k for k in spec.keys if k in columns]  # hive keys BigQuery cannot take
        rest = [k for k in spec.keys if k not in columns]
        keys = ", ".join(f"{k} {'DATE' if spec.key_formats.get(k) == _DATE_FORMAT else 'STRING'}"
                         for k in rest)
        table = f"{bq_dataset}.{name}"
        if not split:
            out.append(ExternalTable(name, table, f"{prefix}/*", _create(table, prefix, keys)))
            continue
        if split != ["model"] or not models:  # e.g. the ledger (small): its files, unpartitioned
            out.append(ExternalTable(name, table, f"{prefix}/*", _create(table, prefix, None)))
            continue
        parts = [(f"{table}__{re.sub(r'[^A-Za-z0-9_]', '_', m)}", f"{prefix}/model={m}")
                 for m in models]
        union = "\nUNION ALL\n".join(f"SELECT * FROM `{t}`" for t, _ in parts)
        statement = "\n".join([*(_create(t, p, keys) for t, p in parts),
                               f"CREATE OR REPLACE VIEW `{table}` AS\n{union};"])
        out.append(ExternalTable(name, table, f"{prefix}/model=*", statement))
    return out
