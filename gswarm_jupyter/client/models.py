"""`client.models`: the model registry and placement."""

from __future__ import annotations

from typing import Any

from .parts import CONTROL, MAX_PAGE, _Part, _clean, _seg


class ModelsApi(_Part):
    """The model registry and placement: models, their copies on devices, and the tasks that move
    them. Task-starting calls answer the task (wait with `client.tasks.wait`)."""

    def list(self, type: str | None = None, location: str | None = None,
             status: str | None = None, page: int = 1, per_page: int = MAX_PAGE) -> Any:
        params = _clean(type=type, location=location, status=status, page=page, per_page=per_page)
        return self._call("GET", CONTROL + "models", params=params, key="models")

    def register(self, name: str, source_url: str, model_type: str | None = None,
                 metadata: dict[str, Any] | None = None, download_to: str | None = None,
                 checksum: str | None = None, priority: str | None = None) -> Any:
        """Register from builtin://, file://, http(s):// or pkg://<distribution>/<path> (a
        Hugging Face model directory: a folder, a .zip/.tar.gz archive, or one an installed
        package ships; `model_type` embedding, causal_lm or classifier, else read from its
        config.json); an http source answers the model `downloading` with the download's
        `task_id`."""
        body = _clean(model_name=name, source_url=source_url, model_type=model_type,
                      metadata=metadata, download_to=download_to, checksum=checksum,
                      priority=priority)
        return self._call("POST", CONTROL + "models", json=body)

    def get(self, name: str) -> Any:
        return self._call("GET", CONTROL + f"models/{_seg(name)}")

    def delete(self, name: str, device: str | None = None, force: bool = False) -> Any:
        """Remove the model and every copy, or with `device` that one copy."""
        params = _clean(device=device, force="true" if force else None)
        return self._call("DELETE", CONTROL + f"models/{_seg(name)}", params=params or None)

    def locations(self, name: str) -> Any:
        return self._call("GET", CONTROL + f"models/{_seg(name)}/locations", key="locations")

    def add_location(self, name: str, device: str, priority: str | None = None) -> Any:
        """Queue a copy on `device` from the best existing copy; answers the task."""
        body = _clean(device=device, priority=priority)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/locations", json=body)

    def drop_location(self, name: str, device: str, force: bool = False) -> Any:
        params = {"force": "true"} if force else None
        return self._call("DELETE", CONTROL + f"models/{_seg(name)}/locations/{_seg(device)}",
                          params=params)

    def download(self, name: str, target_device: str, source_url: str | None = None,
                 checksum: str | None = None, priority: str | None = None) -> Any:
        body = _clean(target_device=target_device, source_url=source_url, checksum=checksum,
                      priority=priority)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/download", json=body)

    def move(self, name: str, source_device: str, target_device: str, keep_source: bool = False,
             priority: str | None = None, bandwidth_limit: int | None = None) -> Any:
        body = _clean(source_device=source_device, target_device=target_device,
                      keep_source=keep_source, priority=priority, bandwidth_limit=bandwidth_limit)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/move", json=body)

    def copy(self, name: str, source_device: str, target_device: str,
             bandwidth_limit: int | None = None, priority: str | None = None) -> Any:
        """Queue a worker-to-worker copy (`bandwidth_limit` in bytes/s); answers the task."""
        body = _clean(source_device=source_device, target_device=target_device,
                      bandwidth_limit=bandwidth_limit, priority=priority)
        return self._call("POST", CONTROL + f"models/{_seg(name)}/copy", json=body)

    def node_models(self, node: str) -> Any:
        """The models with a copy on `node`, one row per copy."""
        return self._call("GET", CONTROL + f"nodes/{_seg(node)}/models", key="models")


class AsyncModelsApi(ModelsApi):
    async def events(self) -> Any:
        """Registry and location changes as they happen: an async iterator over `/ws/models`
        events (`{"event": "model", "data": {"model_name", "change", ...}}`)."""
        async for event in self._client._events("models"):  # type: ignore[attr-defined]
            yield event
