"""Progress of a long file import, for the operator watching it.

On a terminal: a bar of the bytes read against the file's size (known before the first row,
and exact however the rows are streamed), with the rows so far, rows per second and the
time left. Elsewhere (a log, a pipe, CI) no bar, whose redraws would fill the log. Either
way one plain line at the end: ``NAME: N rows (SIZE) in S s, R rows/s``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

REFRESH_SECONDS = 0.1
"""How often the bar is told; counting a row costs an addition, not a redraw."""


class FileProgress:
    """Counts what an import has read (bytes, lines); shows it when on a terminal."""

    def __init__(self, path: Path, console: Console) -> None:
        self.name = path.name
        self.size = path.stat().st_size
        self.console = console
        self.bytes = 0
        self.lines = 0
        self._rows: int | None = None
        self.started = time.monotonic()
        self._told = self.started
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def line(self, size: int) -> None:
        """One more line of ``size`` bytes was read (a row, as far as the bar is concerned)."""
        self.bytes += size
        self.lines += 1
        if self._bar is not None:
            now = time.monotonic()
            if now - self._told >= REFRESH_SECONDS:
                self._told = now
                self._tell()

    def finished(self, rows: int) -> None:
        """The import counted ``rows`` rows in all (a header is not one; a quoted cell may
        span lines): the summary says this rather than the lines."""
        self._rows = rows

    @property
    def rows(self) -> int:
        return self.lines if self._rows is None else self._rows

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"{self.name}: {self.rows:,} rows ({_size(self.size)}) in {elapsed:.1f} s, "
            f"{self.rate():,.0f} rows/s"
        )

    def _tell(self) -> None:
        assert self._bar is not None and self._task is not None
        self._bar.update(
            self._task, completed=self.bytes, rows=f"{self.rows:,}", rate=f"{self.rate():,.0f}"
        )

    @contextmanager
    def shown(self) -> Iterator[FileProgress]:
        """The bar for the block (on a terminal only), then the summary line."""
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rows]} rows, {task.fields[rate]} rows/s, ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=True,
            )
            self._task = self._bar.add_task(self.name, total=self.size or 1, rows="0", rate="0")
            self._bar.start()
        try:
            yield self
        finally:
            if self._bar is not None:
                self._tell()
                self._bar.stop()
                self._bar = None
        self.console.print(self.summary(), markup=False, highlight=False)


@contextmanager
def file_progress(path: Path, console: Console | None = None) -> Iterator[FileProgress]:
    """Progress of importing ``path``, on stderr unless another console is given."""
    with FileProgress(path, console or Console(stderr=True)).shown() as progress:
        yield progress


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
