"""The Purify page's Pareto chart: this session's runs (and the arena's, for the same model) on ACC drop vs ASR."""

from __future__ import annotations

import json

from purify_core.method.purify import PurifySummary
from purify_core.models.evaluate import Metrics
from purify_core.store.zoo import list_zoo
from purify_core.study import RunRecord

from app_helpers import open_page

MODEL = "mnist5k-smallcnn-badnets"


def _finished(label: str, acc_after: float, asr_after: float) -> RunRecord:
    source = next(c for c in list_zoo() if c.name == MODEL)
    summary = PurifySummary(status="finished", reason="", steps=10, seconds=1.0, marked=4, before=Metrics(0.97, 1.0, 100, 90, ra=0.0),
                            after=Metrics(acc_after, asr_after, 100, 90, ra=1 - asr_after), steps_to_erase=None)
    return RunRecord(label=label, config={}, source=source, status="finished", summary=summary)


def _pareto(at):
    return next((c for c in at.get("plotly_chart") if c.key == "purify_pareto"), None)


def test_the_pareto_chart_shows_after_two_runs_with_the_arenas_results_for_this_model(tmp_path, monkeypatch):
    import ui.run_list

    arena = tmp_path / "arena.json"
    arena.write_text(json.dumps({"summary": [
        {"scenario": MODEL, "defense": "anp", "acc_drop": 0.5, "asr": 2.0},
        {"scenario": "mnist5k-smallcnn-sig", "defense": "anp", "acc_drop": 0.1, "asr": 0.0},  # another model: not shown
    ]}))
    monkeypatch.setattr(ui.run_list, "ARENA_FILE", arena)
    at = open_page("app_pages/purify.py", purify_epochs="1")
    assert not at.exception and _pareto(at) is None, "no finished run yet: no chart"
    at.session_state["purify_runs"] = [_finished("#1 finetune", 0.96, 0.9), _finished("#2 prune", 0.90, 0.05)]
    at.session_state["purify_run_counter"] = 2
    at.run()
    assert not at.exception
    chart = _pareto(at)
    assert chart is not None
    traces = {t["name"]: t for t in json.loads(chart.proto.spec)["data"]}
    assert traces["this session"]["text"] == ["#1 finetune", "#2 prune"] and traces["arena"]["text"] == ["arena: anp"]
    assert [round(x, 6) for x in traces["this session"]["x"]] == [1.0, 7.0]  # ACC drop in points
    assert "Pareto front" in traces
    # no arena file: the session's runs alone
    monkeypatch.setattr(ui.run_list, "ARENA_FILE", tmp_path / "missing.json")
    at.run()
    traces = {t["name"] for t in json.loads(_pareto(at).proto.spec)["data"]}
    assert not at.exception and "arena" not in traces and "this session" in traces
