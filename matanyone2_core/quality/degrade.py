"""Known ways a matte goes wrong, made from a ground-truth alpha, and the error labels that say where it did.

Shared by the evaluator validation suite and the learned evaluator's training data. Every degradation takes a
ground-truth clip `[T,H,W]` and a seeded generator and returns a degraded clip of the same shape; sizes are in
pixels at the clip's resolution and scale with `min(H, W) / 256` (never below one pixel).

Labels follow the learned evaluator's recipe: a pixel is erroneous when, in the `2*LABEL_RADIUS+1` square
patch around it (9x9), the mean absolute alpha difference exceeds `LABEL_MAD` (0.04) or the mean squared
difference of gradient magnitudes (the Grad metric's derivative-of-Gaussian filter, sigma 1.4) exceeds
`LABEL_GRAD` (0.05). The ground truth against itself has no label; `LABEL_GRAD` was set so that the boundary
degradations label 10-30 % of the pixels of the synthetic clips.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..metrics import gaussian_derivative_kernels
from .filters import box_mean, dilate, erode, gaussian_blur

LABEL_RADIUS = 4  # 9x9 patches
LABEL_MAD = 0.04
LABEL_GRAD = 0.05


def _scale(alpha: torch.Tensor) -> float:
    return min(alpha.shape[-2:]) / 256.0


def _px(alpha: torch.Tensor, pixels: float) -> int:
    return max(1, round(pixels * _scale(alpha)))


def _grey_erode(alpha: torch.Tensor, radius: int) -> torch.Tensor:
    return -F.max_pool2d(F.pad(-alpha[:, None], (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)[:, 0]


def _grey_dilate(alpha: torch.Tensor, radius: int) -> torch.Tensor:
    return F.max_pool2d(F.pad(alpha[:, None], (radius,) * 4, mode="replicate"), 2 * radius + 1, stride=1)[:, 0]


def hard_edges(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Segmentation-like: every soft pixel snapped to 0 or 1 at 0.5."""
    return (alpha > 0.5).float()


def over_blur(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The whole matte blurred (Gaussian, sigma 2.5 px at 256 px)."""
    return gaussian_blur(alpha[:, None], 2.5 * _scale(alpha))[:, 0].clamp(0, 1)


def eroded(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The boundary pulled in by 3 px (grey-level erosion)."""
    return _grey_erode(alpha, _px(alpha, 3))


def dilated(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The boundary pushed out by 3 px (grey-level dilation)."""
    return _grey_dilate(alpha, _px(alpha, 3))


def _discs(alpha: torch.Tensor, gen: torch.Generator, where: torch.Tensor, count: int, radius: int) -> torch.Tensor:
    """0/1 `[T,H,W]`: `count` discs per frame of `radius` px centred on random pixels where `where` is set."""
    t, h, w = alpha.shape
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    out = torch.zeros(t, h, w)
    for i in range(t):
        candidates = where[i].flatten().nonzero().flatten()
        if candidates.numel() == 0:
            continue
        picks = candidates[torch.randint(candidates.numel(), (count,), generator=gen)]
        for p in picks.tolist():
            cy, cx = divmod(p, w)
            out[i] = torch.maximum(out[i], ((yy - cy) ** 2 + (xx - cx) ** 2 <= radius * radius).float())
    return out


def holes(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Two holes (radius 7 px) per frame punched into the solid subject."""
    solid = erode((alpha > 0.99).float()[:, None], _px(alpha, 8))[:, 0] > 0
    return alpha * (1 - _discs(alpha, gen, solid, 2, _px(alpha, 7)))


def blobs(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Two opaque background blobs (radius 7 px) per frame, away from the subject."""
    far = 1 - dilate((alpha > 0.01).float()[:, None], _px(alpha, 16))[:, 0]
    return torch.maximum(alpha, _discs(alpha, gen, far > 0, 2, _px(alpha, 7)))


def flicker(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Temporal jitter: each frame's boundary independently pulled in or pushed out by 2-3 px."""
    out = torch.empty_like(alpha)
    for i in range(alpha.shape[0]):
        radius = _px(alpha, 2 + int(torch.randint(2, (1,), generator=gen)))
        grow = bool(torch.randint(2, (1,), generator=gen))
        out[i] = (_grey_dilate if grow else _grey_erode)(alpha[i : i + 1], radius)[0]
    return out


def lost_strands(alpha: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Thin structures (strands, up to 2 px wide) removed: a grey-level opening."""
    radius = _px(alpha, 1.5)
    opened = _grey_dilate(_grey_erode(alpha, radius), radius)
    return torch.minimum(alpha, opened)


DEGRADATIONS: dict[str, Callable[[torch.Tensor, torch.Generator], torch.Tensor]] = {
    "hard_edges": hard_edges,
    "over_blur": over_blur,
    "eroded": eroded,
    "dilated": dilated,
    "holes": holes,
    "blobs": blobs,
    "flicker": flicker,
    "lost_strands": lost_strands,
}
SEMANTIC = ("holes", "blobs")
BOUNDARY = ("hard_edges", "over_blur", "eroded", "dilated", "flicker", "lost_strands")


def degrade(alpha: torch.Tensor, kind: str, seed: int = 0) -> torch.Tensor:
    """`alpha` `[T,H,W]` degraded the `kind` way (a key of DEGRADATIONS), reproducibly from `seed`."""
    if kind not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {kind!r}; expected one of {sorted(DEGRADATIONS)}")
    gen = torch.Generator().manual_seed(seed)
    return DEGRADATIONS[kind](alpha.float().cpu(), gen).clamp(0, 1)


def gradient_magnitude(alpha: torch.Tensor) -> torch.Tensor:
    """|grad alpha| `[T,H,W]` with the Grad metric's derivative-of-Gaussian filters (sigma 1.4)."""
    kx, ky = gaussian_derivative_kernels(1.4)
    half = kx.shape[-1] // 2
    x = F.pad(alpha.float()[:, None], (half,) * 4, mode="replicate")
    gx = F.conv2d(x, kx.float()[None, None].to(x.device))
    gy = F.conv2d(x, ky.float()[None, None].to(x.device))
    return torch.sqrt(gx * gx + gy * gy)[:, 0]


def error_labels(pred: torch.Tensor, gt: torch.Tensor) -> dict[str, torch.Tensor]:
    """Patch discrepancies and the binary labels (True = erroneous) of `pred` against `gt`, `[T,H,W]` each:
    `mad` (patch mean |pred - gt|), `grad` (patch mean squared gradient-magnitude difference), `label`."""
    mad = box_mean((pred.float() - gt.float()).abs()[:, None], LABEL_RADIUS)[:, 0]
    diff = gradient_magnitude(pred) - gradient_magnitude(gt)
    grad = box_mean((diff * diff)[:, None], LABEL_RADIUS)[:, 0]
    return {"mad": mad, "grad": grad, "label": (mad > LABEL_MAD) | (grad > LABEL_GRAD)}
