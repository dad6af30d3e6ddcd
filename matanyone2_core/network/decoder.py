"""Pixel fusion, the uncertainty predictor, and the mask (alpha) decoder."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import (
    GroupConv2d,
    GroupFeatureFusion,
    GroupResBlock,
    gated_sensory_update,
    interpolate_group,
    run_conv_fp32,
)


class PixelFuser(nn.Module):
    """Fuses pixel memory, compressed (sensory, last mask) and pix_feat into the transformer input."""

    def __init__(self, pixel_dim: int = 256, value_dim: int = 256, sensory_dim: int = 256, in_masks: int = 1):
        super().__init__()
        self.fuser = GroupFeatureFusion(pixel_dim, value_dim, value_dim)
        self.sensory_compress = GroupConv2d(sensory_dim + in_masks, value_dim, 1)

    def forward(
        self, pix_feat: torch.Tensor, pixel_memory: torch.Tensor, sensory: torch.Tensor, last_mask: torch.Tensor
    ) -> torch.Tensor:
        """last_mask `[B,N,H',W']` at full padded size."""
        dtype = pixel_memory.dtype
        small_mask = F.interpolate(last_mask, size=sensory.shape[-2:], mode="area").unsqueeze(2)
        compressed = self.sensory_compress(torch.cat([sensory.to(dtype), small_mask.to(dtype)], dim=2))
        return self.fuser(pix_feat, pixel_memory + compressed)


class UncertaintyPredictor(nn.Module):
    """Per-pixel confidence that the memory readout beats the previous frame's mask value."""

    def __init__(self, pixel_dim: int = 256, value_dim: int = 256):
        super().__init__()
        self.conv1x1_v2 = nn.Conv2d(2 * pixel_dim + 1 + value_dim, 64, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv3x3 = nn.Conv2d(64, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.conv3x3_out = nn.Conv2d(32, 1, 3, padding=1, bias=False)

    def forward(
        self, last_pix_feat: torch.Tensor, pix_feat: torch.Tensor, last_mask: torch.Tensor, value_diff: torch.Tensor
    ) -> torch.Tensor:
        """Returns the confidence `[B,1,h,w]` (sigmoid of the logit)."""
        small_mask = F.interpolate(last_mask, size=pix_feat.shape[-2:], mode="area")
        x = torch.cat([last_pix_feat, pix_feat, small_mask.to(pix_feat.dtype), value_diff], dim=1)
        x = F.relu(self.bn1(self.conv1x1_v2(x)))
        x = F.relu(self.bn2(self.conv3x3(x)))
        return torch.sigmoid(self.conv3x3_out(x))


class _SkipProjections(nn.Module):
    def __init__(self, in_dims: list[int], out_dims: list[int]):
        super().__init__()
        self.transforms = nn.ModuleList(nn.Conv2d(i, o, 1) for i, o in zip(in_dims, out_dims, strict=True))

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        return [t(f) for t, f in zip(self.transforms, features, strict=True)]


class _UpsampleBlock(nn.Module):
    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.out_conv = GroupResBlock(in_dim, out_dim)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = interpolate_group(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.out_conv(x + skip.unsqueeze(1))


class _SensoryUpdater(nn.Module):
    """Sensory update from every decoder scale (area-reduced to stride 16) and the raw alpha logit."""

    def __init__(self, in_dims: list[int], sensory_dim: int = 256):
        super().__init__()
        self.g16_conv = GroupConv2d(in_dims[0], sensory_dim, 1)
        self.g8_conv = GroupConv2d(in_dims[1], sensory_dim, 1)
        self.g4_conv = GroupConv2d(in_dims[2], sensory_dim, 1)
        self.g2_conv = GroupConv2d(in_dims[3], sensory_dim, 1)
        self.g1_conv = GroupConv2d(in_dims[4], sensory_dim, 1)
        self.transform = GroupConv2d(2 * sensory_dim, 3 * sensory_dim, 3, padding=1)

    def forward(self, scales: list[torch.Tensor], sensory: torch.Tensor) -> torch.Tensor:
        p16, p8, p4, p2, p1 = scales

        def down(x: torch.Tensor, factor: float) -> torch.Tensor:
            return interpolate_group(x, scale_factor=factor, mode="area")

        g = self.g16_conv(p16) + self.g8_conv(down(p8, 1 / 2)) + self.g4_conv(down(p4, 1 / 4))
        g = g + self.g2_conv(down(p2, 1 / 8)) + self.g1_conv(down(p1, 1 / 16))
        gates = run_conv_fp32(self.transform, torch.cat([g.float(), sensory.float()], dim=2))
        return gated_sensory_update(gates, sensory)


class MaskDecoder(nn.Module):
    """Four x2 up-sampling stages to full resolution, the alpha head, and the decoder's sensory update."""

    def __init__(self, ms_dims: tuple[int, ...] = (1024, 512, 256, 64, 3), up_dims=(256, 128, 128, 64, 16)):
        super().__init__()
        self.sensory_update = _SensoryUpdater([*up_dims[:4], up_dims[4] + 1], 256)
        self.decoder_feat_proc = _SkipProjections(list(ms_dims[1:]), list(up_dims[:-1]))
        self.up_16_8 = _UpsampleBlock(up_dims[0], up_dims[1])
        self.up_8_4 = _UpsampleBlock(up_dims[1], up_dims[2])
        self.up_4_2 = _UpsampleBlock(up_dims[2], up_dims[3])
        self.up_2_1 = _UpsampleBlock(up_dims[3], up_dims[4])
        self.pred_seg = nn.Conv2d(up_dims[-1], 1, 3, padding=1)
        self.pred_mat = nn.Conv2d(up_dims[-1], 1, 3, padding=1)

    def forward(
        self, features: tuple[torch.Tensor, ...], readout: torch.Tensor, sensory: torch.Tensor, *, update_sensory: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (sensory, alpha `[B,N,H',W']` fp32 clamped to [0, 1])."""
        b, n = readout.shape[:2]
        f8, f4, f2, f1 = self.decoder_feat_proc(list(features[1:]))
        p8 = self.up_16_8(readout, f8)
        p4 = self.up_8_4(p8, f4)
        p2 = self.up_4_2(p4, f2)
        p1 = self.up_2_1(p2, f1)
        raw = run_conv_fp32(self.pred_mat, F.relu(p1.flatten(0, 1).float())).view(b, n, 1, *p1.shape[-2:])
        if update_sensory:
            head_in = torch.cat([p1.float(), raw], dim=2)
            sensory = self.sensory_update([readout, p8, p4, p2, head_in.to(p1.dtype)], sensory)
        alpha = raw[:, :, 0]
        clamped = alpha.clamp(0.0, 1.0)
        if alpha.requires_grad:
            # Training: the clamp's value, the gradient of the unclamped output (straight through), so that a
            # pixel pushed outside 0..1 still gets a gradient back; without autograd nothing changes.
            clamped = clamped.detach() + (alpha - alpha.detach())
        return sensory, clamped
