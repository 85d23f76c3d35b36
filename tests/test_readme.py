"""The README's commands work when pasted.

Every ```bash block of README.md is meant to be pasted into a shell after the two `export` lines
`make run` prints, against a fresh server: this runs each of them, in order, with `bash -e`
against a real server process on a loopback port, and wants exit status 0 (the blocks use
`curl -f`, so an HTTP error fails). Blocks fenced ```bash notest are set-up (install, `make run`,
another host's commands) and are not run here.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from gswarm_jupyter.testing import LiveServer

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```bash([^\n]*)\n(.*?)^```", re.M | re.S)


def shell_blocks(text: str) -> list[str]:
    """The ```bash blocks to run: those whose fence does not say `notest`."""
    return [body for info, body in FENCE.findall(text) if "notest" not in info.split()]


def test_the_readme_has_blocks_to_run_and_marks_the_others():
    text = (ROOT / "README.md").read_text()
    blocks = shell_blocks(text)
    assert blocks, "no runnable shell block found: the test below would prove nothing"
    assert len(blocks) < len(FENCE.findall(text))  # set-up blocks exist and are skipped
    assert all("$GSWARM_TOKEN" in block and "GSWARM_URL" in block for block in blocks)
    assert shell_blocks("```bash notest\nmake run\n```\n```bash\ncurl x\n```\n") == ["curl x\n"]


def test_make_run_prints_the_exports_the_blocks_use():
    made = subprocess.run(
        ["make", "-n", "run", "PORT=9999", "TOKEN=abc"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout
    assert 'echo "export GSWARM_URL=http://127.0.0.1:9999/"' in made
    assert 'echo "export GSWARM_TOKEN=abc"' in made
    generated = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    token = re.search(r'echo "export GSWARM_TOKEN=(\S*)"', generated)
    assert token and re.fullmatch(r"[0-9a-f]{48}", token.group(1)), generated


def test_every_shell_block_of_the_readme_runs_against_a_fresh_server(tmp_path):
    blocks = shell_blocks((ROOT / "README.md").read_text())
    with LiveServer(tmp_path / "server", nodes=2) as server:
        env = {**server.env, "GSWARM_URL": server.url, "GSWARM_TOKEN": server.token}
        for number, block in enumerate(blocks, 1):
            ran = subprocess.run(["bash", "-e", "-c", block], env=env, capture_output=True,
                                 text=True, timeout=300)
            assert ran.returncode == 0, (
                f"README shell block {number} failed ({ran.returncode}):\n{block}\n"
                f"stdout: {ran.stdout[-2000:]}\nstderr: {ran.stderr[-2000:]}"
            )


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """The blocks reach the server through GSWARM_URL on loopback; no proxy may intervene."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
