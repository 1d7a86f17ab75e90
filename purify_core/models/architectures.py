"""Image classifiers. No I/O here: weights are loaded and saved by `zoo`.

Every model is an `ImageClassifier`: a `Normalize` step (the dataset's mean and std, stored as
buffers so a checkpoint carries them) followed by the network. Inputs are pixels in [0, 1], the
space triggers live in. Neuron-bearing layers keep readable names (`net.conv1`, `net.fc1`), which
is what rankings and the UI key on.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ARCHITECTURES, ModelConfig
from ..errors import UserInputError

__all__ = ["ImageClassifier", "Normalize", "SmallCNN", "SmallVGG", "PreActResNet18", "build_model", "pick_device"]


def pick_device() -> torch.device:
    """`cuda` when a GPU is present, otherwise the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Normalize(nn.Module):
    """(x - mean) / std per channel, with mean and std saved in the state dict."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.reshape(1, -1, 1, 1).clone().float())
        self.register_buffer("std", std.reshape(1, -1, 1, 1).clone().float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ImageClassifier(nn.Module):
    """Normalise, then classify: the wrapper every architecture lives in."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.normalize(x))


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Three 3x3 conv layers (16, 32, 64 channels) and two linear layers: the MNIST default.

    Small enough to train in about a minute on two CPU cores, with enough neurons per layer
    (16 + 32 + 64 conv channels, 128 hidden units) for rankings to mean something.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        if image_size < 4:
            raise UserInputError(f"SmallCNN needs images of at least 4x4 pixels, got {image_size}")
        self.conv1, self.bn1 = nn.Conv2d(in_channels, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv3, self.bn3 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        side = image_size // 4
        self.fc1 = nn.Linear(64 * side * side, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.pool(self.relu(self.bn2(self.conv2(x))))
        x = self.pool(self.relu(self.bn3(self.conv3(x))))
        x = self.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)


class SmallVGG(nn.Module):
    """A VGG-style net for 32x32 colour images: 64-64-pool-128-128-pool-256-256-pool, one hidden layer."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        if image_size % 8:
            raise UserInputError(f"SmallVGG needs an image size divisible by 8, got {image_size}")
        layers: list[nn.Module] = []
        cin = in_channels
        for cout in (64, 64, "pool", 128, 128, "pool", 256, 256, "pool"):
            if cout == "pool":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += _conv_bn(cin, int(cout))
                cin = int(cout)
        self.features = nn.Sequential(*layers)
        self.fc1 = nn.Linear(256 * (image_size // 8) ** 2, 256)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(256, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.features(x).flatten(1))))


class _PreActBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(torch.relu(self.bn2(out)))
        return out + skip


class PreActResNet18(nn.Module):
    """PreAct-ResNet18 (He et al. 2016), the usual backbone of backdoor benchmarks on 32x32 data."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        cin = 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_PreActBlock(cin, cout, stride), _PreActBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(512)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(self.pool(out).flatten(1))


class _RepeatChannels(nn.Module):
    """Feed grey images to a torchvision model that expects three channels."""

    def __init__(self, net: nn.Module, repeats: int) -> None:
        super().__init__()
        self.repeats, self.net = repeats, net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.repeat(1, self.repeats, 1, 1))


def _torchvision_model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    import torchvision

    if name not in torchvision.models.list_models(module=torchvision.models):
        raise UserInputError(f"torchvision has no classifier named {name!r} (see torchvision.models.list_models())")
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
    return _RepeatChannels(net, 3) if in_channels == 1 else net


_BUILTIN = {"smallcnn": SmallCNN, "smallvgg": SmallVGG, "preactresnet18": PreActResNet18}
assert set(_BUILTIN) == set(ARCHITECTURES)


def build_model(
    config: ModelConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    mean: torch.Tensor | None = None,
    std: torch.Tensor | None = None,
) -> ImageClassifier:
    """A fresh, randomly initialised classifier (initialise under `torch.random.fork_rng` to seed it)."""
    channels, height, width = input_shape
    if height != width:
        raise UserInputError(f"models expect square images, got {height}x{width}")
    if config.arch.startswith("tv:"):
        net = _torchvision_model(config.arch[3:], channels, num_classes)
    else:
        net = _BUILTIN[config.arch](channels, num_classes, height)
    mean = torch.zeros(channels) if mean is None else mean
    std = torch.ones(channels) if std is None else std
    return ImageClassifier(net, mean, std)
