"""A user's message is bounded: an echoed input never floods a terminal or a page (purify_core.errors)."""

from __future__ import annotations

import pickle

import pytest

from purify_core.errors import MESSAGE_LIMIT, ChecksumMismatchError, UserInputError, bounded
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
