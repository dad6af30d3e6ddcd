"""The learned Matting Quality Evaluator (MQE): DINOv3 ViT encoder + DPT decoder -> per-pixel probability that
an alpha matte is wrong, from the frame, the alpha and a segmentation.

How alpha and segmentation enter (the input scheme `INPUT_SCHEME`, see docs/mqe.md for the why):

* **Widened patch embedding.** The backbone's RGB patch conv (DINOv3 weights, ImageNet-normalised RGB) plus a
  second 16x16 / stride-16 conv over `(2*alpha - 1, 2*seg - 1)`, zero-initialised and summed with it: exactly a
  5-channel patch embedding whose alpha/seg weight slices start at zero, so at initialisation the backbone
  sees what DINOv3 was trained on. A separate conv (not slices of one weight) lets the optimiser give the new
  channels the decoder's learning rate (and keep training them when the backbone is frozen).
* **Full-resolution guide.** 16-px patches make the finest DPT feature H/4; hair-level errors (a lost
  one-pixel strand, a hard edge through soft hair) are invisible there. So `(RGB, alpha, seg, |grad alpha|)` at
  full resolution go through two 3x3 convs and are concatenated into the head's last 3x3 conv.

The output is one logit per pixel; `sigmoid(logit)` is the probability of the "erroneous" class (the paper's
P_eval^(0)); the paper's reliable map is `probability < threshold`. Inputs of any size are padded
(replicate) to a multiple of 16 and the output cropped back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..evaluate import check_mattes
from .dinov3 import IMAGENET_MEAN, IMAGENET_STD, VIT_VARIANTS, DINOv3ViT, ViTConfig
from .dpt import DPTHead

INPUT_SCHEME = "patch5-guide6"  # RGB+alpha+seg patch embedding; RGB, alpha, seg, |grad alpha| guide at full res
GUIDE_INPUTS = 6
PRIOR = 0.1  # initial error probability everywhere (the focal-loss prior: training starts near "reliable")


@dataclass(frozen=True)
class MQEConfig:
    """Architecture of an evaluator (stored in its file). `for_backbone` gives the documented defaults."""

    backbone: str = "vits16"
    features: int = 64
    channels: tuple[int, int, int, int] = (48, 96, 192, 384)
    taps: tuple[int, ...] = (2, 5, 8, 11)
    guide_channels: int = 16
    input_scheme: str = INPUT_SCHEME

    @classmethod
    def for_backbone(cls, backbone: str) -> MQEConfig:
        """Defaults: ViT-S/16 F 64, C 48..384; ViT-B/16 F 128, C 96..768; taps 2, 5, 8, 11; tiny for tests."""
        presets = {
            "vits16": cls("vits16", 64, (48, 96, 192, 384), (2, 5, 8, 11)),
            "vitb16": cls("vitb16", 128, (96, 192, 384, 768), (2, 5, 8, 11)),
            "tiny": cls("tiny", 16, (8, 16, 32, 64), (0, 1, 2, 3), 8),
        }
        if backbone not in presets:
            raise ValueError(f"unknown evaluator backbone {backbone!r}; expected one of {sorted(presets)}")
        return presets[backbone]

    @property
    def vit(self) -> ViTConfig:
        return VIT_VARIANTS[self.backbone]

    def validate(self) -> MQEConfig:
        """Self with every field checked (a ValueError names the bad one)."""
        if self.backbone not in VIT_VARIANTS:
            raise ValueError(f"unknown evaluator backbone {self.backbone!r}; expected one of {sorted(VIT_VARIANTS)}")
        if self.input_scheme != INPUT_SCHEME:
            raise ValueError(f"unknown input scheme {self.input_scheme!r}; this version knows {INPUT_SCHEME!r}")
        if len(self.channels) != 4 or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise ValueError(f"channels must be four positive ints, got {list(self.channels)}")
        depth = self.vit.depth
        taps = list(self.taps)
        if len(taps) != 4 or taps != sorted(set(taps)) or not all(isinstance(t, int) and 0 <= t < depth for t in taps):
            raise ValueError(f"taps must be four increasing block indices in 0..{depth - 1}, got {list(self.taps)}")
        for name in ("features", "guide_channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 2 or (name == "features" and value % 2):
                raise ValueError(f"{name} must be an {'even ' if name == 'features' else ''}int >= 2, got {value!r}")
        return self

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> MQEConfig:
        """Parse and check a stored configuration (ValueError on anything unknown or malformed)."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"configuration must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown configuration field(s): {', '.join(unknown)}")
        for key in ("channels", "taps"):
            if key in data:
                if not isinstance(data[key], list):
                    raise ValueError(f"{key} must be a list, got {data[key]!r}")
                data[key] = tuple(data[key])
        return cls(**data).validate()


def gradient_magnitude(alpha: torch.Tensor) -> torch.Tensor:
    """|grad alpha| `[B,1,H,W]` by central differences (the finest scale: one-pixel strands stay visible);
    smooth at zero so that gradients through it are finite."""
    padded = F.pad(alpha, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (padded[..., 1:-1, 2:] - padded[..., 1:-1, :-2])
    gy = 0.5 * (padded[..., 2:, 1:-1] - padded[..., :-2, 1:-1])
    return torch.sqrt(gx * gx + gy * gy + 1e-6)


class MattingQualityEvaluator(nn.Module):
    """The learned evaluator. Called as any evaluator: `mqe(frames [T,H,W,3], alpha [T,H,W], seg [T,H,W])` ->
    error probability `[T,H,W]` (float32, on the evaluator's device, differentiable in `alpha`), RGB in 0..1
    (ImageNet-normalised inside). `logits(images [B,3,H,W], alpha [B,H,W], seg [B,H,W])` is the training entry.

    `threshold` is the flag threshold stored with the evaluator (`reliable_map(error, mqe.threshold)`);
    `batch_size` frames go through at a time; `amp` runs CUDA inference under bf16 autocast.
    """

    def __init__(self, config: MQEConfig | None = None, *, threshold: float = 0.5) -> None:
        super().__init__()
        self.config = (config or MQEConfig()).validate()
        vit = self.config.vit
        self.backbone = DINOv3ViT(vit)
        self.guide_embed = nn.Conv2d(2, vit.embed_dim, vit.patch_size, stride=vit.patch_size, bias=False)
        nn.init.zeros_(self.guide_embed.weight)
        g = self.config.guide_channels
        self.guide = nn.Sequential(nn.Conv2d(GUIDE_INPUTS, g, 3, padding=1), nn.ReLU(),
                                   nn.Conv2d(g, g, 3, padding=1), nn.ReLU())  # fmt: skip
        self.head = DPTHead(vit.embed_dim, self.config.channels, self.config.features, g)
        nn.init.constant_(self.head.head3.bias, math.log(PRIOR / (1 - PRIOR)))
        self.threshold = float(threshold)
        self.batch_size = 4
        self.amp = False
        self.name = f"mqe-{self.config.backbone}"

    @property
    def device(self) -> torch.device:
        return self.head.head3.weight.device

    def load_backbone(self, backbone: DINOv3ViT) -> None:
        """Start from DINOv3 weights (`load_dinov3`): the RGB patch embedding and every block are copied; the
        alpha/seg slices stay zero and the decoder keeps its initialisation."""
        if not isinstance(backbone, DINOv3ViT) or backbone.config.embed_dim != self.config.vit.embed_dim:
            got = backbone.config.name if isinstance(backbone, DINOv3ViT) else type(backbone).__name__
            raise ValueError(f"backbone must be a DINOv3 {self.config.backbone} (from load_dinov3), got {got}")
        self.backbone.load_state_dict(backbone.state_dict(), strict=True)

    def backbone_parameters(self) -> list[nn.Parameter]:
        """The DINOv3 parameters (the optimiser's reduced-lr group)."""
        return list(self.backbone.parameters())

    def decoder_parameters(self) -> list[nn.Parameter]:
        """Everything new: the alpha/seg patch slices, the guide convs and the DPT head."""
        return [*self.guide_embed.parameters(), *self.guide.parameters(), *self.head.parameters()]

    def logits(self, images: torch.Tensor, alpha: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """Error logits `[B,H,W]` for RGB `images` `[B,3,H,W]` in 0..1 and `alpha`, `seg` `[B,H,W]` in 0..1."""
        b, _, h, w = images.shape
        p = self.config.vit.patch_size
        pad = (0, (-w) % p, 0, (-h) % p)
        mean = torch.tensor(IMAGENET_MEAN, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
        rgb = F.pad((images - mean) / std, pad, mode="replicate")
        a = F.pad(alpha[:, None], pad, mode="replicate")
        s = F.pad(seg[:, None].to(a.dtype), pad, mode="replicate")
        guide_in = torch.cat((2 * a - 1, 2 * s - 1), dim=1)
        maps = self.backbone.features(rgb, self.config.taps, extra=self.guide_embed(guide_in))
        gh, gw = rgb.shape[-2] // p, rgb.shape[-1] // p
        maps = [m.transpose(1, 2).reshape(b, -1, gh, gw) for m in maps]
        guide = self.guide(torch.cat((rgb, guide_in, 2 * gradient_magnitude(a)), dim=1))
        out = self.head(maps, rgb.shape[-2:], guide)
        return out[:, 0, :h, :w]

    def forward(self, frames: torch.Tensor, alpha: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
        """The evaluator call: error probability `[T,H,W]` for `frames` `[T,H,W,3]`, `alpha` and `seg`
        `[T,H,W]` (or one `[H,W]` segmentation), all in 0..1."""
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
            shape = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
            raise ValueError(f"frames must be [T,H,W,3] (RGB in 0..1), got {shape}")
        count, height, width = frames.shape[:3]
        alpha = check_mattes(alpha, count, (height, width), name="alpha")
        seg = check_mattes(seg, count, (height, width), name="seg")
        device = self.device
        out = []
        for start in range(0, count, self.batch_size):
            part = slice(start, min(start + self.batch_size, count))
            images = frames[part].to(device, torch.float32).permute(0, 3, 1, 2)
            a = alpha[part].to(device, torch.float32)
            s = seg[part].to(device, torch.float32)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp and device.type == "cuda"):
                logits = self.logits(images, a, s)
            out.append(torch.sigmoid(logits.float()))
        return torch.cat(out)


def build_evaluator(
    backbone: str = "vits16", *, threshold: float = 0.5, seed: int | None = None
) -> MattingQualityEvaluator:
    """A randomly initialised evaluator with the default decoder for `backbone` ("vits16", "vitb16", "tiny");
    `seed` makes the initialisation reproducible without touching the global RNG."""
    config = MQEConfig.for_backbone(backbone)
    if seed is None:
        return MattingQualityEvaluator(config, threshold=threshold)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MattingQualityEvaluator(config, threshold=threshold)
