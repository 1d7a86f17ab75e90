"""Home: the backdoored model at hand, its card, and what its trigger does."""

import streamlit as st

from purify_core.figures import image_figure, sample_grid_figure
from ui import state
from ui.sidebar import current_scenario
from ui.cache import samples_for, shipped_model

name = current_scenario()
backdoored = shipped_model(name)
card = backdoored.card

st.title("This model is poisoned")
st.markdown(
    f"**{card.name}**: a {card.scenario['model']['arch']} trained on `{card.scenario['data']['dataset']}` "
    f"where {card.n_poisoned} of {card.n_train} training images carried a **{card.trigger['name']}** trigger. "
    f"_{card.trigger['summary']}_"
)

cols = st.columns(4)
cols[0].metric("Clean accuracy (ACC)", f"{card.acc:.1f}%", help="Accuracy on the clean test set.")
cols[1].metric(
    "Attack success (ASR)", f"{card.asr:.1f}%",
    help="Evaluator's view (oracle): share of non-target test images sent to the target class once the trigger is applied.",
)
if card.clean_acc is not None:
    cols[2].metric("Clean model ACC", f"{card.clean_acc:.1f}%", f"{card.acc - card.clean_acc:+.1f} pts", delta_color="off",
                   help="A model trained the same way without poisoning: what the attack cost in accuracy.")
cols[3].metric("Training time", f"{card.train_seconds:.0f} s", help="Seconds to train this model on the machine that built it.")

left, right = st.columns([1, 3])
with left:
    st.plotly_chart(image_figure(backdoored.attack.render_trigger(), "The trigger"), key="trigger_chart", config={"displayModeBar": False})
    st.caption(f"What the attacker adds to an image. Target class: **{card.classes[card.trigger['target']]}**.")
with right:
    st.plotly_chart(sample_grid_figure(samples_for(name), card.classes, card.trigger["target"]), key="samples_chart", config={"displayModeBar": False})
    st.caption("Top: clean test images with the model's prediction. Bottom: the same images with the trigger; "
               "⚠ in red marks the backdoor firing (predicted as the target).")

st.subheader("A guided tour")
st.markdown("Four steps from here, one page each. Every chart says in a line how to read it.")
tour = [
    ("pages/salience.py", "1. Salience maps", "score every neuron on the clean defense set: benign salience, the clean-loss "
     "cost of removing it, and the neurons a threshold marks."),
    ("pages/compare.py", "2. Compare rankings", "grade benign salience, activation, magnitude and gradient x activation "
     "against the neurons the trigger really moves (the evaluator's view)."),
    ("pages/purify.py", "3. Purify", "fine-tune a private copy with Adaptive Regularization on the marked neurons; watch ACC "
     "and ASR live; compare with L2, L1, pruning, plain fine-tuning and baseline defenses; export."),
    ("pages/explain.py", "4. Explain", "see the trigger light up in the backdoored model's attributions, and fade after purification."),
]
for page, label, text in tour:
    left, right = st.columns([1, 4])
    left.page_link(page, label=label)
    right.markdown(text)

with st.expander("Model card (JSON)"):
    st.json(card.to_dict())
