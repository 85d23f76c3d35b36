"""Each notebook of notebooks/ opened in JupyterLab in a real headless Chromium, run whole (Run >
Run All Cells), and its panels checked as a person sees them: live data drawn (chart lines with
points, tier-map chips, task rows), the buttons doing what they say (checked through the REST
API), errors staying on screen. Screenshots of each panel land in the test's tmp_path."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest

from .lab import line_points, open_notebook, run_all, shot, wait_until

pytestmark = pytest.mark.slow


def panel(page, kind: str):
    """The notebook's own panel of `kind` (cluster, task, model, profiler), not the dashboard's."""
    return page.locator(f".jp-Notebook .gswarm-{kind}-panel").first


def test_quickstart_cluster_panel_and_the_dashboard_beside_the_notebook(page, lab, api, tmp_path):
    open_notebook(page, lab, "01_quickstart.ipynb")
    run_all(page)
    cluster = panel(page, "cluster")
    assert cluster.locator(".gswarm-node-card").count() == 2
    sparks = cluster.locator(".gswarm-sparkline g.curve path.line")
    wait_until(lambda: min(line_points(sparks)) >= 3, what="sparklines with 3 points")
    assert "2 of 2 nodes online" in cluster.inner_text()
    shot(cluster, tmp_path, "01-cluster-panel")

    side = page.locator(".jupyterlab-sidecar .gswarm-dashboard")  # a side area, not the notebook
    side.wait_for(timeout=30_000)
    for kind in ("cluster", "task", "model", "profiler"):
        assert side.locator(f".gswarm-{kind}-panel").count() == 1
    charts = side.locator(".gswarm-profiler-panel .gswarm-chart g.curve path.line")
    wait_until(lambda: line_points(charts) and min(line_points(charts)) >= 2,
               what="dashboard charts with points")
    page.screenshot(path=str(tmp_path / "01-lab-with-dashboard.png"))


def test_data_and_tasks_task_panel_rows_and_its_cancel_button(page, lab, api, tmp_path):
    open_notebook(page, lab, "02_data_and_tasks.ipynb")
    run_all(page)
    tasks = panel(page, "task")
    rows = tasks.locator(".gswarm-task-row")
    wait_until(lambda: rows.count() >= 3, what="the notebook's tasks as rows")
    assert "cancelled" in tasks.inner_text() and "failed" in tasks.inner_text()
    shot(tasks, tmp_path, "02-task-panel")

    chunk = api.call("POST", "data", json={"device": "node1:dram",
                                           "data": "AAAA" * 500_000, "format": "bytes"})
    slow = api.call("POST", f"data/{chunk['chunk_id']}/transfer",
                    json={"target_node": "node2", "target_device": "disk",
                          "bandwidth_limit": 50_000})
    row = tasks.locator(".gswarm-task-row", has_text=slow["task_id"])
    row.wait_for(timeout=30_000)
    row.get_by_role("button", name="Cancel").click()
    wait_until(lambda: api.get(f"queue/tasks/{slow['task_id']}")["status"] == "cancelled",
               what="the task cancelled through the button")
    wait_until(lambda: "cancelled" in row.inner_text(), what="the row saying cancelled")
    shot(tasks, tmp_path, "02-task-panel-after-cancel")


def _pick(panel_locator, label: str, option: str) -> None:
    panel_locator.get_by_label(label, exact=True).select_option(label=option)


def _devices(api, model: str) -> list[str]:
    return sorted(loc["device"] for loc in api.get(f"models/{model}")["locations"])


def test_models_tier_map_copy_move_and_an_error_that_stays(page, lab, api, tmp_path):
    open_notebook(page, lab, "03_models.ipynb")
    run_all(page)
    models = panel(page, "model")
    chips = models.locator(".gswarm-chip")
    wait_until(lambda: chips.count() >= 2, what="chips on the tier map")
    assert {"mlp-demo", "gpt-demo"} <= set(chips.all_inner_texts())
    shot(models, tmp_path, "03-model-panel")

    _pick(models, "model", "mlp-demo")
    _pick(models, "source", "node1:disk")
    _pick(models, "target", "node2:disk")
    models.get_by_role("button", name="Copy").click()
    wait_until(lambda: "node2:disk" in _devices(api, "mlp-demo"), what="the copy made")
    wait_until(lambda: all(loc["status"] == "ready"
                           for loc in api.get("models/mlp-demo")["locations"]))
    assert _devices(api, "mlp-demo") == ["node1:disk", "node2:disk"]

    _pick(models, "model", "gpt-demo")
    _pick(models, "source", "node1:dram")
    _pick(models, "target", "node2:dram")
    models.get_by_role("button", name="Move").click()
    wait_until(lambda: _devices(api, "gpt-demo") == ["node2:dram"]
               and api.get("models/gpt-demo")["locations"][0]["status"] == "ready",
               timeout=60, what="the move done")
    cell = models.locator("td", has_text="gpt-demo")
    wait_until(lambda: cell.count() == 1, what="the map showing one gpt-demo chip")
    shot(models, tmp_path, "03-model-panel-after-copy-and-move")

    _pick(models, "model", "mlp-demo")
    _pick(models, "source", "node1:disk")
    _pick(models, "target", "node2:disk")  # it has a copy there already: 409
    models.get_by_role("button", name="Copy").click()
    error = models.locator(".gswarm-error")
    wait_until(lambda: "CONFLICT" in error.inner_text(), what="the refusal shown",
               show=lambda: (shot(models, tmp_path, "03-no-refusal"), models.inner_text()))
    time.sleep(5)  # two refreshes later (every 2 s) it is still there
    assert "CONFLICT" in error.inner_text() and "node2:disk" in error.inner_text()
    shot(models, tmp_path, "03-model-panel-error")
    models.locator(".gswarm-dismiss").click()
    wait_until(lambda: error.inner_text().strip() == "", what="the error dismissed")


def test_inference_runs_whole(page, lab, api):
    open_notebook(page, lab, "04_inference.ipynb")
    run_all(page)  # fails on the first cell that raises
    assert not [s for s in api.get("services")["services"] if s["model_name"].startswith("nb4-")]


def test_profiling_live_charts_and_the_session_buttons(page, lab, api, tmp_path):
    open_notebook(page, lab, "05_profiling.ipynb")
    run_all(page)
    profiler = panel(page, "profiler")
    charts = profiler.locator(".gswarm-chart")
    assert charts.count() == 4  # host CPU, memory, network, disk (no GPU here)
    titles = profiler.locator(".gswarm-chart .mainheading").all_text_contents()
    assert titles == ["Host CPU", "Host memory", "Host network", "Host disk"]
    labels = profiler.locator(".gswarm-chart .axislabel").all_text_contents()
    assert {"CPU (%)", "used (GiB)", "bytes/s", "time"} <= set(labels)
    lines = profiler.locator(".gswarm-chart g.curve path.line")  # not the legend's
    shot(profiler, tmp_path, "05-profiler-panel-at-the-end-of-the-run")
    wait_until(lambda: len(line_points(lines)) == 12 and min(line_points(lines)) >= 4,
               what="every line with 4 points", show=lambda: (line_points(lines),
                                                               profiler.inner_text()))
    shot(profiler, tmp_path, "05-profiler-panel")

    name = f"browser-{uuid.uuid4().hex[:6]}"
    profiler.locator(".widget-text", has_text="session").locator("input").fill(name)
    profiler.get_by_role("button", name="Start").click()
    wait_until(lambda: name in [s["name"] for s in api.get("profiler/status")["active_sessions"]],
               what="the session recording")
    time.sleep(1.5)
    profiler.get_by_role("button", name="Stop").click()
    wait_until(lambda: api.get(f"profiler/profiling/sessions/{name}")["status"] == "finished",
               what="the session stopped")
    wait_until(lambda: f"{name} stopped" in profiler.inner_text(), what="the panel saying so")
    shot(profiler, tmp_path, "05-profiler-panel-after-session")


def test_training_runs_whole(page, lab, api):
    open_notebook(page, lab, "06_training.ipynb")
    run_all(page, timeout=300)


def test_sharing_runs_whole_and_leaves_nothing_behind(page, lab, api, tmp_path):
    open_notebook(page, lab, "07_sharing.ipynb")
    run_all(page, timeout=300)
    models = panel(page, "model")
    wait_until(lambda: models.locator(".gswarm-band").count() == 0
               and models.locator(".gswarm-quota", has_text="nb7-").count() == 0,
               what="the map without the notebook's reservation and vGPUs",
               show=lambda: models.inner_text())
    shot(models, tmp_path, "07-model-panel-after-clean-up")

    def compute(path: str) -> Any:
        r = httpx.get(api.server.url + "gswarm/compute/v1/" + path, headers=api.headers,
                      timeout=30)
        r.raise_for_status()
        return r.json()["data"]

    assert not [k for k in api.get("keys")["keys"]
                if k["name"].startswith("nb7-") and not k["revoked"]]
    assert not [v for v in compute("virtualization/gpus")["vgpus"]
                if v["virtual_gpu_id"].startswith("nb7-")]
    assert not [a for a in compute("resources")["allocations"] if a["user_id"] == "nb7"]
    assert not [s for s in api.get("services")["services"] if s["model_name"].startswith("nb7-")]


def test_real_models_runs_whole_and_leaves_nothing_behind(page, lab, api):
    open_notebook(page, lab, "08_real_models.ipynb")
    run_all(page, timeout=420)  # loads a real encoder four times and fine-tunes one
    assert not [s for s in api.get("services")["services"] if s["model_name"].startswith("nb8-")]
    assert not [m for m in api.get("models")["models"] if m["model_name"].startswith("nb8-")]
