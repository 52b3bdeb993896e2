"""The data bank: partitioned Parquet datasets on a :class:`~aggregat.storage.Store`.

Layout: ``{dataset}/{k1}={v1}/{k2}={v2}/{part}.parquet``. A partition is a folder; it holds one
or more parts (e.g. one per run of the day). Each part is written whole and atomically (temp file +
rename, or one PUT on object storage), so rewriting a part replaces it and a killed writer leaves
only a ``.tmp-*.tmp`` file that listings and ``*.parquet`` globs ignore; the next write in its
folder, or :meth:`Bank.clean_tmp` (at the start of every job), removes it.

Reads never scan a dataset: :meth:`Bank.files` builds the folder paths of the requested key values
directly and lists only those folders; DuckDB then reads exactly those files with the filter
pushed down. Remote stores (``s3://``, ``memory://``) are read with pyarrow through fsspec.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import uuid
from collections.abc import Collection, Sequence
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from aggregat.bank.datasets import (
    check_keys,
    check_name,
    check_part,
    check_value,
    conform,
    empty_frame,
    get_dataset,
)
from aggregat.errors import BankError
from aggregat.storage import Store

SUFFIX = ".parquet"
# Row groups of ~128k rows: a weather run of 500 sites x 103 steps is one group; bigger parts
# (a month of 15-min load for a portfolio) get several, which Parquet statistics can skip.
ROW_GROUP_ROWS = 128 * 1024
COMPRESSION = "zstd"


def parquet_options(table: pa.Table) -> dict[str, Any]:
    """Options of ``pq.write_table`` for a bank file.

    Dictionary encoding only for non-float columns (ids, times: few distinct values per file);
    float variables stay plain, which zstd compresses as well and DuckDB decodes faster
    (measured on the window benchmark: files 35 % smaller, reads ~10 % faster).
    """
    return {
        "compression": COMPRESSION,
        "row_group_size": ROW_GROUP_ROWS,
        "write_statistics": True,
        "use_dictionary": [f.name for f in table.schema if not pa.types.is_floating(f.type)],
    }


# More wanted folders than this at one level of an object store: list the level's parent once
# (a request per 1,000 files) instead of each folder (a request each): 3 years of daily
# partitions cost 1,095 listings. A window of days stays a listing per day.
_FOLDERS_LISTED_ONE_BY_ONE = 32


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _as_values(value: str | Collection[str]) -> list[str]:
    """One value or many, without duplicates (a repeated value would read a file twice)."""
    return [value] if isinstance(value, str) else list(dict.fromkeys(value))


# Mistakes in a column list or a filter (corrupt files raise other DuckDB errors).
_USER_ERRORS = (duckdb.BinderException, duckdb.ParserException, duckdb.CatalogException)
_DUCK: dict[str, Any] = {}
_DUCK_LOCK = threading.Lock()


def _cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on this process's in-memory DuckDB (connecting costs ~25 ms; a cursor ~0).

    Keyed by pid: a connection inherited through fork() is not safe to use in the child.
    """
    pid = os.getpid()
    with _DUCK_LOCK:
        if _DUCK.get("pid") != pid:
            con = duckdb.connect()
            con.execute("SET GLOBAL TimeZone = 'UTC'")  # TIMESTAMPTZ comes back in UTC
            _DUCK.update(pid=pid, con=con)
        return _DUCK["con"].cursor()


@atexit.register
def close_duckdb() -> None:
    """Close this process's DuckDB, which joins its worker threads (at exit, before a fork, and
    in tests).

    Left open, the database dies during interpreter teardown, or never, its threads still
    running while exit() destroys DuckDB's C++ statics: a rare SIGABRT once all work is done.
    A connection inherited through fork() is left alone (its threads are not in this process).
    """
    with _DUCK_LOCK:
        if _DUCK.get("pid") != os.getpid():
            return
        con = _DUCK.pop("con")
        _DUCK.clear()
    con.close()


# A child forked while DuckDB's threads run deadlocks in its first duckdb.connect() (the embedded
# jobs fork a pool per step after reading the bank): close it first; the parent reconnects.
os.register_at_fork(before=close_duckdb)


def _arrow(rel: duckdb.DuckDBPyRelation) -> pa.Table:
    # DuckDB >= 1.4 names it to_arrow_table; older releases arrow().
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    return fetch()


class Bank:
    """Partitioned Parquet datasets under one Store URL (local folder or fsspec URL)."""

    def __init__(self, url: str) -> None:
        self.url = str(url)
        self.store = Store(self.url)

    def __repr__(self) -> str:
        return f"Bank({self.url!r})"

    # -- paths -----------------------------------------------------------------------------
    @staticmethod
    def partition_dir(dataset: str, keys: dict[str, str]) -> str:
        """Relative folder of a partition (keys already checked and ordered)."""
        return "/".join([dataset, *(f"{k}={v}" for k, v in keys.items())])

    def part_path(self, dataset: str, keys: dict[str, str], part: str = "data") -> str:
        """Relative path of one part file (validates names and keys)."""
        check_name(dataset, "dataset")
        keys = check_keys(dataset, keys)
        return f"{self.partition_dir(dataset, keys)}/{check_part(dataset, part)}{SUFFIX}"

    def datasets(self) -> list[str]:
        """Datasets present in the bank."""
        return [n for n in self.store.listdir() if not n.startswith(".")]

    # -- writes ----------------------------------------------------------------------------
    def write_partition(self, dataset: str, keys: dict[str, str],
                        data: pd.DataFrame | pa.Table, part: str = "data") -> str:
        """Write ``data`` as one part of a partition, atomically replacing it; returns its path.

        The data is validated against the dataset's schema (see ``bank.datasets``) and sorted, so
        writing the same rows twice gives the same bytes.
        """
        rel = self.part_path(dataset, keys, part)
        table = conform(dataset, data)
        self._write_table(rel, table)
        return rel

    def _write_table(self, rel: str, table: pa.Table) -> None:
        try:
            with self.store.atomic_writer(rel) as fh:
                pq.write_table(table, fh, **parquet_options(table))
        except OSError as exc:
            raise BankError(f"cannot write {self.store.uri(rel)}: {_one_line(exc)}") from None

    def upsert(self, dataset: str, keys: dict[str, str], data: pd.DataFrame | pa.Table,
               on: Sequence[str], version_col: str | None = None, part: str = "data") -> int:
        """Merge ``data`` into a part, keeping one row per ``on`` key; returns the part's rows.

        The kept row has the highest ``version_col`` (missing versions lose); on a tie, or when
        ``version_col`` is None, the incoming row wins. The whole part is rewritten atomically.
        Concurrent upserts of the same part must be serialised by the caller (the run lock).
        """
        rel = self.part_path(dataset, keys, part)
        new = conform(dataset, data).to_pandas()
        missing = [c for c in [*on, *([version_col] if version_col else [])] if c not in new]
        if missing:
            raise BankError(f"{dataset}: upsert key column(s) {missing} not in the data")
        frames = [new.assign(_seq=1)]
        if self.store.exists(rel):
            frames.insert(0, self._read_file(rel).assign(_seq=0))
        merged = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        order = [*on, *([version_col] if version_col else []), "_seq"]
        merged = merged.sort_values(order, na_position="first", kind="stable")
        merged = merged.drop_duplicates(list(on), keep="last").drop(columns="_seq")
        self._write_table(rel, conform(dataset, merged.reset_index(drop=True)))
        return len(merged)

    def delete_partition(self, dataset: str, keys: dict[str, str], part: str | None = None) -> None:
        """Remove one part, or the whole partition folder when ``part`` is None."""
        if part is not None:
            self.store.remove(self.part_path(dataset, keys, part))
            return
        check_name(dataset, "dataset")
        self.store.remove(self.partition_dir(dataset, check_keys(dataset, keys)), recursive=True)

    def clean_tmp(self) -> int:
        """Remove temporary files left by killed writers; returns how many."""
        return self.store.clean_tmp("")

    # -- listing ---------------------------------------------------------------------------
    def _key_names(self, dataset: str) -> tuple[str, ...] | None:
        spec = get_dataset(dataset)
        return spec.keys if spec else None

    def files(self, dataset: str, where: dict[str, str | Collection[str]] | None = None,
              parts: Collection[str] | None = None) -> list[str]:
        """Relative paths of the part files of the partitions matching ``where``.

        Keys given in ``where`` are turned into folder paths directly (no listing of the values
        that exist); only keys left open are listed, and each partition folder reached is listed
        once to find its parts. So a window of 14 dates costs ~14 small listings, whatever the
        size of the history.
        """
        check_name(dataset, "dataset")
        where = {k: _as_values(v) for k, v in (where or {}).items()}
        key_names = self._key_names(dataset)
        if key_names is not None:
            unknown = set(where) - set(key_names)
            if unknown:
                raise BankError(f"{dataset}: unknown partition key(s) {sorted(unknown)}; "
                                f"keys are {list(key_names)}")
        for key, values in where.items():
            for value in values:
                check_value(dataset, key, value)
        wanted_parts = None if parts is None else {f"{check_part(dataset, p)}{SUFFIX}"
                                                   for p in parts}
        out: list[str] = []
        self._walk(dataset, key_names, where, 0, wanted_parts, out)
        return out

    def _walk(self, prefix: str, key_names: tuple[str, ...] | None,
              where: dict[str, list[str]], depth: int, wanted_parts: set[str] | None,
              out: list[str]) -> None:
        if key_names is not None and depth == len(key_names):
            names = self.store.listdir(prefix)
            out.extend(f"{prefix}/{n}" for n in names if n.endswith(SUFFIX)
                       and (wanted_parts is None or n in wanted_parts))
            return
        key = key_names[depth] if key_names is not None else None
        if (key is not None and key in where and len(where[key]) > _FOLDERS_LISTED_ONE_BY_ONE
                and not self.store.is_local):
            self._find(prefix, key_names, where, depth, wanted_parts, out)
            return
        if key is not None and key in where:
            for value in where[key]:
                self._walk(f"{prefix}/{key}={value}", key_names, where, depth + 1,
                           wanted_parts, out)
            return
        names = self.store.listdir(prefix)
        if key_names is None:  # free-form: parts at any depth, folders are key=value
            out.extend(f"{prefix}/{n}" for n in names if n.endswith(SUFFIX)
                       and (wanted_parts is None or n in wanted_parts))
        for name in names:
            if "=" not in name or name.endswith(SUFFIX):
                continue
            k, _, v = name.partition("=")
            if key is not None and k != key:
                continue
            if key is None and k in where and v not in where[k]:
                continue
            self._walk(f"{prefix}/{name}", key_names, where, depth + 1, wanted_parts, out)

    def _find(self, prefix: str, key_names: tuple[str, ...], where: dict[str, list[str]],
              depth: int, wanted_parts: set[str] | None, out: list[str]) -> None:
        """:meth:`_walk` below ``prefix`` from one flat listing of it, in the same order."""
        levels = key_names[depth:]
        order = {k: {v: i for i, v in enumerate(where[k])} for k in levels if k in where}
        found = []
        for rel in self.store.find(prefix):
            segs = rel[len(prefix) + 1:].split("/")
            if len(segs) != len(key_names) - depth + 1 or not segs[-1].endswith(SUFFIX):
                continue
            if wanted_parts is not None and segs[-1] not in wanted_parts:
                continue
            pairs = [seg.partition("=") for seg in segs[:-1]]
            if all(k == name and (name not in where or v in where[name])
                   for (k, _, v), name in zip(pairs, levels, strict=True)):
                # the walk's order: given values in their order, listed ones sorted
                rank = [(order[name][v], "") if name in order else (0, seg)
                        for (_, _, v), name, seg in zip(pairs, levels, segs, strict=False)]
                found.append((rank, segs[-1], rel))
        out.extend(rel for *_, rel in sorted(found))

    def partitions(self, dataset: str,
                   where: dict[str, str | Collection[str]] | None = None) -> list[dict[str, str]]:
        """Keys of the partitions (folders holding at least one part) of ``dataset``."""
        seen: dict[str, dict[str, str]] = {}
        for rel in self.files(dataset, where):
            folder = rel.rsplit("/", 1)[0]
            if folder not in seen:
                segs = folder.split("/")[1:]
                seen[folder] = dict(s.split("=", 1) for s in segs)
        return list(seen.values())

    # -- reads -----------------------------------------------------------------------------
    def _read_file(self, rel: str, columns: list[str] | None = None) -> pd.DataFrame:
        return self._read_arrow_file(rel, columns).to_pandas()

    def _read_arrow_file(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        try:
            with self.store.open(rel) as fh:
                return pq.read_table(fh, columns=columns)
        except FileNotFoundError:
            raise BankError(f"missing bank file {self.store.uri(rel)}") from None
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(rel, exc) from None

    def _read_remote_tables(self, rels: Sequence[str]) -> list[pa.Table]:
        """Whole files fetched concurrently, then parsed: one round trip per file instead of a
        HEAD and two ranged GETs in turn (training reads a target's weather from ~1,000 runs)."""
        tables = []
        for rel, data in zip(rels, self.store.read_many(rels), strict=True):
            if isinstance(data, FileNotFoundError):
                raise BankError(f"missing bank file {self.store.uri(rel)}")
            try:
                if isinstance(data, BaseException):  # as reading the file alone would raise it
                    raise data
                tables.append(pq.read_table(pa.BufferReader(data)))
            except (pa.ArrowException, OSError) as exc:
                raise self._unreadable(rel, exc) from None
        return tables

    def read_partition(self, dataset: str, keys: dict[str, str], part: str = "data",
                       columns: list[str] | None = None) -> pd.DataFrame:
        """One part as a DataFrame; BankError if it does not exist."""
        rel = self.part_path(dataset, keys, part)
        if not self.store.exists(rel):
            raise BankError(f"{dataset}: partition {self.store.uri(rel)} does not exist")
        return self._read_file(rel, columns)

    def read(self, dataset: str, where: dict[str, str | Collection[str]] | None = None,
             columns: list[str] | None = None, filter_sql: str | None = None,
             params: Sequence[Any] | dict[str, Any] | None = None,
             order_by: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
        """Rows of the partitions matching ``where``, read with DuckDB over exactly those files.

        ``filter_sql`` is a DuckDB boolean expression on the columns, with ``?`` (or ``$name``)
        placeholders bound from ``params``; it is pushed down into the Parquet scan.
        Timestamps come back tz-aware UTC.
        """
        return self.read_files(dataset, self.files(dataset, where), columns, filter_sql, params,
                               order_by, limit)

    def read_files(self, dataset: str, files: Sequence[str], columns: list[str] | None = None,
                   filter_sql: str | None = None,
                   params: Sequence[Any] | dict[str, Any] | None = None,
                   order_by: Sequence[str] | None = None,
                   limit: int | None = None) -> pd.DataFrame:
        """Like :meth:`read` on an explicit list of relative file paths."""
        if not files:
            return empty_frame(dataset, columns)
        select = ", ".join(_ident(c) for c in columns) if columns else "*"
        sql_tail = f" WHERE {filter_sql}" if filter_sql else ""
        if order_by:
            sql_tail += " ORDER BY " + ", ".join(_ident(c) for c in order_by)
        if limit is not None:
            sql_tail += f" LIMIT {int(limit)}"
        con = _cursor()
        try:
            if self.store.is_local:
                sources = ", ".join(_quote(str(self.store.local_path(f))) for f in files)
                sql = (f"SELECT {select} FROM read_parquet([{sources}], union_by_name = true, "
                       f"hive_partitioning = false){sql_tail}")
            else:
                parts = self._read_remote_tables(files)
                view = f"bank_rows_{uuid.uuid4().hex}"  # unique: cursors share the catalog
                con.register(view, pa.concat_tables(parts, promote_options="permissive"))
                sql = f"SELECT {select} FROM {view}{sql_tail}"
            try:
                table = _arrow(con.sql(sql, params=params or None))
            except _USER_ERRORS as exc:
                raise BankError(f"{dataset}: bad column or filter ({_one_line(exc)})") from None
            except duckdb.Error as exc:
                if self.store.is_local:
                    self._blame(files)
                raise BankError(f"{dataset}: read failed ({_one_line(exc)})") from None
        finally:
            con.close()
        return table.to_pandas(split_blocks=True)

    def _unreadable(self, rel: str, exc: BaseException) -> BankError:
        return BankError(f"unreadable bank file {self.store.uri(rel)} ({_one_line(exc)}); "
                         "rewrite its partition or delete the file")

    def _blame(self, files: Sequence[str]) -> None:
        """Raise a BankError naming the first unreadable file among ``files``, if any."""
        for rel in files:
            try:
                pq.read_metadata(self.store.local_path(rel))
            except FileNotFoundError:
                raise BankError(f"bank file {self.store.uri(rel)} vanished during the read; "
                                "retry") from None
            except (pa.ArrowException, OSError) as exc:
                raise self._unreadable(rel, exc) from None

    # -- inspection ------------------------------------------------------------------------
    def file_info(self, rel: str) -> dict[str, int]:
        """Rows (from the Parquet footer) and bytes of one part file."""
        try:
            with self.store.open(rel) as fh:
                rows = pq.ParquetFile(fh).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise self._unreadable(rel, exc) from None
        return {"rows": rows, "bytes": self.store.size(rel)}

    def partition_stats(self, dataset: str, where: dict[str, str | Collection[str]] | None = None
                        ) -> list[dict[str, Any]]:
        """Per partition: keys, parts, rows (from Parquet footers) and bytes (for ``bank ls``)."""
        stats: dict[str, dict[str, Any]] = {}
        for rel in self.files(dataset, where):
            folder, name = rel.rsplit("/", 1)
            entry = stats.setdefault(folder, {
                "keys": dict(s.split("=", 1) for s in folder.split("/")[1:]),
                "parts": [], "rows": 0, "bytes": 0})
            info = self.file_info(rel)
            entry["parts"].append(name[: -len(SUFFIX)])
            entry["rows"] += info["rows"]
            entry["bytes"] += info["bytes"]
        return list(stats.values())

    def checksum(self, dataset: str, keys: dict[str, str]) -> dict[str, Any]:
        """Row count and content hash of a partition (all its parts), for verifying copies.

        The hash covers part names, column names and types, and the rows in an order-independent
        way, so it does not depend on Parquet encoding or compression details.
        """
        folder = self.partition_dir(dataset, check_keys(dataset, keys))
        names = sorted(n for n in self.store.listdir(folder) if n.endswith(SUFFIX))
        digest = hashlib.sha256()
        rows = 0
        for name in names:
            table = self._read_arrow_file(f"{folder}/{name}")
            rows += table.num_rows
            digest.update(f"{name}\n{table.schema.remove_metadata()}\n".encode())
            df = table.to_pandas()
            row_hashes = np.sort(pd.util.hash_pandas_object(df, index=False).to_numpy())
            digest.update(row_hashes.tobytes())
        return {"rows": rows, "parts": len(names), "sha256": digest.hexdigest()}

