"""Load a web address: a PDF's pages, an HTML page's readable text, or an image, chosen by Content-Type.

The declared Content-Type is checked against the body's first bytes, so an HTML error page served
as ``application/pdf`` is reported instead of indexed.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
import os
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.cookies import CookieError, SimpleCookie
from urllib.parse import unquote, unquote_plus, urljoin, urlsplit

import httpx

from pagesight.documents.content_encoding import accept_encoding, decoding_reader, parse_content_encoding
from pagesight.documents.html import load_html_bytes
from pagesight.documents.images import DEFAULT_MAX_PIXELS, load_image_bytes, sniff_image_format
from pagesight.documents.page import Page
from pagesight.documents.pdf import (
    DEFAULT_MAX_CHARS_PER_PAGE,
    DEFAULT_MAX_PAGES,
    Renderer,
    is_pdf_bytes,
    load_pdf_bytes,
)
from pagesight.errors import (
    ConfigurationError,
    DocumentLoadError,
    EmptyDocumentError,
    NotAPDFError,
    UnsupportedSourceError,
    URLFetchError,
)

__all__ = [
    "ALLOW_PRIVATE_ENV",
    "DEFAULT_DEADLINE",
    "METADATA_ADDRESSES",
    "SECRET_QUERY_PARAMETERS",
    "USER_AGENT",
    "FetchedBody",
    "check_address",
    "fetch_url",
    "load_url",
    "redact_url",
]

logger = logging.getLogger(__name__)

USER_AGENT = "pagesight/0.1"

_PDF_TYPES = frozenset({"application/pdf", "application/x-pdf", "application/acrobat", "application/vnd.pdf"})
_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/pjpeg", "image/tiff", "image/webp"})
_GENERIC_TYPES = frozenset(
    {
        "",
        "application/octet-stream",
        "binary/octet-stream",
        "application/download",
        "application/force-download",
        "application/unknown",
    }
)
_SUPPORTED = "PDF, HTML, and PNG/JPEG/TIFF/WebP images"


@dataclass(frozen=True, slots=True)
class FetchedBody:
    """A downloaded response body.

    Attributes:
        url: the URL as the caller gave it, through :func:`redact_url` (no credentials).
        final_url: the URL after redirects, redacted the same way.
        media_type: the Content-Type without parameters, lower case (``""`` when absent).
        charset: the Content-Type's charset parameter, if any.
        body: the (decompressed) bytes.
    """

    url: str
    final_url: str
    media_type: str
    charset: str | None
    body: bytes


ALLOW_PRIVATE_ENV = "PAGESIGHT_ALLOW_PRIVATE_URLS"
"""Set to ``1``/``true``/``yes``/``on``, this environment variable makes ``allow_private`` default to true."""

METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, ...
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS IPv6
    }
)
"""Cloud metadata-service addresses: refused always, even with ``allow_private=True``."""

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_SENSITIVE = ("authorization", "proxy-authorization", "cookie")
_ALLOW_HOW = (
    "pass allow_private=True, `pagesight index --allow-private-urls`, or set PAGESIGHT_ALLOW_PRIVATE_URLS=1 "
    "(only where every address the documents point to is trusted)"
)

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DEADLINE = 120.0
"""Seconds a whole download may take, redirects included (``deadline=``; ``--timeout`` on the CLI)."""

SECRET_QUERY_PARAMETERS = frozenset(
    {
        "access_token",
        "api-key",
        "api_key",
        "apikey",
        "auth",
        "auth_token",
        "authorization",
        "client_secret",
        "id_token",
        "jwt",
        "passwd",
        "password",
        "private_token",
        "pwd",
        "refresh_token",
        "secret",
        "session_token",
        "sig",
        "signature",
        "token",
        "x-amz-credential",
        "x-amz-security-token",
        "x-amz-signature",
        "x-goog-credential",
        "x-goog-signature",
    }
)
"""Query (and fragment) parameters whose values :func:`redact_url` hides, compared case-insensitively:
tokens, API keys, passwords, and the signatures of S3, Google Cloud Storage and Azure (``sig``)
pre-signed links. ``key`` is not among them: too many sites use it for something public."""

# scheme, authority (as urlsplit and httpx read it: up to the first / ? or #), the rest
_SPLIT_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)(.*)\Z", re.DOTALL)


def strip_userinfo(url: str) -> str:
    """``url`` without the ``user:password@`` part of its authority (everything up to the last ``@``)."""
    m = _SPLIT_AUTHORITY.match(url)
    if m is None or "@" not in m.group(2):
        return url
    return m.group(1) + m.group(2).rpartition("@")[2] + m.group(3)


def _misplaced_userinfo(url: str) -> bool:
    """Whether ``url`` reads as ``user:password@host`` with a ``/``, ``?`` or ``#`` in the password.

    A parser ends the authority at the first ``/``, ``?`` or ``#``, so ``http://ann:se/cret@h/x``
    has the "host" ``ann:se`` (a port that is not a number) and the rest of the password in its
    path. Such an address cannot be fetched as meant; it is refused, and named with everything
    before its last ``@`` hidden. (``ann:12/34@h`` still reads as host ``ann``, port 12: a
    well-formed address, and taken as one.)
    """
    m = _SPLIT_AUTHORITY.match(url)
    if m is None or "@" in m.group(2) or "@" not in m.group(3) or m.group(2).startswith("["):
        return False
    port = m.group(2).partition(":")[2]
    return ":" in m.group(2) and bool(port) and not port.isdigit()


def _redact_parameters(text: str) -> str:
    parts = text.split("&")
    for i, part in enumerate(parts):
        key, eq, value = part.partition("=")
        if eq and value and unquote_plus(key).strip().lower() in SECRET_QUERY_PARAMETERS:
            parts[i] = f"{key}=REDACTED"
    return "&".join(parts)


def redact_url(url: str) -> str:
    """``url`` as pagesight stores, prints and names it in errors: without credentials.

    The ``user:password@`` part is dropped (the password is still sent, as HTTP Basic
    authentication to that origin only), and the values of the query and fragment parameters in
    :data:`SECRET_QUERY_PARAMETERS` become ``REDACTED`` (they are still sent). Everything else is
    kept as written, so the name still tells which document it is; a pre-signed link signed again
    later keeps the same name when only its signature changed.

    Example:
        >>> redact_url("https://ann:s3cret@example.org/a.pdf?page=2&X-Amz-Signature=abc123")
        'https://example.org/a.pdf?page=2&X-Amz-Signature=REDACTED'
        >>> redact_url("docs/a.pdf")  # not a URL: unchanged
        'docs/a.pdf'
    """
    if _misplaced_userinfo(url):  # the password runs past the host part: hide up to the last @
        scheme, _, rest = url.partition("://")
        return redact_url(f"{scheme}://{rest.rpartition('@')[2]}").replace("://", "://***@", 1)
    stripped = strip_userinfo(url)
    m = _SPLIT_AUTHORITY.match(stripped)
    if m is None:
        return url
    before, hash_, fragment = m.group(3).partition("#")
    path, qmark, query = before.partition("?")
    if query:
        query = _redact_parameters(query)
    if "=" in fragment:
        fragment = _redact_parameters(fragment)
    return m.group(1) + m.group(2) + path + qmark + query + hash_ + fragment


def basic_auth(url: str) -> str | None:
    """The ``Authorization: Basic`` value for the credentials written in ``url``, if any."""
    m = _SPLIT_AUTHORITY.match(url)
    if m is None or "@" not in m.group(2):
        return None
    user, _, password = m.group(2).rpartition("@")[0].partition(":")
    if not user and not password:
        return None
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    return "Basic " + base64.b64encode(pair).decode("ascii")


class _Deadline:
    """The whole download's clock: per-read timeouts never run past it."""

    def __init__(self, url: str, seconds: float, per_read: float) -> None:
        self.url = url
        self.seconds = seconds
        self.per_read = per_read
        self.end = time.monotonic() + seconds
        self.clipped = False  # the timeout in force is the time left, not ``per_read``

    def error(self) -> URLFetchError:
        return URLFetchError(
            self.url,
            f"the download did not finish within the deadline of {self.seconds:g} s "
            f"(deadline={self.seconds:g}, redirects included); raise it with deadline= "
            "(`--timeout` on the command line)",
        )

    def next_timeout(self) -> float:
        """Seconds the next connect or read may wait; raises the deadline error once it has passed."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise self.error()
        self.clipped = left < self.per_read
        return min(self.per_read, left)


def _clip_reads(response: httpx.Response, clock: _Deadline) -> None:
    """Make every socket read of ``response``'s body wait at most the time the deadline leaves.

    httpcore takes the read timeout once, when the body starts, and passes that same value to each
    socket read; so each read of the network stream it uses (the ``network_stream`` extension, the
    very object the connection reads from) gets the time left instead, when that is shorter.
    """
    stream = response.extensions.get("network_stream")
    read = getattr(stream, "read", None)
    if read is None:
        return

    def clipped_read(max_bytes: int, timeout: float | None = None) -> bytes:
        left = max(clock.end - time.monotonic(), 0.001)
        clock.clipped = timeout is None or left < timeout
        if clock.clipped:
            timeout = left
        return read(max_bytes, timeout)

    try:
        stream.read = clipped_read  # type: ignore[union-attr]
    except AttributeError:  # a stream that takes no attributes: the per-chunk check still applies
        logger.debug("cannot clip the reads of %s to the deadline", type(stream).__name__)


class _RawBody:
    """The response body as sent, read in bounded pieces, within ``max_bytes`` and the deadline."""

    def __init__(
        self, response: httpx.Response, url: str, max_bytes: int, clock: _Deadline, how: str
    ) -> None:
        self._chunks = response.iter_raw()
        self._timeouts = response.request.extensions.get("timeout")
        _clip_reads(response, clock)
        self._url = url
        self._max = max_bytes
        self._clock = clock
        self._how = how
        self._buffer = b""
        self.size = 0

    def read(self, size: int, /) -> bytes:
        if not self._buffer:
            read_timeout = self._clock.next_timeout()
            if isinstance(self._timeouts, dict):  # httpcore takes it when the body starts
                self._timeouts["read"] = read_timeout
            chunk = next(self._chunks, b"")
            self._clock.next_timeout()  # a trickle ends here, between chunks
            self.size += len(chunk)
            if self.size > self._max:
                raise _too_large(self._url, f"more than {self._max:,} bytes{self._how}", self._max)
            self._buffer = chunk
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def _env_allow_private() -> bool:
    return os.environ.get(ALLOW_PRIVATE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def _resolve_allow_private(allow_private: bool | None) -> bool:
    return _env_allow_private() if allow_private is None else bool(allow_private)


def _address_kind(ip: _IPAddress) -> str | None:
    """Name the class of a non-public address (``"loopback"``, ...), or ``None`` for a public one."""
    mapped = getattr(ip, "ipv4_mapped", None) or getattr(ip, "sixtofour", None)
    if mapped is not None:
        return _address_kind(mapped)
    if ip in METADATA_ADDRESSES:
        return "cloud metadata-service"
    for kind in ("loopback", "link-local", "multicast", "unspecified", "reserved", "private"):
        if getattr(ip, "is_" + kind.replace("-", "_")):
            return kind
    if not ip.is_global:
        return "non-public"
    return None


def check_address(address: str, *, allow_private: bool = False) -> str | None:
    """Say why pagesight refuses to connect to an IP address, or return ``None`` when it may.

    Refused: loopback, private (RFC 1918, unique-local IPv6), link-local, multicast, reserved,
    unspecified and other non-global addresses, IPv4-mapped and 6to4 forms of them, unless
    ``allow_private`` is true; cloud metadata services (:data:`METADATA_ADDRESSES`) always.

    Example:
        >>> check_address("127.0.0.1"), check_address("93.184.216.34")
        ('loopback', None)
        >>> check_address("10.0.0.5", allow_private=True)  # None: allowed
        >>> check_address("169.254.169.254", allow_private=True)
        'cloud metadata-service'

    Args:
        address: an IPv4 or IPv6 address (an IPv6 zone suffix such as ``%eth0`` is ignored).
        allow_private: accept non-public addresses other than metadata services.
    """
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    kind = _address_kind(ip)
    if kind is None or (allow_private and kind != "cloud metadata-service"):
        return None
    return kind


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        shown = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise UnsupportedSourceError(
            url, f"only http:// and https:// addresses can be fetched, got {shown}; pass local files as paths"
        )
    if not parts.hostname:
        raise UnsupportedSourceError(url, "the address has no host name")


def _parse(url: str, hop: str) -> httpx.URL:
    _check_url(redact_url(hop))
    try:
        parsed = httpx.URL(hop)
        parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as e:
        raise UnsupportedSourceError(url, f"not a valid address: {redact_url(hop)!r} ({e})") from e
    return parsed


def _safe_addresses(url: str, start: str, hop: httpx.URL, allow_private: bool) -> list[str]:
    """Resolve ``hop``'s host and return its addresses, refusing the hop if any is not allowed.

    ``url`` is the name errors give; ``start`` the address first asked for (no redirect yet).
    """
    host = hop.raw_host.decode("ascii")
    port = _port(hop)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise URLFetchError(url, f"could not resolve the host name {host!r} ({e}); check the address") from e
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise URLFetchError(url, f"the host name {host!r} has no address; check the address")
    for address in addresses:
        kind = check_address(address, allow_private=allow_private)
        if kind is None:
            continue
        where = "" if str(hop) == start else f" (reached by redirect: {redact_url(str(hop))})"
        if kind == "cloud metadata-service":
            raise URLFetchError(
                url, f"refused: {host} is {address}, a cloud metadata-service address{where}; never fetched"
            )
        raise URLFetchError(
            url, f"refused: {host} resolves to {address}, a {kind} address{where}; to allow it, {_ALLOW_HOW}"
        )
    return addresses


def _port(u: httpx.URL) -> int:
    return u.port or (443 if u.scheme == "https" else 80)


def _origin(u: httpx.URL) -> tuple[str, str, int]:
    return (u.scheme, u.raw_host.decode("ascii").lower(), _port(u))


def _pinned(hop: httpx.URL, address: str) -> tuple[httpx.URL, dict[str, str], dict[str, object]]:
    """The URL with its host replaced by the checked ``address``, the Host header and the TLS name."""
    host = hop.raw_host.decode("ascii")
    host_header = host if ":" not in host else f"[{host}]"
    if hop.port is not None:
        host_header += f":{hop.port}"
    extensions: dict[str, object] = {}
    if hop.scheme == "https":
        extensions["sni_hostname"] = host  # certificate checked against the name, not the address
    return hop.copy_with(host=address.split("%", 1)[0]), {"Host": host_header}, extensions


def _remember_cookies(
    jar: dict[tuple[str, str, int], dict[str, str]], origin: tuple[str, str, int], response: httpx.Response
) -> None:
    for header in response.headers.get_list("set-cookie"):
        try:
            parsed: SimpleCookie = SimpleCookie(header)
        except CookieError:
            continue
        for name, morsel in parsed.items():
            jar.setdefault(origin, {})[name] = morsel.value


def _status_message(response: httpx.Response) -> str:
    code = response.status_code
    head = f"HTTP {code} {response.reason_phrase}".rstrip()
    if code in (404, 410):
        return f"{head}; check the address"
    if code in (401, 403, 407):
        return f"{head}; the server refused access (a login or permission is needed)"
    if code == 429:
        return f"{head}; the server is rate limiting, try again later"
    if code >= 500:
        return f"{head}; the server failed, try again later"
    return f"{head}; the server did not return the document"


def _too_large(url: str, size: str, max_bytes: int) -> URLFetchError:
    return URLFetchError(
        url, f"the response is {size}, over the limit of {max_bytes:,} bytes; raise it with max_bytes="
    )


def fetch_url(
    url: str,
    *,
    timeout: float = 20.0,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = 64 * 2**20,
    max_redirects: int = 5,
    allow_private: bool | None = None,
    headers: Mapping[str, str] | None = None,
) -> FetchedBody:
    """Download ``url`` with a streamed body, refusing bodies over ``max_bytes`` and unsafe addresses.

    Every hop (the address and each redirect) is checked the same way: ``http``/``https`` only,
    the host name resolved with :func:`socket.getaddrinfo`, refused when any of its addresses is
    loopback, private, link-local, multicast, reserved, unspecified or otherwise not public
    (unless ``allow_private``), or a cloud metadata service (always). The connection then goes to
    the address that was checked (the ``Host`` header and the TLS server name keep the host name),
    so the name cannot be re-resolved to another address between the check and the request
    (DNS rebinding). Redirects are followed here, one at a time, up to ``max_redirects``.

    Credentials stay with the origin they were given for: ``Authorization``,
    ``Proxy-Authorization`` and ``Cookie`` from ``headers``, and a ``user:password@`` written in
    the URL (sent as HTTP Basic authentication), go only to the first URL's scheme, host and port;
    cookies a server sets are sent back only to that same server. Errors and the returned
    :class:`FetchedBody` name the URL through :func:`redact_url`, never with its password.

    The body is read as sent and its ``Content-Encoding`` (gzip, deflate, br, zstd; up to three
    layers) undone a piece at a time, so a small compressed body that inflates to gigabytes is
    refused once it passes ``max_bytes``, holding no more than that in memory (see
    :mod:`pagesight.documents.content_encoding`). Unknown encodings are refused.

    Args:
        url: an ``http://`` or ``https://`` address.
        timeout: seconds to wait to connect and for each read.
        deadline: seconds the whole download may take, redirects included (120 by default): a
            server that trickles its answer is cut off here; each connect and read waits no longer
            than the time left. (Name resolution is not covered.)
        max_bytes: largest body accepted, as sent and once decoded (checked against
            Content-Length up front and while streaming).
        max_redirects: how many redirects to follow.
        allow_private: fetch private, loopback and link-local addresses too (trusted networks only);
            ``None`` reads the ``PAGESIGHT_ALLOW_PRIVATE_URLS`` environment variable (off when unset).
        headers: extra request headers, for example ``{"Authorization": "Bearer ..."}``.

    Raises:
        UnsupportedSourceError: not an http(s) address, or an invalid one.
        URLFetchError: a refused address, HTTP error status, timeout, deadline passed, connection
            failure, too many redirects, body too large, a Content-Encoding that is unknown or not
            valid.
    """
    name = redact_url(url)
    if _misplaced_userinfo(url):
        raise UnsupportedSourceError(
            name,
            "the user name or password in the address seems to contain '/', '?' or '#', which end "
            "the host part; percent-encode them (%2F, %3F, %23) or pass the password in "
            "headers={'Authorization': ...}",
        )
    _check_url(name)
    if timeout <= 0:
        raise ConfigurationError(f"`timeout` must be positive, got {timeout}")
    if not deadline > 0:
        raise ConfigurationError(f"`deadline` must be positive (seconds), got {deadline}")
    if max_bytes < 1:
        raise ConfigurationError(f"`max_bytes` must be at least 1, got {max_bytes}")
    if max_redirects < 0:
        raise ConfigurationError(f"`max_redirects` must be 0 or more, got {max_redirects}")
    allow = _resolve_allow_private(allow_private)
    base = {
        "User-Agent": USER_AGENT,
        "Accept": "application/pdf, text/html, image/*;q=0.9, */*;q=0.5",
        "Accept-Encoding": accept_encoding(),
    }
    extra = {k: v for k, v in (headers or {}).items() if k.lower() != "host"}
    basic = basic_auth(url)
    if basic is not None and not any(k.lower() == "authorization" for k in extra):
        extra["Authorization"] = basic  # a sensitive header: sent to the first URL's origin only
    start = strip_userinfo(url)
    clock = _Deadline(name, deadline, timeout)
    first = _parse(name, start)
    home = _origin(first)
    jar: dict[tuple[str, str, int], dict[str, str]] = {}
    hop = first
    redirects = 0
    try:
        with httpx.Client(follow_redirects=False, timeout=timeout, headers=base) as client:
            while True:
                addresses = _safe_addresses(name, start, hop, allow)
                origin = _origin(hop)
                sent = dict(extra)
                if origin != home:
                    sent = {k: v for k, v in sent.items() if k.lower() not in _SENSITIVE}
                if jar.get(origin):
                    own = "; ".join(f"{k}={v}" for k, v in jar[origin].items())
                    given = sent.pop("Cookie", None) or sent.pop("cookie", None)
                    sent["Cookie"] = f"{given}; {own}" if given else own
                response = None
                for i, address in enumerate(addresses):
                    target, host_header, extensions = _pinned(hop, address)
                    request = client.build_request(
                        "GET",
                        target,
                        headers={**sent, **host_header},
                        extensions=extensions,
                        timeout=clock.next_timeout(),
                    )
                    try:
                        response = client.send(request, stream=True)
                        break
                    except httpx.ConnectError:
                        if i == len(addresses) - 1:
                            raise
                assert response is not None
                client.cookies.clear()  # the client's own jar is not port-aware; ours (`jar`) is
                try:
                    _remember_cookies(jar, origin, response)
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        if redirects >= max_redirects:
                            raise httpx.TooManyRedirects("too many redirects", request=response.request)
                        redirects += 1
                        # credentials a server puts in Location are not used (nor shown)
                        hop = _parse(name, strip_userinfo(urljoin(str(hop), location)))
                        continue
                    if not 200 <= response.status_code < 300:
                        raise URLFetchError(name, _status_message(response))
                    declared = response.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > max_bytes:
                        raise _too_large(name, f"{int(declared):,} bytes (Content-Length)", max_bytes)
                    encoding = response.headers.get("content-encoding", "")
                    codings = parse_content_encoding(encoding, name)
                    how = f" as sent (Content-Encoding {encoding.strip()})" if codings else ""
                    raw = _RawBody(response, name, max_bytes, clock, how)
                    reader = decoding_reader(raw, codings, name)
                    body = bytearray()
                    while chunk := reader.read(min(65536, max_bytes + 1 - len(body))):
                        body += chunk
                        if len(body) > max_bytes:
                            decoded = " once decoded" + how.removeprefix(" as sent") if codings else ""
                            raise _too_large(name, f"more than {max_bytes:,} bytes{decoded}", max_bytes)
                    media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
                    charset = response.charset_encoding
                    final_url = redact_url(str(hop))
                    break
                finally:
                    response.close()
    except httpx.TooManyRedirects as e:
        raise URLFetchError(
            name,
            f"too many redirects (more than {max_redirects}; a redirect loop?); raise max_redirects= "
            "if the chain is legitimate",
        ) from e
    except httpx.TimeoutException as e:
        if clock.clipped:  # the wait was cut to the time the deadline left
            raise clock.error() from e
        if isinstance(e, httpx.ConnectTimeout):
            raise URLFetchError(
                name, f"could not connect within {timeout:g} s (timeout={timeout:g}); raise it with timeout="
            ) from e
        raise URLFetchError(
            name, f"no answer within {timeout:g} s (timeout={timeout:g}); raise it with timeout="
        ) from e
    except httpx.ConnectError as e:
        raise URLFetchError(name, f"could not connect ({e}); is the address right and the server up?") from e
    except httpx.UnsupportedProtocol as e:
        raise URLFetchError(name, f"cannot follow the address ({e}); only http:// and https:// work") from e
    except httpx.InvalidURL as e:
        raise UnsupportedSourceError(name, f"not a valid address ({e})") from e
    except httpx.HTTPError as e:
        raise URLFetchError(name, f"the download failed: {type(e).__name__}: {e}") from e
    logger.debug(
        "fetched %s (%s, %d bytes) from %s", name, media_type or "no Content-Type", len(body), final_url
    )
    return FetchedBody(name, final_url, media_type, charset, bytes(body))


def _looks_like_html(body: bytes) -> bool:
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")) or b"<html" in head


def _sniff(body: bytes) -> str | None:
    if is_pdf_bytes(body):
        return "pdf"
    if sniff_image_format(body):
        return "image"
    if _looks_like_html(body):
        return "html"
    return None


def _describe(body: bytes) -> str:
    if is_pdf_bytes(body):
        return "a PDF"
    fmt = sniff_image_format(body)
    if fmt:
        return f"a {fmt} image"
    if _looks_like_html(body):
        return "an HTML page (an error or login page?)"
    return f"data starting with {body[:12]!r}"


def _kind(fetched: FetchedBody) -> str:
    """Pick "pdf", "html" or "image" from the Content-Type, checked against the body's magic bytes."""
    url, media, body = fetched.url, fetched.media_type, fetched.body
    sniffed = _sniff(body)
    if media in _PDF_TYPES:
        if sniffed != "pdf":
            raise NotAPDFError(url, f"served as {media} but the body is {_describe(body)}, not a PDF")
        return "pdf"
    if media in _IMAGE_TYPES:
        if sniffed != "image":
            raise DocumentLoadError(url, f"served as {media} but the body is {_describe(body)}, not an image")
        return "image"
    if media in _HTML_TYPES:
        if sniffed in ("pdf", "image"):
            raise DocumentLoadError(
                url,
                f"served as {media} but the body is {_describe(body)}; the server's Content-Type is wrong",
            )
        return "html"
    if media in _GENERIC_TYPES and sniffed is not None:
        return sniffed
    what = f"Content-Type {media}" if media else "a body without Content-Type"
    raise UnsupportedSourceError(url, f"{what} is not supported (supported: {_SUPPORTED})")


def load_url(
    url: str,
    *,
    timeout: float = 20.0,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = 64 * 2**20,
    max_redirects: int = 5,
    dpi: float = 96,
    renderer: Renderer | None = None,
    image_dir: str | os.PathLike[str] | None = None,
    render: bool = True,
    html_page_chars: int = 3000,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_pages: int = DEFAULT_MAX_PAGES,
    max_chars_per_page: int = DEFAULT_MAX_CHARS_PER_PAGE,
    allow_private: bool | None = None,
    headers: Mapping[str, str] | None = None,
    **ocr_keywords: object,
) -> Iterator[Page]:
    """Fetch a URL and load it as pages.

    The body is downloaded when this function is called (errors raise here); PDF pages are then
    rendered lazily as the iterator is consumed.

    - PDF: its pages, as :func:`~pagesight.documents.load_pdf` gives them.
    - HTML: readable text (scripts, navigation, header, footer, asides dropped), split at paragraph
      boundaries into pages of about ``html_page_chars`` characters, ``image=None``.
    - PNG, JPEG, TIFF, WebP: one page (one per TIFF frame).

    Example:
        >>> pages = list(load_url("https://example.org/report.pdf"))  # doctest: +SKIP
        >>> pages[0].source, pages[0].page  # doctest: +SKIP
        ('https://example.org/report.pdf', 1)

    Args:
        url: an ``http://`` or ``https://`` address; pages carry it in ``Page.source`` as
            :func:`redact_url` writes it (no ``user:password@``, secret query values hidden).
        timeout: seconds to wait to connect and for each read.
        deadline: seconds the whole download may take, redirects included (120 by default).
        max_bytes: largest body accepted (64 MiB by default).
        max_redirects: how many redirects to follow.
        dpi: PDF render resolution.
        renderer: PDF renderer, see :func:`~pagesight.documents.load_pdf`.
        image_dir: folder for page PNGs; ``None`` makes a temporary one.
        render: ``False`` skips rendering PDF pages.
        html_page_chars: about how many characters an HTML page's chunk holds.
        max_pixels: pixel limit for images and rendered PDF pages.
        max_pages: PDFs and multi-frame images with more pages are refused before any page is
            rendered; an HTML page as soon as its text passes the limit.
        max_chars_per_page: page text beyond this is cut, with a warning.
        allow_private: also fetch private, loopback and link-local addresses (see :func:`fetch_url`);
            ``None`` reads ``PAGESIGHT_ALLOW_PRIVATE_URLS``.
        headers: extra request headers; credentials in them go only to the URL's own origin.
        **ocr_keywords: ``ocr`` and the ``ocr_*`` keywords for PDF and image bodies (see
            :func:`~pagesight.documents.load_pdf`); HTML has text and is never OCR'd.

    Raises:
        UnsupportedSourceError: not http(s), or a Content-Type pagesight does not read.
        URLFetchError: refused address, HTTP error, timeout, deadline passed, connection failure,
            redirect loop, body too large (as sent or decoded), unknown Content-Encoding.
        NotAPDFError: served as PDF but the body is not one (an HTML error page, say).
        DocumentLoadError: any error the PDF, HTML or image loader raises for the body.
    """
    fetched = fetch_url(
        url,
        timeout=timeout,
        deadline=deadline,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
        allow_private=allow_private,
        headers=headers,
    )
    url = fetched.url  # the name pages carry: without credentials
    if not fetched.body:
        raise EmptyDocumentError(url, "the server returned an empty body")
    kind = _kind(fetched)
    if kind == "pdf":
        return load_pdf_bytes(
            fetched.body,
            source=url,
            dpi=dpi,
            renderer=renderer,
            image_dir=image_dir,
            render=render,
            max_pages=max_pages,
            max_pixels=max_pixels,
            max_chars_per_page=max_chars_per_page,
            **ocr_keywords,  # type: ignore[arg-type]
        )
    if kind == "image":
        return load_image_bytes(
            fetched.body,
            source=url,
            max_pixels=max_pixels,
            image_dir=image_dir,
            max_pages=max_pages,
            max_chars_per_page=max_chars_per_page,
            **ocr_keywords,  # type: ignore[arg-type]
        )
    return load_html_bytes(
        fetched.body,
        source=url,
        charset=fetched.charset,
        page_chars=html_page_chars,
        max_pages=max_pages,
        max_chars_per_page=max_chars_per_page,
    )
