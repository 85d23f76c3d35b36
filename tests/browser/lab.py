"""Driving JupyterLab in a real headless Chromium (Playwright): open a notebook, run it all, wait
for it, find the gswarm panels, take screenshots.

The browser is Debian's `chromium` (never a downloaded build); the server is a real `jupyter lab`
process with the extension on a free loopback port (`LiveServer(app="jupyterlab")`)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import httpx

from gswarm_jupyter.testing import LiveServer

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# No news popup, no update check: nothing for JupyterLab to fetch from outside.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def skip_reason() -> str | None:
    """Why the browser suite cannot run here, or None when it can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "BROWSER TESTS NOT RUN: playwright is not installed (pip install -e '.[test]')"
    if shutil.which("chromium") is None:
        return ("BROWSER TESTS NOT RUN: no `chromium` on PATH "
                "(as root: apt-get update && apt-get install -y chromium)")
    return None


def lab_server(tmp: Path, base_url: str = "/") -> LiveServer:
    """A `jupyter lab` with the extension serving a copy of notebooks/ (not yet started)."""
    root, settings, state = tmp / "lab", tmp / "lab-settings", tmp / "state"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns("conftest.py", "__pycache__",
                                                                   "*.cfg"))
    for name, values in LAB_SETTINGS.items():
        path = settings / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    env = {"JUPYTERLAB_SETTINGS_DIR": str(settings),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces")}
    return LiveServer(root, nodes=2, base_url=base_url, data_dir=state, app="jupyterlab",
                      extra_env=env, timeout=180,
                      extra_args=["--LabApp.expose_app_in_browser=True",
                                  "--ServerApp.log_level=WARN"])


class Api:
    """The server's REST API (control plane), as the tests check what the browser did."""

    def __init__(self, server: LiveServer) -> None:
        self.base = server.url + "gswarm/api/v1/"
        self.headers = server.headers
        self.server = server

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        r = httpx.request(method, self.base + path, headers=self.headers, timeout=30, **kwargs)
        r.raise_for_status()
        return r.json()["data"]

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def wait_task(self, task_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            task = self.get(f"queue/tasks/{task_id}")
            if task["status"] not in ("pending", "running"):
                return task  # type: ignore[no-any-return]
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} still running after {timeout} s")

    def shutdown_kernels(self) -> None:
        url = self.server.url + "api/kernels"
        for kernel in httpx.get(url, headers=self.headers, timeout=10).json():
            httpx.delete(f"{url}/{kernel['id']}", headers=self.headers, timeout=30)


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

# Each code cell: its execution count (null: not run yet) and the text of any error output.
CELL_STATES = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  return nb.widgets.filter(c => c.model.type === 'code').map(c => {
    const outputs = c.model.outputs.toJSON();
    const error = outputs.find(o => o.output_type === 'error');
    return {count: c.model.executionCount,
            error: error ? error.ename + ': ' + error.evalue : null};
  });
}"""


def open_notebook(page: Any, server: LiveServer, name: str) -> None:
    """Open `name` in a fresh workspace and wait until its kernel is idle."""
    page.goto(f"{server.url}lab/tree/{name}?reset&token={server.token}")
    page.wait_for_function(KERNEL_IDLE, timeout=120_000)


def run_all(page: Any, timeout: float = 240) -> None:
    """Run every cell (Run > Run All Cells) and wait until each code cell ran; a cell's error
    fails at once with its text."""
    page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cells = page.evaluate(CELL_STATES)
        errors = [(i, c["error"]) for i, c in enumerate(cells) if c["error"]]
        assert not errors, f"a cell failed: {errors}"
        if all(c["count"] is not None for c in cells) and page.evaluate(KERNEL_IDLE):
            return
        time.sleep(0.5)
    raise AssertionError(f"the notebook did not finish within {timeout} s: "
                         f"{page.evaluate(CELL_STATES)}")


def line_points(locator: Any) -> list[int]:
    """How many points each bqplot line inside `locator` draws (from its SVG path)."""
    counts = locator.evaluate_all(
        "els => els.map(e => ((e.getAttribute('d') || '').match(/[ML]/g) || []).length)")
    return list(counts)


def wait_until(check: Any, timeout: float = 30, every: float = 0.3, what: str = "",
               show: Any = None) -> Any:
    """Poll `check()` until it answers something true; answer that. On time out, the message
    carries `show()` (what was seen last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            seen = f"; seen: {show()}" if show is not None else ""
            raise AssertionError(f"not within {timeout} s: {what or check}{seen}")
        time.sleep(every)


def shot(locator: Any, folder: Path, name: str) -> Path:
    """A screenshot of `locator` into `folder` (the test's tmp_path: kept when a test fails)."""
    path = folder / f"{name}.png"
    locator.scroll_into_view_if_needed()
    locator.screenshot(path=str(path))
    return path
