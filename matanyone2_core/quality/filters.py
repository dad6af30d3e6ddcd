"""Small image filters the evaluators, fusion and labels share: box means, Gaussian blur, binary morphology,
the colour guided filter's local linear fit. Plain PyTorch on `[N,C,H,W]` tensors, differentiable."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _window_counts(n: int, radius: int, *, device, dtype) -> torch.Tensor:
    """How many of the 2r+1 positions around each index 0..n-1 lie inside 0..n-1."""
    i = torch.arange(n, device=device)
    return ((i + radius).clamp(max=n - 1) - (i - radius).clamp(min=0) + 1).to(dtype)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window around each pixel of `x` `[N,C,H,W]`, windows clipped at the border
    (each output is the mean of the pixels of its window that lie inside the image). Separable (running sums
    on a CPU, two 1-D pooling passes elsewhere), so the cost does not grow with the window's area."""
    if radius <= 0:
        return x
    size = 2 * radius + 1
    h, w = x.shape[-2:]
    if x.device.type == "cpu":
        # Running sums in float64: several times faster than pooling on a CPU, and exact enough for the
        # variances computed from these means (float32 running sums over a 1080p row are not).
        padded = F.pad(x.double(), (radius + 1, radius, radius + 1, radius))
        sums = padded.cumsum(-2)
        sums = sums[..., size:, :] - sums[..., :-size, :]
        sums = sums.cumsum(-1)
        sums = (sums[..., size:] - sums[..., :-size]).to(x.dtype)
    else:
        rows = F.avg_pool2d(F.pad(x, (0, 0, radius, radius)), (size, 1), stride=1, divisor_override=1)
        sums = F.avg_pool2d(F.pad(rows, (radius, radius, 0, 0)), (1, size), stride=1, divisor_override=1)
    count_y = _window_counts(h, radius, device=x.device, dtype=x.dtype)
    count_x = _window_counts(w, radius, device=x.device, dtype=x.dtype)
    return sums / (count_y[:, None] * count_x[None, :])


def gaussian_kernel1d(sigma: float, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """A normalised 1-D Gaussian of standard deviation `sigma`, truncated at 3 sigma."""
    half = max(1, math.ceil(3.0 * sigma))
    x = torch.arange(-half, half + 1, device=device, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2.0 * sigma**2))
    return (k / k.sum()).to(dtype)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of `x` `[N,C,H,W]` with replicated borders (sigma <= 0: unchanged)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, device=x.device, dtype=x.dtype)
    half = k.numel() // 2
    c = x.shape[1]
    x = F.pad(x, (half, half, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    x = F.pad(x, (0, 0, half, half), mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def _max_square(x: torch.Tensor, radius: int, pad_value: float) -> torch.Tensor:
    """Max over the (2r+1)^2 square around each pixel (separable: rows, then columns)."""
    size = 2 * radius + 1
    x = F.max_pool2d(F.pad(x, (0, 0, radius, radius), value=pad_value), (size, 1), stride=1)
    return F.max_pool2d(F.pad(x, (radius, radius, 0, 0), value=pad_value), (1, size), stride=1)


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary dilation of a 0/1 `[N,1,H,W]` mask with a (2r+1)^2 square."""
    if radius <= 0:
        return mask
    return _max_square(mask, radius, 0.0)


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of a 0/1 `[N,1,H,W]` mask with a (2r+1)^2 square (outside the image counts as set)."""
    if radius <= 0:
        return mask
    return 1.0 - _max_square(1.0 - mask, radius, 0.0)


def local_linear_fit(guide: torch.Tensor, target: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """The colour guided filter of `target` `[N,1,H,W]` by `guide` `[N,3,H,W]` (He et al.): in every window,
    the least-squares affine model target ~ a . guide + b (ridge `eps` on a), averaged over the windows that
    cover each pixel. A matte that obeys the local linear colour model is reproduced; one that does not
    (binarised or blurred edges, edges away from the image's) is changed."""
    mean_i = box_mean(guide, radius)  # [N,3,H,W]
    mean_p = box_mean(target, radius)
    cov_ip = box_mean(guide * target, radius) - mean_i * mean_p  # [N,3,H,W]
    # The 3x3 colour covariance per pixel (6 unique entries) plus the ridge.
    r, g, b = guide[:, 0:1], guide[:, 1:2], guide[:, 2:3]
    mr, mg, mb = mean_i[:, 0:1], mean_i[:, 1:2], mean_i[:, 2:3]
    s_rr = box_mean(r * r, radius) - mr * mr + eps
    s_rg = box_mean(r * g, radius) - mr * mg
    s_rb = box_mean(r * b, radius) - mr * mb
    s_gg = box_mean(g * g, radius) - mg * mg + eps
    s_gb = box_mean(g * b, radius) - mg * mb
    s_bb = box_mean(b * b, radius) - mb * mb + eps
    # Inverse through the adjugate (symmetric), all per pixel.
    i_rr = s_gg * s_bb - s_gb * s_gb
    i_rg = s_gb * s_rb - s_rg * s_bb
    i_rb = s_rg * s_gb - s_gg * s_rb
    i_gg = s_rr * s_bb - s_rb * s_rb
    i_gb = s_rb * s_rg - s_rr * s_gb
    i_bb = s_rr * s_gg - s_rg * s_rg
    det = s_rr * i_rr + s_rg * i_rg + s_rb * i_rb
    c_r, c_g, c_b = cov_ip[:, 0:1], cov_ip[:, 1:2], cov_ip[:, 2:3]
    a_r = (i_rr * c_r + i_rg * c_g + i_rb * c_b) / det
    a_g = (i_rg * c_r + i_gg * c_g + i_gb * c_b) / det
    a_b = (i_rb * c_r + i_gb * c_g + i_bb * c_b) / det
    bias = mean_p - a_r * mr - a_g * mg - a_b * mb
    a = torch.cat([a_r, a_g, a_b], dim=1)
    return (box_mean(a, radius) * guide).sum(dim=1, keepdim=True) + box_mean(bias, radius)


def local_variance(guide: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean per-channel variance of `guide` `[N,C,H,W]` in each window, `[N,1,H,W]`."""
    mean = box_mean(guide, radius)
    return (box_mean(guide * guide, radius) - mean * mean).clamp(min=0).mean(dim=1, keepdim=True)
