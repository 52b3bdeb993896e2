"""Step timing summary: the short table every run ends with (step, partition, seconds, status).

>>> timing = Timing()
>>> timing.add("extract", "arome-0025/2026-11-28T00", 1.5, "ok")
>>> print(timing.text())

The :class:`~aggregat.ops.ledger.Ledger` feeds one of these automatically (``ledger.timing``), so a
job only has to call ``ledger.timing.print(console)`` (or ``text()`` in logs) at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_STYLE = {"ok": "green", "skipped": "dim", "done": "dim", "partial": "yellow", "failed": "red",
          "running": "cyan"}


@dataclass
class TimingRow:
    """One measured step."""

    step: str
    partition: str
    seconds: float
    status: str
    rows: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "partition": self.partition, "seconds": round(self.seconds, 3),
                "status": self.status, "rows": self.rows}


@dataclass
class Timing:
    """Rows of (step, partition, seconds, status) in the order steps finished."""

    rows: list[TimingRow] = field(default_factory=list)

    def add(self, step: str, partition: str, seconds: float, status: str,
            rows: int | None = None) -> None:
        """Record one step."""
        self.rows.append(TimingRow(step, partition, float(seconds), status, rows))

    @classmethod
    def of_steps(cls, steps) -> Timing:
        """The timing of a run's :class:`~aggregat.results.StepReport` list."""
        return cls([TimingRow(s.step, s.partition, s.seconds, s.status, s.rows) for s in steps])

    @property
    def total_s(self) -> float:
        return sum(r.seconds for r in self.rows)

    def by_step(self) -> dict[str, float]:
        """Seconds per step name, summed over partitions (what the demo report lists)."""
        out: dict[str, float] = {}
        for r in self.rows:
            out[r.step] = out.get(r.step, 0.0) + r.seconds
        return out

    def as_dicts(self) -> list[dict[str, Any]]:
        return [r.as_dict() for r in self.rows]

    def table(self, title: str = "timing"):
        """A rich Table of the rows plus a total line."""
        from rich.table import Table
        from rich.text import Text

        # Text cells, not markup: a partition name may hold brackets; any console prints them.
        table = Table("step", "partition", "seconds", "rows", "status", title=title)
        for r in self.rows:
            style = _STYLE.get(r.status, "")
            table.add_row(r.step, r.partition, f"{r.seconds:.2f}",
                          "" if r.rows is None else f"{r.rows:,}",
                          Text(r.status, style=style))
        table.add_row(Text("total", style="bold"), f"{len(self.rows)} steps",
                      Text(f"{self.total_s:.2f}", style="bold"), "", "")
        return table

    def text(self) -> str:
        """Plain-text summary (for logs and non-terminal output)."""
        if not self.rows:
            return "timing: no steps ran"
        width = max(len(f"{r.step} {r.partition}") for r in self.rows)
        lines = [f"{(r.step + ' ' + r.partition).ljust(width)}  {r.seconds:8.2f}s  {r.status}"
                 + ("" if r.rows is None else f"  {r.rows:,} rows") for r in self.rows]
        lines.append(f"{'total'.ljust(width)}  {self.total_s:8.2f}s  {len(self.rows)} steps")
        return "\n".join(lines)

    def print(self, console, title: str = "timing") -> None:
        """Print the summary on ``console`` (a rich Console): a table on a terminal, plain text
        otherwise."""
        if not self.rows:
            console.print("timing: no steps ran")
        elif console.is_terminal:
            console.print(self.table(title))
        else:
            console.print(self.text(), markup=False, highlight=False)
