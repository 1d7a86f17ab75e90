"""Does the server keep answering while it reads a hostile upload? `python -m benchmarks.upload_health`

Starts `streamlit run app.py` on loopback, opens the Attack lab in Debian's Chromium (Playwright),
and uploads, one after the other, a 562-byte `.pt` whose dict key takes hours to hash (nested
tuples) and a `.pt` whose pickle asks for gigabytes (`torch.Size(bytearray(2e8))`). Meanwhile a
thread polls `/_stcore/health` every 50 ms. Reports, and writes to benchmarks/upload_health.md and
.json: seconds from the click to the refusal, the longest gap between two health answers during
the upload, failed health polls, and the server's peak resident memory (VmHWM) before and after.
Before the child-process reader (issue 13) the first upload froze the server: health stopped
answering until the process was killed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.weight_files import nested_key, size_balloon, torch_zip  # the same hostile files the tests refuse (built from pickle opcodes)

from .app_server import CHROMIUM, IDLE, ROOT, start_app, stop_app

PAYLOADS = {"hang.pt": lambda: torch_zip(nested_key(40)), "balloon.pt": lambda: torch_zip(size_balloon(2 * 10**8))}


class Health(threading.Thread):
    """Polls the health endpoint; `gap()` is the longest time without an answer since `reset()`."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stop, self.failures, self.max_gap = f"{url}/_stcore/health", threading.Event(), 0, 0.0
        self.last = time.monotonic()

    def reset(self) -> None:
        self.failures, self.max_gap, self.last = 0, 0.0, time.monotonic()

    def run(self) -> None:
        while not self.stop.wait(0.05):
            try:
                ok = urllib.request.urlopen(self.url, timeout=2).read() == b"ok"
            except OSError:
                ok = False
            now = time.monotonic()
            if ok:
                self.max_gap, self.last = max(self.max_gap, now - self.last), now
            else:
                self.failures += 1


def _peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024


def main() -> int:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="purify-upload-health-"))
    server, url = start_app(folder / "cache")
    health = Health(url)
    health.start()
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.goto(f"{url}/attack_lab")
            page.wait_for_selector(IDLE, timeout=180_000)
            page.locator("[data-testid=stSelectbox]").filter(has_text="Dataset").click()
            page.get_by_role("option", name="8x8 digits").click()
            page.wait_for_selector(IDLE, timeout=180_000)
            page.get_by_role("tab", name="Upload weights").click()
            for name, make in PAYLOADS.items():
                path = folder / name
                path.write_bytes(make())
                page.locator(".st-key-attack_file input[type=file]").set_input_files(str(path))  # the weights, not the card
                page.wait_for_selector(IDLE, timeout=60_000)
                rss_before = _peak_rss_mb(server.pid)
                health.reset()
                start = time.monotonic()
                page.get_by_role("button", name="Check and open").click()
                alert = page.locator("[data-testid=stAlert]").filter(has_text=name).filter(has_text="was stopped")
                alert.first.wait_for(timeout=300_000)
                rows.append({"upload": name, "bytes": path.stat().st_size, "seconds to refusal": round(time.monotonic() - start, 1),
                             "longest health gap (s)": round(health.max_gap, 2), "failed health polls": health.failures,
                             "server peak RSS before (MB)": round(rss_before), "server peak RSS after (MB)": round(_peak_rss_mb(server.pid)),
                             "message": alert.first.inner_text()[:160]})
                print(rows[-1], flush=True)
            browser.close()
    finally:
        health.stop.set()
        stop_app(server)
    (ROOT / "benchmarks" / "upload_health.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Hostile uploads and the server's health endpoint", "", "`python -m benchmarks.upload_health` (Chromium, one server).", "",
             "| " + " | ".join(rows[0]) + " |", "| " + " | ".join("---" for _ in rows[0]) + " |"]
    lines += ["| " + " | ".join(str(v).replace("|", "/").replace("\n", " ") for v in row.values()) + " |" for row in rows]
    (ROOT / "benchmarks" / "upload_health.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
