"""Virtual GPUs (compute plane `/virtualization/gpus`): thin adapters over
`cluster.tenancy.vgpus.VirtualGpus`. Creating and destroying one needs `gswarm:admin:write`
(besides `gswarm:compute:write`), reading `:read` of both (declared in `routes.ROUTE_RESOURCES`);
a vGPU records the identity that made it."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ...cluster.tenancy.vgpus import VirtualGpus
from ...core.models_api import ForceQuery
from ...core.vgpu_api import VgpuCreate, VgpuDeleted, VgpuQuery, VgpuRecord
from ..base import GswarmHandler
from ..routes import COMPUTE, Op, Route, resource_links


class VgpuList(BaseModel):
    vgpus: list[VgpuRecord]
    total: int
    page: int
    per_page: int = Field(description="at most 500")


class _Vgpus(GswarmHandler):
    auth_resource = "gswarm:compute"

    @property
    def vgpus(self) -> VirtualGpus:
        return self.gswarm.vgpus


class VgpusHandler(_Vgpus):
    def get(self) -> None:
        self.reply(self.vgpus.list(self.query(VgpuQuery)))

    async def post(self) -> None:
        req = self.body(VgpuCreate)
        assert self._caller is not None
        record = await self.vgpus.create(req, self._caller.identity)
        location = f"{self.base_url.rstrip('/')}{COMPUTE}/virtualization/gpus/{req.virtual_gpu_id}"
        self.reply(record, 201, {"Location": location})


class VgpuHandler(_Vgpus):
    def get(self, gpu_id: str) -> None:
        self.reply(self.vgpus.get(gpu_id))

    async def delete(self, gpu_id: str) -> None:
        q = self.query(ForceQuery)
        self.reply(await self.vgpus.delete(gpu_id, force=q.force))


routes = [
    Route(
        f"{COMPUTE}/virtualization/gpus",
        VgpusHandler,
        {
            "get": Op("Virtual GPUs, with the bytes in use of each", VgpuList, query=VgpuQuery,
                      errors=(400, 404)),
            "post": Op("Carve a virtual GPU (vgpuN) on a node: a hard memory quota and a "
                       "compute-unit share of a physical GPU, or of host memory (backing cpu)",
                       VgpuRecord, body=VgpuCreate, status=201, errors=(400, 404, 409, 503, 507),
                       links=resource_links(f"{COMPUTE}/virtualization/gpus/{{gpu_id}}",
                                            "gpu_id", "virtual_gpu_id")),
        },
        tag="compute",
    ),
    Route(
        f"{COMPUTE}/virtualization/gpus/{{gpu_id}}",
        VgpuHandler,
        {
            "get": Op("One virtual GPU", VgpuRecord, errors=(404,)),
            "delete": Op("Destroy a virtual GPU (409 while services, model copies or chunks sit "
                         "on it unless force, which removes them; never a last copy)",
                         VgpuDeleted, query=ForceQuery, errors=(404, 409)),
        },
        tag="compute",
    ),
]
