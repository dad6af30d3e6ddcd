"""Quality-guided dual-branch fusion: a temporally stable video matte, with a sharper per-frame (image) matte
taken wherever the evaluator trusts the image matte and not the video matte (the paper's annotation rule)."""

from __future__ import annotations

import torch

from .evaluate import check_mattes, reliable_map
from .filters import gaussian_blur

#: Default feathering of the fusion map: 0.5 % of the frame's short side (about 5 px at 1080p), at least 1 px.
SIGMA_FRACTION = 0.005


def _clip_shape(x: torch.Tensor, *, name: str) -> tuple[int, int, int]:
    if not isinstance(x, torch.Tensor) or x.ndim != 3 or 0 in x.shape:
        shape = list(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a [T,H,W] tensor, got {shape}")
    return tuple(x.shape)


def default_sigma(height: int, width: int) -> float:
    """The fusion map's default Gaussian sigma in pixels for a frame of this size."""
    return max(1.0, SIGMA_FRACTION * min(height, width))


def fusion_map(
    err_video: torch.Tensor,
    err_image: torch.Tensor,
    *,
    sigma: float | None = None,
    binary: bool = False,
    threshold: float = 0.5,
) -> torch.Tensor:
    """M_fuse `[T,H,W]` in 0..1: where the image branch is taken.

    Soft (default): `(1 - err_image) * err_video`; binary (the paper's statement): `reliable(image) and not
    reliable(video)` with `reliable_map(err, threshold)`. Either is then Gaussian-blurred with `sigma` pixels
    (default `default_sigma`) so that the seams are feathered.
    """
    count, height, width = _clip_shape(err_video, name="err_video")
    err_video = check_mattes(err_video, count, (height, width), name="err_video")
    err_image = check_mattes(err_image, count, (height, width), name="err_image")
    sigma = default_sigma(height, width) if sigma is None else float(sigma)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 pixels, got {sigma}")
    out = torch.empty(count, height, width, dtype=torch.float32)
    for t in range(count):  # one frame of temporaries at a time
        ev, ei = err_video[t].float().cpu(), err_image[t].float().cpu()
        if binary:
            m = (reliable_map(ei, threshold) & ~reliable_map(ev, threshold)).float()
        else:
            m = (1.0 - ei) * ev
        out[t] = gaussian_blur(m[None, None], sigma)[0, 0].clamp(0.0, 1.0)
    return out


def fuse_mattes(
    alpha_video: torch.Tensor,
    alpha_image: torch.Tensor,
    err_video: torch.Tensor,
    err_image: torch.Tensor,
    *,
    sigma: float | None = None,
    binary: bool = False,
    threshold: float = 0.5,
) -> torch.Tensor:
    """The fused alpha `M * alpha_image + (1 - M) * alpha_video`, `[T,H,W]` float32 on the CPU, with
    `M = fusion_map(err_video, err_image, sigma=..., binary=..., threshold=...)`. All inputs `[T,H,W]` in
    0..1 (error maps from `evaluate_matte`); a single `[H,W]` is broadcast over the clip."""
    count, height, width = _clip_shape(alpha_video, name="alpha_video")
    alpha_video = check_mattes(alpha_video, count, (height, width), name="alpha_video")
    alpha_image = check_mattes(alpha_image, count, (height, width), name="alpha_image")
    err_video = check_mattes(err_video, count, (height, width), name="err_video")
    m = fusion_map(err_video, err_image, sigma=sigma, binary=binary, threshold=threshold)
    for t in range(count):
        m[t] = m[t] * alpha_image[t].float().cpu() + (1.0 - m[t]) * alpha_video[t].float().cpu()
    return m.clamp_(0.0, 1.0)
