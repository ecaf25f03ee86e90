"""The progress display of ``pagesight index`` (pagesight/_progress.py), driven by a fake clock."""

from __future__ import annotations

import io

from pagesight._progress import IndexProgress, format_duration, progress_line
from pagesight.pipelines.ingest import IngestProgress, SourceResult


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def update(done: int, total: int, sources_done: int = 0, sources_total: int = 3, uncounted: int = 0):
    return IngestProgress(done, total, uncounted, sources_done, sources_total, "a.pdf")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0, 9.6, 59.4, 60, 61, 3599, 3600, 7380)] == [
        "0s",
        "10s",
        "59s",
        "1m00s",
        "1m01s",
        "59m59s",
        "1h00m",
        "2h03m",
    ]


def test_progress_line_has_counts_percent_rate_and_eta() -> None:
    assert progress_line(120, 700, 12.5) == "indexed 120/700 pages (17%), 9.6 pages/s, ETA 1m00s"
    assert progress_line(0, 700, 3.0) == "indexed 0/700 pages (0%), 0.0 pages/s, ETA unknown"
    assert progress_line(700, 700, 70.0, final=True) == "indexed 700 pages in 1m10s, 10.0 pages/s"


def test_progress_line_with_a_growing_total_shows_no_eta() -> None:
    assert progress_line(50, 120, 10.0, uncounted=1) == "indexed 50/120+ pages, 5.0 pages/s"
    assert progress_line(130, 130, 10.0, uncounted=1) == "indexed 130 pages, 13.0 pages/s"


def test_plain_output_every_interval_and_every_tenth() -> None:
    clock, out = Clock(), io.StringIO()
    progress = IndexProgress(out, tty=False, interval=10.0, clock=clock)
    progress(update(0, 100))  # the opening line, with the counted total
    clock.now += 2
    progress(update(5, 100))  # 5 %: no new tenth, 2 s < interval: silent
    clock.now += 2
    progress(update(12, 100))  # the first tenth crossed
    clock.now += 3
    progress(update(15, 100))  # silent
    clock.now += 10
    progress(update(18, 100))  # the interval passed
    progress.line("  indexed    a.pdf (18 pages)")
    clock.now += 1
    progress(update(100, 100, sources_done=3))  # the run is over: close() says it
    clock.now += 1
    progress.close()
    assert out.getvalue().splitlines() == [
        "indexing 3 source(s), 100 pages",
        "indexed 12/100 pages (12%), 3.0 pages/s, ETA 29s",
        "indexed 18/100 pages (18%), 1.1 pages/s, ETA 1m17s",
        "  indexed    a.pdf (18 pages)",
        "indexed 100 pages in 19s, 5.3 pages/s",
    ]


def test_uncounted_sources_are_announced_and_the_total_grows() -> None:
    clock, out = Clock(), io.StringIO()
    progress = IndexProgress(out, tty=False, interval=5.0, clock=clock)
    progress(update(0, 40, uncounted=1))
    clock.now += 6
    progress(update(40, 40, sources_done=1, uncounted=1))
    clock.now += 6
    progress(update(52, 52, sources_done=1, uncounted=1))
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0] == "indexing 3 source(s), 40 pages (+1 not counted yet)"
    assert lines[1:] == ["indexed 40 pages, 6.7 pages/s", "indexed 52 pages, 4.3 pages/s", lines[-1]]
    assert lines[-1].startswith("indexed 52 pages in 12s")


def test_disabled_progress_prints_only_the_summaries() -> None:
    out = io.StringIO()
    with IndexProgress(out, tty=False, enabled=False, clock=Clock()) as progress:
        progress(update(0, 10))
        progress(update(10, 10, sources_done=3))
        progress.line("  indexed    a.pdf (10 pages)")
    assert out.getvalue() == "  indexed    a.pdf (10 pages)\n"


def test_terminal_bar_shows_total_rate_and_stays_after_close() -> None:
    out = io.StringIO()
    progress = IndexProgress(out, tty=True, clock=Clock())
    progress(update(0, 125))
    assert "0/125" in out.getvalue()  # the total from the start, never "0page"
    progress(update(64, 125, sources_done=1))
    progress.line("  indexed    a.pdf (64 pages)")
    progress(update(125, 125, sources_done=3))
    progress.close()
    text = out.getvalue()
    assert "  indexed    a.pdf (64 pages)\n" in text
    last = text.rsplit("\r", 1)[-1]  # what stays on screen: the bar's last state, not erased
    assert "100%" in last and "125/125" in last and "pages/s" in last and "3/3 sources" in last


def test_the_source_summary_line_is_terminal_safe() -> None:
    out = io.StringIO()
    IndexProgress(out, tty=False).line("  indexed    evil\x1b]0;owned\x07.pdf (1 pages)")
    assert "\x1b" not in out.getvalue() and "\\x1b]0;owned\\x07.pdf" in out.getvalue()


def test_progress_records_compare_as_values() -> None:
    result = SourceResult("a.pdf", "indexed", 3)
    assert IngestProgress(3, 3, 0, 1, 1, "a.pdf", result).result == result
