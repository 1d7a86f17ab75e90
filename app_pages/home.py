"""Home: the backdoored model at hand, its card, and what its trigger does."""

import streamlit as st

from ui.sidebar import current_scenario
from ui.cache import backdoored_model
from ui.card import show_card
from ui.premise import callout

name = current_scenario()
st.title("This model is poisoned")
show_card(name)
callout("home")

st.subheader("A guided tour")
st.markdown("Four steps from here, one page each, and an optional one before them. Every chart says in a line how to read it.")
tour = [
    ("app_pages/attack_lab.py", "0. Attack lab (optional)", "implant your own backdoor (data, model, trigger, poison rate, target) "
     "or upload weights; the new model then replaces this one on every page."),
    ("app_pages/salience.py", "1. Salience maps", "score every neuron on the clean defense set: benign salience, the clean-loss "
     "cost of removing it, and the neurons a threshold marks."),
    ("app_pages/compare.py", "2. Compare rankings", "grade benign salience, activation, magnitude and gradient x activation "
     "against the neurons the trigger really moves (the evaluator's view)."),
    ("app_pages/purify.py", "3. Purify", "purify a private copy: the lab default prunes the marked neurons, re-initialises the "
     "dense layers and distils; the paper's Adaptive Regularization, L2, L1 and baseline defenses too; watch ACC and ASR "
     "live; export."),
    ("app_pages/explain.py", "4. Explain", "see the trigger light up in the backdoored model's attributions, and fade after purification."),
]
for page, label, text in tour:
    left, right = st.columns([1, 4])
    left.page_link(page, label=label)
    right.markdown(text)
left, right = st.columns([1, 4])
left.page_link("app_pages/lesson.py", label="Teaching?")
right.markdown("The **Lesson** page walks a 45-minute class through these pages: predict-then-run prompts, a short quiz, "
               "one shareable link per step; every page's sidebar has a glossary.")

with st.expander("Model card (JSON)"):
    st.json(backdoored_model(name).card.to_dict())
