"""JupyterLab and gswarm under a non-root base_url (as behind a proxy or JupyterHub): the
quickstart runs whole in the browser and its panels draw live data from the prefixed API."""

from __future__ import annotations

import pytest

from .lab import Api, lab_server, line_points, open_notebook, run_all, shot, wait_until

pytestmark = pytest.mark.slow


def test_the_quickstart_under_a_base_url(browser, tmp_path_factory, tmp_path):
    server = lab_server(tmp_path_factory.mktemp("prefixed"), base_url="/team/lab/").start()
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    try:
        assert server.url.endswith("/team/lab/")
        page = context.new_page()
        open_notebook(page, server, "01_quickstart.ipynb")
        run_all(page)
        cluster = page.locator(".jp-Notebook .gswarm-cluster-panel").first
        sparks = cluster.locator(".gswarm-sparkline g.curve path.line")
        wait_until(lambda: line_points(sparks) and min(line_points(sparks)) >= 3,
                   what="sparklines with points")
        assert "could not refresh" not in cluster.inner_text()
        side = page.locator(".jupyterlab-sidecar .gswarm-dashboard")
        side.wait_for(timeout=30_000)
        charts = side.locator(".gswarm-chart g.curve path.line")
        wait_until(lambda: line_points(charts) and min(line_points(charts)) >= 2,
                   what="dashboard charts with points")
        shot(cluster, tmp_path, "base-url-cluster-panel")
    finally:
        context.close()
        Api(server).shutdown_kernels()
        server.stop()
