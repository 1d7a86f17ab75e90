"""The card that may come with uploaded weights: it says which attack the weights carry.

ASR is measured with one trigger, the attack the weights are said to carry. Without a card that
is whatever attack the uploader picked; blended weights scored under a badnets patch read an ASR
near 0 with no hint why. With a card, its attack (name, target, trigger parameters) is used.

A card comes from a browser, so it is checked like any card (`Card.from_dict`) and may name
nothing on the server: a trigger parameter that can be a file path (Blended's pattern) must be
one of the values offered without a path.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..attacks import ATTACKS
from ..config import Scenario
from ..errors import UserInputError
from .cards import Card
from .checkpoints import MAX_CARD_BYTES
from .weights_format import short

__all__ = ["read_upload_card", "with_card_attack"]


def read_upload_card(data: bytes, filename: str) -> Card:
    """A checked card from an upload's bytes; any problem is one `UserInputError` naming the file."""
    name = short(filename, 80)
    if len(data) > MAX_CARD_BYTES:
        raise UserInputError(f"{name} is {len(data) / 2**20:.1f} MiB; a model card is a few KB (at most {MAX_CARD_BYTES >> 20} MiB)")
    try:
        return Card.from_dict(json.loads(data))
    except RecursionError:
        raise UserInputError(f"{name} is nested too deeply to be a model card") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserInputError(f"{name} is not a model card: it is not valid JSON (a card is the .json file saved beside "
                             "the weights)") from None
    except UserInputError as exc:
        raise UserInputError(f"{name}: {exc}") from None


def with_card_attack(scenario: Scenario, card: Card, filename: str = "the card") -> Scenario:
    """`scenario` measured with the card's attack (name, target, poison rate, trigger parameters).

    The data set and architecture stay the ones chosen (a browser never names a server folder);
    a card describing another data set or architecture is refused, since its trigger and target
    were made for those.
    """
    name = short(filename, 80)
    described = Scenario.from_dict(card.scenario)
    theirs = (described.data.dataset, described.model.arch)
    if theirs != (scenario.data.dataset, scenario.model.arch):
        raise UserInputError(f"{name} describes a {theirs[1]} for {theirs[0]}, but {scenario.model.arch} for "
                             f"{scenario.data.dataset} is chosen: choose the card's data set and architecture above")
    attack = described.attack
    if attack.name not in ATTACKS:
        raise UserInputError(f"{name} names the attack {attack.name!r}, which this lab does not know")
    for param, value in attack.params:
        spec = ATTACKS[attack.name].PARAMS.get(param)
        if spec is not None and spec.offered is not None and value not in spec.offered:
            raise UserInputError(f"{name} sets {attack.name}'s {param} to {short(str(value), 60)!r}; an upload may use "
                                 f"only {', '.join(map(repr, spec.offered))} (a browser never names a file on the server)")
    return replace(scenario, attack=attack)
