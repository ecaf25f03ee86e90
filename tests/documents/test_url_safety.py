"""URL safety: schemes, private and metadata addresses (after DNS, on every redirect), credentials per origin.

The tests unset ``PAGESIGHT_ALLOW_PRIVATE_URLS`` (tests/conftest.py sets it so other tests can fetch
from their loopback servers). Name resolution cannot reach a DNS server here, so where a test needs a
host name that resolves to a chosen address it replaces ``socket.getaddrinfo`` for that name only
(every other name and every IP literal still goes to the real resolver), and where it needs a
"public" server it sends the request through a real loopback HTTP server acting as the HTTP proxy.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from doc_factories import pdf_bytes
from http_server import LoopbackHTTPServer, Route
from hypothesis import given, settings
from hypothesis import strategies as st

from pagesight.documents import fetch_url, load_source, load_url
from pagesight.documents.url import ALLOW_PRIVATE_ENV, check_address
from pagesight.errors import UnsupportedSourceError, URLFetchError

pytestmark = pytest.mark.enable_socket

PUBLIC = "93.184.216.34"  # a global unicast address; nothing here ever connects to it directly


@pytest.fixture(autouse=True)
def _private_urls_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_ENV, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def resolve_names(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, list[str]]], list[str]]]:
    """Make chosen host names resolve to chosen addresses (a list: one answer per lookup, last repeats)."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def install(answers: dict[str, list[str]]) -> list[str]:
        def fake(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name not in answers:
                return real(host, port, *args, **kwargs)
            asked.append(name)
            queue = answers[name]
            address = queue.pop(0) if len(queue) > 1 else queue[0]
            return real(address, port, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", fake)
        return asked

    yield install


# ----------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("0.0.0.0", "unspecified"),
        ("169.254.10.1", "link-local"),
        ("169.254.169.254", "cloud metadata-service"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fc00::1", "private"),
        ("fd00:ec2::254", "cloud metadata-service"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata-service"),
        ("2002:7f00:1::", "loopback"),  # 6to4 wrapping 127.0.0.1
        ("8.8.8.8", None),
        (PUBLIC, None),
        ("2606:4700:4700::1111", None),
        ("::ffff:8.8.8.8", None),
    ],
)
def test_address_classes(address: str, kind: str | None) -> None:
    assert check_address(address) == kind
    allowed = check_address(address, allow_private=True)
    assert allowed == ("cloud metadata-service" if kind == "cloud metadata-service" else None)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.ip_addresses(network="10.0.0.0/8"),
        st.ip_addresses(network="172.16.0.0/12"),
        st.ip_addresses(network="192.168.0.0/16"),
        st.ip_addresses(network="127.0.0.0/8"),
        st.ip_addresses(network="169.254.0.0/16"),
        st.ip_addresses(network="fc00::/7"),
        st.ip_addresses(network="fe80::/10"),
    )
)
def test_every_private_address_is_refused(address: Any) -> None:
    assert check_address(str(address)) is not None


# ----------------------------------------------------------------------------- schemes and refusals


@pytest.mark.parametrize(
    "url",
    ["file:///etc/passwd", "ftp://example.org/a.pdf", "data:application/pdf;base64,JVBERi0=", "gopher://x/"],
)
def test_only_http_and_https(url: str) -> None:
    with pytest.raises(UnsupportedSourceError, match="only http:// and https:// addresses can be fetched"):
        fetch_url(url)


def test_loopback_refused_by_default(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/doc.pdf", Route(body=pdf_bytes(["secret"]), content_type="application/pdf"))
    url = http_server.url("/doc.pdf")
    with pytest.raises(
        URLFetchError,
        match=r"refused: 127\.0\.0\.1 resolves to 127\.0\.0\.1, a loopback address; to allow it, pass "
        r"allow_private=True, `pagesight index --allow-private-urls`, or set PAGESIGHT_ALLOW_PRIVATE_URLS=1",
    ):
        load_url(url)
    localhost = url.replace("127.0.0.1", "localhost")
    with pytest.raises(URLFetchError, match=r"refused: localhost resolves to .*a loopback address"):
        load_source(localhost)
    assert http_server.requests == []  # refused before connecting
    # opting in: the parameter, or the environment variable when the parameter is left at None
    assert [p.text for p in load_url(url, allow_private=True, render=False)] == ["secret"]
    assert [p.text for p in load_source(url, allow_private=True, render=False)] == ["secret"]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ALLOW_PRIVATE_ENV, "1")
        assert [p.text for p in load_url(url, render=False)] == ["secret"]
        with pytest.raises(URLFetchError, match="loopback"):
            load_url(url, allow_private=False)  # an explicit False beats the environment
    assert len(http_server.requests) == 3


def test_public_looking_name_resolving_to_loopback_is_refused(
    http_server: LoopbackHTTPServer, resolve_names: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    http_server.add("/doc.pdf", Route(body=pdf_bytes(["x"]), content_type="application/pdf"))
    asked = resolve_names({"docs.example.com": ["127.0.0.1"]})
    url = f"http://docs.example.com:{http_server.port}/doc.pdf"
    with pytest.raises(
        URLFetchError, match=r"refused: docs\.example\.com resolves to 127\.0\.0\.1, a loopback"
    ):
        load_url(url)
    assert asked == ["docs.example.com"] and http_server.requests == []


def test_connects_to_the_checked_address_not_a_second_lookup(
    http_server: LoopbackHTTPServer, resolve_names: Callable[[dict[str, list[str]]], list[str]]
) -> None:
    # DNS rebinding: the first answer passes the check, a later one would point elsewhere.
    # The fetch must use the first answer; a second lookup would try 10.255.255.1 and fail.
    http_server.add("/doc.pdf", Route(body=pdf_bytes(["pinned"]), content_type="application/pdf"))
    asked = resolve_names({"intranet.example": ["127.0.0.1", "10.255.255.1"]})
    url = f"http://intranet.example:{http_server.port}/doc.pdf"
    assert [p.text for p in load_url(url, allow_private=True, render=False)] == ["pinned"]
    assert asked == ["intranet.example"]
    (request,) = http_server.requests
    assert request.headers["Host"] == f"intranet.example:{http_server.port}"


def test_metadata_address_refused_even_when_private_is_allowed(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/start", Route(redirect="http://169.254.169.254/latest/meta-data/iam/"))
    with pytest.raises(
        URLFetchError,
        match=r"/start: refused: 169\.254\.169\.254 is 169\.254\.169\.254, a cloud metadata-service address "
        r"\(reached by redirect: http://169\.254\.169\.254/latest/meta-data/iam/\); never fetched",
    ):
        fetch_url(http_server.url("/start"), allow_private=True)
    with pytest.raises(URLFetchError, match="cloud metadata-service"):
        fetch_url("http://[fd00:ec2::254]/latest/", allow_private=True)
    assert [r.path for r in http_server.requests] == ["/start"]


# ----------------------------------------------------------------------------- redirects


def test_redirect_from_public_to_private_refused_at_the_hop(
    monkeypatch: pytest.MonkeyPatch,
    resolve_names: Callable[[dict[str, list[str]]], list[str]],
) -> None:
    """A public server (reached through a real HTTP proxy on loopback) redirects to loopback: refused."""
    with LoopbackHTTPServer() as proxy, LoopbackHTTPServer() as private:
        private.add("/admin.pdf", Route(body=pdf_bytes(["internal"]), content_type="application/pdf"))
        # the proxy receives absolute-form requests; it plays the public server
        proxy.add(f"http://{PUBLIC}/pdf", Route(body=pdf_bytes(["public"]), content_type="application/pdf"))
        proxy.add(f"http://{PUBLIC}/start", Route(redirect=private.url("/admin.pdf")))
        proxy.add(f"http://{PUBLIC}/named", Route(redirect=f"http://localhost:{private.port}/admin.pdf"))
        proxy.add(f"http://{PUBLIC}/sneaky", Route(redirect=f"http://files.example:{private.port}/admin.pdf"))
        resolve_names({"public.example": [PUBLIC], "files.example": ["127.0.0.1"]})
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.setenv("NO_PROXY", "")
        # the public server itself is fetched (through the proxy, with the Host name kept)
        assert fetch_url("http://public.example/pdf").body.startswith(b"%PDF")
        assert proxy.requests[-1].headers["Host"] == "public.example"
        for path, host in (("/start", "127.0.0.1"), ("/named", "localhost"), ("/sneaky", "files.example")):
            with pytest.raises(
                URLFetchError,
                match=rf"http://public\.example{path}: refused: {host} resolves to 127\.0\.0\.1, a loopback "
                rf"address \(reached by redirect: http://{host}:{private.port}/admin\.pdf\)",
            ):
                fetch_url(f"http://public.example{path}")
        assert private.requests == []  # the private server was never contacted
        assert [r.path for r in proxy.requests] == [
            f"http://{PUBLIC}/{p}" for p in ("pdf", "start", "named", "sneaky")
        ]


def test_redirect_limit_and_relative_redirects(http_server: LoopbackHTTPServer) -> None:
    http_server.add("/a", Route(redirect="b"))
    http_server.add("/b", Route(redirect="/c?x=1", status=307))
    http_server.add("/c", Route(body=b"<p>done</p>", content_type="text/html"))
    fetched = fetch_url(http_server.url("/a"), allow_private=True, max_redirects=2)
    assert fetched.body == b"<p>done</p>" and fetched.final_url == http_server.url("/c?x=1")
    with pytest.raises(URLFetchError, match=r"too many redirects \(more than 1"):
        fetch_url(http_server.url("/a"), allow_private=True, max_redirects=1)
    with pytest.raises(URLFetchError, match=r"too many redirects \(more than 0"):
        fetch_url(http_server.url("/a"), allow_private=True, max_redirects=0)
    with (
        LoopbackHTTPServer({"/x": Route(redirect="file:///etc/passwd")}) as server,
        pytest.raises(
            UnsupportedSourceError, match=r"only http:// and https:// addresses can be fetched, got file://"
        ),
    ):
        fetch_url(server.url("/x"), allow_private=True)


# ----------------------------------------------------------------------------- credentials


def test_credentials_and_cookies_stay_with_their_origin() -> None:
    secret = {"Authorization": "Bearer s3cret", "Cookie": "token=xyz"}
    with LoopbackHTTPServer() as first, LoopbackHTTPServer() as other:
        other.add("/doc", Route(body=b"<p>other</p>", content_type="text/html"))
        first.add("/start", Route(redirect="/next", headers={"Set-Cookie": "session=abc; Path=/"}))
        first.add("/next", Route(redirect=other.url("/doc")))
        first.add("/back", Route(redirect=other.url("/return")))
        other.add("/return", Route(redirect=first.url("/home"), headers={"Set-Cookie": "tracker=1"}))
        first.add("/home", Route(body=b"<p>home</p>", content_type="text/html"))

        assert fetch_url(first.url("/start"), allow_private=True, headers=secret).body == b"<p>other</p>"
        start, nxt = first.requests
        assert start.headers["Authorization"] == "Bearer s3cret" and start.headers["Cookie"] == "token=xyz"
        # same origin: the credentials and the cookie the server set come along
        assert nxt.headers["Authorization"] == "Bearer s3cret"
        assert nxt.headers["Cookie"] == "token=xyz; session=abc"
        # another port is another origin: nothing secret crosses
        (seen,) = other.requests
        assert not {"Authorization", "Cookie", "Proxy-Authorization"} & set(seen.headers)

        # A -> B -> A: B's cookie never reaches A; A gets back what was given for A
        fetch_url(first.url("/back"), allow_private=True, headers=secret)
        assert not {"Authorization", "Cookie"} & set(other.requests[-1].headers)
        home = first.requests[-1]
        assert home.path == "/home" and "tracker" not in home.headers.get("Cookie", "")
        assert home.headers["Authorization"] == "Bearer s3cret"
