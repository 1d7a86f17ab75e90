"""The zoo: deterministic builds, the on-disk cache, shipped checkpoints and their cards."""

from __future__ import annotations

import shutil

import pytest
import torch

from purify_core.config import scenario_preset
from purify_core.errors import ChecksumMismatchError, UserInputError
from purify_core.store.backdoored import train_scenario
from purify_core.store.model_store import load_or_train
from purify_core.store.zoo import SHIPPED_ATTACKS, ZOO_DIR, build, list_zoo, load_shipped, verify

TINY = scenario_preset("tiny", "badnets")


def test_a_build_is_deterministic_and_learns_the_backdoor(tmp_path):
    first = build(TINY, tmp_path / "a", with_clean_reference=False)
    second = build(TINY, tmp_path / "b", with_clean_reference=False)
    assert first.card.sha256 == second.card.sha256 and len(first.card.sha256) == 64
    assert (tmp_path / "a" / f"{TINY.name}.safetensors").read_bytes() == (tmp_path / "b" / f"{TINY.name}.safetensors").read_bytes()
    assert first.card.acc > 90 and first.card.asr > 90
    assert first.card.n_poisoned == round(0.1 * first.card.n_train)


def test_building_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for _ in zip(range(3), train_scenario(TINY, with_clean_reference=False)):
        pass
    assert torch.equal(torch.rand(3), expected)


def test_load_or_train_trains_once_then_loads_from_the_cache(tmp_path):
    seen = []
    trained = load_or_train(TINY, cache_dir=tmp_path, on_progress=seen.append, device="cpu")
    assert seen and seen[-1].result is not None and 0 < seen[0].fraction <= seen[-2].fraction <= 1
    cached = list(tmp_path.glob("*.safetensors"))
    assert len(cached) == 1 and TINY.fingerprint in cached[0].name
    again = load_or_train(TINY, cache_dir=tmp_path, on_progress=lambda _: pytest.fail("should load, not train"), device="cpu")
    assert again.card.sha256 == trained.card.sha256
    for a, b in zip(trained.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a.cpu(), b.cpu())


def test_a_corrupted_cached_checkpoint_is_refused_not_used(tmp_path):
    load_or_train(TINY, cache_dir=tmp_path, device="cpu")
    weights = next(tmp_path.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ChecksumMismatchError):
        load_or_train(TINY, cache_dir=tmp_path, device="cpu")


def test_every_shipped_scenario_is_there_with_a_full_card():
    cards = {c.name: c for c in list_zoo()}
    assert set(cards) >= {f"mnist5k-smallcnn-{a}" for a in SHIPPED_ATTACKS}
    for card in cards.values():
        assert card.asr >= 95, card.name
        assert card.clean_acc is not None and card.acc >= card.clean_acc - 1.5, card.name
        assert card.train_seconds > 0 and card.versions["torch"] and len(card.sha256) == 64


def test_load_or_train_uses_the_shipped_checkpoint(tmp_path):
    shipped = load_or_train(scenario_preset("demo", "badnets"), cache_dir=tmp_path, device="cpu")
    assert shipped.card.sha256 == load_shipped("mnist5k-smallcnn-badnets").card.sha256
    assert not list(tmp_path.iterdir()), "nothing trained, nothing cached"


def test_a_shipped_checkpoint_with_a_wrong_sha256_is_refused(tmp_path):
    name = "mnist5k-smallcnn-blended"
    shutil.copy(ZOO_DIR / f"{name}.json", tmp_path)
    raw = bytearray((ZOO_DIR / f"{name}.safetensors").read_bytes())
    raw[len(raw) // 2] ^= 0x01
    (tmp_path / f"{name}.safetensors").write_bytes(bytes(raw))
    with pytest.raises(ChecksumMismatchError, match="corrupted"):
        load_shipped(name, tmp_path)
    [result] = verify(tmp_path)
    assert not result.ok and "sha256" in result.message
    with pytest.raises(UserInputError, match="no shipped scenario named 'nope'"):
        load_shipped("nope", tmp_path)


def test_the_cache_listing_skips_bad_cards_and_names_that_are_no_model_names(tmp_path):
    from purify_core.store.model_store import list_built

    shipped = ZOO_DIR / "mnist5k-smallcnn-badnets"
    for stem in ("ok", "weird name", "deep"):
        shutil.copy(shipped.with_suffix(".json"), tmp_path / f"{stem}.json")
        shutil.copy(shipped.with_suffix(".safetensors"), tmp_path / f"{stem}.safetensors")
    (tmp_path / "deep.json").write_text("[" * 50_000 + "]" * 50_000)
    assert [card.name for card in list_built(tmp_path)] == ["ok"]


def test_training_under_a_name_that_holds_other_settings_is_refused_before_training(tmp_path):
    shutil.copy(ZOO_DIR / "mnist5k-smallcnn-badnets.json", tmp_path)
    other = scenario_preset("demo", "badnets")
    other = type(other)(data=other.data, model=other.model, attack=other.attack, train=type(other.train)(epochs=1), seed=0)
    with pytest.raises(UserInputError, match="already holds a model named mnist5k-smallcnn-badnets trained with other settings"):
        build(other, tmp_path, on_progress=lambda item: pytest.fail("it started training"))
    assert (tmp_path / "mnist5k-smallcnn-badnets.json").read_bytes() == (ZOO_DIR / "mnist5k-smallcnn-badnets.json").read_bytes()
