"""`client.data`: the data pool."""

from __future__ import annotations

from typing import Any

from .parts import CONTROL, MAX_PAGE, _Part, _clean


class DataApi(_Part):
    """The data pool: chunks of bytes or tensors stored on nodes."""

    def list(self, device: str | None = None, type: str | None = None, node: str | None = None,
             page: int = 1, per_page: int = MAX_PAGE) -> Any:
        params = _clean(device=device, type=type, node=node, page=page, per_page=per_page)
        return self._call("GET", CONTROL + "data", params=params, key="chunks")

    def put(self, device: str, *, data: bytes | None = None, url: str | None = None,
            format: str = "bytes", type: str = "input", shape: list[int] | None = None,
            dtype: str | None = None) -> Any:
        """Store bytes (sent base64) or a URL's content on `device` (e.g. `node1:dram`)."""
        import base64

        body = _clean(
            device=device, url=url, format=format, type=type,
            data=None if data is None else base64.b64encode(data).decode("ascii"),
            metadata=_clean(shape=shape, dtype=dtype),
        )
        return self._call("POST", CONTROL + "data", json=body)

    def put_array(self, device: str, array: Any, type: str = "input") -> Any:
        """Store a numpy array as a tensor chunk."""
        import numpy as np

        array = np.ascontiguousarray(array)
        return self.put(device, data=array.tobytes(), format="tensor", type=type,
                        shape=list(array.shape), dtype=str(array.dtype))

    def get(self, chunk_id: str) -> Any:
        return self._call("GET", CONTROL + f"data/{chunk_id}")

    def content(self, chunk_id: str) -> Any:
        """The chunk's bytes, exactly as stored."""
        return self._call("GET", CONTROL + f"data/{chunk_id}/content")

    def get_array(self, chunk_id: str) -> Any:
        """A tensor chunk's content as a numpy array of its shape and dtype."""
        import numpy as np

        meta = self.get(chunk_id)["metadata"]
        flat = np.frombuffer(self.content(chunk_id), dtype=np.dtype(meta["dtype"]))
        return flat.reshape(meta["shape"])

    def move(self, chunk_id: str, target_device: str, priority: str | None = None,
             bandwidth_limit: int | None = None, dependencies: list[str] | None = None) -> Any:
        """Queue a copy to another device of the same node; answers the task."""
        body = _clean(target_device=target_device, priority=priority,
                      bandwidth_limit=bandwidth_limit, dependencies=dependencies)
        return self._call("POST", CONTROL + f"data/{chunk_id}/move", json=body)

    def transfer(self, chunk_id: str, target_node: str, target_device: str,
                 delete_source: bool = False, priority: str | None = None,
                 bandwidth_limit: int | None = None, dependencies: list[str] | None = None) -> Any:
        """Queue a copy to another node (`bandwidth_limit` in bytes/s); answers the task."""
        body = _clean(target_node=target_node, target_device=target_device,
                      delete_source=delete_source, priority=priority,
                      bandwidth_limit=bandwidth_limit, dependencies=dependencies)
        return self._call("POST", CONTROL + f"data/{chunk_id}/transfer", json=body)

    def delete(self, chunk_id: str, force: bool = False) -> Any:
        params = {"force": "true"} if force else None
        return self._call("DELETE", CONTROL + f"data/{chunk_id}", params=params)
