"""The browser suite's fixtures: one JupyterLab server (real, with the extension and its Dask
cluster) and one headless Chromium per test module, a fresh page per test. Where Chromium or
Playwright is missing, every test here is skipped with the reason, and the summary says so.

Module scope, not session: Playwright's sync API holds the main thread's event loop while it
runs, which the rest of the suite (asyncio, pytest-jupyter) must have back when it runs."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from .lab import CHROMIUM_ARGS, Api, lab_server, skip_reason

REASON = skip_reason()


def pytest_collection_modifyitems(config: Any, items: list[Any]) -> None:
    if REASON is None:
        return
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.skip(reason=REASON))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REASON is not None:
        terminalreporter.write_sep("!", REASON, yellow=True, bold=True)


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """pytest-jupyter's autouse loop would take (and close) Playwright's running one; these tests
    start no in-process server, so a loop of their own will do."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    """No in-process Jupyter server to clean up after (pytest-jupyter's would use the loop)."""
    yield


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"),
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory: Any) -> Iterator[Any]:
    server = lab_server(tmp_path_factory.mktemp("browser")).start()
    yield server
    server.stop()


@pytest.fixture
def api(lab: Any) -> Iterator[Api]:
    api = Api(lab)
    yield api
    api.shutdown_kernels()  # a notebook's panels stop with its kernel


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
