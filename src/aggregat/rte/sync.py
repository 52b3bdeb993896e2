"""``aggregat rte sync``: RTE's national consumption and Tempo colours into the bank.

Datasets (partitioned by UTC month of ``time``):

- ``rte_consumption``: one row per ``time`` (éCO2mix ``date_heure``): ``consumption_mw``
  (realised, ``consommation``), ``forecast_d1_mw`` and ``forecast_d_mw`` (RTE's own D-1 and D
  forecasts, ``prevision_j1`` and ``prevision_j``), ``source`` (the ODRE dataset) and when each
  value became known: ``available_at`` (realised: its time plus ``realised_available``),
  ``available_at__forecast_d1_mw`` and ``available_at__forecast_d_mw`` (a local time before the
  day: ``forecast_d1_available``, ``forecast_d_available``). The consolidated dataset wins over
  the real-time one for the same time (``quality`` 2 over 1).
- ``rte_tempo``: one row per Tempo day, at its start (06:00 local: a Tempo day runs from 06:00
  to 06:00), ``colour`` (BLUE, WHITE, RED), ``tempo_level`` (1, 2, 3) and ``available_at``
  (announced the day before at 10:40 local: ``tempo_available``).

Incremental: each ODRE dataset has a watermark in ``sync_state`` (the newest time with a realised
value, or the newest Tempo day); a sync reads from ``watermark - lookback_days`` (``since``
instead when given; ``history_days`` back on the first sync) up to two days ahead, one window of
``window_days`` at a time: its rows are upserted into their month partitions (atomic writes,
same time -> same row) and only then the watermark moves. Rerunning duplicates nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from aggregat.bank import Bank, Column, Dataset, register_dataset
from aggregat.config import RteSettings
from aggregat.errors import BankError, FetchError
from aggregat.rte.client import OdsClient
from aggregat.timeutil import available_at

log = logging.getLogger(__name__)

STATE_DATASET = "sync_state"
CONSUMPTION, TEMPO = "rte_consumption", "rte_tempo"
TIME_FIELD = "date_heure"
FIELDS = {"consommation": "consumption_mw", "prevision_j1": "forecast_d1_mw",
          "prevision_j": "forecast_d_mw"}
QUALITY = {"realtime": 1, "consolidated": 2}
# ODRE writes colours in French, sometimes prefixed (TEMPO_BLEU); we store them in English.
COLOURS = {"BLEU": ("BLUE", 1), "BLANC": ("WHITE", 2), "ROUGE": ("RED", 3),
           "BLUE": ("BLUE", 1), "WHITE": ("WHITE", 2), "RED": ("RED", 3)}
TEMPO_DAY_START_H = 6  # a Tempo day runs from 06:00 to 06:00 local
_MONTH = r"^\d{4}-\d{2}$"

RTE_CONSUMPTION = Dataset(
    name=CONSUMPTION, keys=("month",),
    columns=(Column("time", "ts"),
             *(Column(c, "float64", nullable=True) for c in FIELDS.values()),
             Column("available_at", "ts"), Column("available_at__forecast_d1_mw", "ts"),
             Column("available_at__forecast_d_mw", "ts"), Column("source", "str"),
             Column("quality", "int16"), Column("updated_at", "ts")),
    sort_by=("time",), key_formats={"month": _MONTH},
    doc="France's consumption (éCO2mix): realised, RTE's D-1 and D forecasts; when each known.")
RTE_TEMPO = Dataset(
    name=TEMPO, keys=("month",),
    columns=(Column("time", "ts"), Column("colour", "str"), Column("tempo_level", "float64"),
             Column("available_at", "ts"), Column("updated_at", "ts")),
    sort_by=("time",), key_formats={"month": _MONTH},
    doc="Tempo day colours (from 06:00 local), announced the day before.")
register_dataset(RTE_CONSUMPTION)
register_dataset(RTE_TEMPO)


@dataclass
class RteSyncReport:
    """What one ``rte sync`` did, per ODRE dataset."""

    rows: dict[str, int] = field(default_factory=dict)  # ODRE dataset -> rows written
    watermarks: dict[str, str] = field(default_factory=dict)  # ODRE dataset -> ISO time
    windows: int = 0
    requests: int = 0
    duration_s: float = 0.0

    @property
    def rows_written(self) -> int:
        return sum(self.rows.values())

    def summary(self) -> str:
        parts = ", ".join(f"{ds}: {n} rows (to {self.watermarks.get(ds, 'none')})"
                          for ds, n in self.rows.items())
        return (f"rte sync: {self.rows_written} rows written ({parts}) in {self.windows} "
                f"window(s), {self.requests} request(s), {self.duration_s:.1f}s")


def _state_keys(dataset: str) -> dict[str, str]:
    return {"source": f"rte:{dataset}"}


def load_watermark(bank: Bank, dataset: str, base_url: str) -> datetime | None:
    """The newest time synced from ODRE ``dataset`` (None: never, or from another portal)."""
    try:
        state = bank.read_partition(STATE_DATASET, _state_keys(dataset))
    except BankError:
        return None
    if state.empty or str(state["base_url"].iloc[0]) != base_url:
        return None
    return pd.Timestamp(state["watermark"].iloc[0]).tz_convert("UTC").to_pydatetime()


def _save_watermark(bank: Bank, dataset: str, base_url: str, watermark: datetime) -> None:
    bank.write_partition(STATE_DATASET, _state_keys(dataset), pd.DataFrame({
        "source": [_state_keys(dataset)["source"]], "base_url": [base_url],
        "watermark": [pd.Timestamp(watermark).tz_convert("UTC")],
        "synced_at": [pd.Timestamp.now(tz="UTC")]}))


def consumption_frame(rows: list[dict], source: str, quality: int, settings: RteSettings,
                      tz: str, fetched_at: pd.Timestamp) -> pd.DataFrame:
    """éCO2mix rows -> ``rte_consumption`` rows (rows without any value are dropped)."""
    raw = pd.DataFrame.from_records(rows, columns=[TIME_FIELD, *FIELDS])
    try:
        times = pd.to_datetime(raw[TIME_FIELD], utc=True, format="ISO8601")
    except (ValueError, TypeError) as exc:
        raise FetchError(f"RTE open data {source!r}: field {TIME_FIELD!r} holds values that "
                         f"are not times ({str(exc)[:100]}); check [rte] datasets") from None
    out = pd.DataFrame({"time": times})
    for src, dst in FIELDS.items():
        out[dst] = pd.to_numeric(raw[src], errors="coerce").astype("float64")
    out = out[out["time"].notna() & out[list(FIELDS.values())].notna().any(axis=1)]
    out = out.drop_duplicates("time", keep="last").reset_index(drop=True)
    out["available_at"] = available_at(out["time"], settings.realised_available, tz)
    out["available_at__forecast_d1_mw"] = available_at(out["time"],
                                                       settings.forecast_d1_available, tz)
    out["available_at__forecast_d_mw"] = available_at(out["time"],
                                                      settings.forecast_d_available, tz)
    out["source"] = source
    out["quality"] = quality
    out["updated_at"] = fetched_at
    return out


def tempo_frame(rows: list[dict], settings: RteSettings, tz: str, fetched_at: pd.Timestamp
                ) -> pd.DataFrame:
    """Tempo rows -> ``rte_tempo`` rows (unknown colours are left out, with a warning)."""
    day_f, colour_f = settings.tempo_date_field, settings.tempo_colour_field
    raw = pd.DataFrame.from_records(rows, columns=[day_f, colour_f]).dropna()
    names = raw[colour_f].astype(str).str.upper().str.replace("TEMPO_", "", regex=False)
    known = names.isin(list(COLOURS))
    if (~known).any():
        log.warning("rte tempo: %d row(s) with unknown colours (%s) left out", (~known).sum(),
                    ", ".join(sorted(set(names[~known]))[:3]))
    raw, names = raw[known], names[known]
    try:
        days = pd.to_datetime(raw[day_f].astype(str).str[:10], format="%Y-%m-%d")
    except (ValueError, TypeError) as exc:
        raise FetchError(f"RTE open data {settings.tempo_dataset!r}: field {day_f!r} is not a "
                         f"date ({str(exc)[:100]}); check [rte] tempo_date_field") from None
    start = (pd.DatetimeIndex(days) + pd.Timedelta(hours=TEMPO_DAY_START_H)).tz_localize(
        tz, ambiguous=True, nonexistent="shift_forward").tz_convert("UTC")
    out = pd.DataFrame({"time": start,
                        "colour": [COLOURS[n][0] for n in names],
                        "tempo_level": [float(COLOURS[n][1]) for n in names]})
    out = out.drop_duplicates("time", keep="last").reset_index(drop=True)
    out["available_at"] = available_at(out["time"], settings.tempo_available, tz)
    out["updated_at"] = fetched_at
    return out


def _write(bank: Bank, dataset: Dataset, frame: pd.DataFrame, version: str | None) -> None:
    for month, group in frame.groupby(frame["time"].dt.strftime("%Y-%m"), sort=True):
        bank.upsert(dataset.name, {"month": str(month)}, group.reset_index(drop=True),
                    on=["time"], version_col=version)


def sync_rte(bank: Bank, settings: RteSettings, *, tz: str = "Europe/Paris",
             since: date | None = None, tempo: bool = True, now: datetime | None = None,
             client: OdsClient | None = None) -> RteSyncReport:
    """Copy new RTE consumption and Tempo rows into the bank (module doc)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    client = client or OdsClient(settings)
    report = RteSyncReport()
    end = now + timedelta(days=2)  # RTE's forecasts reach tomorrow; Tempo is known a day ahead
    jobs = [(settings.consolidated_dataset, "consolidated"), (settings.realtime_dataset,
                                                              "realtime")]
    if tempo and settings.tempo_dataset:
        jobs.append((settings.tempo_dataset, "tempo"))
    for dataset, kind in jobs:
        mark = load_watermark(bank, dataset, settings.base_url)
        if since is not None:
            start = pd.Timestamp(since).tz_localize(tz).tz_convert("UTC").to_pydatetime()
        elif mark is not None:
            start = mark - timedelta(days=settings.lookback_days)
        else:
            start = now - timedelta(days=settings.history_days)
        report.rows.setdefault(dataset, 0)
        field = settings.tempo_date_field if kind == "tempo" else TIME_FIELD
        t = start
        while t < end:
            t1 = min(t + timedelta(days=settings.window_days), end)
            rows = client.rows(dataset, field, t, t1)
            fetched_at = pd.Timestamp.now(tz="UTC")
            if kind == "tempo":
                frame = tempo_frame(rows, settings, tz, fetched_at)
                newest = frame["time"].max() if len(frame) else None
                if len(frame):
                    _write(bank, RTE_TEMPO, frame, None)
            else:
                frame = consumption_frame(rows, dataset, QUALITY[kind], settings, tz, fetched_at)
                realised = frame.loc[frame["consumption_mw"].notna(), "time"]
                newest = realised.max() if len(realised) else None
                if len(frame):
                    _write(bank, RTE_CONSUMPTION, frame, "quality")  # the rows first ...
            if newest is not None and (mark is None or newest > pd.Timestamp(mark)):
                mark = newest.to_pydatetime()
                _save_watermark(bank, dataset, settings.base_url, mark)  # ... then the mark
            report.rows[dataset] += len(frame)
            report.windows += 1
            t = t1
        if mark is not None:
            report.watermarks[dataset] = pd.Timestamp(mark).isoformat()
    report.requests = client.requests
    report.duration_s = time.perf_counter() - started
    log.debug(report.summary())
    return report
