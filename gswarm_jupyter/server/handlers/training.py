"""Compute plane routes for training and optimisation: thin adapters over `Trainer`."""

from __future__ import annotations

from ...cluster.training.trainer import Trainer
from ...core.errors import NotImplementedFeature
from ...core.training_api import (
    OptimizeRequest,
    OptimizeResult,
    TrainingAccepted,
    TrainingRequest,
    TrainingResult,
    TrainingStatus,
)
from ..base import GswarmHandler
from ..routes import COMPUTE, Op, Route, resource_links, task_links


class _Training(GswarmHandler):
    auth_resource = "gswarm:compute"

    @property
    def trainer(self) -> Trainer:
        trainer = self.gswarm.training
        if trainer is None:
            raise NotImplementedFeature("this server has no model store to train in")
        return trainer


class TrainingHandler(_Training):
    async def post(self) -> None:
        self.reply(await self.trainer.train(self.body(TrainingRequest)))


class AsyncTrainingHandler(_Training):
    async def post(self) -> None:
        request_id, task = await self.trainer.submit(self.body(TrainingRequest))
        self.reply(self.trainer.accepted(request_id, task), 202)


class TrainingStatusHandler(_Training):
    def get(self, request_id: str) -> None:
        self.reply(self.trainer.status(request_id))


class OptimizeHandler(_Training):
    async def post(self, model_id: str) -> None:
        self.reply(await self.trainer.optimize(model_id, self.body(OptimizeRequest)))


def _route(path: str, handler: type, ops: dict[str, Op]) -> Route:
    return Route(f"{COMPUTE}{path}", handler, ops, tag="compute")


routes = [
    _route("/training", TrainingHandler, {
        "post": Op("Train a model on its node and wait; with update_model (default) the result "
                   "is the model's next version", TrainingResult, body=TrainingRequest,
                   errors=(400, 404, 409, 500, 501, 502, 503, 504)),
    }),
    _route("/training/async", AsyncTrainingHandler, {
        "post": Op("Queue a training (a task with epoch progress; cancel leaves the model "
                   "unchanged)", TrainingAccepted, body=TrainingRequest, status=202,
                   links=(*resource_links(f"{COMPUTE}/training/{{request_id}}", "request_id",
                                          "request_id", delete=False), *task_links()),
                   errors=(400, 404, 501, 503)),
    }),
    _route("/training/{request_id}", TrainingStatusHandler, {
        "get": Op("A training's status, epochs done and loss so far", TrainingStatus,
                  errors=(404,)),
    }),
    _route("/models/{model_id}/optimize", OptimizeHandler, {
        "post": Op("Quantise (int8, fp16, bf16) into a new registry model; sizes and error "
                   "measured", OptimizeResult, body=OptimizeRequest,
                   errors=(400, 404, 409, 500, 501, 502, 503)),
    }),
]
