"""The one way untrusted text (link values, file and folder names, names and fields read from disk,
`UserInputError` messages) goes into Streamlit markdown: as text, never as markup.

Every Streamlit body, label and help string is markdown with extras: images and links, raw HTML,
`:red[...]` directives, `:emoji:` and `:material/...:` shortcodes, `$...$` LaTeX, and GFM's
bare-URL autolinks. A shared link or an upload's name must not be able to show an image (the
browser would fetch an outside URL), a clickable link, or styled text. Two forms:

- `code(value)`: an inline code span, whose content markdown never parses; best for one value.
- `text(value)`: prose, every markdown character backslash-escaped; best for a message.

Plotly reads `<a href>`, `<b>` and the like in titles and labels: `plot(value)` is the form for a
figure (an ImageFolder class name in a subplot title).

All three put a value on one line, replace control and bidi characters, and cut it to `limit`
characters. For tests: `read(markdown)` is what a reader sees of a message built from them, and
`markup(markdown)` is what a renderer may still take as markup (all but code spans and escapes).
"""

from __future__ import annotations

import html
import re
import string

from purify_core.errors import MESSAGE_LIMIT, printable

__all__ = ["code", "text", "plot", "read", "markup"]

#: Invisible, so a reader sees nothing; it breaks the patterns Streamlit and GFM find in plain text
#: after markdown escapes are resolved (`:name:` emoji, `:material_x:`, `:streamlit:`, `http://`,
#: `www.`, `a@b.c`), which a backslash cannot stop.
JOINER = "\u2060"
_ALWAYS = set("\\`*_[]<>#|~$!{}&:")  # inline and block markup anywhere in a line
_AT_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")  # list items, setext underlines, "1." / "1)" lists
_BREAK_AFTER = re.compile(r"(:|@|(?i:\bwww)(?=\.))")


def _one_line(value: object, limit: int) -> str:
    raw = str(value)
    if len(raw) > limit:
        raw = raw[:limit] + "…"
    return printable(raw)  # breaks to spaces; control, bidi and zero-width characters shown as one mark each


def text(value: object, limit: int = 400) -> str:
    """`value` as markdown prose that renders as exactly its characters (one line, at most `limit`).

    An error is shown up to its own bound (`errors.MESSAGE_LIMIT`): a `UserInputError` that echoes a long input
    has already been cut in its middle, so its advice at the end ("choose one of ...") still shows."""
    if isinstance(value, BaseException):
        limit = max(limit, MESSAGE_LIMIT)
    line = _one_line(value, limit)
    escaped = "".join(f"\\{ch}" if ch in _ALWAYS else ch for ch in line)
    escaped = _AT_START.sub(lambda m: m.group(1) + (m.group(2) + "\\" if m.group(2)[0].isdigit() else "\\" + m.group(2)),
                            escaped, count=1)
    return _BREAK_AFTER.sub(lambda m: m.group(0) + JOINER, escaped)


def code(value: object, limit: int = 200) -> str:
    """`value` as an inline code span: markdown, HTML, directives and LaTeX inside are shown as typed."""
    line = _one_line(value, limit).replace(":material/", f":{JOINER}material/")  # Streamlit rewrites that before parsing
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{fence}{pad}{line or ' '}{pad}{fence}"


def plot(value: object, limit: int = 60) -> str:
    """`value` for a plotly title or label: its HTML-like tags shown as typed (plotly decodes the entities)."""
    return html.escape(_one_line(value, limit), quote=False)


def _spans(markdown: str) -> list[tuple[str, str]]:
    """The source cut into ("code", content), ("escaped", char) and ("plain", char) pieces, as CommonMark reads them."""
    source, pieces, i = markdown, [], 0
    while i < len(source):
        if source[i] == "\\" and i + 1 < len(source) and source[i + 1] in string.punctuation:  # CommonMark escapes only these
            pieces.append(("escaped", source[i + 1]))
            i += 2
            continue
        run = re.match(r"`+", source[i:])
        if run:
            fence = run.group(0)
            close = re.compile(rf"(?<!`){fence}(?!`)").search(source, i + len(fence))
            if close:
                inner = source[i + len(fence):close.start()]
                pieces.append(("code", inner[1:-1] if len(inner) > 1 and inner[0] == inner[-1] == " " and inner.strip() else inner))
                i = close.end()
                continue
            pieces.append(("plain", fence))  # an unmatched run is literal backticks
            i += len(fence)
            continue
        pieces.append(("plain", source[i]))
        i += 1
    return pieces


def read(markdown: str) -> str:
    """What a reader sees of a message built with `text` and `code`: escapes undone, code spans as their content."""
    return "".join(content for _, content in _spans(markdown)).replace(JOINER, "")


def markup(markdown: str) -> str:
    """The source a renderer may still read as markup: everything but code spans and escaped characters.

    The invisible joiners stay: they are what keeps `:name:` and bare URLs from being found.
    """
    return "".join(content for kind, content in _spans(markdown) if kind == "plain")
