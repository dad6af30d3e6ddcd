"""Pictures of the quality signal: error heat maps over the frames, and a strip of the worst frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: Heat colours from "slightly suspicious" (yellow) to "surely wrong" (red).
LOW_COLOUR = torch.tensor([1.0, 0.85, 0.1])
HIGH_COLOUR = torch.tensor([0.95, 0.05, 0.05])


def error_heatmap(frames: torch.Tensor, error: torch.Tensor, *, opacity: float = 0.7) -> torch.Tensor:
    """`[T,H,W,3]`: each frame (dimmed to 60 %) with the error probability painted over it, yellow to red,
    `opacity * error` opaque, so that reliable pixels show the frame and suspicious ones glow."""
    if frames.shape[:3] != error.shape:
        raise ValueError(f"frames {list(frames.shape)} and error {list(error.shape)} must be the same clip")
    out = torch.empty(frames.shape, dtype=torch.float32)
    for t in range(frames.shape[0]):
        e = error[t].float().cpu().clamp(0, 1)[..., None]
        colour = LOW_COLOUR + (HIGH_COLOUR - LOW_COLOUR) * e
        w = opacity * e
        out[t] = (0.6 * frames[t].float().cpu() * (1 - w) + colour * w).clamp(0, 1)
    return out


def frame_strip(images: torch.Tensor, indices: list[int], *, height: int = 160, gap: int = 4) -> torch.Tensor:
    """`[1,height,W,3]`: the frames `indices` of `images` `[T,H,W,3]` scaled to `height` and laid side by side
    (left to right in the given order), separated by `gap` white pixels. An empty list gives one blank tile."""
    t, h, w = images.shape[:3]
    width = max(1, round(w * height / h))
    tiles = []
    for i in indices or []:
        tile = F.interpolate(images[i].float().cpu().permute(2, 0, 1)[None], size=(height, width),
                             mode="bilinear", align_corners=False, antialias=True)[0].permute(1, 2, 0)  # fmt: skip
        tiles += [tile.clamp(0, 1), torch.ones(height, gap, 3)]
    if not tiles:
        return torch.zeros(1, height, width, 3)
    return torch.cat(tiles[:-1], dim=1)[None]
