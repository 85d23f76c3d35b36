"""Test support: a real `jupyter server` with the extension, in its own process.

Synchronous callers (the SDK's blocking client, magics, widgets, notebooks) need a server that does
not share their thread's event loop; this is that server.
"""

from __future__ import annotations

import os
import pty
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

# The fetch policy of every test server: http(s) sources on loopback only (tests never reach
# another address), every host name refused before a lookup.
LOOPBACK_ONLY: dict[str, list[str]] = {
    "fetch_allow": ["127.0.0.0/8", "::1/128"],
    "fetch_deny": ["0.0.0.0/0", "::/0"],
}


# Run as `python -c TAKE_TERMINAL program args...` in a new session whose stdin is a terminal:
# that terminal becomes the session's controlling one, then `program` replaces this process.
TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`with LiveServer(root) as server:` a healthy server at `server.url` with `server.token`.

    Its state is in `data_dir` (default `root/data`; `default_data_dir=True` leaves the server's
    own default). `own_session=True` runs it in a process group of its own (`signal_group`);
    `terminal=True` also gives it a terminal of its own, as `make run` in a shell has
    (`type_ctrl_c`). `app="jupyterlab"` serves JupyterLab too, as `make run` does.
    """

    def __init__(self, root: Path, nodes: int = 2, extra_args: list[str] | None = None,
                 base_url: str = "/", timeout: float = 120.0,
                 extra_env: dict[str, str] | None = None, data_dir: Path | None = None,
                 default_data_dir: bool = False, own_session: bool = False,
                 terminal: bool = False, app: str = "jupyter_server") -> None:
        self.root = Path(root)
        self.app = app  # the module run with `python -m`: "jupyter_server", or "jupyterlab"
        self.data_dir = None if default_data_dir else Path(data_dir or self.root / "data")
        self.own_session = own_session or terminal
        self.terminal = terminal
        self._tty: int | None = None  # the terminal's controlling side, when it has one
        self.nodes = nodes
        self.extra_args = extra_args or []
        self.base_url = base_url
        self.timeout = timeout
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}{base_url}"
        self.runtime_dir = self.root / "runtime"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        """The server's environment: its kernels find this server, never one named by the
        caller's GSWARM_URL/GSWARM_TOKEN (another server of the same test run)."""
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("GSWARM_")}
        return {**inherited, "JUPYTER_RUNTIME_DIR": str(self.runtime_dir),
                "GSWARM_URL": self.url, "GSWARM_TOKEN": self.token, **self.extra_env}

    def start(self) -> LiveServer:
        self.root.mkdir(parents=True, exist_ok=True)
        args = [
            sys.executable, "-m", self.app, "--no-browser", "--allow-root",
            f"--port={self.port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}", f"--ServerApp.base_url={self.base_url}",
            f"--ServerApp.root_dir={self.root}",
            *([f"--GswarmApp.data_dir={self.data_dir}"] if self.data_dir else []),
            "--GswarmApp.grpc_port=0", f"--GswarmApp.local_nodes={self.nodes}",
            *(f"--GswarmApp.fetch_allow={net}" for net in LOOPBACK_ONLY["fetch_allow"]),
            *(f"--GswarmApp.fetch_deny={net}" for net in LOOPBACK_ONLY["fetch_deny"]),
            *self.extra_args,
        ]
        log = open(self.root / "server.log", "ab")
        stdin: int | None = None
        if self.terminal:
            self._tty, stdin = pty.openpty()
            args = [sys.executable, "-c", TAKE_TERMINAL, *args]
        self.proc = subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=stdin, start_new_session=self.own_session)
        if stdin is not None:
            os.close(stdin)
        self.wait_healthy()
        return self

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    def signal_group(self, sig: int) -> None:
        """`sig` to the server's whole process group, as a shell or a supervisor sends it."""
        assert self.proc is not None and self.own_session
        os.killpg(self.proc.pid, sig)

    def type_ctrl_c(self) -> None:
        """Ctrl-C on the server's terminal: its driver sends SIGINT to the foreground group."""
        assert self._tty is not None
        os.write(self._tty, b"\x03")

    def health(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(self.url + "gswarm/api/v1/health", headers=self.headers, timeout=5)
            return r.json()["data"] if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError, KeyError):
            return None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def wait_healthy(self) -> None:
        assert self.proc is not None
        deadline = time.time() + self.timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited; see {self.root / 'server.log'}")
            health = self.health()
            if health and health["nodes_online"] >= self.nodes:
                return
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"the server was not healthy within {self.timeout} s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait()
        finally:
            tty, self._tty = self._tty, None
            if tty is not None:
                os.close(tty)

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
