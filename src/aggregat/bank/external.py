"""The bank as BigQuery external tables: ``CREATE EXTERNAL TABLE`` statements over its Parquet
files on a ``gs://`` root, so BigQuery queries the bank in place (nothing is copied).

One table per registered dataset (bank/datasets.py), named after it, in a BigQuery dataset of
the caller's choice; the folder levels ``{key}={value}`` become hive partition columns (a date
key as DATE, others as STRING), so a filter on them reads only the matching folders. The
statements are printed, never run: creating tables is the BigQuery administrator's call.
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


def bigquery_ddl(bank_url: str, bq_dataset: str,
                 datasets: list[str] | None = None) -> list[ExternalTable]:
    """``CREATE EXTERNAL TABLE`` statements for the bank at ``bank_url`` (a ``gs://`` URL) in
    BigQuery dataset ``bq_dataset`` (``dataset`` or ``project.dataset``)."""
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
        keys = ", ".join(f"{k} {'DATE' if spec.key_formats.get(k) == _DATE_FORMAT else 'STRING'}"
                         for k in spec.keys)
        table = f"{bq_dataset}.{name}"
        statement = (f"CREATE EXTERNAL TABLE IF NOT EXISTS `{table}`\n"
                     f"WITH PARTITION COLUMNS ({keys})\n"
                     "OPTIONS (\n"
                     "  format = 'PARQUET',\n"
                     f"  uris = ['{prefix}/*'],\n"
                     f"  hive_partition_uri_prefix = '{prefix}',\n"
                     "  require_hive_partition_filter = false\n"
                     ");")
        out.append(ExternalTable(name, table, f"{prefix}/*", statement))
    return out
