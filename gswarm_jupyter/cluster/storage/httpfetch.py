"""GET over http(s), only to addresses the fetch policy admits: the one download path of chunks
(into memory) and models (into a file, resumed after a dropped connection).

Invariant: every connection goes to an address checked for that very hop: the host is resolved
once, every address it has is decided, and the socket is opened to one of those addresses (no
second lookup that could answer differently). Redirects are followed here, at most
`MAX_REDIRECTS`, each checked before its connection. A URL's userinfo is sent as Basic
credentials to its own origin only and never appears in a message or an error's details.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from ...core.errors import Forbidden, InsufficientMemory, NetworkError, PayloadTooLarge
from ...core.fetchpolicy import FetchPolicy, IPAddress, Resolver
from ...core.redact import redact_text, redact_url
from ..runtime.signals import TaskSignal

MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
TIMEOUT = 30.0
READ_BLOCK = 1024 * 1024
DOWNLOAD_ATTEMPTS = 5  # a dropped model download is resumed with a Range request this many times

Connector = Callable[[IPAddress, int, float], socket.socket]


def lookup(host: str) -> list[str]:
    """The addresses `host` resolves to (one DNS lookup)."""
    return [str(info[4][0]) for info in socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)]


def connect(address: IPAddress, port: int, timeout: float) -> socket.socket:
    """A TCP connection to exactly `address` (no lookup)."""
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((str(address), port))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True, slots=True)
class Target:
    """One hop of a fetch, admitted: where to connect and what to ask for."""

    url: str
    tls: bool
    host: str
    port: int
    selector: str
    addresses: tuple[IPAddress, ...]


def admit(url: str, policy: FetchPolicy, resolve: Resolver = lookup) -> Target:
    """`url` checked against `policy` (its host resolved through `resolve` when needed):
    `Forbidden` if denied, `NetworkError` if the host does not resolve."""
    shown = redact_url(url)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        reason = f"{scheme or 'a URL without a scheme'}:// is not http or https"
        raise Forbidden(f"fetching {shown} is not allowed: {reason}",
                        {"url": shown, "reason": reason})
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if scheme == "https" else 80)
        decision, addresses = policy.admit(host, resolve)
    except ValueError as exc:  # a malformed port or address
        raise NetworkError(f"cannot fetch {shown}: {redact_text(str(exc))}", {"url": shown}) from None
    except OSError as exc:
        raise NetworkError(f"cannot resolve {host} for {shown}: {exc}",
                           {"url": shown, "host": host}) from None
    if not decision.allowed:
        raise Forbidden(f"fetching {shown} is not allowed by the host policy: {decision.reason}",
                        {"url": shown, "host": host, "reason": decision.reason})
    selector = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, scheme == "https", host, port, selector, addresses)


def precheck(url: str, policy: FetchPolicy, resolve: Resolver = lookup) -> None:
    """`Forbidden` now for a URL the policy denies; a host that does not resolve here is left to
    the download (its node may resolve it), which checks again before it connects."""
    try:
        admit(url, policy, resolve)
    except NetworkError:
        pass


class Response:
    """A response whose body is still to be read; closing it closes its connection."""

    def __init__(self, connection: http.client.HTTPConnection,
                 raw: http.client.HTTPResponse, url: str) -> None:
        self._connection, self._raw, self.url = connection, raw, url
        self.status, self.reason, self.headers = raw.status, raw.reason, raw.headers

    def read(self, size: int = -1) -> bytes:
        return self._raw.read(size)

    def close(self) -> None:
        self._raw.close()
        self._connection.close()

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_url(
    url: str,
    policy: FetchPolicy,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = TIMEOUT,
    resolve: Resolver = lookup,
    connector: Connector = connect,
) -> Response:
    """GET `url`, following redirects (each hop admitted before it connects); answers the first
    response that is not a redirect, whatever its status. `Forbidden` for a denied hop,
    `NetworkError` when a host cannot be reached or redirects do not end."""
    credentials = _basic_credentials(url)
    origin = _origin(url)
    current = url
    for _ in range(MAX_REDIRECTS + 1):
        target = admit(current, policy, resolve)
        sent = dict(headers or {})
        if credentials and _origin(current) == origin:
            sent["Authorization"] = credentials
        connection = _connection(target, timeout, connector)
        try:
            connection.request("GET", target.selector, headers=sent)
            raw = connection.getresponse()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            connection.close()
            shown = redact_url(current)
            raise NetworkError(f"cannot fetch {shown}: {redact_text(str(exc))}",
                               {"url": shown}) from None
        location = raw.getheader("Location")
        if raw.status not in REDIRECT_STATUSES or not location:
            return Response(connection, raw, current)
        raw.close()
        connection.close()
        current = urljoin(current, location.strip())
    shown = redact_url(url)
    raise NetworkError(f"{shown} redirected more than {MAX_REDIRECTS} times", {"url": shown})


def status_error(response: Response) -> NetworkError:
    """The error for a response that is not a success."""
    shown = redact_url(response.url)
    return NetworkError(f"GET {shown} answered {response.status} {response.reason}",
                        {"url": shown, "status": response.status})


@dataclass(frozen=True, slots=True)
class Room:
    """What a download may take, checked as its bytes arrive: the free bytes of its target
    device and, where one is configured, a size limit."""

    available: int | None
    device: str
    limit: int | None = None

    def check(self, size: int, url: str, declared: bool = False) -> None:
        """`PayloadTooLarge` / `InsufficientMemory` once `size` bytes (declared by the source,
        or received so far) exceed the limit / the free bytes."""
        shown = redact_url(url)
        what = f"{shown} is {size} bytes" if declared else f"{shown} sent more than that"
        if self.limit is not None and size > self.limit:
            raise PayloadTooLarge(f"downloads are limited to {self.limit} bytes; {what}",
                                  limit=self.limit, size=size, url=shown)
        if self.available is not None and size > self.available:
            raise InsufficientMemory(f"{self.device} has {self.available} bytes free; {what}",
                                     required=size, available=self.available,
                                     device=self.device)



class Sink:
    """Where a download's body goes: kept in memory, never resumed (a `FileSink` resumes)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def size(self) -> int:
        """The bytes a resumed request would start from (none: memory is never resumed)."""
        return 0

    @contextmanager
    def writer(self, resumed: bool) -> Iterator[Callable[[bytes], object]]:
        if not resumed:
            self.data.clear()
        yield self.data.extend


class FileSink(Sink):
    """The body in the file `path`, which a dropped connection resumes from."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def size(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    @contextmanager
    def writer(self, resumed: bool) -> Iterator[Callable[[bytes], object]]:
        with open(self.path, "ab" if resumed else "wb") as f:
            yield f.write


def download_bytes(url: str, policy: FetchPolicy, room: Room, signal: TaskSignal) -> bytearray:
    """The body of `url`, counted against `room` as it arrives (progress 0..90)."""
    sink = Sink()
    download(url, policy, room, signal, sink, attempts=1)
    return sink.data


def download_file(url: str, part: Path, policy: FetchPolicy, room: Room,
                  signal: TaskSignal) -> None:
    """Download `url` into `part`, resuming after dropped connections; progress 0..90."""
    download(url, policy, room, signal, FileSink(part), attempts=DOWNLOAD_ATTEMPTS)


def download(url: str, policy: FetchPolicy, room: Room, signal: TaskSignal, sink: Sink,
             attempts: int) -> None:
    """GET `url` into `sink`, counted against `room` as it arrives (progress 0..90); a source
    that is unreachable, breaks off or ends early is tried again (with a Range request where
    `sink` resumes) until `attempts` tries have failed. A policy refusal is never retried."""
    shown = redact_url(url)
    tries = 0
    total: int | None = None
    while True:
        have = sink.size()
        try:
            response = open_url(url, policy, {"Range": f"bytes={have}-"} if have else None)
        except NetworkError:  # unreachable for now (a policy refusal is not retried)
            tries += 1
            if tries >= attempts:
                raise
            time.sleep(min(2.0, 0.2 * tries))
            continue
        with response:
            if response.status >= 400:
                if response.status == 416 and have and total == have:
                    return
                raise status_error(response)
            resumed = have and response.status == 206
            length = response.headers.get("Content-Length")
            if resumed:
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(f"bytes {have}-"):
                    resumed = False
                full = content_range.rpartition("/")[2]
                total = int(full) if full.isdigit() else None
            else:
                total = int(length) if length and length.isdigit() else None
            if total is not None:
                room.check(total, url, declared=True)
            done = have if resumed else 0
            try:
                with sink.writer(bool(resumed)) as write:
                    while True:
                        signal.check()
                        block = response.read(READ_BLOCK)
                        if not block:
                            break
                        write(block)
                        done += len(block)
                        room.check(done, url)
                        if total:
                            signal.progress(90 * min(1.0, done / total))
            except (OSError, http.client.HTTPException) as exc:
                tries += 1
                if tries >= attempts:
                    raise NetworkError(f"{shown} broke off after {done} bytes: {exc}",
                                       {"url": shown}) from None
                continue
        if total is None or done == total:
            return
        tries += 1  # the source ended early: resume, or give up
        if tries >= attempts:
            raise NetworkError(f"{shown} ended after {done} of {total} bytes", {"url": shown})


def _connection(target: Target, timeout: float,
                connector: Connector) -> http.client.HTTPConnection:
    cls = _PinnedTLS if target.tls else _Pinned
    return cls(target, timeout, connector)


class _Pinned(http.client.HTTPConnection):
    """An HTTP connection to the admitted addresses only (`Host` stays the URL's host)."""

    def __init__(self, target: Target, timeout: float, connector: Connector) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._addresses = target.addresses
        self._connector = connector

    def connect(self) -> None:
        self.sock = _first_connection(self._addresses, self.port, self.timeout, self._connector)


class _PinnedTLS(http.client.HTTPSConnection):
    """The same over TLS, the certificate checked against the URL's host."""

    def __init__(self, target: Target, timeout: float, connector: Connector) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self._tls)
        self._addresses = target.addresses
        self._connector = connector

    def connect(self) -> None:
        sock = _first_connection(self._addresses, self.port, self.timeout, self._connector)
        self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)


def _first_connection(addresses: Iterable[IPAddress], port: int, timeout: Any,
                      connector: Connector) -> socket.socket:
    last: OSError | None = None
    for address in addresses:
        try:
            return connector(address, port, timeout)
        except OSError as exc:
            last = exc
    raise last or OSError("no address to connect to")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or ""), port


def _basic_credentials(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.username is None:
        return None
    pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()
