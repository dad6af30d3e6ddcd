"""Small building blocks shared by the MatAnyone 2 modules.

"Group" tensors carry an object axis: `[B, N, C, H, W]`. Group convolutions are plain convolutions applied
after merging B and N, so their weights are ordinary conv weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class GroupConv2d(nn.Conv2d):
    """A Conv2d over `[B, N, C, H, W]` tensors (objects merged into the batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        b, n = x.shape[:2]
        y = super().forward(x.flatten(0, 1))
        return y.view(b, n, *y.shape[1:])


def interpolate_group(x: torch.Tensor, **kwargs) -> torch.Tensor:
    """`F.interpolate` over a group tensor `[B, N, C, H, W]`."""
    b, n = x.shape[:2]
    y = F.interpolate(x.flatten(0, 1), **kwargs)
    return y.view(b, n, *y.shape[1:])


def _eca_kernel_size(channels: int) -> int:
    t = int((abs(math.log2(channels)) + 1) // 2)
    return t if t % 2 else t + 1


class ChannelAttentionResBlock(nn.Module):
    """Two 3x3 convs, an ECA-style channel gate from a 1-D conv over channel means, identity shortcut."""

    def __init__(self, channels: int):
        super().__init__()
        k = _eca_kernel_size(channels)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv = nn.Conv1d(1, 1, kernel_size=k, padding=(k - 1) // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = x
        x = self.conv2(F.relu(self.conv1(F.relu(x))))
        b, c = x.shape[:2]
        gate = torch.sigmoid(self.conv(x.mean(dim=(2, 3)).view(b, 1, c))).view(b, c, 1, 1)
        return x * gate + r


class GroupResBlock(nn.Module):
    """Residual block of two 3x3 group convs; 1x1 group-conv shortcut when the width changes."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.downsample = GroupConv2d(in_dim, out_dim, 1) if in_dim != out_dim else None
        self.conv1 = GroupConv2d(in_dim, out_dim, 3, padding=1)
        self.conv2 = GroupConv2d(out_dim, out_dim, 3, padding=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        out = self.conv2(F.relu(self.conv1(F.relu(g))))
        return out + (g if self.downsample is None else self.downsample(g))


class FeatureDistributor(nn.Module):
    """Adds a shared per-frame feature (1x1 conv) to each object's feature (1x1 group conv)."""

    def __init__(self, x_dim: int, g_dim: int, out_dim: int):
        super().__init__()
        self.x_transform = nn.Conv2d(x_dim, out_dim, 1)
        self.g_transform = GroupConv2d(g_dim, out_dim, 1)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        return self.x_transform(x).unsqueeze(1) + self.g_transform(g)


class GroupFeatureFusion(nn.Module):
    """Distributor followed by two channel-attention residual blocks on the merged batch."""

    def __init__(self, x_dim: int, g_dim: int, out_dim: int):
        super().__init__()
        self.distributor = FeatureDistributor(x_dim, g_dim, out_dim)
        self.block1 = ChannelAttentionResBlock(out_dim)
        self.block2 = ChannelAttentionResBlock(out_dim)

    def forward(self, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        y = self.distributor(x, g)
        b, n = y.shape[:2]
        y = self.block2(self.block1(y.flatten(0, 1)))
        return y.view(b, n, *y.shape[1:])


def gated_sensory_update(gates: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
    """GRU-like update from a 3*C-channel group tensor (forget, update, candidate), in fp32."""
    c = sensory.shape[2]
    gates = gates.float()
    forget = torch.sigmoid(gates[:, :, :c])
    update = torch.sigmoid(gates[:, :, c : 2 * c])
    candidate = torch.tanh(gates[:, :, 2 * c :])
    return forget * sensory.float() * (1 - update) + update * candidate


class SensoryDeepUpdate(nn.Module):
    """Sensory update from concat(value, old sensory) through a 3x3 group conv and the gate (fp32)."""

    def __init__(self, in_dim: int, sensory_dim: int):
        super().__init__()
        self.transform = GroupConv2d(in_dim + sensory_dim, sensory_dim * 3, 3, padding=1)

    def forward(self, value: torch.Tensor, sensory: torch.Tensor) -> torch.Tensor:
        x = torch.cat([value.float(), sensory.float()], dim=2)
        return gated_sensory_update(_conv_fp32(self.transform, x), sensory)


def _conv_fp32(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Run a (group) conv in fp32 whatever the module's storage dtype (the official fp32-protected regions)."""
    weight = conv.weight.float()
    bias = None if conv.bias is None else conv.bias.float()
    if isinstance(conv, GroupConv2d):
        b, n = x.shape[:2]
        y = F.conv2d(x.flatten(0, 1).float(), weight, bias, conv.stride, conv.padding)
        return y.view(b, n, *y.shape[1:])
    return F.conv2d(x.float(), weight, bias, conv.stride, conv.padding)


run_conv_fp32 = _conv_fp32


def sine_position_code(
    inv_freq: torch.Tensor, height: int, width: int, scale: float, dtype: torch.dtype
) -> torch.Tensor:
    """2-D sine code `[H, W, 4*len(inv_freq)]`: x-code then y-code, each interleaved sin/cos."""
    device = inv_freq.device
    inv_freq = inv_freq.float()

    def axis_code(length: int) -> torch.Tensor:
        pos = torch.arange(length, device=device, dtype=torch.float32)
        denom = torch.tensor(length - 1, dtype=torch.float32) + torch.tensor(1e-6, dtype=torch.float32)
        pos = pos / denom.to(device) * scale
        angles = pos[:, None] * inv_freq[None, :]
        return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)

    x_code = axis_code(width)[None, :, :].expand(height, width, -1)
    y_code = axis_code(height)[:, None, :].expand(height, width, -1)
    return torch.cat([x_code, y_code], dim=-1).to(dtype)


class SinePositionEncoding(nn.Module):
    """Holds the checkpoint's `inv_freq` buffer (64 frequencies for a 256-channel code)."""

    def __init__(self, channels: int, scale: float, temperature: float):
        super().__init__()
        d = 2 * math.ceil(channels / 4)
        self.scale = scale
        inv_freq = 1.0 / (temperature ** (torch.arange(0, d, 2, dtype=torch.float32) / d))
        self.register_buffer("inv_freq", inv_freq, persistent=True)

    def code(self, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        return sine_position_code(self.inv_freq, height, width, self.scale, dtype)
