"""The real app in Debian's Chromium: every page, a purification, Stop, a shared link, screenshots.

Starts `streamlit run app.py` on a free loopback port and drives it with Playwright. Screenshots go
to a temporary folder, or to the folder named by PURIFY_LAB_SCREENSHOTS (the README's pictures:
`PURIFY_LAB_SCREENSHOTS=docs/screenshots python -m pytest -m browser`), so a test run leaves the
tree as it was.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest

from benchmarks.app_server import IDLE, ROOT
from benchmarks.load import STILL

VIEW = {"width": 1400, "height": 2000}  # Streamlit scrolls inside its own container: a tall window shows the page
pytestmark = pytest.mark.browser  # tests/conftest.py skips these without Chromium, or fails them under PURIFY_LAB_REQUIRE_BROWSER=1

#: Counts the script runs that ended, so a test waits for the run its click started rather than for a fixed time.
#: It reads the server's messages, not the page: Streamlit decodes them asynchronously and may hand a fast run's
#: "started" and "finished" to React in one batch, and then the app's `data-test-script-state` attribute never
#: leaves notRunning (seen in CI under load: a click on the Lesson link "followed by no run" for 120 s). Each
#: ForwardMsg whose top-level field 6 (`script_finished`) is set, except FINISHED_EARLY_FOR_RERUN (2, a new run
#: follows), counts once the page has drawn the frame after it, so the run's last deltas are on screen.
COUNT_RUNS = """(() => {
  const varint = (b, i) => { let v = 0, s = 1, x; do { x = b[i++]; v += (x & 0x7f) * s; s *= 128; } while (x & 0x80); return [v, i]; };
  const finished = b => {
    for (let i = 0; i < b.length;) {
      let key, n; [key, i] = varint(b, i);
      const field = Math.floor(key / 8), wire = key & 7;
      if (wire === 0) { [n, i] = varint(b, i); if (field === 6) return n !== 2; }
      else if (wire === 2) { [n, i] = varint(b, i); i += n; }
      else if (wire === 1) i += 8; else if (wire === 5) i += 4; else return false;
    }
    return false;
  };
  const count = () => { window.__runsEnded = (window.__runsEnded || 0) + 1; };
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener('message', e => {
        if (e.data instanceof ArrayBuffer && finished(new Uint8Array(e.data)))
          setTimeout(() => document.hidden ? count() : requestAnimationFrame(() => setTimeout(count)));
      });
    }
  };
})();"""


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where screenshots go: PURIFY_LAB_SCREENSHOTS when set (relative to the repository), else a temporary folder."""
    asked = os.environ.get("PURIFY_LAB_SCREENSHOTS")
    folder = ROOT / asked if asked else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_page(browser):
    """A page that counts its script runs, with the endless CSS animations run once (`benchmarks.load.STILL`):
    in the load test they cost Chromium a quarter of its CPU (102 -> 78 CPU-s), on two cores it shares with the server."""
    page = browser.new_page(viewport=VIEW)
    page.add_init_script(COUNT_RUNS)
    page.add_init_script(STILL)
    return page


def settle(page, charts: int = 0, timeout: float = 120_000) -> None:
    """Wait until the script run is over and at least `charts` plotly charts are drawn."""
    page.wait_for_selector(IDLE, timeout=timeout)
    if charts:
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot').length >= {charts}", timeout=timeout)
        page.wait_for_selector(IDLE, timeout=timeout)


@contextmanager
def a_run(page, charts: int = 0, timeout: float = 120_000):
    """Around an action (a click, a key): wait until the script run it starts has ended, then settle."""
    before = page.evaluate("window.__runsEnded || 0")
    yield
    page.wait_for_function(f"(window.__runsEnded || 0) > {before}", timeout=timeout)
    settle(page, charts, timeout)


def errors_on(page) -> list[str]:
    return page.locator("[data-testid=stException]").all_inner_texts()


@pytest.mark.parametrize("path, charts, shot", [("", 2, "home"), ("salience", 4, "salience"), ("compare", 2, "compare"),
                                               ("attack_lab", 1, "attack_lab"), ("lesson", 0, "lesson")])
def test_every_page_renders_in_chromium(server, browser, shots, path, charts, shot):
    page = new_page(browser)
    page.goto(f"{server}/{path}")
    settle(page, charts)
    page.get_by_test_id("stSidebar").get_by_text("Backdoored model").wait_for(timeout=60_000)  # a page with no chart: wait for its run
    settle(page)
    assert not errors_on(page)
    assert page.get_by_test_id("stSidebar").get_by_text("Backdoored model").count() == 1, "a direct link runs app.py's sidebar"
    page.screenshot(path=str(shots / f"{shot}.png"), full_page=True)
    page.close()


def test_purify_stop_and_explain_in_one_session(server, browser, shots):
    page = new_page(browser)
    page.goto(f"{server}/purify?purify_epochs=3")
    settle(page, 1)
    with a_run(page, 3, timeout=180_000):  # the marking, the live run and the runs overlay (the neurons only when asked)
        page.get_by_role("button", name="Run purification").click()
        page.wait_for_selector("text=Runs in this session", timeout=180_000)
    assert not errors_on(page)
    page.locator("[data-testid=stDataFrame]").first.wait_for(timeout=60_000)  # the run table may draw after the script run has ended
    page.screenshot(path=str(shots / "purify.png"), full_page=True)

    # a long second run, stopped while it streams: the first run and the steps so far are kept
    epochs = page.locator('input[type=range][aria-label="Epochs"]')
    epochs.focus()  # jump to the maximum, and wait until the slider holds it
    page.keyboard.press("End")
    page.wait_for_function("slider => slider.value === slider.max", arg=epochs.element_handle(), timeout=30_000)
    page.get_by_role("button", name="Run purification").click()
    page.wait_for_selector("text=/step \\d+\\/\\d+/", timeout=60_000)
    live = page.get_by_test_id("stMainBlockContainer")
    live.screenshot(path=str(shots / "live_run_1.png"))  # the README's step-by-step picture of a live run
    page.wait_for_function("(document.body.innerText.match(/step (\\d+)\\//) || [0, 0])[1] >= 40", timeout=60_000)  # more live points
    live.screenshot(path=str(shots / "live_run_2.png"))
    with a_run(page):
        page.get_by_test_id("stMainBlockContainer").get_by_role("button", name="Stop").click()  # ours, not the header one
    assert not errors_on(page)
    table = page.locator("[data-testid=stDataFrame]").first
    table.wait_for(timeout=30_000)
    page.wait_for_function("document.body.innerText.includes('stopped after')", timeout=30_000)

    with a_run(page, 1):
        page.get_by_role("link", name="Explain").first.click()
    assert not errors_on(page)
    assert page.get_by_text("purified:").count() >= 1
    page.screenshot(path=str(shots / "explain.png"), full_page=True)
    page.close()


def test_a_shared_link_brings_the_controls_back(server, browser):
    page = new_page(browser)
    page.goto(f"{server}/purify?purify_threshold=0.3&purify_regularizer=l2&purify_direction=lowest")
    settle(page, 1)
    assert float(page.get_by_test_id("stSliderThumbValue").first.inner_text()) == 0.3
    regularizer = page.locator("[data-testid=stSelectbox]").filter(has_text="Regularizer")
    assert "l2" in (regularizer.locator("input").first.input_value() + regularizer.inner_text())
    assert "purify_threshold=0.3" in page.url
    page.goto(f"{server}/purify?hide=purify_lr,purify_epochs")
    settle(page, 1)
    assert page.get_by_text("Learning rate", exact=True).count() == 0 and page.get_by_text("Epochs", exact=True).count() == 0  # the labels, not a caption that names them
    page.close()


def _widget(page, testid: str, label: str):
    """The widget of that kind (e.g. stSlider) whose text holds `label`."""
    return page.locator(f"[data-testid={testid}]").filter(has_text=label).first


def _slider_value(page, label: str) -> float:
    return float(_widget(page, "stSlider", label).get_by_test_id("stSliderThumbValue").inner_text())


def _selected(page, label: str) -> str:
    box = _widget(page, "stSelectbox", label)
    return box.locator("input").first.input_value() + box.inner_text()


def _shows(page, label: str, option: str) -> bool:
    """Whether the select box shows exactly `option` ("conv" is not "last-conv")."""
    box = _widget(page, "stSelectbox", label)
    return box.locator("input").first.input_value() == option or option in [line.strip() for line in box.inner_text().splitlines()]


def _choose(page, label: str, option: str, tries: int = 3) -> None:
    """Pick `option` and wait for the run it starts. A pick lost while the page re-rendered (the list
    closed under the click: no run starts; once in CI under load) is made again, never twice: each try
    first looks whether the box already shows the option."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout  # the browser tier's own import, as the fixture's

    for _ in range(tries):
        if _shows(page, label, option):
            settle(page, 1)
            return
        before = page.evaluate("window.__runsEnded || 0")
        _widget(page, "stSelectbox", label).click()
        page.get_by_role("option", name=option, exact=True).click()
        try:
            page.wait_for_function(f"(window.__runsEnded || 0) > {before}", timeout=60_000)
        except PlaywrightTimeout:  # noqa: PERF203 - a retry loop
            page.keyboard.press("Escape")  # the list, if it is still open
            continue
        settle(page, 1)
        if _shows(page, label, option):
            return
    raise AssertionError(f"{label}: {option!r} not chosen after {tries} tries; the box shows {_selected(page, label)!r}")


def _visit(page, title: str, charts: int) -> None:
    with a_run(page, charts):
        page.get_by_test_id("stSidebar").get_by_role("link", name=title).first.click()
    assert not errors_on(page), title


def test_controls_and_the_marking_are_kept_across_pages(server, browser):
    """One story, one state: Purify's controls survive visits to two other pages; the marking set on Salience is Purify's."""
    page = new_page(browser)
    page.goto(f"{server}/purify")
    settle(page, 1)
    _choose(page, "Regularizer", "l1")
    epochs = _widget(page, "stSlider", "Epochs").get_by_role("slider")
    with a_run(page, 1):
        epochs.focus()
        page.keyboard.press("End")
    threshold = _widget(page, "stSlider", "Pruning threshold").get_by_role("slider")
    with a_run(page, 1):
        threshold.focus()
        page.keyboard.press("Home")
    assert _slider_value(page, "Epochs") == 60 and _slider_value(page, "Pruning threshold") == 0
    _visit(page, "Scenario", 2)
    _visit(page, "Salience maps", 4)
    assert _slider_value(page, "Pruning threshold") == 0, "the marking set on Purify is the one Salience shows"
    with a_run(page, 1):
        _widget(page, "stRadio", "Scope").get_by_text("global", exact=True).click()
    _choose(page, "Layers", "conv")
    _visit(page, "Purify", 1)
    assert "l1" in _selected(page, "Regularizer") and _slider_value(page, "Epochs") == 60
    assert _slider_value(page, "Pruning threshold") == 0
    assert _widget(page, "stRadio", "Scope").get_by_role("radio", name="global").is_checked(), "Salience's marking is Purify's"
    assert "conv" in _selected(page, "Layers") and "last-conv" not in _selected(page, "Layers")
    assert "purify_regularizer=l1" in page.url and "purify_scope=global" in page.url
    page.close()


def test_markup_in_a_link_is_shown_as_text(server, browser):
    """A crafted link puts no image, link, HTML, styled text or LaTeX on the page, and nothing is fetched."""
    payload = "![x](http://127.0.0.1:9/x.png) [click](http://127.0.0.1:9) <img src=x onerror=alert(1)> :red[big] $x$"
    fetched: list[str] = []
    page = new_page(browser)
    page.on("request", lambda request: fetched.append(request.url))
    page.goto(f"{server}/purify?purify_lr={quote(payload)}&scenario={quote(payload)}&seed={quote('a` ' + payload)}")
    settle(page, 1)
    assert not errors_on(page)
    shown = page.locator("[data-testid=stAlert]").all_inner_texts()
    assert any(f"purify_lr={payload}" in text for text in shown), shown
    assert any(f"Unknown model {payload}" in text for text in shown), shown
    assert any(f"seed=a` {payload}" in text for text in shown), shown
    alerts = page.locator("[data-testid=stAlert]")
    assert alerts.locator("img, a, b, .katex, .stMarkdownColoredText").count() == 0
    assert page.locator("img[src*='127.0.0.1:9'], img[src='x'], a[href*='127.0.0.1:9']").count() == 0
    assert not [url for url in fetched if "127.0.0.1:9/" in url], fetched
    page.close()


def test_train_a_backdoor_in_the_attack_lab_and_work_on_it(server, browser, shots):
    page = new_page(browser)
    page.goto(f"{server}/attack_lab")
    settle(page, 1)
    page.locator("[data-testid=stSelectbox]").filter(has_text="Dataset").click()
    with a_run(page, 1):
        page.get_by_role("option", name="8x8 digits").click()
    assert not errors_on(page)
    with a_run(page, 3, timeout=180_000):
        page.get_by_role("button", name="Train", exact=True).click()
        page.wait_for_selector("text=is ready and selected", timeout=180_000)
    assert not errors_on(page)
    picker = page.get_by_test_id("stSidebar").locator("[data-testid=stSelectbox]").first
    shown = picker.locator("input").first.input_value() + picker.inner_text()
    assert "digits-smallcnn-badnets" in shown and "trained here" in shown, shown
    page.screenshot(path=str(shots / "attack_lab_trained.png"), full_page=True)
    with a_run(page, 4):
        page.get_by_role("link", name="Salience maps").first.click()
    assert not errors_on(page)
    assert "scenario=digits-smallcnn-badnets" in page.url
    page.close()
