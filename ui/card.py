"""A backdoored model's card: what it is, ACC and ASR, its trigger, and what the trigger does to it."""

from __future__ import annotations

import streamlit as st

from purify_core.store.checkpoints import weights_bytes
from purify_core.views.image_figures import image_figure, sample_grid_figure
from ui import untrusted
from ui.cache import backdoored_model, samples_for


def clean_model_gap(acc: float, clean_acc: float) -> str:
    """The clean model's ACC against the backdoored one's, in words: a signed "+0.4 pts" under the clean
    model's number read as if the clean model had gained, when it is the backdoored model that lost."""
    gap = round(clean_acc - acc, 1)
    if gap == 0:
        return "same as the backdoored"
    return f"{abs(gap):.1f} pts {'above' if gap > 0 else 'below'} the backdoored"  # short: a metric's delta is cut to its column


def show_card(name: str, key: str = "card") -> None:
    """Metrics, the trigger, and clean vs triggered samples with the model's predictions.

    Every field comes from a card on disk (an upload's file name, ImageFolder class names): shown as text.
    """
    backdoored = backdoored_model(name)
    card = backdoored.card
    arch, dataset, trigger = (untrusted.text(card.scenario["model"]["arch"]), untrusted.code(card.scenario["data"]["dataset"]),
                              untrusted.text(card.trigger["name"]))
    if "source" in card.trigger:
        story = f"a {arch} for {dataset} {untrusted.text(card.trigger['source'])}; ASR is measured with a **{trigger}** trigger."
    else:
        story = (f"a {arch} trained on {dataset} where {card.n_poisoned} of {card.n_train} training images carried a "
                 f"**{trigger}** trigger.")
    st.markdown(f"**{untrusted.text(card.name)}**: {story} _{untrusted.text(card.trigger['summary'])}_")

    cols = st.columns(4)
    cols[0].metric("Clean accuracy (ACC)", f"{card.acc:.1f}%", help="Accuracy on the clean test set.")
    cols[1].metric(
        "Attack success (ASR)", f"{card.asr:.1f}%",
        help="Evaluator's view (oracle): share of non-target test images sent to the target class once the trigger is applied.",
    )
    if card.clean_acc is not None:
        cols[2].metric("Clean model ACC", f"{card.clean_acc:.1f}%", clean_model_gap(card.acc, card.clean_acc), delta_color="off",
                       delta_arrow="off", help="A model trained the same way without poisoning: what the attack cost in accuracy.")
    if card.train_seconds:
        cols[3].metric("Training time", f"{card.train_seconds:.0f} s", help="Seconds to train this model on the machine that built it.")

    in_memory = weights_bytes(backdoored.model)[1]  # recomputed each time: proof the shared model is unchanged
    if in_memory == card.sha256:
        st.caption(f"Weights in memory: sha256 `{in_memory[:16]}…`, the same as the checkpoint file's.")
    else:
        st.error(f"The weights in memory (sha256 {in_memory[:16]}…) differ from the checkpoint file's ({untrusted.text(card.sha256[:16])}…): "
                 "restart the server, and please report it.")

    left, right = st.columns([1, 3])
    with left:
        st.plotly_chart(image_figure(backdoored.attack.render_trigger(), "The trigger"), key=f"{key}_trigger", config={"displayModeBar": False})
        st.caption(f"What the attacker adds to an image. Target class: **{untrusted.text(card.classes[card.trigger['target']])}**.")
    with right:
        st.plotly_chart(sample_grid_figure(samples_for(name), tuple(map(untrusted.plot, card.classes)), card.trigger["target"]), key=f"{key}_samples",
                        config={"displayModeBar": False})
        st.caption("Top: clean test images with the model's prediction. Bottom: the same images with the trigger; "
                   "⚠ in red marks the backdoor firing (predicted as the target).")
