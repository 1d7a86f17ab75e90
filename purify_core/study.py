"""The steps every front end shares (app, CLI, benchmarks), written once.

A study of one backdoored model is: a `Case` (the model, one draw of its clean set, and the
evaluator's view of the test set), rankings graded against TAC (`grade_rankings`), purification
or defense generators driven to their end (`run_to_end`), numbers shown in percent (`percent`),
and a `RunRecord` per run with its `summary_row`. Each used to be written in two to four places,
slightly differently; here each is one function with a test.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from torch import nn

from ._utils import run_to_end
from .errors import UserInputError
from .evaluation.grading import der_of
from .models.evaluate import Metrics, evaluate, percent
from .method.neurons import NeuronScores
from .method.purify import PurifyResult, PurifySummary, StepMetrics
from .method.rankings.quality import RankingQuality, ranking_quality, roc_points, spearman_matrix

if TYPE_CHECKING:  # types only: the study sits above the model store, whatever module holds it
    from .attacks import Attack
    from .store.cards import Card
    from .data.splits import Splits
    from .data.image_set import ImageSet
    from .store.backdoored import BackdooredModel

__all__ = ["Evaluator", "evaluator_for", "Case", "case_of", "percent", "run_to_end", "purification_result",
           "RankingGrade", "grade_rankings", "ranking_report", "RunRecord", "summary_row", "summary_dict", "SUMMARY_COLUMNS", "INFECTED_SHARE"]

Evaluator = Callable[[nn.Module], Metrics]

#: The share of each layer TAC calls infected when rankings are graded (the paper's top 5%).
INFECTED_SHARE = 0.05


def evaluator_for(attack: "Attack", test: "ImageSet", first: int | None = None) -> Evaluator:
    """ACC and ASR of a model on `test` (only its `first` images: a cheaper check during a run).

    The evaluator's view: it applies the trigger, so a defense may report it but never read it."""
    images = test if first is None else test.subset(range(min(first, len(test))))
    return lambda model: evaluate(model, images, attack)


@dataclass(frozen=True, eq=False)
class Case:
    """One backdoored model with one draw of its clean defense set (`seed`; 0 = the scenario's own)."""

    backdoored: "BackdooredModel"
    splits: "Splits"
    seed: int

    def evaluator(self, first: int | None = None) -> Evaluator:
        """ACC and ASR on this case's test images (see `evaluator_for`)."""
        return evaluator_for(self.backdoored.attack, self.splits.test, first)


def case_of(backdoored: "BackdooredModel", seed: int) -> Case:
    """`backdoored` with the clean defense set drawn by `seed` (the test set stays the scenario's)."""
    from .data.splits import redraw_clean

    return Case(backdoored, redraw_clean(backdoored.splits(), seed), seed)


def purification_result(run: Iterable[StepMetrics | PurifyResult], on_step: Callable[[StepMetrics], None] | None = None) -> PurifyResult:
    """A purification or defense run driven to its `PurifyResult`; `on_step` sees each step."""
    result = run_to_end(run, None if on_step is None else lambda item: on_step(item) if isinstance(item, StepMetrics) else None)
    if not isinstance(result, PurifyResult):
        raise TypeError(f"a purification run ended with {type(result).__name__}, not a PurifyResult")
    return result


@dataclass(frozen=True)
class RankingGrade:
    """How well one defender ranking finds the neurons TAC calls infected, read both ways."""

    metric: str
    lowest: RankingQuality  # "a low score means infected" (the paper's premise)
    highest: RankingQuality  # "a high score means infected"

    def toward(self, direction: str) -> RankingQuality:
        return self.lowest if direction == "lowest" else self.highest

    def to_dict(self, digits: int | None = None) -> dict[str, Any]:
        """The row the CLI and the benchmarks print; Spearman does not depend on the direction."""
        r = (lambda x: x) if digits is None else (lambda x: round(x, digits))
        return {"metric": self.metric, "auc_low": r(self.lowest.auc), "precision_low": r(self.lowest.precision_at_k),
                "auc_high": r(self.highest.auc), "precision_high": r(self.highest.precision_at_k), "spearman_tac": r(self.lowest.spearman)}


def grade_rankings(scores: Mapping[str, NeuronScores], tac: NeuronScores, top: float = INFECTED_SHARE) -> list[RankingGrade]:
    """Grade every ranking in `scores` against `tac` (the oracle: the evaluator's view only).

    `top` is the share of each layer TAC calls infected, in (0, 1)."""
    if not 0 < top < 1:
        raise UserInputError(f"the infected share (top) must be a fraction in (0, 1), got {top}")
    return [RankingGrade(metric, ranking_quality(s, tac, top, "lowest"), ranking_quality(s, tac, top, "highest"))
            for metric, s in scores.items()]


def ranking_report(scores: Mapping[str, NeuronScores], tac: NeuronScores, top: float, direction: str,
                   labels: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What the Compare page draws: each ranking's grade read toward `direction` (a table row), its ROC
    points, and the Spearman matrix of every ranking and TAC; `labels` names the rankings for people."""
    name = (lambda metric: metric) if labels is None else (lambda metric: labels.get(metric, metric))
    rows, roc = [], {}
    for grade in grade_rankings(scores, tac, top):
        q = grade.toward(direction)
        rows.append({"ranking": name(grade.metric), "ROC AUC": q.auc, "precision@k": q.precision_at_k, "Spearman with TAC": q.spearman})
        fpr, tpr = roc_points(scores[grade.metric], tac, top, direction)
        roc[name(grade.metric)] = (fpr, tpr, q.auc)
    names, matrix = spearman_matrix({name(m): s for m, s in {**scores, "tac": tac}.items()})
    return {"rows": rows, "roc": roc, "names": names, "matrix": matrix}


#: The columns of a run's summary row, in the order every front end shows them.
SUMMARY_COLUMNS = ("ACC before", "ASR before", "ACC after", "ASR after", "RA after", "DER", "steps to ASR<5%", "seconds")


def summary_row(summary: PurifySummary | None) -> dict[str, Any]:
    """A run's numbers (None where not measured), as the app, the CLI and the report show them: ACC,
    ASR and robust accuracy (RA) in percent; DER (BackdoorBench's rating) as a fraction in [0, 1]."""
    if summary is None:
        return dict.fromkeys(SUMMARY_COLUMNS[:-1]) | {"seconds": 0.0}
    before, after = summary.before, summary.after
    rating = der_of(before, after)
    return {"ACC before": percent(before.acc) if before else None, "ASR before": percent(before.asr) if before else None,
            "ACC after": percent(after.acc) if after else None, "ASR after": percent(after.asr) if after else None,
            "RA after": percent(after.ra) if after else None, "DER": None if rating is None else round(rating, 3),
            "steps to ASR<5%": summary.steps_to_erase, "seconds": round(summary.seconds, 1)}


def summary_dict(summary: PurifySummary) -> dict[str, Any]:
    """`PurifySummary.to_dict` (ACC, ASR, RA in %) with the run's DER (a fraction in [0, 1], None if unmeasured)."""
    rating = der_of(summary.before, summary.after)
    return {**summary.to_dict(), "der": None if rating is None else round(rating, 3)}


@dataclass(eq=False, kw_only=True)
class RunRecord:
    """One purification or defense run as a front end keeps it: settings, streamed history, result.

    `source` is the card of the model it purified: exports name that model, whatever is selected
    later. `history` holds each step as a dict (what the figures draw); `summary` is set when the
    run ends; `status` is "running" until then, or "stopped" when a rerun cut it short.
    """

    label: str
    config: dict[str, Any]
    source: "Card"
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: PurifySummary | None = None
    status: str = "running"
    reason: str = ""
    model: nn.Module | None = None
    waited_s: float = 0.0
    reactivation: dict[str, Any] | None = None  # the evaluator's re-activation check, if one was run
    neurons_after: dict[str, NeuronScores] | None = None  # the purified model's rankings, once drawn

    @classmethod
    def of_run(cls, label: str, source: "Card", run: Iterable[StepMetrics | PurifyResult]) -> "RunRecord":
        """The record of a run driven to its end here (scripts, tests): every step, then the result and its settings."""
        record = cls(label=label, config={}, source=source)
        result = purification_result(run, on_step=record.record)
        record.record(result)
        record.config = result.config.to_dict()
        return record

    def record(self, item: StepMetrics | PurifyResult) -> None:
        """Keep one item of the run's generator: a step goes into the history, the result ends the run."""
        if isinstance(item, PurifyResult):
            self.summary, self.status, self.reason, self.model = item.summary, item.summary.status, item.summary.reason, item.model
        else:
            self.history.append(asdict(item))

    def settle(self) -> bool:
        """A run still "running" when nothing drives it any more was stopped: keep what it computed."""
        if self.status != "running":
            return False
        self.status = "stopped"
        self.reason = f"stopped after {self.history[-1]['step'] if self.history else 0} steps; what was computed is kept"
        return True

    def summary_dict(self) -> dict[str, Any] | None:
        """The summary as JSON (ACC, ASR and RA in %; DER a fraction in [0, 1]), as cards write it."""
        return None if self.summary is None else summary_dict(self.summary)

    def summary_row(self) -> dict[str, Any]:
        """The run's row in tables: its label, model and status, then `summary_row`'s numbers."""
        return {"run": self.label, "model": self.source.name, "status": self.status, **summary_row(self.summary)}
