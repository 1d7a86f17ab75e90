"""A classroom on one server: `python -m benchmarks.load [--sessions 30] [--purifiers 10]`.

Starts `streamlit run app.py` on loopback and opens `--sessions` Playwright browser contexts in
Debian's Chromium, all at once. `--purifiers` of them each run the default purification (the same
settings and seed, as a class pressing Run would); the others browse every page. Reports, and writes
to benchmarks/load.md and load.json:
- errors: exceptions on a page, timeouts (must be 0);
- cross-talk: a session that sees a run that is not its own, or not its own run (must be 0);
- the shared cached model's weights sha256, as the home page shows it, before and after (must be equal);
- p50 / p95 page response time (navigation until the page is idle and drawn), the waits for a job slot;
- how many of the purifications were computed and how many replayed from the server's kept runs, and
  the seconds from the last Run click to its finished run;
- the server's peak resident memory.
Bounded: every wait has a timeout and the whole run a deadline. `run_load` is what the CI test calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .app_server import CHROMIUM, IDLE, ROOT, start_app, stop_app

PAGES = ["", "salience", "compare", "explain", "attack_lab", "purify"]
#: With `animate=False`: every CSS animation runs once instead of forever (Streamlit's running icon, spinners and
#: skeleton shimmer repaint without end while a page waits for the server). Transitions and finite animations are left
#: as they are, so nothing waits for an animation that never ends. For the tests only, where Chromium shares two
#: cores with the server and the other tests; the benchmark keeps the browser as a class sees it.
STILL = """document.addEventListener('DOMContentLoaded', () => {
  const style = document.createElement('style');
  style.textContent = '*, *::before, *::after { animation-iteration-count: 1 !important; }';
  document.head.appendChild(style);
});"""
SHA = re.compile(r"Weights in memory: sha256 ([0-9a-f]{16})")


@dataclass
class LoadReport:
    sessions: int
    purifiers: int
    job_limit: int
    errors: list[str] = field(default_factory=list)
    cross_talk: list[str] = field(default_factory=list)
    hash_before: str = ""
    hash_after: str = ""
    page_seconds: list[float] = field(default_factory=list)
    run_seconds: list[float] = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)  # each purification: clicked and finished (s since start), replayed
    peak_rss_mb: float = 0.0
    wall_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    browser_cpu_seconds: float = 0.0
    started: float = 0.0  # perf_counter at the start: the runs' times are counted from it

    def summary(self) -> dict:
        pages = sorted(self.page_seconds) or [float("nan")]
        return {
            "sessions": self.sessions, "purifying sessions": self.purifiers, "heavy-job limit": self.job_limit,
            "errors": len(self.errors), "cross-talk": len(self.cross_talk),
            "shared model sha256 before": self.hash_before, "shared model sha256 after": self.hash_after,
            "shared model unchanged": bool(self.hash_before) and self.hash_before == self.hash_after,
            "page loads": len(self.page_seconds),
            "page response p50 (s)": round(statistics.median(pages), 2),
            "page response p95 (s)": round(pages[min(len(pages) - 1, int(0.95 * len(pages)))], 2),
            "purification click to finished, max (s)": round(max(self.run_seconds, default=float("nan")), 1),
            "purifications computed": sum(not r["replayed"] for r in self.runs),
            "purifications replayed": sum(r["replayed"] for r in self.runs),
            "last Run click to its finished run (s)": round(last["finished"] - last["clicked"], 1) if (last := max(
                self.runs, key=lambda r: r["clicked"], default=None)) else float("nan"),
            "server peak RSS (MB)": round(self.peak_rss_mb),
            "wall time (s)": round(self.wall_seconds, 1),
            "server CPU (s)": round(self.server_cpu_seconds),
            "Chromium CPU, the test's own browsers on the same cores (s)": round(self.browser_cpu_seconds),
        }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _chromium_cpu_seconds() -> float:
    """CPU seconds of every running chromium process (the load test's browser), children included."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(chromium" in text or "(chrome" in text:
            total += _cpu_seconds(int(stat.parent.name))
    return total


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def _settle(page, timeout: float) -> None:
    await page.wait_for_selector(IDLE, timeout=timeout)
    await page.wait_for_timeout(300)
    await page.wait_for_selector(IDLE, timeout=timeout)


async def _visit(page, url: str, report: LoadReport, who: str, timeout: float) -> None:
    start = time.perf_counter()
    try:
        await page.goto(url, timeout=timeout)
        await _settle(page, timeout)
    except Exception as error:  # noqa: BLE001 - a timeout or a crashed page is what this counts
        report.errors.append(f"{who} {url}: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
        return
    report.page_seconds.append(time.perf_counter() - start)
    shown = await page.locator("[data-testid=stException]").all_inner_texts()
    report.errors += [f"{who} {url}: exception on the page: {text[:160]}" for text in shown]


async def _home_sha(page, url: str, timeout: float) -> str:
    await page.goto(url, timeout=timeout)
    await _settle(page, timeout)
    found = SHA.search(await page.inner_text("body"))
    return found.group(1) if found else ""


async def _context(browser, timeout: float, animate: bool):
    context = await browser.new_context(viewport={"width": 1300, "height": 1400})
    context.set_default_timeout(timeout)  # a crowded 2-core server answers slowly; every wait gets the same bound
    if not animate:
        await context.add_init_script(STILL)
    return context


async def _purifier(browser, url: str, k: int, report: LoadReport, timeout: float, animate: bool) -> None:
    context = await _context(browser, timeout, animate)
    page = await context.new_page()
    await _visit(page, f"{url}/purify", report, f"purifier {k}", timeout)  # the defaults: the same run in every session
    try:
        start = time.perf_counter()
        await page.get_by_role("button", name="Run purification").click()
        await page.wait_for_selector("text=runs kept in this session", timeout=timeout)
        await _settle(page, timeout)
        finished = time.perf_counter()
        report.run_seconds.append(finished - start)
        replayed = await page.get_by_text("replayed from a cached identical run").count() > 0
        report.runs.append({"purifier": k, "clicked": start - report.started, "finished": finished - report.started, "replayed": replayed})
        text = await page.get_by_text(re.compile(r"runs kept in this session")).first.inner_text()
        kept = re.match(r"\s*(\d+) of at most", text)
        if kept is None or kept.group(1) != "1":
            report.cross_talk.append(f"purifier {k} sees {kept.group(1) if kept else 'no'} runs, expected only its own one")
        shown = await page.locator("[data-testid=stException]").all_inner_texts()
        report.errors += [f"purifier {k}: exception after the run: {t[:160]}" for t in shown]
    except Exception as error:  # noqa: BLE001
        report.errors.append(f"purifier {k}: {type(error).__name__}: {str(error).splitlines()[0][:120]}")
    await context.close()


async def _browser_session(browser, url: str, k: int, report: LoadReport, timeout: float, rounds: int, animate: bool) -> None:
    context = await _context(browser, timeout, animate)
    page = await context.new_page()
    for r in range(rounds):
        for path in PAGES[k % len(PAGES):] + PAGES[: k % len(PAGES)]:
            await _visit(page, f"{url}/{path}", report, f"browser {k}", timeout)
            if path == "purify" and await page.get_by_text("runs kept in this session").count():
                report.cross_talk.append(f"browser {k} sees runs on the Purify page but never ran one")
    await context.close()


async def _drive(url: str, report: LoadReport, timeout: float, rounds: int, animate: bool) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        probe = await browser.new_page()
        report.hash_before = await _home_sha(probe, url, timeout)
        sessions = [_purifier(browser, url, k, report, timeout, animate) for k in range(report.purifiers)]
        sessions += [_browser_session(browser, url, k, report, timeout, rounds, animate)
                     for k in range(report.sessions - report.purifiers)]
        await asyncio.gather(*sessions)
        report.hash_after = await _home_sha(probe, url, timeout)
        await browser.close()


def run_load(sessions: int = 30, purifiers: int = 10, rounds: int = 1, timeout_s: float = 600.0, animate: bool = True) -> LoadReport:
    """Start a server, drive the sessions, stop the server; every wait is bounded by `timeout_s`. `animate=False`
    stops the pages' endless CSS animations (`STILL`)."""
    if not 0 <= purifiers <= sessions:
        raise SystemExit("error: --purifiers must be between 0 and --sessions")
    from ui.job_slots import default_job_limit

    report = LoadReport(sessions, purifiers, default_job_limit())
    report.started = time.perf_counter()
    server, url = start_app(tempfile.mkdtemp(prefix="purify-load-"))
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            report.peak_rss_mb = max(report.peak_rss_mb, _rss_mb(server.pid))
            report.server_cpu_seconds = max(report.server_cpu_seconds, _cpu_seconds(server.pid))
            report.browser_cpu_seconds = max(report.browser_cpu_seconds, _chromium_cpu_seconds())
            stop.wait(0.5)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    start = time.perf_counter()
    try:
        asyncio.run(asyncio.wait_for(_drive(url, report, timeout_s * 1000, rounds, animate), timeout=timeout_s * 3))
    finally:
        report.wall_seconds = time.perf_counter() - start
        stop.set()
        stop_app(server)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--purifiers", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=1, help="how many times each browsing session visits every page")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds any one wait may take")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"error: {CHROMIUM} is missing; install Debian's chromium (bash .ci/run does)", file=sys.stderr)
        return 2
    report = run_load(args.sessions, args.purifiers, args.rounds, args.timeout)
    summary = report.summary()
    lines = ["# Load test", "", f"Generated by `python -m benchmarks.load --sessions {args.sessions} --purifiers {args.purifiers}` "
             "(Debian Chromium via Playwright, one browser context per session, loopback, this 2-core machine, one run).",
             "", "| what | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in summary.items()]
    if report.errors or report.cross_talk:
        lines += ["", "## Problems", ""] + [f"- {e}" for e in report.errors + report.cross_talk]
    (ROOT / "benchmarks" / "load.md").write_text("\n".join(lines) + "\n")
    (ROOT / "benchmarks" / "load.json").write_text(json.dumps({**summary, "details": asdict(report)}, indent=2) + "\n")
    print("\n".join(lines))
    return 0 if not report.errors and not report.cross_talk and summary["shared model unchanged"] else 1


if __name__ == "__main__":
    sys.exit(main())
