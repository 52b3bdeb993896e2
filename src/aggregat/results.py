"""Typed results of the public API (:mod:`aggregat.api`): what a job, a training, a prediction or
a backtest did, as dataclasses a notebook, the CLI and the dashboard read the same way.

Results of the lower layers that were already typed are re-exported by ``aggregat`` as they are
(``FetchReport``, ``ExtractReport``, ``HealthReport``, ``SyncReport``, ``PublishReport``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import datetime
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
                "steps": [asdict(s) for s in self.steps], "planned": self.planned}


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
        metrics=row.get("metrics") or {}, promoted=row.get("promoted"))


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
