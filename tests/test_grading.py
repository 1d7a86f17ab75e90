"""Grading the field can trust: DER on hand-worked numbers, robust accuracy beside ASR, the Pareto front."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from purify_core.data.image_set import ImageSet
from purify_core.errors import UserInputError
from purify_core.evaluation.grading import der, der_of, pareto_front
from purify_core.models.evaluate import Metrics, evaluate


def test_der_on_hand_worked_numbers():
    assert der(0.97, 1.0, 0.96, 0.0) == pytest.approx((1 - 0.01 + 1) / 2)  # 0.995: erased at one ACC point
    assert der(0.9, 0.8, 0.9, 0.8) == pytest.approx(0.5)  # nothing changed
    assert der(0.9, 0.5, 0.95, 0.7) == pytest.approx(0.5)  # ASR and ACC both rose: no credit, no blame
    assert der(0.9, 1.0, 0.1, 0.0) == pytest.approx((1 - 0.8 + 1) / 2)  # erased by wrecking the model: 0.6
    assert der(1.0, 0.0, 0.0, 1.0) == 0.0 and der(0.0, 1.0, 1.0, 0.0) == 1.0  # the bounds


def test_der_refuses_percents_and_skips_unmeasured_asr():
    with pytest.raises(UserInputError, match="fraction in"):
        der(97.0, 100.0, 96.0, 0.0)
    assert der_of(Metrics(0.9, None, 10, 0), Metrics(0.9, None, 10, 0)) is None
    assert der_of(Metrics(0.9, 1.0, 10, 9), None) is None
    assert der_of(Metrics(0.97, 1.0, 10, 9), Metrics(0.96, 0.0, 10, 9)) == pytest.approx(0.995)


class _Fixed(nn.Module):
    """Answers from the image's first pixel: 0 -> class 0, 1 -> class 1, 2 -> class 2 (a triggered image has 9)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        first = x.flatten(1)[:, 0].round().long()
        answers = torch.where(first == 9, torch.tensor([0, 2, 2, 2])[torch.arange(len(x)) % 4], first)
        return nn.functional.one_hot(answers, 3).float()


class _Patch:
    """A trigger that sets the first pixel to 9, target class 0."""

    target = 0

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x.view(len(x), -1)[:, 0] = 9
        return x


def test_robust_accuracy_is_the_share_of_triggered_non_target_images_kept_in_their_true_class():
    # six images: two of the target class 0 (left out), four of classes 1, 2, 1, 2
    y = torch.tensor([0, 0, 1, 2, 1, 2])
    x = y.float().view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()
    m = evaluate(_Fixed(), ImageSet(x, y), _Patch())  # type: ignore[arg-type]
    # triggered non-target images are rows 2..5 -> answers [2, 2, 0, 2] (index % 4 = 2, 3, 0, 1)
    assert m.acc == 1.0 and m.n_triggered == 4
    assert m.asr == pytest.approx(1 / 4)  # one went to the target
    assert m.ra == pytest.approx(2 / 4)  # rows 3 and 5 (class 2) kept their class
    assert m.as_percent() == {"acc": 100.0, "asr": 25.0, "ra": 50.0}


def test_pareto_front_on_hand_made_points():
    points = [(0.0, 50.0), (1.0, 10.0), (2.0, 0.0), (3.0, 5.0), (1.5, 20.0), (0.0, 50.0)]
    # (3, 5) is beaten by (2, 0); (1.5, 20) by (1, 10); the tie (0, 50) twice stays on the front
    assert pareto_front(points) == [True, True, True, False, False, True]
    assert pareto_front([]) == [] and pareto_front([(5.0, 5.0)]) == [True]


def test_the_pareto_figure_marks_the_front_and_draws_it_as_a_staircase():
    from purify_core.views.method_figures import pareto_figure

    points = [{"label": "a", "acc_drop": 0.0, "asr": 50.0, "source": "this session"},
              {"label": "b", "acc_drop": 1.0, "asr": 5.0, "source": "arena"},
              {"label": "c", "acc_drop": 2.0, "asr": 20.0, "source": "this session"}]
    traces = {t.name: t for t in pareto_figure(points).data}
    assert list(traces["this session"].marker.color) == ["#d62728", "#7f7f7f"]  # c is beaten by b
    assert list(traces["Pareto front"].x) == [0.0, 1.0, 1.0] and list(traces["Pareto front"].y) == [50.0, 50.0, 5.0]
