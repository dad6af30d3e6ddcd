"""The MatAnyone 2 network: module names and shapes match the official checkpoint's state dict."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .blocks import GroupConv2d
from .decoder import MaskDecoder, PixelFuser, UncertaintyPredictor
from .encoders import KeyProjection, MaskEncoder, PixelEncoder
from .transformer import ObjectSummarizer, ObjectTransformer

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _AuxComputer(nn.Module):
    """Training-only auxiliary head; kept so the checkpoint's keys load strictly."""

    def __init__(self):
        super().__init__()
        self.sensory_aux = nn.Module()
        self.sensory_aux.projection = GroupConv2d(256, 257, 1)


@dataclass
class FrameFeatures:
    """Everything the engine needs from one encoded (padded) frame."""

    image: torch.Tensor  # [1,3,H',W'] in [0,1]
    multiscale: tuple[torch.Tensor, ...]  # f16, f8, f4, f2, f1 (f1 = normalised image)
    pix_feat: torch.Tensor  # [1,256,h,w]
    key: torch.Tensor  # [1,64,h,w]
    shrinkage: torch.Tensor  # [1,1,h,w]
    selection: torch.Tensor  # [1,64,h,w]


class MatAnyone2Network(nn.Module):
    """Single-object MatAnyone 2 (identical in structure to MatAnyone 1)."""

    def __init__(self):
        super().__init__()
        self.pixel_encoder = PixelEncoder()
        self.pix_feat_proj = nn.Conv2d(1024, 256, 1)
        self.key_proj = KeyProjection(1024, 256, 64)
        self.mask_encoder = MaskEncoder(256, 256, 256, in_masks=1)
        self.mask_decoder = MaskDecoder()
        self.pixel_fuser = PixelFuser(256, 256, 256, in_masks=1)
        self.object_transformer = ObjectTransformer()
        self.object_summarizer = ObjectSummarizer()
        self.aux_computer = _AuxComputer()
        self.temp_sparity = UncertaintyPredictor()
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(3, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pix_feat_proj.weight.device

    @property
    def compute_dtype(self) -> torch.dtype:
        return self.pix_feat_proj.weight.dtype

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        return ((image - self.pixel_mean) / self.pixel_std).to(self.compute_dtype)

    def encode_image(self, image: torch.Tensor) -> FrameFeatures:
        """image `[1,3,H',W']` in [0,1], padded to multiples of 16."""
        multiscale = self.pixel_encoder(self.normalize(image))
        key, shrinkage, selection = self.key_proj(multiscale[0])
        return FrameFeatures(image, multiscale, self.pix_feat_proj(multiscale[0]), key, shrinkage, selection)

    def encode_images(self, images: torch.Tensor) -> list[FrameFeatures]:
        """`encode_image` for a batch `[B,3,H',W']` in one pass (the pixel encoder does not depend on memory),
        split into one FrameFeatures per frame (views of the batch)."""
        multiscale = self.pixel_encoder(self.normalize(images))
        key, shrinkage, selection = self.key_proj(multiscale[0])
        pix_feat = self.pix_feat_proj(multiscale[0])
        return [
            FrameFeatures(images[i : i + 1], tuple(f[i : i + 1] for f in multiscale), pix_feat[i : i + 1],
                          key[i : i + 1], shrinkage[i : i + 1], selection[i : i + 1])
            for i in range(images.shape[0])
        ]  # fmt: skip

    def encode_mask(
        self, frame: FrameFeatures, sensory: torch.Tensor, masks: torch.Tensor, *, deep_update: bool
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (mask value, sensory, object summaries) for `masks` `[1,N,H',W']` in [0,1]."""
        value, sensory = self.mask_encoder(
            frame.multiscale[-1], frame.pix_feat, sensory, masks, deep_update=deep_update
        )
        return value, sensory, self.object_summarizer(masks, value)

    def predict(
        self,
        frame: FrameFeatures,
        pixel_memory: torch.Tensor,
        sensory: torch.Tensor,
        last_mask: torch.Tensor,
        summaries: torch.Tensor,
        *,
        update_sensory: bool,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pixel fusion -> object transformer -> decoder. Returns (sensory, alpha `[1,N,H',W']`)."""
        fused = self.pixel_fuser(frame.pix_feat, pixel_memory.to(self.compute_dtype), sensory, last_mask)
        readout = self.object_transformer(fused, summaries)
        return self.mask_decoder(frame.multiscale, readout, sensory, update_sensory=update_sensory)

    def confidence(
        self, last_pix_feat: torch.Tensor, frame: FrameFeatures, last_mask: torch.Tensor, value_diff: torch.Tensor
    ) -> torch.Tensor:
        """Uncertainty-guided fusion weight `[B,1,h,w]` for the memory readout.

        last_mask `[B,1,H',W']` and value_diff `[B,C,h,w]` are per object (objects along B); the pixel
        features of one frame (batch 1) are shared by all of them.
        """
        b = last_mask.shape[0]
        last_pix_feat, pix_feat = last_pix_feat.expand(b, -1, -1, -1), frame.pix_feat.expand(b, -1, -1, -1)
        return self.temp_sparity(last_pix_feat, pix_feat, last_mask, value_diff.to(self.compute_dtype))
