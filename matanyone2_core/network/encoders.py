"""Image side (ResNet-50 pixel encoder, key projection) and mask side (ResNet-18 mask encoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import GroupFeatureFusion, SensoryDeepUpdate
from .resnet import basic_stage, bottleneck_stage


class PixelEncoder(nn.Module):
    """ResNet-50 stem + stages 1-3 (stage 1 is named `res2`). Returns (f16, f8, f4, f2, f1)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.res2 = bottleneck_stage(64, 64, 3, 1)
        self.layer2 = bottleneck_stage(256, 128, 4, 2)
        self.layer3 = bottleneck_stage(512, 256, 6, 2)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        f2 = F.relu(self.bn1(self.conv1(image)))
        f4 = self.res2(F.max_pool2d(f2, 3, stride=2, padding=1))
        f8 = self.layer2(f4)
        f16 = self.layer3(f8)
        return f16, f8, f4, f2, image


class KeyProjection(nn.Module):
    """Memory key, shrinkage (>= 1) and selection (in (0, 1)) from the stride-16 features."""

    def __init__(self, in_dim: int = 1024, mid_dim: int = 256, key_dim: int = 64):
        super().__init__()
        self.pix_feat_proj = nn.Conv2d(in_dim, mid_dim, 1)
        self.key_proj = nn.Conv2d(mid_dim, key_dim, 3, padding=1)
        self.d_proj = nn.Conv2d(mid_dim, 1, 3, padding=1)
        self.e_proj = nn.Conv2d(mid_dim, key_dim, 3, padding=1)

    def forward(self, f16: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pix_feat_proj(f16)
        shrinkage = self.d_proj(x) ** 2 + 1
        selection = torch.sigmoid(self.e_proj(x))
        return self.key_proj(x), shrinkage, selection


class MaskEncoder(nn.Module):
    """ResNet-18 trunk on (normalised image, mask) per object, fused with pix_feat into a mask value."""

    def __init__(self, pixel_dim: int = 256, value_dim: int = 256, sensory_dim: int = 256, in_masks: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(3 + in_masks, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.layer1 = basic_stage(64, 64, 2, 1)
        self.layer2 = basic_stage(64, 128, 2, 2)
        self.layer3 = basic_stage(128, 256, 2, 2)
        self.fuser = GroupFeatureFusion(pixel_dim, 256, value_dim)
        self.sensory_update = SensoryDeepUpdate(value_dim, sensory_dim)

    def forward(
        self,
        normalized_image: torch.Tensor,
        pix_feat: torch.Tensor,
        sensory: torch.Tensor,
        masks: torch.Tensor,
        *,
        deep_update: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (mask value `[B,N,C,h,w]`, sensory after the optional deep update)."""
        b, n = masks.shape[:2]
        # One image for every mask: the engine may batch objects along B (one image, B masks).
        image = normalized_image.unsqueeze(1).expand(b, n, -1, -1, -1)
        g = torch.cat([image, masks.unsqueeze(2).to(image.dtype)], dim=2).flatten(0, 1)
        g = F.relu(F.max_pool2d(self.bn1(self.conv1(g)), 3, stride=2, padding=1))
        g = self.layer3(self.layer2(self.layer1(g)))
        value = self.fuser(pix_feat, g.view(b, n, *g.shape[1:]))
        if deep_update:
            sensory = self.sensory_update(value, sensory)
        return value, sensory
