"""The Attack lab's upload: the optional card that names the weights' attack, and a clean slate per try."""

from __future__ import annotations

from typing import Any

import streamlit as st

from purify_core.attacks import build_attack
from purify_core.config import Scenario
from purify_core.data.splits import Splits
from purify_core.errors import UserInputError
from purify_core.store.upload_card import read_upload_card, with_card_attack
from ui import state, untrusted


def forget_made() -> None:
    """A new file or a new check starts clean: the last model's green "ready" banner must not stay above this one's error."""
    st.session_state.pop(state.ATTACK_MADE, None)


def upload_scenario(card_file: Any, chosen: Scenario, splits: Splits) -> Scenario | None:
    """`chosen` measured with the attack the uploaded card names, said on the page; None with no card or a refused one.

    The trigger is built here, before any click, so a card whose target or trigger does not fit
    these images is refused in one line before the weights are read.
    """
    if card_file is None:
        return None
    try:
        scenario = with_card_attack(chosen, read_upload_card(card_file.getvalue(), card_file.name), card_file.name)
        build_attack(scenario.attack, splits.input_shape, splits.num_classes)
    except UserInputError as error:
        st.error(untrusted.text(error))
        return None
    attack = scenario.attack
    st.info(f"The card names the attack: ASR is measured with **{untrusted.text(attack.name)}**, target "
            f"**{untrusted.text(splits.classes[attack.target])}** (the attack chosen above is not used).",
            icon=":material/badge:")
    return scenario
