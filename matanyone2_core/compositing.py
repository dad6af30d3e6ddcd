"""Alpha compositing of a matted foreground over a background (colour, image or clip)."""

from __future__ import annotations

import re

import torch

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_color(text: str) -> torch.Tensor:
    """'#RRGGBB' (or 'RRGGBB') -> float RGB `[3]` in 0..1."""
    match = _HEX.match(text.strip())
    if match is None:
        raise ValueError(f"background colour must be a hex colour like #00B140, got {text!r}")
    value = match.group(1)
    return torch.tensor([int(value[i : i + 2], 16) / 255.0 for i in (0, 2, 4)], dtype=torch.float32)


def composite(
    foreground: torch.Tensor, alpha: torch.Tensor, background: torch.Tensor, *, premultiplied: bool
) -> torch.Tensor:
    """`fg·α + bg·(1 − α)` per frame (`fg` already multiplied by α when `premultiplied`), clamped to [0, 1].

    foreground `[T,H,W,3]`; alpha `[T or 1,H,W]`; background `[T or 1,H,W,3]` (one is used for every frame).
    Works frame by frame so that temporaries stay one frame in size.
    """
    out = torch.empty_like(foreground)
    for t in range(foreground.shape[0]):
        a = alpha[t if alpha.shape[0] > 1 else 0].unsqueeze(-1)
        f = foreground[t] if premultiplied else foreground[t] * a
        out[t] = (f + (1.0 - a) * background[t if background.shape[0] > 1 else 0]).clamp(0.0, 1.0)
    return out
