"""Rankings kept on the server's disk (ui/ranking_cache.py): computed once, read back the same, never trusted blindly."""

from __future__ import annotations

import pytest
import torch

import ui.ranking_cache as ranking_cache
from purify_core.config import AttackConfig, ModelConfig
from purify_core.data.image_set import ImageSet
from purify_core.attacks import build_attack
from purify_core.models.architectures import build_model
from purify_core.method.rankings import rank_neurons


@pytest.fixture
def vgg():
    """SmallVGG on 8x8 images: its layers (net.features.0, .3, .7, .10, net.fc1) do not sort by name as they run."""
    torch.manual_seed(0)
    return build_model(ModelConfig("smallvgg"), (3, 8, 8), 4).eval()


@pytest.fixture
def clean() -> ImageSet:
    generator = torch.Generator().manual_seed(1)
    return ImageSet(torch.rand(12, 3, 8, 8, generator=generator), torch.arange(12) % 4)


@pytest.fixture
def computed(monkeypatch):
    """Counts the rankings actually computed."""
    calls: list[str] = []

    def counting(model, data, metric, **kwargs):
        calls.append(metric)
        return rank_neurons(model, data, metric, **kwargs)

    monkeypatch.setattr(ranking_cache, "rank_neurons", counting)
    return calls


def test_a_ranking_is_computed_once_and_read_back_the_same_in_its_layers_order(vgg, clean, computed, tmp_path):
    first = ranking_cache.kept_scores(vgg, clean, "salience", {"variant": "abs"}, folder=tmp_path)
    again = ranking_cache.kept_scores(vgg, clean, "salience", {"variant": "abs"}, folder=tmp_path)
    assert computed == ["salience"]
    assert list(again) == list(first) and list(first) != sorted(first)  # the order a heatmap draws, not safetensors' sorted one
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert first.keys() == rank_neurons(vgg, clean, "salience", variant="abs").keys()


def test_anything_the_ranking_depends_on_gives_another_key(vgg, clean, monkeypatch):
    key = ranking_cache.scores_key(vgg, clean, "salience", {"variant": "abs"})
    assert ranking_cache.scores_key(vgg, clean, "salience", {"variant": "abs"}) == key
    assert ranking_cache.scores_key(vgg, clean, "salience", {"variant": "squared"}) != key
    assert ranking_cache.scores_key(vgg, clean, "activation", {}) != key
    assert ranking_cache.scores_key(vgg, ImageSet(clean.x, (clean.y + 1) % 4), "salience", {"variant": "abs"}) != key
    assert ranking_cache.scores_key(vgg, ImageSet(clean.x.flip(0), clean.y), "salience", {"variant": "abs"}) != key
    assert ranking_cache.scores_key(vgg, ImageSet(clean.x.reshape(12, 3, 4, 16), clean.y), "salience", {"variant": "abs"}) != key
    changed = build_model(ModelConfig("smallvgg"), (3, 8, 8), 4).eval()
    changed.load_state_dict(vgg.state_dict())
    assert ranking_cache.scores_key(changed, clean, "salience", {"variant": "abs"}) == key
    with torch.no_grad():
        changed.net.fc2.bias[0] += 1e-6
    assert ranking_cache.scores_key(changed, clean, "salience", {"variant": "abs"}) != key
    monkeypatch.setattr(ranking_cache, "code_version", lambda: "another library")
    assert ranking_cache.scores_key(vgg, clean, "salience", {"variant": "abs"}) != key


def test_the_trigger_is_part_of_the_key_only_for_a_ranking_that_reads_it(vgg, clean):
    attacks = [build_attack(AttackConfig.of("badnets", target=t), (3, 8, 8), 4) for t in (0, 1)]
    assert ranking_cache.scores_key(vgg, clean, "tac", {}, attacks[0]) != ranking_cache.scores_key(vgg, clean, "tac", {}, attacks[1])
    assert ranking_cache.scores_key(vgg, clean, "activation", {}, attacks[0]) == ranking_cache.scores_key(vgg, clean, "activation", {})


def test_the_thread_count_is_part_of_the_key(vgg, clean):
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = ranking_cache.scores_key(vgg, clean, "activation", {})
        torch.set_num_threads(2)
        assert ranking_cache.scores_key(vgg, clean, "activation", {}) != one
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("damage", ["garbage", "another model's ranking", "empty"])
def test_a_file_that_is_not_this_models_ranking_is_computed_again_and_replaced(vgg, clean, computed, tmp_path, damage):
    from safetensors.torch import save_file

    path = tmp_path / f"{ranking_cache.scores_key(vgg, clean, 'activation', {})}.safetensors"
    if damage == "garbage":
        path.write_bytes(b"\x00not a safetensors file")
    elif damage == "another model's ranking":
        save_file({"net.features.0": torch.zeros(3)}, str(path), metadata={"layers": '["net.features.0"]'})
    else:
        path.write_bytes(b"")
    scores = ranking_cache.kept_scores(vgg, clean, "activation", folder=tmp_path)
    assert computed == ["activation"] and scores["net.features.0"].numel() == 64
    assert ranking_cache.kept_scores(vgg, clean, "activation", folder=tmp_path).keys() == scores.keys()
    assert computed == ["activation"]  # the damaged file was replaced by a good one


def test_off_keeps_nothing_and_the_default_folder_is_beside_the_model_cache(vgg, clean, computed, monkeypatch, tmp_path):
    monkeypatch.setenv("PURIFY_LAB_RANKINGS", "off")
    monkeypatch.setenv("PURIFY_LAB_CACHE", str(tmp_path))
    assert ranking_cache.ranking_dir() is None
    ranking_cache.kept_scores(vgg, clean, "activation")
    ranking_cache.kept_scores(vgg, clean, "activation")
    assert computed == ["activation", "activation"] and list(tmp_path.iterdir()) == []
    monkeypatch.delenv("PURIFY_LAB_RANKINGS")
    assert ranking_cache.ranking_dir() == tmp_path / "rankings"


def test_the_folder_is_bounded_and_an_unwritable_one_only_means_no_reuse(vgg, clean, computed, monkeypatch, tmp_path):
    monkeypatch.setattr(ranking_cache, "MAX_FILES", 2)
    for metric in ("activation", "magnitude", "salience"):
        ranking_cache.kept_scores(vgg, clean, metric, folder=tmp_path)
    assert len(list(tmp_path.glob("*.safetensors"))) == 2 and len(list(tmp_path.glob(".lock-*"))) == 3
    import os
    for old in [tmp_path / ".lock-old", tmp_path / ".old.safetensors.x1y2.tmp"]:
        old.write_text("")
        os.utime(old, (1, 1))
    ranking_cache._prune(tmp_path)
    assert len(list(tmp_path.glob(".lock-*"))) == 3 and not (tmp_path / ".lock-old").exists()
    assert not (tmp_path / ".old.safetensors.x1y2.tmp").exists()
    blocked = tmp_path / "a file, not a folder"
    blocked.write_text("")
    scores = ranking_cache.kept_scores(vgg, clean, "activation", folder=blocked)
    assert scores.keys() == rank_neurons(vgg, clean, "activation").keys()


def test_a_ranking_asked_for_while_another_computes_it_waits_and_reads_it(vgg, clean, monkeypatch, tmp_path):
    """The second caller misses the file while the first is still computing, then waits on the lock and reads
    what the first wrote: computed once (without the lock, both would compute)."""
    import threading

    computing, release, third_read = threading.Event(), threading.Event(), threading.Event()
    calls: list[str] = []
    reads: list[int] = []
    read = ranking_cache._read

    def slow(model, data, metric, **kwargs):
        calls.append(metric)
        computing.set()
        release.wait(30)
        return rank_neurons(model, data, metric, **kwargs)

    def counted_read(path, model):
        reads.append(1)
        if len(reads) == 3:  # the first caller's two reads, then the second caller's first (a miss: nothing written yet)
            third_read.set()
        return read(path, model)

    monkeypatch.setattr(ranking_cache, "rank_neurons", slow)
    monkeypatch.setattr(ranking_cache, "_read", counted_read)
    results: list = []
    threads = [threading.Thread(target=lambda: results.append(ranking_cache.kept_scores(vgg, clean, "activation", folder=tmp_path)))
               for _ in range(2)]
    threads[0].start()
    assert computing.wait(30)
    threads[1].start()
    assert third_read.wait(30)
    release.set()
    for thread in threads:
        thread.join(60)
    assert calls == ["activation"] and len(results) == 2
    assert all(torch.equal(results[0][k], results[1][k]) for k in results[0])
