"""Hostile HTTP servers: decompression bombs, credentials in URLs, answers that never end.

Every server here is a real one on loopback (tests/http_server.py); the bombs are built in the test,
streamed through the compressor so the test itself stays small in memory.
"""

from __future__ import annotations

import base64
import functools
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from doc_factories import pdf_bytes
from http_server import LoopbackHTTPServer, Route

from pagesight.documents import load_source
from pagesight.documents.url import fetch_url, load_url, redact_url
from pagesight.errors import ConfigurationError, DocumentLoadError, UnsupportedSourceError, URLFetchError

pytestmark = pytest.mark.enable_socket

GiB = 2**30
HTML = (
    b"<html><body>"
    + b"".join(b"<p>Paragraph %d about compressed pages.</p>" % i for i in range(40))
    + b"</body></html>"
)


def _zeros(total: int, chunk: int = 2**20) -> Iterator[bytes]:
    block = bytes(chunk)
    for _ in range(total // chunk):
        yield block


def _gzip(chunks: Iterator[bytes] | list[bytes]) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    out = bytearray()
    for piece in chunks:
        out += c.compress(piece)
    return bytes(out + c.flush())


def _brotli(chunks: Iterator[bytes] | list[bytes]) -> bytes:
    brotli = pytest.importorskip("brotli", minversion="1.2")  # bounded decoding needs 1.2
    c = brotli.Compressor(quality=5)
    out = bytearray()
    for piece in chunks:
        out += c.process(piece)
    return bytes(out + c.finish())


def _zstd(chunks: Iterator[bytes] | list[bytes]) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    c = zstandard.ZstdCompressor(level=3).compressobj()
    out = bytearray()
    for piece in chunks:
        out += c.compress(piece)
    return bytes(out + c.flush())


@functools.cache
def _bomb(encoding: str) -> bytes:
    """A body sent with ``Content-Encoding: encoding`` that decodes to 1 GiB of zeros (a few KB)."""
    if encoding == "gzip, gzip":
        return _gzip([_gzip(_zeros(GiB))])
    return {"br": _brotli, "zstd": _zstd}[encoding](_zeros(GiB))


def _decoders_installed() -> set[str]:
    names = {"gzip", "deflate"}
    try:
        import brotli

        if hasattr(brotli.Decompressor(), "can_accept_more_data"):
            names.add("br")
    except ImportError:
        pass
    try:
        import zstandard  # noqa: F401

        names.add("zstd")
    except ImportError:
        pass
    return names


# ----------------------------------------------------------------------------- decompression bombs

_MEASURE = """
import json, resource, sys
from pagesight.documents.url import load_url
from pagesight.errors import URLFetchError
try:
    list(load_url(sys.argv[1], allow_private=True))
    outcome = {"error": None}
except URLFetchError as e:
    outcome = {"error": type(e).__name__, "message": str(e)}
# VmHWM: the peak of this process image alone. ru_maxrss is not: Linux carries the parent's peak
# across fork + exec, so under a large pytest process it reports the parent's size.
try:
    with open("/proc/self/status") as f:
        peak_kb = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
except OSError:
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
outcome["max_rss_mb"] = peak_kb / 1024
print(json.dumps(outcome))
"""


@pytest.mark.parametrize("encoding", ["gzip, gzip", "br", "zstd"])
def test_decompression_bomb_is_refused_within_bounded_memory(encoding: str) -> None:
    body = _bomb(encoding)
    assert len(body) < 64 * 1024  # a small answer...
    with LoopbackHTTPServer() as server:
        server.add(
            "/bomb.html", Route(body, content_type="text/html", headers={"Content-Encoding": encoding})
        )
        url = server.url("/bomb.html")
        done = subprocess.run(
            [sys.executable, "-c", _MEASURE, url], capture_output=True, text=True, timeout=300, check=False
        )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["error"] == "URLFetchError"
    assert outcome["message"].startswith(url)
    assert f"once decoded (Content-Encoding {encoding})" in outcome["message"]
    assert "over the limit of 67,108,864 bytes" in outcome["message"]
    # ...that inflates to 1 GiB: refused at the 64 MiB cap, never held whole (2.1 GB peak before)
    assert outcome["max_rss_mb"] < 400, outcome


def test_bomb_is_refused_in_process_too(http_server: LoopbackHTTPServer) -> None:
    http_server.add(
        "/b", Route(_bomb("zstd"), content_type="application/pdf", headers={"Content-Encoding": "zstd"})
    )
    with pytest.raises(
        URLFetchError, match=r"more than 1,000,000 bytes once decoded \(Content-Encoding zstd\)"
    ):
        fetch_url(http_server.url("/b"), max_bytes=1_000_000)


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        ("gzip", lambda b: _gzip([b])),
        ("x-gzip", lambda b: _gzip([b])),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),  # raw, as some servers send
        ("br", lambda b: _brotli([b])),
        ("zstd", lambda b: _zstd([b])),
        ("gzip, br", lambda b: _brotli([_gzip([b])])),  # applied left to right, undone right to left
        ("identity", lambda b: b),
    ],
)
def test_compressed_pages_still_load(http_server: LoopbackHTTPServer, encoding: str, encode) -> None:  # noqa: ANN001
    http_server.add(
        "/page", Route(encode(HTML), content_type="text/html", headers={"Content-Encoding": encoding})
    )
    fetched = fetch_url(http_server.url("/page"))
    assert fetched.body == HTML
    pages = list(load_url(http_server.url("/page")))
    assert "Paragraph 39 about compressed pages." in " ".join(p.text for p in pages)
    accepted = http_server.requests[0].headers["Accept-Encoding"]
    assert {c.strip() for c in accepted.split(",")} == _decoders_installed()


def test_gzip_members_in_a_row_are_one_body(http_server: LoopbackHTTPServer) -> None:
    data = pdf_bytes(["two members"])
    half = len(data) // 2
    body = _gzip([data[:half]]) + _gzip([data[half:]])
    http_server.add(
        "/d.pdf", Route(body, content_type="application/pdf", headers={"Content-Encoding": "gzip"})
    )
    assert fetch_url(http_server.url("/d.pdf")).body == data


@pytest.mark.parametrize("trailer", [b"\0" * 512, b"\n", b"\x1f", b"garbage after the member"])
def test_bytes_after_the_last_gzip_member_are_ignored(
    http_server: LoopbackHTTPServer, trailer: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # zero padding and the like after a member: ignored, as gzip -d and httpx do; the body is kept
    body = _gzip([HTML]) + _gzip([b"<p>second member</p>"]) + trailer
    http_server.add("/pad", Route(body, content_type="text/html", headers={"Content-Encoding": "gzip"}))
    with caplog.at_level("DEBUG", logger="pagesight.documents.content_encoding"):
        assert fetch_url(http_server.url("/pad")).body == HTML + b"<p>second member</p>"
    assert f"ignored the bytes after the last gzip member (starting {trailer[:16]!r})" in caplog.text


@pytest.mark.parametrize("encoding", ["compress", "x-bomb", "gzip, exi"])
def test_unknown_encodings_are_refused(http_server: LoopbackHTTPServer, encoding: str) -> None:
    http_server.add(
        "/x", Route(_gzip([HTML]), content_type="text/html", headers={"Content-Encoding": encoding})
    )
    with pytest.raises(URLFetchError, match=rf"/x: refused: the server sent Content-Encoding '{encoding}'"):
        load_url(http_server.url("/x"))


def test_more_than_three_layers_are_refused(http_server: LoopbackHTTPServer) -> None:
    body = HTML
    for _ in range(4):
        body = _gzip([body])
    http_server.add(
        "/x", Route(body, content_type="text/html", headers={"Content-Encoding": "gzip, " * 3 + "gzip"})
    )
    with pytest.raises(URLFetchError, match=r"4 layers of compression \(pagesight decodes at most 3"):
        load_url(http_server.url("/x"))


def test_body_that_is_not_what_its_encoding_says(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/x", Route(HTML, content_type="text/html", headers={"Content-Encoding": "gzip"}))
    with pytest.raises(URLFetchError, match=r"/x: the body is not valid gzip data"):
        load_url(http_server.url("/x"))
    http_server.add(
        "/cut", Route(_gzip([HTML])[:-20], content_type="text/html", headers={"Content-Encoding": "gzip"})
    )
    with pytest.raises(URLFetchError, match=r"/cut: the body is not valid gzip data \(it ends before"):
        load_url(http_server.url("/cut"))


def test_zstd_frames_asking_for_a_window_over_8_mib_are_refused(http_server: LoopbackHTTPServer) -> None:
    zstandard = pytest.importorskip("zstandard")
    params = zstandard.ZstdCompressionParameters.from_level(3, window_log=25)  # a 32 MiB window
    c = zstandard.ZstdCompressor(compression_params=params).compressobj()
    body = c.compress(HTML) + c.flush()
    assert zstandard.get_frame_parameters(body).window_size == 2**25
    http_server.add("/z", Route(body, content_type="text/html", headers={"Content-Encoding": "zstd"}))
    with pytest.raises(
        URLFetchError, match=r"/z: the body is not valid zstd data, or needs a window over 8 MiB"
    ):
        load_url(http_server.url("/z"))


def test_raw_size_is_bounded_even_when_it_decodes_to_little(http_server: LoopbackHTTPServer) -> None:
    # 20,000 empty flush blocks: about 100 KB as sent, a single byte once decoded
    c = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    body = bytearray(c.compress(b"x"))
    for _ in range(20_000):
        body += c.compress(b"") + c.flush(zlib.Z_SYNC_FLUSH)
    body += c.flush()
    assert len(body) > 90_000
    assert zlib.decompress(bytes(body), 16 + zlib.MAX_WBITS) == b"x"
    http_server.add(
        "/x",
        Route(bytes(body), content_type="text/html", headers={"Content-Encoding": "gzip"}, send_length=False),
    )
    with pytest.raises(URLFetchError, match=r"more than 10,000 bytes as sent \(Content-Encoding gzip\)"):
        fetch_url(http_server.url("/x"), max_bytes=10_000)


# ----------------------------------------------------------------------------- credentials in URLs

SECRET = "pa@ss:w0rd-s3cret"


def _with_credentials(url: str, user: str = "ann", password: str = SECRET) -> str:
    from urllib.parse import quote

    return url.replace("http://", f"http://{quote(user, safe='')}:{quote(password, safe='')}@", 1)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_redact_url() -> None:
    assert redact_url("http://ann:pw@example.org:8080/a.pdf") == "http://example.org:8080/a.pdf"
    assert redact_url("https://tok@example.org/") == "https://example.org/"
    assert redact_url("http://a:b@c@example.org/x") == "http://example.org/x"  # up to the last @
    signed = "https://b.s3.amazonaws.com/r.pdf?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00d&x-id=GetObject"
    assert redact_url(signed) == (
        "https://b.s3.amazonaws.com/r.pdf?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&x-id=GetObject"
    )
    assert redact_url("http://h/a?page=2&token=abc&key=public#access_token=xyz") == (
        "http://h/a?page=2&token=REDACTED&key=public#access_token=REDACTED"
    )
    assert redact_url("http://h/a.pdf#page=3") == "http://h/a.pdf#page=3"
    assert redact_url("docs/user@host.pdf") == "docs/user@host.pdf"
    assert redact_url("https://medium.com/@ann/post") == "https://medium.com/@ann/post"  # @ in a path
    assert redact_url("http://h:8080/@ann?q=a@b") == "http://h:8080/@ann?q=a@b"


@pytest.mark.parametrize("password", ["se/cret", "se?cret", "se#cret", "s/e?c#ret", "se/cr@t"])
def test_a_password_with_a_path_character_is_hidden_and_refused(password: str) -> None:
    url = f"http://ann:{password}@example.org/a.pdf?token=t0k"
    assert redact_url(url) == "http://***@example.org/a.pdf?token=REDACTED"
    with pytest.raises(UnsupportedSourceError, match=r"percent-encode them \(%2F, %3F, %23\)") as caught:
        fetch_url(url)
    message = str(caught.value)
    assert message.startswith("http://***@example.org/a.pdf"), message
    assert "cret" not in message and "cr@t" not in message and "ann" not in message


def test_credentials_are_sent_to_their_origin_only_and_never_named(http_server: LoopbackHTTPServer) -> None:
    with LoopbackHTTPServer() as other:
        other.add("/elsewhere", Route(HTML, content_type="text/html"))
        http_server.add("/start", Route(redirect="/doc"))
        http_server.add("/doc", Route(HTML, content_type="text/html"))
        http_server.add("/away", Route(redirect=other.url("/elsewhere")))
        url = _with_credentials(http_server.url("/start"))

        pages = list(load_url(url))
        start, doc = http_server.requests
        assert start.headers["Authorization"] == doc.headers["Authorization"] == _basic("ann", SECRET)
        assert {p.source for p in pages} == {http_server.url("/start")}

        fetched = fetch_url(_with_credentials(http_server.url("/away")))
        assert fetched.url == http_server.url("/away") and fetched.final_url == other.url("/elsewhere")
        (seen,) = other.requests
        assert "Authorization" not in seen.headers  # another origin never gets the password


def test_credentials_a_redirect_writes_are_not_used(http_server: LoopbackHTTPServer) -> None:
    with LoopbackHTTPServer() as other:
        other.add("/doc", Route(HTML, content_type="text/html"))
        http_server.add("/start", Route(redirect=_with_credentials(other.url("/doc"), "evil", "given")))
        fetched = fetch_url(http_server.url("/start"))
        assert "Authorization" not in other.requests[0].headers
        assert fetched.final_url == other.url("/doc")


def test_explicit_authorization_header_wins(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/doc", Route(HTML, content_type="text/html"))
    fetch_url(_with_credentials(http_server.url("/doc")), headers={"authorization": "Bearer t"})
    sent = [(k, v) for k, v in http_server.requests[0].headers.items() if k.lower() == "authorization"]
    assert [v for _, v in sent] == ["Bearer t"]


def test_errors_never_show_the_password(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/gone", Route(b"no", status=404))
    http_server.add("/slow", Route(HTML, content_type="text/html", delay=2))
    http_server.add("/loop", Route(redirect="/loop"))
    http_server.add("/ftp", Route(redirect="ftp://ann:pw@example.org/x"))
    for path, kwargs in [("/gone", {}), ("/slow", {"timeout": 0.3}), ("/loop", {}), ("/ftp", {})]:
        url = _with_credentials(http_server.url(path))
        with pytest.raises(DocumentLoadError) as caught:
            load_url(url, **kwargs)
        message = str(caught.value)
        named = "ftp://example.org/x" if path == "/ftp" else http_server.url(path)  # a hop is named itself
        assert message.startswith(named), message
        assert SECRET not in message and "pa%40ss" not in message and ":pw@" not in message


def test_secret_query_values_are_sent_but_not_stored(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/r.pdf", Route(pdf_bytes(["signed link"]), content_type="application/pdf"))
    url = http_server.url("/r.pdf?X-Amz-Signature=deadbeef&token=t0k&v=2")
    pages = list(load_url(url, render=False))
    assert http_server.requests[0].path == "/r.pdf?X-Amz-Signature=deadbeef&token=t0k&v=2"
    assert pages[0].source == http_server.url("/r.pdf?X-Amz-Signature=REDACTED&token=REDACTED&v=2")


def test_index_sources_and_report_never_show_the_password(
    http_server: LoopbackHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pagesight.cli import main

    http_server.add("/doc.pdf", Route(pdf_bytes(["credentials stay secret"]), content_type="application/pdf"))
    url = _with_credentials(http_server.url("/doc.pdf"))
    bad = _with_credentials(http_server.url("/missing.pdf"))
    store = str(tmp_path / "store")

    code = main(["index", url, bad, "--store", store, "-q", "--no-images"])
    out, err = capsys.readouterr()
    assert code == 1  # the missing one failed
    assert f"indexed    {http_server.url('/doc.pdf')} (1 pages)" in err
    assert f"FAILED {http_server.url('/missing.pdf')}: " in err
    assert http_server.requests[0].headers["Authorization"] == _basic("ann", SECRET)  # the server got it

    assert main(["sources", "--store", store]) == 0
    listed, _ = capsys.readouterr()
    assert main(["sources", "--store", store, "--json"]) == 0
    as_json, _ = capsys.readouterr()
    assert json.loads(as_json) == [{"source": http_server.url("/doc.pdf"), "pages": 1}]
    assert main(["search", "credentials", "--store", store, "--mode", "bm25", "--json"]) == 0
    hits, _ = capsys.readouterr()
    for text in (out, err, listed, as_json, hits):
        assert SECRET not in text and "pa%40ss" not in text and "ann:" not in text

    # `delete` takes the URL as the user wrote it
    assert main(["delete", url, "--store", store]) == 0
    _, deleted = capsys.readouterr()
    assert f"deleted {http_server.url('/doc.pdf')} (1 pages)" in deleted and "pa%40ss" not in deleted


def test_ingest_report_never_shows_the_password(
    http_server: LoopbackHTTPServer, tmp_path: Path, encoder
) -> None:  # noqa: ANN001
    from pagesight.pipelines.ingest import ingest
    from pagesight.retrieval.store import PageStore

    http_server.add("/a.html", Route(HTML, content_type="text/html"))
    store = PageStore(tmp_path / "store")
    report = ingest(
        [_with_credentials(http_server.url("/a.html")), _with_credentials(http_server.url("/no"))],
        store,
        encoder,
    )
    assert [r.source for r in report.results] == [http_server.url("/a.html"), http_server.url("/no")]
    assert "pa%40ss" not in report.summary() and SECRET not in report.summary()
    assert [s.source for s in store.sources()] == [http_server.url("/a.html")]
    # indexing it again, with another password, writes the same source: no second name
    again = ingest([_with_credentials(http_server.url("/a.html"), password="other")], store, encoder)
    assert [r.source for r in again.results] == [http_server.url("/a.html")] and again.ok
    assert [s.source for s in store.sources()] == [http_server.url("/a.html")]


def test_web_app_log_and_sources_never_show_the_password(
    http_server: LoopbackHTTPServer, tmp_path: Path
) -> None:
    from pagesight.ui.app import on_index, sources_rows
    from pagesight.ui.state import App

    http_server.add(
        "/memo.pdf", Route(pdf_bytes(["The memo about the bridge."]), content_type="application/pdf")
    )
    app = App(tmp_path / "store")
    urls = "\n".join(_with_credentials(http_server.url(p)) for p in ("/memo.pdf", "/gone.pdf"))
    log = list(on_index(app, [], urls, None))[-1][0]
    assert f"indexed    {http_server.url('/memo.pdf')} (1 page)" in log
    assert f"failed     {http_server.url('/gone.pdf')}: " in log
    assert "pa%40ss" not in log and SECRET not in log
    assert sources_rows(app) == [[http_server.url("/memo.pdf"), 1]]
    assert http_server.requests[0].headers["Authorization"] == _basic("ann", SECRET)


# ----------------------------------------------------------------------------- overall deadline


def test_trickling_server_is_cut_off_at_the_deadline(http_server: LoopbackHTTPServer) -> None:
    # 120 bytes, one every 0.5 s: a minute of trickle, each read well inside the 20 s read timeout
    http_server.add(
        "/trickle",
        Route(
            b"<p>" + b"x" * 117, content_type="text/html", send_length=False, chunk_size=1, chunk_delay=0.5
        ),
    )
    started = time.monotonic()
    with pytest.raises(
        URLFetchError, match=r"/trickle: the download did not finish within the deadline of 2 s \(deadline=2,"
    ):
        load_url(http_server.url("/trickle"), deadline=2)
    assert time.monotonic() - started < 30  # the trickle alone would take 60 s


def test_deadline_cuts_a_stalled_read_short(http_server: LoopbackHTTPServer) -> None:
    # headers and a first piece at once, then 40 s of silence: the read waits only for the time left
    http_server.add(
        "/stall",
        Route(b"<p>a</p>" * 2, content_type="text/html", send_length=False, chunk_size=8, chunk_delay=40),
    )
    started = time.monotonic()
    with pytest.raises(URLFetchError, match=r"within the deadline of 1.5 s \(deadline=1.5"):
        fetch_url(http_server.url("/stall"), timeout=30, deadline=1.5)
    assert time.monotonic() - started < 1.5 + 1.5  # not the 30 s read timeout, nor the 40 s stall


def test_deadline_is_not_overrun_by_one_read_timeout(http_server: LoopbackHTTPServer) -> None:
    # one byte at 0.5 s, 2.5 s and 3.5 s (each gap inside the 3 s read timeout), then a stall: the
    # last read may wait only until the 4 s deadline, not a whole read timeout more (6.5 s)
    http_server.add(
        "/trickle",
        Route(
            b"abcd",
            content_type="text/html",
            send_length=False,
            chunk_size=1,
            chunk_delays=(0.5, 2.0, 1.0, 40),
        ),
    )
    started = time.monotonic()
    with pytest.raises(URLFetchError, match=r"within the deadline of 4 s \(deadline=4"):
        fetch_url(http_server.url("/trickle"), timeout=3, deadline=4)
    assert time.monotonic() - started < 4 + 1.5


def test_deadline_covers_redirects(http_server: LoopbackHTTPServer) -> None:
    for i in range(5):  # five hops of 1 s each, every one inside the per-read timeout
        http_server.add(f"/r{i}", Route(redirect=f"/r{i + 1}", delay=1.0))
    http_server.add("/r5", Route(HTML, content_type="text/html"))
    with pytest.raises(URLFetchError, match=r"/r0: the download did not finish within the deadline of 2.5 s"):
        fetch_url(http_server.url("/r0"), deadline=2.5)
    assert len(http_server.requests) < 5
    assert fetch_url(http_server.url("/r3"), deadline=60).body == HTML


def test_load_source_passes_the_deadline_on(http_server: LoopbackHTTPServer) -> None:
    http_server.add(
        "/t", Route(b"x" * 100, content_type="text/html", send_length=False, chunk_size=1, chunk_delay=0.5)
    )
    with pytest.raises(URLFetchError, match=r"deadline=1\b"):
        list(load_source(http_server.url("/t"), deadline=1))


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_bad_deadline(value: float) -> None:
    with pytest.raises(ConfigurationError, match="`deadline` must be positive"):
        fetch_url("http://127.0.0.1:9/x", deadline=value)


def test_cli_timeout_flag(
    http_server: LoopbackHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pagesight.cli import build_parser, loader_limits, main

    http_server.add(
        "/t.html",
        Route(b"x" * 100, content_type="text/html", send_length=False, chunk_size=1, chunk_delay=0.5),
    )
    store = str(tmp_path / "store")
    code = main(["index", http_server.url("/t.html"), "--store", store, "-q", "--timeout", "1.5"])
    _, err = capsys.readouterr()
    assert code == 1
    assert "within the deadline of 1.5 s" in err

    assert main(["index", http_server.url("/t.html"), "--store", store, "--timeout", "0"]) == 2
    assert "--timeout must be a positive number of seconds, got 0.0" in capsys.readouterr().err

    serve = build_parser().parse_args(["serve", "--timeout", "7"])
    assert loader_limits(serve)["deadline"] == 7.0
