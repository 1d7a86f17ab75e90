"""The one exception type for bad user input.

Everything a user can get wrong (a config value, a file, a checkpoint) raises `UserInputError`
with a message that says what is wrong and how to fix it. The CLI and the pages catch this type
and show its message; anything else is a bug and may surface as a traceback.
"""

from __future__ import annotations

import unicodedata

__all__ = ["UserInputError", "ChecksumMismatchError", "MESSAGE_LIMIT", "bounded", "printable", "one_line"]

#: The longest message a user is shown: a message that echoes an input (a 5,000-character ranking name, a link
#: value, a file name) keeps its start and its end, where the advice is ("choose one of ..."), and says what it cut.
MESSAGE_LIMIT = 1000


def bounded(message: str, limit: int = MESSAGE_LIMIT) -> str:
    """`message` itself, or at most `limit` characters of it: its start, a note of how much was cut, its end."""
    if len(message) <= limit:
        return message
    note = f" … ({len(message)} characters, cut) … "
    head = (limit - len(note)) * 2 // 5
    tail = limit - len(note) - head
    return f"{message[:head]}{note}{message[-tail:]}"


def printable(text: str) -> str:
    """`text` on one line, shown as typed: line and paragraph breaks and tabs become spaces; other control, bidi and
    zero-width characters (a terminal's escape codes among them) become one visible mark each (U+FFFD)."""
    out = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\r\n\t" or category in ("Zl", "Zp"):
            out.append(" ")
        elif category in ("Cc", "Cf", "Cs", "Co", "Cn"):
            out.append("\ufffd")
        else:
            out.append(ch)
    return "".join(out)


def one_line(message: object) -> str:
    """A message as the CLI prints it and a page shows it: one line (`printable`), at most `MESSAGE_LIMIT` characters."""
    return printable(bounded(str(message)))


class UserInputError(ValueError):
    """Bad input from a user: the message is meant to be shown as it is (`one_line`: an echoed input can neither
    break it over lines, nor send a terminal escape codes, nor make it longer than `MESSAGE_LIMIT`)."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(one_line(message), *args)


class ChecksumMismatchError(UserInputError):
    """A checkpoint's bytes do not match the sha256 recorded on its card."""
