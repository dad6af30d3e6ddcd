"""Frame and mask preparation: 8-bit mask morphology, padding to multiples of 16, internal resizing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PAD_MULTIPLE = 16


def elliptic_kernel(size: int) -> torch.Tensor:
    """The `size x size` elliptical structuring element as OpenCV rasterises it (0/1, float32)."""
    kernel = torch.zeros(size, size)
    r = c = size // 2
    for i in range(size):
        dy = i - r
        if abs(dy) <= r:
            dx = round(c * ((r * r - dy * dy) / (r * r)) ** 0.5) if r else 0
            kernel[i, max(c - dx, 0) : min(c + dx + 1, size)] = 1
    return kernel


def _window_count(binary: torch.Tensor, kernel: torch.Tensor, outside: float) -> torch.Tensor:
    """For each pixel, how many kernel ones (anchored at the centre) land on 1s; outside pixels read `outside`."""
    k = kernel.shape[0]
    a = k // 2
    x = F.pad(binary[None, None], (a, k - 1 - a, a, k - 1 - a), value=outside)
    return F.conv2d(x, kernel[None, None].to(binary))[0, 0]


def prepare_mask(mask: torch.Tensor, erode: int, dilate: int) -> torch.Tensor:
    """Float mask `[H,W]` in [0,1] -> the official 0..255 float mask after 8-bit quantisation and morphology.

    Dilation marks every non-zero pixel as object; erosion then keeps pixels whose whole kernel is 255.
    Pixels outside the image never dilate or erode (OpenCV's default border).
    """
    m8 = torch.round(mask.detach().float().cpu().clamp(0, 1) * 255)
    if dilate > 0:
        kernel = elliptic_kernel(dilate)
        m8 = (_window_count((m8 != 0).float(), kernel, 0.0) > 0).float() * 255
    if erode > 0:
        kernel = elliptic_kernel(erode)
        m8 = (_window_count((m8 == 255).float(), kernel, 1.0) == kernel.sum()).float() * 255
    return m8


def padding_for(height: int, width: int, multiple: int = PAD_MULTIPLE) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding to the next multiple, split as evenly as possible."""
    dh, dw = -height % multiple, -width % multiple
    return dw // 2, dw - dw // 2, dh // 2, dh - dh // 2


def pad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    return F.pad(x, padding) if any(padding) else x


def unpad(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = padding
    return x[..., top : x.shape[-2] - bottom, left : x.shape[-1] - right]


def internal_size(height: int, width: int, max_internal_size: int) -> tuple[int, int] | None:
    """The reduced (H, W) when the short side exceeds `max_internal_size`, else None."""
    short = min(height, width)
    if max_internal_size <= 0 or short <= max_internal_size:
        return None
    return int(height / short * max_internal_size), int(width / short * max_internal_size)


def resize_bilinear(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of `[C,H,W]` (align_corners=False, no antialias)."""
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]
