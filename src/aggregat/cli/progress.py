"""A progress bar on a terminal, nothing otherwise (logs and CI output stay clean)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from aggregat.cli.common import err_console


@contextlib.contextmanager
def progress_bar(label: str) -> Iterator[Callable[[int], Callable[[], None]]]:
    """Yield ``start(total) -> tick()``; a no-op when stderr is not a terminal."""
    if not err_console.is_terminal:
        yield lambda total: (lambda: None)
        return
    # The label goes in as data, not as the column's format: no markup, no {braces} to format.
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        def start(total: int) -> Callable[[], None]:
            task = bar.add_task(label, total=total)
            return lambda: bar.advance(task)

        yield start
