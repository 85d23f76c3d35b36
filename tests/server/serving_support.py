"""What the serving tests share."""

from __future__ import annotations


def start_without_profiler(jp_serverapp, jp_asyncio_loop):
    """The started extension, as conftest's `gswarm_app`, without the profiler's collector.

    The profiler is not under test here, and its collector task can miss its cancellation
    (a cancel lost inside `asyncio.wait_for` on Python 3.11), which hangs the server's cleanup.
    """

    async def start():
        ext = next(iter(jp_serverapp.extension_manager.extension_apps["gswarm_jupyter"]))
        ext.context.profiler = None
        await jp_serverapp.extension_manager.start_all_extensions()
        await ext.context.runtime.wait_ready(timeout=120)
        return ext

    return jp_asyncio_loop.run_until_complete(start())
