"""Exports: purified weights load back into the architecture; the report is one self-contained file."""

from __future__ import annotations

import torch
from safetensors.torch import load

from purify_core.models.evaluate import predict
from purify_core.views.export import purified_card, run_report_html, weights_bytes
from purify_core.method.purify import PurifyConfig, purify
from purify_core.study import RunRecord
from purify_core.store.zoo import load_shipped


def test_exported_weights_card_and_report():
    backdoored = load_shipped("mnist5k-smallcnn-blended")
    splits = backdoored.splits()
    run = RunRecord.of_run("#1 ar", backdoored.card, purify(backdoored.model, splits.clean, PurifyConfig(epochs=1, eval_every=3)))
    data, sha = weights_bytes(run.model)
    fresh = load_shipped("mnist5k-smallcnn-blended").model
    fresh.load_state_dict(load(data))
    x = splits.test.x[:50]
    assert torch.equal(predict(fresh, x), predict(run.model, x))
    card = purified_card(run, sha)
    assert card["source"]["sha256"] == backdoored.card.sha256 and card["sha256"] == sha
    assert card["purification"]["config"]["regularizer"] == "ar" and card["purification"]["summary"] == {**run.summary.to_dict(), "der": None}  # no evaluator: no DER
    page = run_report_html([run])
    assert page.count("<script") >= 1 and "<script src=" not in page  # plotly.js inlined, nothing fetched
    assert "<td>#1 ar</td><td>-</td><td>mnist5k-smallcnn-blended</td><td>finished</td>" in page and "To reproduce" in page and backdoored.card.sha256 in page
    assert "<title>Purify Lab report: mnist5k-smallcnn-blended</title>" in page
    assert "<th>RA after</th><th>DER</th>" in page


def test_a_report_of_runs_on_two_models_names_each_run_s_own_source():
    """A session may purify several models: the report names each run's source, never one for all."""
    first, second = load_shipped("mnist5k-smallcnn-badnets").card, load_shipped("mnist5k-smallcnn-wanet").card
    runs = [RunRecord(label=f"#{i} ar", config={}, source=card, status="stopped") for i, card in enumerate((first, second), 1)]
    page = run_report_html(runs)
    assert "<title>Purify Lab report: 2 models</title>" in page
    assert first.sha256 in page and second.sha256 in page
    assert "<td>#1 ar</td><td>-</td><td>mnist5k-smallcnn-badnets</td>" in page and "<td>#2 ar</td><td>-</td><td>mnist5k-smallcnn-wanet</td>" in page
    assert "None" not in page.split("<table>")[1].split("</table>")[0], "a number not measured reads '-'"
    assert purified_card(runs[0], "x")["source"]["sha256"] == first.sha256


def test_the_report_draws_each_run_in_its_own_colour_with_room_for_the_axis_labels():
    """The same names and colours as the app's overlay (one palette function); fixed ACC/ASR axes; y labels not clipped."""
    from purify_core.views.export import report_figure
    from purify_core.views.method_figures import PERCENT_RANGE
    from purify_core.views.run_compare import RUN_COLORS

    card = load_shipped("mnist5k-smallcnn-badnets").card
    steps = [{"step": s, "task_loss": 1.0, "reg_loss": 0.1, "distill_loss": 0.0, "acc": 0.9, "asr": 0.5} for s in (0, 5)]
    runs = [RunRecord(label=f"#{i} ar", config={"strength": strength}, source=card, status="stopped", history=steps)
            for i, strength in ((1, 0.05), (2, 0.2), (3, 0.5))]
    page = run_report_html(runs)
    for color in RUN_COLORS[:3]:
        assert f'"color":"{color}"' in page, color
    figure = report_figure(runs)
    assert {t.name: t.line.color for t in figure.data if t.showlegend} == {
        "#1 strength=0.05": RUN_COLORS[0], "#2 strength=0.2": RUN_COLORS[1], "#3 strength=0.5": RUN_COLORS[2]}
    assert figure.layout.margin.l >= 60 and all(figure.layout[f"yaxis{i or ''}"].automargin for i in (0, 2, 3, 4, 5))
    assert figure.layout.yaxis4.range == figure.layout.yaxis5.range == PERCENT_RANGE
    assert "<td>#2 ar</td><td>strength=0.2</td>" in page
