"""ResNet trunks (torchvision "v1.5" layout and attribute names), truncated after layer3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _projection(in_dim: int, out_dim: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, stride=stride, bias=False), nn.BatchNorm2d(out_dim))


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (carries the stride) -> 1x1 to 4x width, each with BatchNorm; residual add."""

    def __init__(self, in_dim: int, width: int, stride: int):
        super().__init__()
        out_dim = width * 4
        self.conv1 = nn.Conv2d(in_dim, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_dim, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_dim)
        needs_projection = stride != 1 or in_dim != out_dim
        self.downsample = _projection(in_dim, out_dim, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        out += x if self.downsample is None else self.downsample(x)
        return out.relu_()


class BasicBlock(nn.Module):
    """Two 3x3 convs with BatchNorm; residual add."""

    def __init__(self, in_dim: int, out_dim: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_dim, out_dim, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        needs_projection = stride != 1 or in_dim != out_dim
        self.downsample = _projection(in_dim, out_dim, stride) if needs_projection else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        out += x if self.downsample is None else self.downsample(x)
        return out.relu_()


def bottleneck_stage(in_dim: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_dim, width, stride)]
    layers += [Bottleneck(width * 4, width, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def basic_stage(in_dim: int, out_dim: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(in_dim, out_dim, stride)]
    layers += [BasicBlock(out_dim, out_dim, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)
