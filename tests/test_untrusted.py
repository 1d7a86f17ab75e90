"""No link value, file name or card field can put markup on a page: each is shown as text.

A payload of markdown (an image that would fetch an outside URL, a link), raw HTML, a backtick
that would end a code span, a Streamlit `:red[]` directive, emoji and LaTeX goes into every link
parameter the pages read and into an upload's file name; each must come back readable and as no
markup (`ui.untrusted.markup` is what a renderer could still parse).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from streamlit.testing.v1 import AppTest

from purify_core.store.checkpoints import weights_bytes
from purify_core.config import ModelConfig
from purify_core.models.architectures import build_model
from ui import links, state, untrusted

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["app_pages/home.py", "app_pages/attack_lab.py", "app_pages/salience.py", "app_pages/compare.py",
         "app_pages/purify.py", "app_pages/explain.py"]
PAYLOADS = ["![x](http://127.0.0.1:9/x.png) [click](http://127.0.0.1:9) <img src=x onerror=alert(1)> :red[big] $x$ :smile:",
            "a` ![x](http://127.0.0.1:9/x.png) `b <b>bold</b> www.example.com ``"]
#: Pieces of the payloads that must never reach a renderer as markup.
MARKUP = ["![", "](", "[click", "<img", "<b>", ":red[", "$x$", ":smile:", "www.example.com", "http://"]
TEXT_ELEMENTS = ("markdown", "caption", "warning", "error", "info", "success", "title", "header", "subheader", "toast")


def _shown(at: AppTest) -> list[str]:
    return [e.value for kind in TEXT_ELEMENTS for e in at.get(kind)]


def _assert_no_markup(values: list[str]) -> None:
    for value in values:
        rest = untrusted.markup(value)
        assert not [m for m in MARKUP if m in rest], value


@pytest.mark.parametrize("value", PAYLOADS + ["plain", "", "`", "x" * 500, "tab\tand\nnewline", "\u202egnp.exe"])
def test_text_and_code_show_exactly_the_value_and_no_markup(value):
    shown = value.replace("\t", " ").replace("\n", " ").replace("\u202e", "\ufffd")
    for form, limit in ((untrusted.text, 400), (untrusted.code, 200)):
        markdown = form(value)
        assert "\n" not in markdown
        expected = shown if len(shown) <= limit else shown[:limit] + "…"
        assert untrusted.read(markdown) == (expected or (" " if form is untrusted.code else ""))
        assert not [m for m in MARKUP if m in untrusted.markup(markdown)], markdown
    assert untrusted.markup(untrusted.code(value)) == ""


def test_an_error_echoing_a_long_input_is_shown_with_its_advice():
    from purify_core.errors import MESSAGE_LIMIT, UserInputError

    error = UserInputError("unknown ranking '" + "[x](http://127.0.0.1:9)" * 400 + "'; choose one of salience, activation")
    shown = untrusted.read(untrusted.text(error))
    assert shown == str(error) and len(shown) <= MESSAGE_LIMIT and shown.endswith("choose one of salience, activation")
    assert not [m for m in MARKUP if m in untrusted.markup(untrusted.text(error))]
    assert untrusted.read(untrusted.text("y" * 5000)) == "y" * 400 + "…"  # other prose keeps its 400 characters


def test_plot_text_shows_tags_as_typed():
    assert untrusted.plot('<a href="http://127.0.0.1:9">cat</a>') == '&lt;a href="http://127.0.0.1:9"&gt;cat&lt;/a&gt;'


def _linked_keys(monkeypatch) -> set[str]:
    """Every key the app seeds from a link, recorded while it runs each page once."""
    keys = {state.SCENARIO}
    initial_value = links.initial_value

    def recording(key, *args, **kwargs):
        keys.add(key)
        return initial_value(key, *args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(links, "initial_value", recording)
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        for page in PAGES[1:]:
            at.switch_page(page).run()
            assert not at.exception, page
    return keys


@pytest.mark.parametrize("payload", PAYLOADS)
def test_markup_in_every_link_parameter_is_shown_as_text_on_every_page(payload, monkeypatch, tmp_path):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    keys = _linked_keys(monkeypatch)
    assert {"seed", "purify_threshold", "purify_lr", "salience_metric", "compare_top", "explain_method"} <= keys
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    for key in keys | {links.HIDE}:
        at.query_params[key] = payload
    at.run()
    shown = _shown(at)
    for page in PAGES[1:]:
        at.switch_page(page).run()
        assert not at.exception, page
        shown += _shown(at)
    _assert_no_markup(shown)
    read = [untrusted.read(value) for value in shown]
    assert any(f"Unknown model {payload} in the link" in r for r in read), read
    for key in keys - {state.SCENARIO}:
        assert any(f"Ignored {key}={payload} in the link" in r for r in read), key


def _attack_lab(at: AppTest) -> AppTest:
    at.run()
    at.switch_page("app_pages/attack_lab.py").run()
    return at.selectbox(key="attack_dataset").select("digits").run()


EVIL_NAME = "![x](http:127.0.0.1:9 x.png) `:red[big]` <img src=x onerror=alert(1)> $x$.safetensors"


def test_an_upload_s_file_name_is_shown_as_text_on_its_card_and_in_errors(monkeypatch, tmp_path):
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    at = _attack_lab(AppTest.from_file(str(ROOT / "app.py"), default_timeout=300))
    weights = weights_bytes(build_model(ModelConfig("smallcnn"), (1, 8, 8), 10))[0]
    at.file_uploader(key="attack_file").upload(EVIL_NAME, weights[:5000]).run()  # truncated: the error quotes the name
    at.button(key="attack_upload").click().run()
    assert not at.exception and [e for e in at.error if EVIL_NAME[:40] in untrusted.read(e.value)], [e.value for e in at.error]
    _assert_no_markup(_shown(at))
    at.file_uploader(key="attack_file").upload(EVIL_NAME, weights).run()
    at.button(key="attack_upload").click().run()
    at.run()
    assert not at.exception, at.exception
    shown = _shown(at)
    assert any(f"uploaded as {EVIL_NAME}" in untrusted.read(value) for value in shown), shown
    _assert_no_markup(shown)
    at.switch_page("app_pages/home.py").run()  # the same card on the home page
    assert not at.exception and any(f"uploaded as {EVIL_NAME}" in untrusted.read(m.value) for m in at.markdown)
    _assert_no_markup(_shown(at))


def test_class_names_from_folder_names_are_shown_as_text_on_the_card_and_in_charts(tmp_path, monkeypatch):
    """ImageFolder class names are whatever the folders are called: text on the page, text in plotly titles."""
    from PIL import Image

    from purify_core.config import AttackConfig, DataConfig, Scenario
    from purify_core.store.uploads import import_weights

    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PURIFY_LAB_DATA", str(tmp_path / "data"))
    classes = ["<img src=x onerror=alert(1)> :red[big]", "[click](http:127.0.0.1:9) <b>$x$"]  # every chart shows one (no "/" in a folder name)
    for c, label in enumerate(classes):
        (tmp_path / "data" / "pets" / label).mkdir(parents=True)
        for i in range(12):
            Image.new("RGB", (10, 10), color=(20 * i, 100 * c, 50)).save(tmp_path / "data" / "pets" / label / f"{i}.png")
    scenario = Scenario(data=DataConfig("imagefolder", root=str(tmp_path / "data" / "pets")), model=ModelConfig("smallcnn"),
                        attack=AttackConfig.of("badnets", 0, 0.1))
    weights = weights_bytes(build_model(ModelConfig("smallcnn"), (3, 32, 32), 2))[0]
    saved = import_weights(weights, "pets.safetensors", scenario, prefix="import")
    assert sorted(saved.card.classes) == sorted(classes)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.query_params["scenario"] = saved.card.name
    at.run()
    assert not at.exception and at.selectbox(key="scenario").value == saved.card.name
    shown = _shown(at)
    target = saved.card.classes[saved.card.trigger["target"]]
    assert any(f"Target class: **{target}**." in untrusted.read(value) for value in shown), shown
    _assert_no_markup(shown)
    titles = " ".join(str(a.get("text")) for chart in at.get("plotly_chart") for a in json.loads(chart.proto.spec)["layout"].get("annotations", []))
    assert "&lt;b&gt;$x$" in titles and "<" not in titles, titles
    at.switch_page("app_pages/explain.py").run()
    assert not at.exception
    _assert_no_markup(_shown(at))


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=80) | st.text(st.sampled_from("`![](){}<>:$*_~#|&@\\/-+=. ax1\n\t"), max_size=80))
def test_fuzzed_text_is_shown_as_typed_and_leaves_no_markup(value):
    for form in (untrusted.text, untrusted.code):
        markdown = form(value)
        assert "\n" not in markdown and "\r" not in markdown
        assert untrusted.read(markdown).strip() == untrusted.read(form(value.replace("\n", " ").replace("\t", " "))).strip()
    assert untrusted.markup(untrusted.code(value)) == ""
    rest = untrusted.markup(untrusted.text(value))
    assert not set(rest) & set("\\`*_[]<>#|~$!{}&"), rest  # every markdown character is escaped
    assert not re.search(r":[\w+-]|@[\w-]|https?:|www\.", rest), rest  # no emoji, directive, e-mail or bare URL survives
