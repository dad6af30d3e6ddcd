"""A DPT decoder for the evaluator: four tapped token maps of the ViT reassembled into a feature pyramid,
fused top-down with RefineNet-style blocks, and a head that predicts one logit per pixel at input resolution.

Reassemble (per tap i): 1x1 conv D -> C_i, then a resampling to H/4 (4x4 transposed conv, stride 4), H/8
(2x2 transposed conv), H/16 (identity) and H/32 (3x3 conv, stride 2); a 3x3 conv (no bias) C_i -> F.
Fusion (coarsest first): `x = x + rcu1(skip)` (when there is a skip), `x = rcu2(x)`, a bilinear upsampling
(align_corners) to the next finer level (x2 after the finest, to H/2), then a 1x1 conv; a residual conv unit
is ReLU, 3x3 conv, ReLU, 3x3 conv, plus its input (no batch norm). Head: 3x3 conv F -> F/2, bilinear
upsampling to H x W, concatenation of the full-resolution guide features, 3x3 conv -> 32, ReLU, 1x1 conv -> 1
logit (no final activation).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResidualConvUnit(nn.Module):
    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(F.relu(x))))


class FusionBlock(nn.Module):
    def __init__(self, features: int, *, has_skip: bool) -> None:
        super().__init__()
        # The coarsest level has nothing to fuse: no first unit (DAv2 builds an unused one; we do not).
        self.rcu1 = ResidualConvUnit(features) if has_skip else None
        self.rcu2 = ResidualConvUnit(features)
        self.out_conv = nn.Conv2d(features, features, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        if skip is not None and self.rcu1 is not None:
            x = x + self.rcu1(skip)
        x = self.rcu2(x)
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTHead(nn.Module):
    """DPT decoder: `forward(maps, size, guide)` with four `[B,D,h,w]` token maps (h = H/16), the padded
    input size `(H, W)` and full-resolution guide features `[B,S,H,W]` -> logits `[B,1,H,W]`."""

    def __init__(self, embed_dim: int, channels: tuple[int, ...], features: int, guide_channels: int) -> None:
        super().__init__()
        if len(channels) != 4:
            raise ValueError(f"DPT needs four reassemble widths, got {list(channels)}")
        c = channels
        self.project = nn.ModuleList(nn.Conv2d(embed_dim, ci, 1) for ci in c)
        self.resample = nn.ModuleList([
            nn.ConvTranspose2d(c[0], c[0], 4, stride=4),
            nn.ConvTranspose2d(c[1], c[1], 2, stride=2),
            nn.Identity(),
            nn.Conv2d(c[3], c[3], 3, stride=2, padding=1),
        ])  # fmt: skip
        self.scratch = nn.ModuleList(nn.Conv2d(ci, features, 3, padding=1, bias=False) for ci in c)
        self.fusion = nn.ModuleList(FusionBlock(features, has_skip=i < 3) for i in range(4))
        self.head1 = nn.Conv2d(features, features // 2, 3, padding=1)
        self.head2 = nn.Conv2d(features // 2 + guide_channels, 32, 3, padding=1)
        self.head3 = nn.Conv2d(32, 1, 1)

    def forward(self, maps: list[torch.Tensor], size: tuple[int, int], guide: torch.Tensor) -> torch.Tensor:
        levels = [scratch(resample(project(m)))
                  for m, project, resample, scratch in zip(maps, self.project, self.resample, self.scratch,
                                                           strict=True)]  # fmt: skip
        l1, l2, l3, l4 = levels
        x = self.fusion[3](l4, None, l3.shape[-2:])
        x = self.fusion[2](x, l3, l2.shape[-2:])
        x = self.fusion[1](x, l2, l1.shape[-2:])
        x = self.fusion[0](x, l1, (2 * l1.shape[-2], 2 * l1.shape[-1]))  # H/2
        x = F.interpolate(self.head1(x), size=size, mode="bilinear", align_corners=True)
        x = F.relu(self.head2(torch.cat((x, guide.to(x.dtype)), dim=1)))
        return self.head3(x)
