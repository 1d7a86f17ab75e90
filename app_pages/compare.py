"""Compare Rankings: how well each neuron ranking finds the infected neurons (the evaluator's view)."""

import pandas as pd
import streamlit as st

from purify_core.views.method_figures import pruning_curves_figure, roc_figure, spearman_figure
from purify_core.method.rankings import METRIC_LABELS
from ui import controls, premise, state
from ui.sidebar import current_scenario
from ui.cache import evaluation_seconds, pruning_evaluations, pruning_report, ranking_report
from ui.estimates import seconds_text

name = current_scenario()
st.title("Compare rankings")
st.markdown(
    "Benign salience, activation, magnitude and gradient x activation each score every neuron from clean data. "
    "Here they are graded against **TAC**, the trigger-activated change of each neuron, which needs the trigger: "
    "this is the **evaluator's view** (oracle), never available to a defender."
)
premise.callout("compare")
controls.first_values(controls.COMPARE)
left, right = st.columns(2)
top, direction = controls.draw(left, controls.COMPARE_TOP), controls.draw(right, controls.COMPARE_DIRECTION)
controls.publish(controls.COMPARE)
if (note := premise.direction_note(st.session_state.get(state.PURIFY_DIRECTION), direction)) is not None:
    st.caption(note)

report = ranking_report(name, top, direction)
premise.premise_question(premise.salience_auc(report, METRIC_LABELS["salience"]), direction)
st.dataframe(pd.DataFrame(report["rows"]).round(3), hide_index=True, key="compare_table")
st.markdown(premise.readings(report["rows"], direction))
st.caption("ROC AUC 0.5 is chance, 1 finds every infected neuron first; precision@k: share of infected among the k flagged, "
           "k = number of infected neurons.")
a, b = st.columns(2)
a.plotly_chart(roc_figure(report["roc"]), key="compare_roc")
a.caption("Each curve: neurons taken in the ranking's order; up and to the left is better.")
b.plotly_chart(spearman_figure(report["names"], report["matrix"]), key="compare_spearman")
b.caption("Mean per-layer rank correlation: 1 = same order, -1 = opposite order, 0 = unrelated.")

evaluations = pruning_evaluations()
st.caption(f"Pruning curves re-evaluate the model {evaluations} times: {seconds_text(evaluations * evaluation_seconds(name))} "
           "on this server now (one evaluation timed here; more when others are running).")
if st.toggle("Pruning curves (re-evaluates the model at each fraction)", key=state.COMPARE_CURVES):
    st.plotly_chart(pruning_curves_figure(pruning_report(name, direction)), key="compare_pruning")
    st.caption(f"Zero the {direction}-scored neurons of every layer, no fine-tuning: a ranking that finds the backdoor "
               "drops ASR (dashed) before ACC (solid).")
