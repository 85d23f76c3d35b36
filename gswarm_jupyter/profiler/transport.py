"""How the profiler's gRPC service is reached. The token never crosses a network in clear: the
service speaks TLS with Jupyter's certificate, or plaintext only on loopback (or where
`grpc_insecure` explicitly allows it); an agent uses TLS unless its server is on loopback.
The address rules are pure: nothing here opens a socket."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # grpc is imported only by the code that serves or dials
    import grpc

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})


class PlaintextRefused(RuntimeError):
    """A plaintext bind off loopback without `grpc_insecure`."""


@dataclass(frozen=True, slots=True)
class GrpcTls:
    """The server's side: Jupyter's certificate and key (empty: no TLS), and the explicit opt-in
    to plaintext off loopback."""

    certfile: str = ""
    keyfile: str = ""
    insecure: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.certfile)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or address, IPv6 with or without brackets) is this machine only."""
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # another name: it may resolve anywhere
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def host_of(target: str) -> str:
    """The host of a `host:port` target (`[v6]:port` and a bare host too)."""
    target = target.strip()
    if target.startswith("["):
        return target[1 : target.find("]")] if "]" in target else target[1:]
    if target.count(":") == 1:
        return target.rsplit(":", 1)[0]
    return target  # a bare name, or a bare IPv6 address


def plaintext_refusal(host: str, tls: GrpcTls) -> str | None:
    """Why serving gRPC on `host` with `tls` must be refused (None: it may be served)."""
    if tls.enabled or tls.insecure or is_loopback(host):
        return None
    return (
        f"refusing to serve gRPC in plaintext on {host} (not loopback): the Jupyter token would "
        "cross the network in clear. Set ServerApp.certfile/keyfile for TLS, run Jupyter on "
        "127.0.0.1, or set GswarmApp.grpc_insecure=True to allow it"
    )


def server_credentials(tls: GrpcTls) -> grpc.ServerCredentials | None:
    """TLS credentials from Jupyter's certificate and key files (None when TLS is off)."""
    if not tls.enabled:
        return None
    import grpc

    cert = Path(tls.certfile).expanduser().read_bytes()
    # Jupyter accepts a certfile holding the key as well: then the same file serves both.
    key = Path(tls.keyfile).expanduser().read_bytes() if tls.keyfile else cert
    return grpc.ssl_server_credentials([(key, cert)])


def agent_uses_tls(server: str, tls: bool = False, ca_file: str | None = None,
                   insecure: bool = False) -> bool:
    """An agent speaks TLS when asked, when given a CA, or when its server is not on loopback."""
    if insecure:
        return False
    return tls or bool(ca_file) or not is_loopback(host_of(server))


def channel_credentials(ca_file: str | None = None) -> grpc.ChannelCredentials:
    """TLS trusting `ca_file` (None: the system's roots)."""
    import grpc

    roots = Path(ca_file).expanduser().read_bytes() if ca_file else None
    return grpc.ssl_channel_credentials(root_certificates=roots)
