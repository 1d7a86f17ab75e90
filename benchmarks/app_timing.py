"""App timings in a real browser: `python -m benchmarks.app_timing` writes benchmarks/app.md and app.json.

1. Cold start: launch `streamlit run app.py` until the home page has drawn its first chart.
2. Re-marking: a threshold slider step on the Salience page until the heatmap is redrawn.
3. Feedback after Run (the default purification, a new seed each time so each is computed): the first
   live point on the chart, and the whole run streamed until its results are drawn (best of 3).
4. A replayed run: Run again on settings already computed, until the results are drawn (best of 3).
5. The same run in the core loop, in this process, right after each app run (so both see about the same
   load on a busy machine), as the app's click runs it (rankings cached, the live
   probe, the model's "before" known, torch on the app server's thread count: `ui.job_slots.one_torch_thread`),
   and with ACC/ASR on the whole test split every 10 steps (before the probe): the ratios say how much of
   the app's time is the computation itself. Once more with torch's default thread count (one per core),
   which the app used before it ran one thread per job.
Loopback only; Debian's Chromium through Playwright. Numbers are from one run on this machine, which
other jobs may share: the load average is written next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from contextlib import contextmanager
from typing import Iterator

from .app_server import CHROMIUM, IDLE, ROOT, start_app, stop_app

RUNS = int(os.environ.get("APP_TIMING_RUNS", "3"))  # fewer on a crowded machine: the table says how many


@contextmanager
def torch_threads(count: int) -> Iterator[int]:
    """torch on `count` threads for the block (this thread's count restored after)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield count
    finally:
        torch.set_num_threads(before)


def app_threads() -> int:
    """The thread count the app server runs torch with (`one_torch_thread`), read in a thread of its own."""
    import threading

    from ui.job_slots import one_torch_thread

    seen: list[int] = []
    worker = threading.Thread(target=lambda: seen.append(one_torch_thread()))
    worker.start()
    worker.join()
    return seen[0]


def core_loop_seconds(probe: bool) -> float:
    """The app's default purification of its default model, as its Run click runs it (`probe`), or
    with the whole test split evaluated every 10 steps (the app before the probe)."""
    from purify_core.bench.common import cases
    from purify_core.models.probe import MetricsMemo, probed_evaluator
    from purify_core.method.purify import PURIFY_PRESETS, purify
    from purify_core.method.rankings import rank_neurons
    from purify_core.study import purification_result

    case = next(cases(["badnets"], [0]))  # the app's default scenario, its own defense set
    config = PURIFY_PRESETS["default"]
    options = {"variant": config.variant, "eta": config.eta} if config.metric == "salience" else {}  # as `purify` ranks
    scores = rank_neurons(case.backdoored.model, case.splits.clean, config.metric, **options)
    evaluator = probed_evaluator(case.backdoored.attack, case.splits.test, "bench", MetricsMemo()) if probe else case.evaluator()
    if probe:
        evaluator(case.backdoored.model)  # the app measures the model once per server, before any Run
    start = time.perf_counter()
    purification_result(purify(case.backdoored.model, case.splits.clean, config, evaluator, scores=scores))
    return time.perf_counter() - start


def _click_run(page, idle_timeout: float = 300_000) -> tuple[float, float]:
    """Click Run purification: seconds to the first live point (nan for a replay) and to the drawn results."""
    t0 = time.perf_counter()
    page.get_by_role("button", name="Run purification").click()
    first = float("nan")
    try:
        page.wait_for_selector("text=Live ACC and ASR are measured on a fixed probe", timeout=60_000)
        first = time.perf_counter() - t0
    except Exception:  # noqa: BLE001 - a replayed run has no live chart
        pass
    page.wait_for_selector("text=Runs in this session", timeout=idle_timeout)
    page.wait_for_selector(IDLE, timeout=idle_timeout)
    return first, time.perf_counter() - t0


def _click_replay(page) -> float:
    t0 = time.perf_counter()
    page.get_by_role("button", name="Run purification").click()
    page.wait_for_selector("text=Finished at once: replayed from a cached identical run", timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    return time.perf_counter() - t0


def main() -> int:
    global RUNS
    parser = argparse.ArgumentParser(prog="python -m benchmarks.app_timing", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each timed click and core loop, best taken (default 3; "
                        "$APP_TIMING_RUNS)")
    RUNS = max(1, parser.parse_args().runs)
    from playwright.sync_api import sync_playwright

    import torch

    default_threads, threads = torch.get_num_threads(), app_threads()
    torch.set_num_threads(default_threads)  # app_threads may have changed the count new threads start with
    results: dict[str, float] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        start = time.perf_counter()
        server, url = start_app(poll_s=0.1)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(url)
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            results["cold start to first home chart (s)"] = time.perf_counter() - start

            # every layer at 30%: each 0.01 step then changes the count (the lab default marks 80% of one 64-channel
            # layer, the slider's cap, where a step either cannot move or leaves the count as it was)
            page.goto(f"{url}/salience?purify_threshold=0.3&purify_layers=all")
            page.wait_for_selector(IDLE, timeout=120_000)
            page.wait_for_selector(".js-plotly-plot", timeout=120_000)
            page.wait_for_timeout(1000)
            times = []
            # the caption under the heatmap, found the same way before and after the step (the slider's own label
            # says "share of neurons marked" too, so a plain text search can read the label instead and time nothing)
            caption = ("() => { const el = [...document.querySelectorAll('[data-testid=stCaptionContainer]')]"
                       ".find(e => e.innerText.includes('neurons marked')); return el ? el.innerText : null; }")
            for _ in range(5):
                before = page.evaluate(caption)
                assert before, "the Salience page shows no 'neurons marked' caption"
                page.get_by_role("slider").first.focus()
                t0 = time.perf_counter()
                page.keyboard.press("ArrowRight")
                page.wait_for_function(f"b => {{ const now = ({caption})(); return now !== null && now !== b; }}", arg=before, timeout=30_000)
                page.wait_for_selector(IDLE, timeout=30_000)
                times.append(time.perf_counter() - t0)
            times.sort()
            results["threshold slider step to redrawn heatmap, median of 5 (s)"] = times[2]

            firsts, streamed, replayed, cores = [], [], [], []
            for seed in range(RUNS):  # the machine is noisy: the best of a few runs, each next to its core loop
                page.goto(f"{url}/purify?seed={seed}")  # a new seed: computed, never replayed
                page.wait_for_selector(IDLE, timeout=120_000)
                page.wait_for_timeout(1000)
                first, whole = _click_run(page)
                firsts.append(first), streamed.append(whole)
                page.wait_for_timeout(1000)
                replayed.append(_click_replay(page))  # the same settings again: kept on the server
                with torch_threads(threads):  # right after the app's run, so both see about the same load
                    cores.append(core_loop_seconds(True))
                page.wait_for_timeout(1000)
            results[f"first live point after Run, best of {RUNS} (s)"] = min((f for f in firsts if f == f), default=float("nan"))  # nan: no live point seen
            results[f"default purification streamed in the app, best of {RUNS} (s)"] = min(streamed)
            results[f"replayed run (same model, settings, seed), best of {RUNS} (s)"] = min(replayed)
        finally:
            stop_app(server)
            browser.close()
    core = f"same purification, core loop as the app runs it (probe, {threads} torch thread(s)), best of {RUNS} (s)"
    results[core] = min(cores)
    with torch_threads(threads):
        results[f"same purification, core loop with the whole test split every 10 steps, best of {RUNS} (s)"] = \
            min(core_loop_seconds(False) for _ in range(RUNS))
    if default_threads != threads:
        results[f"same purification, core loop with the probe on torch's default {default_threads} threads, once (s)"] = \
            core_loop_seconds(True)
    app_s = results[f"default purification streamed in the app, best of {RUNS} (s)"]
    results["streaming overhead (s)"] = app_s - results[core]
    paired = sorted(a / c for a, c in zip(streamed, cores))
    ratios = {"app run / core loop as the app runs it": app_s / results[core],
              f"app run / its core loop timed right after it, median of {RUNS}": paired[len(paired) // 2],
              "core loop with the probe / with the whole split every 10 steps":
                  results[core]
                  / results[f"same purification, core loop with the whole test split every 10 steps, best of {RUNS} (s)"]}
    load = os.getloadavg()
    targets = {"cold start to first home chart (s)": 6.0, "threshold slider step to redrawn heatmap, median of 5 (s)": 0.3,
               f"first live point after Run, best of {RUNS} (s)": 1.0, f"default purification streamed in the app, best of {RUNS} (s)": 4.0,
               f"replayed run (same model, settings, seed), best of {RUNS} (s)": 1.0, "streaming overhead (s)": 3.0}
    lines = ["# App timings", "", "Generated by `python -m benchmarks.app_timing` (Debian Chromium via Playwright, loopback, "
             f"this machine, one run). **Load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1 / 5 / 15 min) "
             f"on {os.cpu_count()} cores**: other jobs shared the machine, so absolute seconds are longer than on an idle one; "
             "the ratios to the core loop, timed in the same run, are what carries over.", "",
             "| what | seconds | target |", "|---|---|---|"]
    lines += [f"| {k.replace(' (s)', '')} | {v:.2f} | {('<= ' + str(targets[k])) if k in targets else ''} |" for k, v in results.items()]
    lines += ["", "| ratio | value |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    results = {**results, **{f"ratio: {k}": v for k, v in ratios.items()}, "load average (1, 5, 15 min)": list(load)}
    (ROOT / "benchmarks" / "app.md").write_text("\n".join(lines) + "\n")
    (ROOT / "benchmarks" / "app.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
