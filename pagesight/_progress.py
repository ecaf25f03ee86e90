"""The progress display of ``pagesight index``: one bar for the whole run, or plain lines in logs.

:func:`pagesight.pipelines.ingest.ingest` reports :class:`~pagesight.pipelines.ingest.IngestProgress`
updates through ``on_progress`` and knows nothing of terminals; :class:`IndexProgress` renders them.

- On a terminal: one tqdm bar for every page of the run (``n/total``, %, pages/s, ETA) that stays on
  screen at the end; each source's summary line is printed above it.
- Elsewhere (a pipe, a log file, CI): a plain line every ``interval`` seconds and at each further
  10 % of the pages, and one at the end::

      indexed 120/700 pages (17%), 9.6 pages/s, ETA 1m00s

The total is counted before the first page (PDF page counts); sources whose count is not known
up front (URLs) make it grow as they load, shown as ``700+``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pagesight._terminal import safe

if TYPE_CHECKING:
    from pagesight.pipelines.ingest import IngestProgress

__all__ = ["IndexProgress", "format_duration", "progress_line"]


def format_duration(seconds: float) -> str:
    """``45s``, ``1m00s``, ``2h03m``: short, fixed-style durations for progress lines."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def progress_line(done: int, total: int, elapsed: float, *, uncounted: int = 0, final: bool = False) -> str:
    """One plain progress line.

    Args:
        done: pages done.
        total: pages expected (known so far).
        elapsed: seconds since the run started.
        uncounted: sources whose page count is not known yet (the total is then shown as ``N+``,
            and no % or ETA is given).
        final: the closing line (elapsed time instead of ETA).

    Example:
        >>> progress_line(120, 700, 12.5)
        'indexed 120/700 pages (17%), 9.6 pages/s, ETA 1m00s'
    """
    rate = done / elapsed if elapsed > 0 else 0.0
    speed = f"{rate:.1f} pages/s"
    if final:
        return f"indexed {done} pages in {format_duration(elapsed)}, {speed}"
    if uncounted or total <= 0:
        shown = f"{done}/{total}+" if total > done else f"{done}"
        return f"indexed {shown} pages, {speed}"
    pct = 100 * done // total
    eta = format_duration((total - done) / rate) if rate > 0 else "unknown"
    return f"indexed {done}/{total} pages ({pct}%), {speed}, ETA {eta}"


class IndexProgress:
    """Render ``IngestProgress`` updates: a tqdm bar on a terminal, plain periodic lines elsewhere.

    Args:
        stream: where to write (default: ``sys.stderr`` at the time of each write).
        tty: force terminal (bar) or plain output; ``None``: ``stream.isatty()``.
        enabled: ``False`` shows no progress (``--quiet``); :meth:`line` still prints.
        interval: plain output: seconds between lines (a line is also written at each 10 %).
        clock: seconds, monotonic (tests pass a fake one).

    Use: pass the object as ``on_progress``, print per-source lines with :meth:`line`, and call
    :meth:`close` at the end (or use it as a context manager).
    """

    def __init__(
        self,
        stream: Any = None,
        *,
        tty: bool | None = None,
        enabled: bool = True,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self.enabled = enabled
        self.interval = interval
        self.clock = clock
        self.tty = bool(self.stream.isatty()) if tty is None else tty
        self.start: float | None = None
        self.last: IngestProgress | None = None
        self._bar: Any = None
        self._printed_at = 0.0
        self._printed_tenth = 0

    @property
    def stream(self) -> Any:
        return self._stream if self._stream is not None else sys.stderr

    def __enter__(self) -> IndexProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __call__(self, update: IngestProgress) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if self.start is None:
            self.start = now
            self._printed_at = now
            if not self.tty:
                self._emit(self._opening(update))
        self.last = update
        if self.tty:
            self._draw(update)
            return
        total, done = update.pages_total, update.pages_done
        tenth = 10 * done // total if total and not update.uncounted else 0
        running = update.sources_done < update.sources_total  # the end gets close()'s line instead
        if running and done and (now - self._printed_at >= self.interval or tenth > self._printed_tenth):
            self._printed_at = now
            self._printed_tenth = tenth
            self._emit(progress_line(done, total, now - self.start, uncounted=update.uncounted))

    def _opening(self, update: IngestProgress) -> str:
        more = f" (+{update.uncounted} not counted yet)" if update.uncounted else ""
        return f"indexing {update.sources_total} source(s), {update.pages_total} pages{more}"

    def _draw(self, update: IngestProgress) -> None:
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=update.pages_total,
                desc="indexing",
                unit=" pages",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
            )
        bar = self._bar
        if bar.total != update.pages_total:
            bar.total = update.pages_total
        postfix = f"{update.sources_done}/{update.sources_total} sources"
        if update.uncounted:
            postfix += f", {update.uncounted} not counted yet"
        bar.set_postfix_str(postfix, refresh=False)
        bar.update(update.pages_done - bar.n)  # update() refreshes the bar (also for a 0 step)
        bar.refresh()

    def _emit(self, line: str) -> None:
        stream = self.stream
        text = safe(line) + "\n"
        try:
            stream.write(text)
        except UnicodeEncodeError:  # a terminal that cannot show some characters (e.g. cp1252)
            encoding = getattr(stream, "encoding", None) or "ascii"
            stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
        stream.flush()

    def line(self, line: str) -> None:
        """Print ``line`` (a source's summary) above the bar, or as a plain line, escaped (``safe``)."""
        if self._bar is not None:
            self._bar.clear()
            self._emit(line)
            self._bar.refresh()
        else:
            self._emit(line)

    def close(self) -> None:
        """End the display: the bar stays on screen; plain output gets its closing line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.enabled and self.start is not None and self.last is not None and self.last.pages_done:
            elapsed = self.clock() - self.start
            self._emit(progress_line(self.last.pages_done, self.last.pages_total, elapsed, final=True))
        self.start = None
