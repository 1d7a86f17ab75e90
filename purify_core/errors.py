"""The one exception type for bad user input.

Everything a user can get wrong (a config value, a file, a checkpoint) raises `UserInputError`
with a message that says what is wrong and how to fix it. The CLI and the pages catch this type
and show its message; anything else is a bug and may surface as a traceback.
"""

from __future__ import annotations

__all__ = ["UserInputError", "ChecksumMismatchError"]


class UserInputError(ValueError):
    """Bad input from a user: the message is meant to be shown as it is."""


class ChecksumMismatchError(UserInputError):
    """A checkpoint's bytes do not match the sha256 recorded on its card."""
