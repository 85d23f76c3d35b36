"""API keys and the audit log (admin): `/keys`, `/keys/{key_id}`, its `/usage`, and `/audit`."""

from __future__ import annotations

import asyncio

from ...core.keys_api import (
    AuditList,
    AuditQuery,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyRecord,
    KeyUsage,
)
from ...core.pagination import PageQuery, paginate
from ..base import GswarmHandler
from ..routes import CONTROL, Op, Route, resource_links


class KeysHandler(GswarmHandler):
    auth_resource = "gswarm:admin"

    def get(self) -> None:
        page = self.query(PageQuery)
        keys = [k.record() for k in self.gswarm.access.keys.all()]
        self.reply(paginate(keys, page, "keys"))

    def post(self) -> None:
        spec = self.body(KeyCreate)
        key, secret = self.gswarm.access.keys.create(
            spec.name, spec.scopes, list(spec.roles), spec.expires_at,
            spec.quotas.model_dump(),
        )
        location = f"{self.base_url.rstrip('/')}{CONTROL}/keys/{key.key_id}"
        self.reply({**key.record(), "secret": secret}, 201, {"Location": location})


class KeyHandler(GswarmHandler):
    auth_resource = "gswarm:admin"

    def get(self, key_id: str) -> None:
        self.reply(self.gswarm.access.keys.get(key_id).record())

    def delete(self, key_id: str) -> None:
        self.reply(self.gswarm.access.keys.revoke(key_id).record())


class KeyUsageHandler(GswarmHandler):
    auth_resource = "gswarm:admin"

    def get(self, key_id: str) -> None:
        self.reply(self.gswarm.access.key_usage(key_id))


class AuditHandler(GswarmHandler):
    auth_resource = "gswarm:admin"

    async def get(self) -> None:
        q = self.query(AuditQuery)
        # Every event appended before this request is committed first, waiting on a thread.
        await asyncio.to_thread(self.gswarm.access.audit.flush)
        events, total = self.gswarm.access.audit.query(
            key_id=q.key_id, resource=q.resource, decision=q.decision, since=q.since,
            until=q.until, page=q.page, per_page=q.per_page, flush=False,
        )
        self.reply({"events": events, "total": total, "page": q.page, "per_page": q.per_page})


routes = [
    Route(
        f"{CONTROL}/keys",
        KeysHandler,
        {
            "get": Op("API keys, revoked ones included (never a secret)", KeyList,
                      query=PageQuery, errors=(400,)),
            "post": Op("Make an API key; its secret is in this answer only", KeyCreated,
                       body=KeyCreate, status=201, errors=(400, 409),
                       links=resource_links(f"{CONTROL}/keys/{{key_id}}", "key_id", "key_id",
                                            ("usage",))),
        },
        tag="keys",
    ),
    Route(
        f"{CONTROL}/keys/{{key_id}}",
        KeyHandler,
        {
            "get": Op("One API key", KeyRecord, errors=(404,)),
            "delete": Op("Revoke an API key at once; its open streams are closed", KeyRecord,
                         errors=(404,)),
        },
        tag="keys",
    ),
    Route(
        f"{CONTROL}/keys/{{key_id}}/usage",
        KeyUsageHandler,
        {"get": Op("What a key uses now: requests this minute, tasks queued, bytes placed",
                   KeyUsage, errors=(404,))},
        tag="keys",
    ),
    Route(
        f"{CONTROL}/audit",
        AuditHandler,
        {"get": Op("The audit log: writes, denials and key changes, filtered and paged",
                   AuditList, query=AuditQuery, errors=(400,))},
        tag="keys",
    ),
]
