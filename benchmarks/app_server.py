"""Start and stop `streamlit run app.py` on a free loopback port (for the browser test and the benchmarks)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(cache_dir: str | Path | None = None, wait_s: float = 120.0, poll_s: float = 0.1) -> tuple[subprocess.Popen, str]:
    """The server process and its URL, once `/_stcore/health` answers; models it trains go to `cache_dir`."""
    port = free_port()
    env = {**os.environ, "PURIFY_LAB_CACHE": str(cache_dir or tempfile.mkdtemp(prefix="purify-app-"))}
    server = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                               "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + wait_s
    while time.time() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return server, url
        except OSError:
            time.sleep(poll_s)
    stop_app(server)
    raise RuntimeError(f"streamlit did not answer /_stcore/health within {wait_s:.0f} s")


def stop_app(server: subprocess.Popen) -> None:
    """Terminate, and kill if it has not stopped in 30 s: no server outlives its test or benchmark."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
