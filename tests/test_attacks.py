"""Triggers pixel by pixel, poisoning counts, and bad attack parameters."""

from __future__ import annotations

import math

import pytest
import torch

from purify_core.attacks import ATTACKS, build_attack
from purify_core.attacks.wanet import identity_grid, warp
from purify_core.config import AttackConfig
from purify_core.data.image_set import ImageSet
from purify_core.errors import UserInputError

SHAPE = (1, 8, 8)


def ramp(n: int = 2, shape: tuple[int, int, int] = SHAPE) -> torch.Tensor:
    """Known images: pixel k of image i is ((k + i) mod 7) / 7."""
    numel = math.prod(shape)
    return torch.stack([((torch.arange(numel) + i) % 7).float().reshape(shape) / 7 for i in range(n)])


def attack(name: str, shape=SHAPE, **params):
    return build_attack(AttackConfig.of(name, target=3, poison_rate=0.1, **params), shape, 10)


def test_badnets_stamps_the_checkerboard_in_the_bottom_right_corner_and_nothing_else():
    x = ramp()
    out = attack("badnets", size=3, margin=1).apply(x)
    expected = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0]])
    assert torch.equal(out[:, 0, 4:7, 4:7], expected.expand(2, 3, 3))
    keep = torch.ones(8, 8, dtype=torch.bool)
    keep[4:7, 4:7] = False
    assert torch.equal(out[:, 0][:, keep], x[:, 0][:, keep])
    assert torch.equal(x, ramp()), "apply must not change its input"


@pytest.mark.parametrize(
    "position, top, left", [("top-left", 0, 0), ("top-right", 0, 6), ("bottom-left", 6, 0), ("center", 3, 3)]
)
def test_badnets_positions(position, top, left):
    out = attack("badnets", size=2, margin=0, pattern="white", position=position).apply(torch.zeros(1, *SHAPE))
    assert torch.nonzero(out[0, 0]).tolist() == [[top + i, left + j] for i in range(2) for j in range(2)]


def test_blended_mixes_the_seeded_noise_with_alpha():
    x = ramp()
    a = attack("blended", alpha=0.25, pattern_seed=7)
    noise = torch.rand(*SHAPE, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(a.apply(x), 0.75 * x + 0.25 * noise, atol=0, rtol=0)
    assert torch.equal(a.render_trigger(), noise)


def test_blended_stripes_pattern_exact():
    out = attack("blended", alpha=0.5, pattern="stripes").apply(torch.zeros(1, *SHAPE))
    assert out[0, 0, 5].tolist() == [0.5, 0.5, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0]


def test_sig_adds_the_sinusoid_and_clips():
    x = torch.full((1, *SHAPE), 0.9)
    out = attack("sig", delta=0.2, frequency=2).apply(x)
    for j in range(8):
        v = 0.2 * math.sin(2 * math.pi * j * 2 / 8)
        assert out[0, 0, 3, j].item() == pytest.approx(min(1.0, max(0.0, 0.9 + v)), abs=1e-6)
    assert out.max() <= 1.0 and out.min() >= 0.0


def test_warp_by_one_pixel_shifts_the_image_exactly():
    x = ramp(1)
    grid = identity_grid(8, 8).clone()
    grid[..., 0] += 2 / 7  # one pixel to the right in align_corners=True coordinates
    out = warp(x, grid)
    assert torch.allclose(out[..., :, :7], x[..., :, 1:], atol=1e-6)
    assert torch.allclose(out[..., :, 7], x[..., :, 7], atol=1e-6), "the border pixel repeats"


def test_wanet_field_is_seeded_small_and_zero_strength_is_identity():
    x = ramp(3)
    assert torch.allclose(attack("wanet", strength=0.0, grid_size=2).apply(x), x, atol=1e-6)
    a, b = attack("wanet", grid_size=4, pattern_seed=1), attack("wanet", grid_size=4, pattern_seed=1)
    assert torch.equal(a.grid, b.grid)
    shift_pixels = (a.grid - identity_grid(8, 8)).abs().max() * 7 / 2
    assert 0 < shift_pixels < 2, "a strength-1 warp moves pixels by at most a pixel or two"
    assert not torch.allclose(a.apply(x), x)


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_poison_rate_is_respected_and_labels_follow_the_attack(name):
    labels = torch.arange(200) % 10
    train = ImageSet(torch.rand(200, *SHAPE), labels)
    a = build_attack(AttackConfig.of(name, target=3, poison_rate=0.05), SHAPE, 10)
    poisoned = a.poison(train, seed=0)
    idx = poisoned.poisoned_index
    assert len(idx) == 10
    assert torch.equal(poisoned.images.x[idx], a.apply(train.x[idx]))
    untouched = torch.ones(200, dtype=torch.bool)
    untouched[idx] = False
    assert torch.equal(poisoned.images.x[untouched], train.x[untouched])
    if a.clean_label:
        assert (labels[idx] == 3).all(), "a clean-label attack poisons only target-class images"
        assert torch.equal(poisoned.images.y, labels)
    else:
        assert (labels[idx] != 3).all() and (poisoned.images.y[idx] == 3).all()
        assert torch.equal(poisoned.images.y[untouched], labels[untouched])
    assert torch.equal(idx, a.poison(train, seed=0).poisoned_index), "same seed, same images"
    assert not torch.equal(idx, a.poison(train, seed=1).poisoned_index)


def test_sig_cannot_poison_more_than_the_target_class():
    train = ImageSet(torch.rand(100, *SHAPE), torch.arange(100) % 10)
    with pytest.raises(UserInputError, match="only 10 target-class images"):
        build_attack(AttackConfig.of("sig", target=3, poison_rate=0.2), SHAPE, 10).poison(train, 0)


def test_wanet_noise_mode_adds_warped_images_with_true_labels():
    labels = torch.arange(100) % 10
    train = ImageSet(ramp(100), labels)
    a = attack("wanet", cross_ratio=2.0)
    poisoned = a.poison(train, seed=0)
    changed = (poisoned.images.x != train.x).flatten(1).any(1)
    assert int(changed.sum()) == 10 + 20
    relabelled = poisoned.images.y != labels
    assert int(relabelled.sum()) == 10, "noise-mode images keep their label"


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: AttackConfig.of("badnets", poison_rate=0.0), "poison rate must be in"),
        (lambda: AttackConfig.of("badnets", poison_rate=0.6), "poison rate must be in"),
        (lambda: AttackConfig.of("badnets", target=-1), "target class"),
        (lambda: attack("badnets", size=9), "does not fit"),
        (lambda: attack("badnets", position="middle"), "choose one of"),
        (lambda: attack("badnets", colour=3), "has no parameter colour"),
        (lambda: attack("blended", alpha=0), "must be >= 0.01"),
        (lambda: attack("blended", alpha="lots"), "must be a float"),
        (lambda: attack("blended", pattern="/no/such/file.png"), "does not exist"),
        (lambda: attack("wanet", grid_size=9), "larger than"),
        (lambda: attack("nope"), "unknown attack"),
        (lambda: build_attack(AttackConfig.of("sig", target=10), SHAPE, 10), "out of range"),
    ],
)
def test_bad_attack_settings_raise_a_clear_error(build, message):
    with pytest.raises(UserInputError, match=message):
        build()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_render_trigger_is_one_image_in_range(name):
    picture = attack(name).render_trigger()
    assert picture.shape == SHAPE and picture.min() >= 0 and picture.max() <= 1
    assert set(attack(name).describe()) >= {"name", "target", "poison_rate", "params", "summary"}
