"""A user's message is one bounded line: an echoed input never floods, breaks or drives a terminal or a page (purify_core.errors)."""

from __future__ import annotations

import pickle

import pytest

from purify_core.errors import MESSAGE_LIMIT, ChecksumMismatchError, UserInputError, bounded, one_line, printable
from purify_core.method.settings import PurifyConfig


def test_a_short_message_is_kept_whole():
    assert bounded("unknown ranking 'x'; choose one of a, b") == "unknown ranking 'x'; choose one of a, b"
    assert bounded("y" * MESSAGE_LIMIT) == "y" * MESSAGE_LIMIT


@pytest.mark.parametrize("length", [MESSAGE_LIMIT + 1, 5_000, 10**6])
def test_a_long_message_keeps_its_start_and_its_advice_and_says_what_it_cut(length):
    message = "unknown ranking '" + "x" * length + "'; choose one of salience, activation"
    shown = bounded(message)
    assert len(shown) <= MESSAGE_LIMIT
    assert shown.startswith("unknown ranking 'xxx") and shown.endswith("'; choose one of salience, activation")
    assert f"({len(message)} characters, cut)" in shown
    assert bounded(shown) == shown  # cutting twice changes nothing (a pickled error is built again from its message)


def test_every_user_input_error_is_bounded_even_after_a_round_trip_through_pickle():
    for error in (UserInputError("z" * 50_000), ChecksumMismatchError("z" * 50_000)):
        assert len(str(error)) <= MESSAGE_LIMIT
        again = pickle.loads(pickle.dumps(error))  # how a Ray worker's error reaches the page
        assert type(again) is type(error) and str(again) == str(error)


def test_a_config_refusing_a_huge_value_says_so_in_a_bounded_line():
    with pytest.raises(UserInputError) as error:
        PurifyConfig(metric="m" * 100_000)
    assert len(str(error.value)) <= MESSAGE_LIMIT and "choose one of" in str(error.value)


def test_line_breaks_become_spaces_and_control_bidi_and_zero_width_characters_a_visible_mark():
    assert printable("a\nb\r\tc\u2028d") == "a b  c d"
    assert printable("\x1b[2Jx\u202eevil\u200b\x00") == "\ufffd[2Jx\ufffdevil\ufffd\ufffd"
    assert printable("plain text, ünïcode ok: 数字") == "plain text, ünïcode ok: 数字"
    shown = one_line("x" * 5000 + "\n\x1b")
    assert printable(shown) == shown and len(shown) <= MESSAGE_LIMIT


def test_a_user_input_error_echoing_a_line_break_or_an_escape_code_is_one_printable_line():
    error = UserInputError("no model card a\nb\x1b[2J")
    assert str(error) == "no model card a b\ufffd[2J"
