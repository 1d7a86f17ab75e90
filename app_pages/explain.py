"""Explain: which pixels the backdoored and the purified model look at, on clean and triggered images."""

import streamlit as st

from purify_core.views.attribution import attribute
from purify_core.models.evaluate import predict
from purify_core.views.method_figures import attribution_figure
from ui import controls
from ui import runs as session_runs
from ui import state, untrusted
from ui.cache import backdoored_attributions, backdoored_model, samples_for, splits_for
from ui.sidebar import current_scenario

name = current_scenario()
backdoored, splits = backdoored_model(name), splits_for(name)
st.title("Explain")
st.markdown("Attributions (captum) say which pixels a prediction rests on. On the backdoored model the trigger should "
            "light up for triggered images; after purification it should fade.")

# only runs on this very model: another model's purified copy may not even take these images
finished = [r for r in session_runs.runs() if r.model is not None and r.source.sha256 == backdoored.card.sha256]
c1, c2 = st.columns(2)
controls.first_values(controls.EXPLAIN)
method = controls.draw(c1, controls.EXPLAIN_METHOD)
controls.publish(controls.EXPLAIN)
run_label = c2.selectbox("Purified model", [r.label for r in finished], key=state.EXPLAIN_RUN,
                         placeholder="run a purification on the Purify page first", index=0 if finished else None)
if not finished:
    st.info("No purified model of this model in this session yet: run one on the Purify page. Showing the backdoored model only.")

samples = samples_for(name, 4)
models = {"backdoored": backdoored.model}
if run_label:
    models["purified"] = next(r.model for r in finished if r.label == run_label)
rows = dict(backdoored_attributions(name, method))  # the shared model's are computed once for every session
with st.spinner("Attributing…"):
    if "purified" in models:
        for kind, images in (("clean", samples.clean), ("triggered", samples.triggered)):
            rows[f"purified, {kind}"] = attribute(models["purified"], images, method)
columns = [f"true {untrusted.plot(splits.classes[int(y)])}" for y in samples.labels]
st.plotly_chart(attribution_figure(samples.clean, rows, columns), key="explain_maps")
predictions = {label: predict(model, samples.triggered).tolist() for label, model in models.items()}
st.caption("First row: the clean images. Then, per model, the attribution for its predicted class on the clean and the "
           "triggered image (brighter = more influence). Predictions on the triggered images: "
           + "; ".join(f"{label}: {', '.join(untrusted.text(splits.classes[p]) for p in preds)}" for label, preds in predictions.items()) + ".")
