"""`client.profiler`: sessions, frames, plots and the live stream."""

from __future__ import annotations

from typing import Any

from .parts import MAX_PAGE, PROFILER, _Part, _clean


class ProfilerApi(_Part):
    """The profiler: named sessions of frames sampled on the nodes, their reports and exports."""

    def status(self) -> Any:
        return self._call("GET", PROFILER + "status")

    def start(self, name: str, sampling_frequency_ms: int | None = None,
              nodes: list[str] | None = None, metrics: list[str] | None = None,
              tags: dict[str, Any] | None = None) -> Any:
        """Start recording session `name` (every node and metric by default); answers its record."""
        body = _clean(name=name, sampling_frequency_ms=sampling_frequency_ms, nodes=nodes,
                      metrics=metrics, tags=tags)
        return self._call("POST", PROFILER + "profiling/start", json=body)

    def stop(self, name: str) -> Any:
        """Stop `name`; answers its record with `summary` {node: {device: {metric: stats}}}."""
        return self._call("POST", PROFILER + "profiling/stop", json={"name": name})

    def sessions(self) -> Any:
        """Every session, running and finished (up to 500)."""
        return self._call("GET", PROFILER + "profiling/sessions", params={"per_page": MAX_PAGE},
                          key="sessions")

    def session(self, name: str) -> Any:
        """One session's record, summary and frames."""
        return self._call("GET", PROFILER + f"profiling/sessions/{name}")

    def frames(self, name: str) -> Any:
        """The frames a session recorded, oldest first."""
        return self._call("GET", PROFILER + f"profiling/sessions/{name}", key="frames")

    def csv(self, name: str) -> Any:
        """The session's frames as CSV bytes (one row per frame and device)."""
        return self._call("GET", PROFILER + f"profiling/sessions/{name}", params={"format": "csv"})

    def plot_png(self, name: str, metrics: list[str] | None = None) -> Any:
        """A matplotlib plot of the session as PNG bytes (of `metrics`, or the server's choice)."""
        params = _clean(format="png", metrics=",".join(metrics) if metrics else None)
        return self._call("GET", PROFILER + f"profiling/sessions/{name}", params=params)

    def clients(self) -> Any:
        """Every sampler the server hears from: Dask nodes' and external agents'."""
        return self._call("GET", PROFILER + "clients", params={"per_page": MAX_PAGE}, key="clients")

    def latest(self, nodes: list[str] | None = None, metrics: list[str] | None = None) -> Any:
        """The latest frame of every client (or of `nodes`), with only `metrics` if given."""
        params = _clean(nodes=",".join(nodes) if nodes else None,
                        metrics=",".join(metrics) if metrics else None)
        return self._call("GET", PROFILER + "metrics/latest", params=params, key="frames")


class AsyncProfilerApi(ProfilerApi):
    async def events(self, sessions: list[str] | None = None, nodes: list[str] | None = None,
                     metrics: list[str] | None = None) -> Any:
        """Frames as they arrive: an async iterator over `/ws/profiling` events
        (`{"event": "frame", "data": frame}`), filtered when any filter is given."""
        wanted = _clean(sessions=sessions, nodes=nodes, metrics=metrics)
        async for event in self._client._events("profiling", wanted or None):  # type: ignore[attr-defined]
            yield event
