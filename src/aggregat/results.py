"""Typed results of the public API (:mod:`aggregat.api`): what a job, a training, a prediction or
a backtest did, as dataclasses a notebook, the CLI and the dashboard read the same way.

Results of the lower layers that were already typed are re-exported by ``aggregat`` as they are
(``FetchReport``, ``ExtractReport``, ``HealthReport``, ``SyncReport``, ``PublishReport``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from aggregat.errors import PartialRunError


@dataclass(frozen=True)
class StepReport:
    """One step of a job run on one partition (``status``: ok, done — finished by an earlier
    run —, partial, failed, skipped)."""

    step: str
    partition: str
    status: str
    seconds: float = 0.0
    rows: int | None = None
    error: str | None = None


@dataclass
class RunReport:
    """What a job run did: its steps in order, the problems, and (dry runs) the planned steps."""

    job: str
    run_id: str = ""
    steps: list[StepReport] = field(default_factory=list)
    planned: list[tuple[str, str]] = field(default_factory=list)
    alerts: AlertReport | None = None  # what the job's alert hook sent (None: not evaluated)

    @property
    def problems(self) -> list[StepReport]:
        return [s for s in self.steps if s.status in ("failed", "partial")]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def exit_code(self) -> int:
        """0 when every step ended well, else :class:`PartialRunError`'s code (3)."""
        return 0 if self.ok else PartialRunError.exit_code

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def raise_for_problems(self) -> None:
        """A :class:`PartialRunError` naming the first failed steps, if any failed."""
        bad = self.problems
        if bad:
            names = "; ".join(f"{s.step} {s.partition}: {s.error}" for s in bad[:5])
            more = f" (+{len(bad) - 5} more)" if len(bad) > 5 else ""
            raise PartialRunError(f"{self.job}: {len(bad)} step(s) failed or partial: "
                                  f"{names}{more}; `aggregat run backfill` retries them")

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "run_id": self.run_id, "ok": self.ok,
                "steps": [asdict(s) for s in self.steps], "planned": self.planned,
                "alerts": None if self.alerts is None else self.alerts.as_dict()}


@dataclass
class AlertReport:
    """What an alert cycle did (:func:`aggregat.check_alerts`, :func:`aggregat.alert`, the job
    and health hooks): problems alerted now (``sent``: at least one channel took it), due but
    taken by no channel (``unsent``: sent again next cycle), still open and already alerted
    (``suppressed``), cleared now (``resolved``), and the channels that failed to send."""

    env: str
    sent: list[str] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    failed_channels: list[str] = field(default_factory=list)
    messages: int = 0  # messages delivered, counted per channel
    channels: int = 0  # channels configured
    error: str | None = None  # the alerting itself failed (the state unreadable, ...)

    @property
    def ok(self) -> bool:
        return not self.failed_channels and self.error is None

    @property
    def exit_code(self) -> int:
        """0 when every channel took every message, else 1."""
        return 0 if self.ok else 1

    def summary(self) -> str:
        """``alerts: 1 sent, 0 unsent, 2 suppressed, 0 resolved, 3 message(s) on 2 channel(s)``."""
        text = (f"alerts: {len(self.sent)} sent, {len(self.unsent)} unsent, "
                f"{len(self.suppressed)} suppressed, "
                f"{len(self.resolved)} resolved, {self.messages} message(s) on {self.channels} "
                "channel(s)")
        if self.failed_channels:
            text += f"; failed: {', '.join(self.failed_channels)}"
        return text + (f"; error: {self.error}" if self.error else "")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


class _Outcome:
    status: str

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass(frozen=True)
class TrainResult(_Outcome):
    """The training of one target's model (``status``: trained, skipped or failed)."""

    target: str
    status: str
    version: str | None = None
    promoted: bool = False
    reason: str = ""
    mae_new: float | None = None
    mae_current: float | None = None
    baseline: bool = False
    guards: str = ""             # what the input guards left out of training (one line)
    masked_intervals: int = 0    # load intervals left out by them
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class PredictResult(_Outcome):
    """One target's forecast of one issue (``status``: predicted or failed)."""

    target: str
    status: str
    issue_time: pd.Timestamp | None = None
    version: str | None = None
    rows: int = 0
    baseline_rows: int = 0
    blended_rows: int = 0
    note: str | None = None
    guard_flags: str | None = None  # input guards that tripped (comma-separated): baseline used
    seconds: float = 0.0
    error: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    """One version of a target's model in the registry."""

    target: str
    version: str
    current: bool
    trained_at: pd.Timestamp | None
    code_version: str | None
    data_start: pd.Timestamp | None
    data_end: pd.Timestamp | None
    metrics: dict[str, Any]
    promoted: bool | None
    promotion: dict[str, Any] = field(default_factory=dict)  # promoted, reason, previous

    @property
    def validation_mae(self) -> float | None:
        return (self.metrics.get("validation") or {}).get("mae")


def _ts(value: Any) -> pd.Timestamp | None:
    return None if value in (None, "") else pd.Timestamp(value)


def model_version(row: dict[str, Any]) -> ModelVersion:
    """A registry listing row (:meth:`Registry.list`) as a :class:`ModelVersion`."""
    return ModelVersion(
        target=row["target"], version=row["version"], current=bool(row["current"]),
        trained_at=_ts(row.get("trained_at")), code_version=row.get("code_version"),
        data_start=_ts(row.get("data_start")), data_end=_ts(row.get("data_end")),
        metrics=row.get("metrics") or {}, promoted=row.get("promoted"),
        promotion=row.get("promotion") or {})


def _fields(cls: type, summary: dict[str, Any]) -> dict[str, Any]:
    names = cls.__dataclass_fields__
    return {k: v for k, v in summary.items() if k in names}


def train_result(summary: dict[str, Any]) -> TrainResult:
    """A pipeline summary dict as a :class:`TrainResult`."""
    return TrainResult(**_fields(TrainResult, summary))


def predict_result(summary: dict[str, Any]) -> PredictResult:
    """A pipeline summary dict as a :class:`PredictResult`."""
    values = _fields(PredictResult, summary)
    if values.get("issue_time") is not None:
        values["issue_time"] = pd.Timestamp(values["issue_time"])
    return PredictResult(**values)


@dataclass
class BacktestReport:
    """A backtest: ``metrics`` (MAE, RMSE, coverage, ...), ``forecasts`` (one row per issue and
    valid time, with the actual load) and the whole JSON-able ``report``."""

    name: str
    report: dict[str, Any]
    forecasts: pd.DataFrame
    tz: str = "Europe/Paris"

    @property
    def metrics(self) -> dict[str, float]:
        return self.report["metrics"]

    def summary_line(self) -> str:
        """``MAE=… RMSE=… nMAE=… skill=… coverage=…`` (MW, MW, fractions)."""
        m = self.metrics

        def fmt(x: float | None, digits: int) -> str:
            return "nan" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"

        return (f"MAE={fmt(m['mae'], 3)} RMSE={fmt(m['rmse'], 3)} nMAE={fmt(m['nmae'], 4)} "
                f"skill={fmt(m.get('skill', float('nan')), 4)} "
                f"coverage={fmt(m['coverage_10_90'], 4)}")

    def to_json(self, path: str | Path) -> Path:
        """Write the report as JSON (atomically); returns the path."""
        from aggregat.config import mask_json

        return _write(path, mask_json({**self.report, "name": self.name}, indent=1,
                                      default=str).encode())

    def to_csv(self, path: str | Path) -> Path:
        """Write the forecasts as CSV, times in UTC with a Z (atomically); returns the path."""
        f = self.forecasts.copy()
        for c in ("issue_time", "valid_time"):
            f[c] = f[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        return _write(path, f.to_csv(index=False).encode())

    def plot(self, path: str | Path) -> Path:
        """Write the P10–P90 band against the actual load as a PNG; returns the path."""
        from aggregat.forecast.plot import plot_backtest

        m = self.metrics
        title = (f"{self.name}: {self.report['protocol']['horizon']} P10-P90, "
                 f"MAE {m['mae']:.3g} MW, coverage {m['coverage_10_90']:.0%}")
        return _write(path, plot_backtest(self.forecasts, title=title, tz=self.tz))

    def write(self, folder: str | Path) -> Path:
        """``report.json``, ``forecasts.csv`` and ``backtest.png`` in ``folder``."""
        folder = Path(folder)
        self.to_json(folder / "report.json")
        self.to_csv(folder / "forecasts.csv")
        self.plot(folder / "backtest.png")
        return folder


# Best first: what one (package, group) is, over all sources (fetch fails over per file).
_FILE_RANK = {"present": 0, "incomplete": 1, "error": 2, "missing": 3}


def _utc_label(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class RunAvailability:
    """One run at the sources: ``files[source][package][group]`` is ``present``, ``missing``,
    ``incomplete`` or ``error`` (``aggregat.weather.availability``'s module doc says when).
    ``in_datalake``: found complete in the datalake, the sources were not asked."""

    run: datetime
    files: dict[str, dict[str, dict[str, str]]]
    in_datalake: bool = False

    def file_status(self, package: str, group: str) -> str:
        """The best status of one file over all sources."""
        found = [pkgs[package][group] for pkgs in self.files.values()
                 if group in pkgs.get(package, {})]
        return min(found, key=_FILE_RANK.__getitem__) if found else "missing"

    def _cells(self) -> list[str]:
        cells = {(p, g) for pkgs in self.files.values() for p, groups in pkgs.items()
                 for g in groups}
        return [self.file_status(p, g) for p, g in sorted(cells)]

    @property
    def complete(self) -> bool:
        """Every file present at one source at least (or the run complete in the datalake)."""
        cells = self._cells()
        return self.in_datalake or (bool(cells) and all(c == "present" for c in cells))

    @property
    def state(self) -> str:
        """``complete``, ``incomplete`` (some files present), ``missing`` (none) or ``error``
        (none, and a source did not answer)."""
        cells = self._cells()
        if self.complete:
            return "complete"
        if any(c in ("present", "incomplete") for c in cells):
            return "incomplete"
        return "error" if "error" in cells else "missing"

    def complete_at(self) -> list[str]:
        """Sources holding every file of the run by themselves."""
        return [s for s, pkgs in self.files.items()
                if pkgs and all(v == "present" for g in pkgs.values() for v in g.values())]

    def counts(self, source: str, package: str) -> dict[str, int]:
        """How many of ``package``'s files are in each status at ``source``."""
        out: dict[str, int] = {}
        for status in self.files.get(source, {}).get(package, {}).values():
            out[status] = out.get(status, 0) + 1
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"run": _utc_label(self.run), "state": self.state, "complete": self.complete,
                "complete_at": self.complete_at(), "in_datalake": self.in_datalake,
                "sources": self.files}


@dataclass
class AvailabilityReport:
    """Runs x packages x time groups of one model at each source, newest run first."""

    model: str
    packages: list[str]
    groups: list[str]
    sources: list[str]
    runs: list[RunAvailability]
    checked_at: datetime

    @property
    def newest_complete(self) -> datetime | None:
        """The newest run complete at the sources, or None."""
        return next((r.run for r in self.runs if r.complete), None)

    def as_dict(self) -> dict[str, Any]:
        newest = self.newest_complete
        return {"model": self.model, "packages": self.packages, "groups": self.groups,
                "sources": self.sources, "checked_at": _utc_label(self.checked_at),
                "newest_complete": None if newest is None else _utc_label(newest),
                "runs": [r.as_dict() for r in self.runs]}


def _write(path: str | Path, data: bytes) -> Path:
    from aggregat.storage import Store

    path = Path(path).resolve()
    Store(str(path.parent)).write_bytes(path.name, data)
    return path


@dataclass
class Explanation:
    """What each feature group (temperature, radiation, calendar, holidays, lags, level, ...)
    contributed to the P50 of one forecast issue: ``contributions`` has one row per valid time
    and group (``base`` included); the groups of a valid time sum to its P50
    (docs/forecasting.md, "Explained forecasts")."""

    target: str
    issue_time: pd.Timestamp
    horizon: str
    contributions: pd.DataFrame  # valid_time, group, contribution_mw
    tz: str = "Europe/Paris"

    def wide(self) -> pd.DataFrame:
        """One row per valid time, one column per group (largest mean |contribution| first)."""
        w = self.contributions.pivot_table(index="valid_time", columns="group",
                                           values="contribution_mw", aggfunc="sum")
        order = w.abs().mean().sort_values(ascending=False).index
        return w[order]

    @property
    def p50(self) -> pd.Series:
        """P50 per valid time: the sum of the groups."""
        return self.contributions.groupby("valid_time")["contribution_mw"].sum().rename("p50_mw")

    def totals(self) -> pd.DataFrame:
        """Per group: mean, min and max contribution over the valid times (MW)."""
        w = self.wide()
        return pd.DataFrame({"mean_mw": w.mean(), "min_mw": w.min(), "max_mw": w.max()})

    def to_png(self, path: str | Path) -> Path:
        """A stacked bar chart of the groups per valid time with P50 (atomically)."""
        from aggregat.forecast.plot import plot_explain

        title = f"{self.target} issued {self.issue_time:%Y-%m-%dT%H:%MZ} ({self.horizon})"
        return _write(path, plot_explain(self.wide(), title, self.tz))


@dataclass(frozen=True)
class LedgerEntry:
    """One ledger record: the latest attempt of a job's ``step`` on a ``partition`` (``status``:
    running, ok, partial, failed, skipped; a ``stale`` running record reads as failed). Texts
    are masked."""

    step: str
    partition: str
    status: str
    job: str | None
    run_id: str
    attempts: int
    started_at: pd.Timestamp
    ended_at: pd.Timestamp | None = None
    duration_s: float | None = None
    rows: int | None = None
    error: str | None = None
    code_version: str = ""
    stale: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("started_at", "ended_at"):
            out[key] = None if out[key] is None else out[key].isoformat()
        return out


def ledger_entry(entry: Any) -> LedgerEntry:
    """A :class:`aggregat.ops.ledger.Entry` as a :class:`LedgerEntry`, every text masked."""
    from aggregat.config import mask, mask_tree

    return LedgerEntry(
        step=entry.step, partition=mask(entry.partition), status=entry.status, job=entry.job,
        run_id=entry.run_id, attempts=entry.attempts, started_at=pd.Timestamp(entry.started_at),
        ended_at=None if entry.ended_at is None else pd.Timestamp(entry.ended_at),
        duration_s=entry.duration_s, rows=entry.rows,
        error=None if entry.error is None else mask(entry.error),
        code_version=entry.code_version, stale=entry.stale, details=mask_tree(entry.details))


_WORST = {"failed": 3, "partial": 2, "running": 1}


@dataclass(frozen=True)
class JobRun:
    """One run of a job (the ledger records sharing a ``run_id``), oldest step first; ``status``
    is the worst of its steps (failed > partial > running > ok)."""

    job: str
    run_id: str
    steps: list[LedgerEntry]

    @property
    def started_at(self) -> pd.Timestamp:
        return min(s.started_at for s in self.steps)

    @property
    def ended_at(self) -> pd.Timestamp | None:
        ends = [s.ended_at for s in self.steps if s.ended_at is not None]
        return max(ends) if ends else None

    @property
    def seconds(self) -> float | None:
        end = self.ended_at
        return None if end is None else (end - self.started_at).total_seconds()

    @property
    def status(self) -> str:
        worst = max(self.steps, key=lambda s: _WORST.get(s.status, 0))
        return worst.status if worst.status in _WORST else "ok"

    @property
    def rows(self) -> int:
        return sum(s.rows or 0 for s in self.steps)

    def as_dict(self) -> dict[str, Any]:
        return {"job": self.job, "run_id": self.run_id, "status": self.status,
                "started_at": self.started_at.isoformat(),
                "ended_at": None if self.ended_at is None else self.ended_at.isoformat(),
                "seconds": self.seconds, "rows": self.rows,
                "steps": [s.as_dict() for s in self.steps]}


@dataclass(frozen=True)
class CalendarCell:
    """One dataset on one day: ``status`` present, partial, failed or missing; ``entries`` are
    the ledger records (step, partition) behind it."""

    day: date
    status: str
    detail: str = ""
    entries: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CalendarRow:
    """One dataset series (``dataset``: weather, load, forecast, publish; ``key``: model and
    run, target, target and horizon) across the calendar's days."""

    dataset: str
    key: str
    cells: list[CalendarCell]


@dataclass(frozen=True)
class Calendar:
    """Days × datasets of an environment, as orchestrators show partitions."""

    env: str
    days: list[date]
    rows: list[CalendarRow]

    def as_dict(self) -> dict[str, Any]:
        return {"env": self.env, "days": [d.isoformat() for d in self.days],
                "rows": [{"dataset": r.dataset, "key": r.key,
                          "cells": [{"day": c.day.isoformat(), "status": c.status,
                                     "detail": c.detail, "entries": [list(e) for e in c.entries]}
                                    for c in r.cells]} for r in self.rows]}
