"""Dask transport security. The embedded cluster speaks mutual TLS with credentials made for this
run only, so nothing without them (another local user, a stray client) can join or submit; an
external scheduler gets the configured CA, certificate and key, or Dask's own configuration."""

from __future__ import annotations

from dataclasses import dataclass

from distributed.security import Security


@dataclass(frozen=True, slots=True)
class SchedulerTls:
    """PEM files the server's client presents to an external scheduler (empty: not set)."""

    ca_file: str = ""
    cert: str = ""
    key: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.ca_file or self.cert or self.key)


def cluster_security(embedded: bool, tls: SchedulerTls = SchedulerTls()) -> Security:
    """The `Security` of the server's client (and, embedded, of the whole cluster)."""
    if embedded:
        return Security.temporary()
    if not tls.configured:
        return Security()  # Dask's configuration: distributed.comm.tls.* / DASK_DISTRIBUTED__...
    return Security(
        tls_ca_file=tls.ca_file or None,
        tls_client_cert=tls.cert or None,
        tls_client_key=tls.key or None,
        require_encryption=True,
    )
