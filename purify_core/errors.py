"""The one exception type for bad user input.

Everything a user can get wrong (a config value, a file, a checkpoint) raises `UserInputError`
with a message that says what is wrong and how to fix it. The CLI and the pages catch this type
and show its message; anything else is a bug and may surface as a traceback.
"""

from __future__ import annotations

__all__ = ["UserInputError", "ChecksumMismatchError", "MESSAGE_LIMIT", "bounded"]

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


class UserInputError(ValueError):
    """Bad input from a user: the message is meant to be shown as it is (bounded: `MESSAGE_LIMIT`)."""

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(bounded(str(message)), *args)


class ChecksumMismatchError(UserInputError):
    """A checkpoint's bytes do not match the sha256 recorded on its card."""
