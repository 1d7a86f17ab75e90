"""Configs, splits, models, evaluation and checkpoints: the pieces under the zoo."""

from __future__ import annotations

import ast
import hashlib
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from purify_core.attacks import build_attack
from purify_core.store.checkpoints import Card, load_checkpoint, save_checkpoint
from purify_core.config import AttackConfig, DataConfig, ModelConfig, Scenario, TrainConfig, scenario_preset
from purify_core.data.splits import load_splits
from purify_core.data.image_set import ImageSet
from purify_core.errors import ChecksumMismatchError, UserInputError
from purify_core.models.evaluate import attack_success_rate, evaluate
from purify_core.models.architectures import build_model

ROOT = Path(__file__).resolve().parent.parent


def test_configs_are_hashable_and_round_trip_through_json():
    scenario = scenario_preset("demo", "wanet", seed=3)
    again = Scenario.from_dict(json.loads(json.dumps(scenario.to_dict())))
    assert again == scenario and hash(again) == hash(scenario)
    assert scenario.name == "mnist5k-smallcnn-wanet-s3"
    assert scenario.fingerprint != scenario_preset("demo", "wanet", seed=4).fingerprint
    assert AttackConfig.of("blended", alpha=0.1, pattern="noise") == AttackConfig.of("blended", pattern="noise", alpha=0.1)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: DataConfig(dataset="imagenet"), "unknown dataset"),
        (lambda: DataConfig(dataset="cifar10"), "needs a root folder"),
        (lambda: DataConfig(defense_fraction=0), "defense_fraction"),
        (lambda: ModelConfig("resnet9000"), "unknown architecture"),
        (lambda: TrainConfig(epochs=0), "epochs"),
        (lambda: TrainConfig(lr=-1), "learning rate"),
        (lambda: scenario_preset("huge"), "unknown preset"),
        (lambda: Scenario.from_dict({"data": {}}), "not a valid scenario"),
    ],
)
def test_bad_configs_raise_clear_errors(build, message):
    with pytest.raises(UserInputError, match=message):
        build()


@pytest.mark.parametrize("dataset, sizes", [("digits", (1293, 360, 144)), ("mnist5k", (3800, 1000, 200))])
def test_seeded_splits_are_disjoint_stratified_and_stable(dataset, sizes):
    cfg = DataConfig(dataset=dataset, defense_fraction=0.1 if dataset == "digits" else 0.05)
    splits = load_splits(cfg)
    assert (len(splits.train), len(splits.test), len(splits.clean)) == sizes
    rows = [{tuple(v) for v in s.x.flatten(1).numpy().round(4).tolist()} for s in (splits.train, splits.test, splits.clean)]
    # disjoint up to duplicate images in the source data (digits has a handful of exact duplicates)
    assert len(rows[0] & rows[2]) <= 2 and len(rows[1] & rows[2]) <= 2
    counts = torch.bincount(splits.clean.y, minlength=10)
    assert counts.min() >= counts.max() - 1, "the defense set is stratified"
    load_splits.cache_clear()
    again = load_splits(cfg)
    assert torch.equal(again.clean.x, splits.clean.x) and torch.equal(again.train.y, splits.train.y)
    other = load_splits(DataConfig(dataset=dataset, defense_fraction=cfg.defense_fraction, split_seed=1))
    assert not torch.equal(other.clean.y, splits.clean.y) or not torch.equal(other.clean.x, splits.clean.x)


def test_mnist5k_is_real_digits_in_unit_range():
    splits = load_splits(DataConfig())
    assert splits.input_shape == (1, 28, 28) and splits.num_classes == 10
    assert splits.train.x.min() == 0 and splits.train.x.max() == 1
    assert 0.1 < splits.train.x.mean() < 0.15, "MNIST digits are mostly black background"


@pytest.mark.parametrize("arch, shape", [("smallcnn", (1, 28, 28)), ("smallcnn", (1, 8, 8)), ("smallvgg", (3, 32, 32)), ("preactresnet18", (3, 32, 32))])
def test_models_classify_their_input_shape(arch, shape):
    model = build_model(ModelConfig(arch), shape, 7)
    assert model(torch.rand(2, *shape)).shape == (2, 7)


def test_torchvision_models_by_name_accept_grey_images():
    model = build_model(ModelConfig("tv:resnet18"), (1, 32, 32), 5)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 5)
    with pytest.raises(UserInputError, match="no classifier named"):
        build_model(ModelConfig("tv:not_a_net"), (3, 32, 32), 5)


class HiddenLabelModel(nn.Module):
    """Reads the true label hidden in pixel (0, 1); predicts `target` when the trigger pixel (0, 0)
    is bright and the true label is in `fooled`, else the true label."""

    def __init__(self, target: int, fooled: tuple[int, ...]) -> None:
        super().__init__()
        self.target, self.fooled = target, torch.tensor(fooled)
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = (x[:, 0, 0, 1] * 10).round().long()
        hit = (x[:, 0, 0, 0] > 0.5) & torch.isin(label, self.fooled)
        return nn.functional.one_hot(torch.where(hit, torch.full_like(label, self.target), label), 10).float()


def test_asr_counts_only_images_whose_true_class_is_not_the_target():
    labels = torch.tensor([3, 3, 3, 1, 2, 4, 5])
    x = torch.zeros(7, 1, 8, 8)
    x[:, 0, 0, 1] = labels / 10
    data = ImageSet(x, labels)
    trigger = build_attack(AttackConfig.of("badnets", target=3, size=1, margin=0, position="top-left", pattern="white"), (1, 8, 8), 10)
    # Of the four non-target images only label 1 is fooled: 1/4. Counting the three target-class
    # images (all "classified as the target") would give 4/7 instead.
    assert attack_success_rate(HiddenLabelModel(3, (1, 3)), data, trigger) == 0.25
    metrics = evaluate(HiddenLabelModel(3, (1, 2, 3, 4, 5)), data, trigger)
    assert metrics.acc == 1.0 and metrics.asr == 1.0 and metrics.n_triggered == 4


def tiny_card(sha: str) -> Card:
    """A card for a smallcnn on 8x8 grey digits (10 classes), with the given weights hash."""
    return Card(
        name="t", scenario=scenario_preset("tiny").to_dict(), input_shape=(1, 8, 8), num_classes=10, classes=tuple("0123456789"),
        trigger={}, acc=0, asr=0, clean_acc=None, clean_asr=None, train_seconds=0, clean_train_seconds=None,
        n_train=0, n_poisoned=0, sha256=sha,
    )


def test_safetensors_round_trip_and_checksum_refusal(tmp_path):
    model = build_model(ModelConfig("smallcnn"), (1, 8, 8), 10, torch.tensor([0.2]), torch.tensor([0.3]))
    sha = save_checkpoint(model, tmp_path / "m.safetensors")
    card = tiny_card(sha)
    loaded = load_checkpoint(tmp_path / "m.safetensors", card)
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k
    assert loaded.normalize.mean.item() == pytest.approx(0.2)
    raw = bytearray((tmp_path / "m.safetensors").read_bytes())
    raw[-1] ^= 0xFF
    (tmp_path / "m.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ChecksumMismatchError, match="sha256"):
        load_checkpoint(tmp_path / "m.safetensors", card)


def test_weights_for_another_architecture_are_refused(tmp_path):
    other = build_model(ModelConfig("smallcnn"), (1, 8, 8), 5)
    sha = save_checkpoint(other, tmp_path / "m.safetensors")
    card = tiny_card(hashlib.sha256((tmp_path / "m.safetensors").read_bytes()).hexdigest())
    assert sha == card.sha256, "save_checkpoint returns the sha256 of the bytes it wrote"
    with pytest.raises(UserInputError, match=r"net.fc2.weight has shape \(5, 128\) in the file but \(10, 128\)"):
        load_checkpoint(tmp_path / "m.safetensors", card)


def test_purify_core_never_imports_streamlit():
    for path in (ROOT / "purify_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "streamlit" for n in names), path
