"""Official video-matting metrics (MAD, MSE, Grad, Conn, dtSSD) for the three evaluation protocols.

The definitions, scalings and quirks follow the evaluation scripts that the MatAnyone 2 paper uses
(themselves derived from RobustVideoMatting's):

* ``"lr"``    VideoMatte / YouTubeMatte 512x288: Grad on per-frame min-max normalised alphas, Conn computed.
* ``"hr"``    VideoMatte / YouTubeMatte 1920x1080: Grad without normalisation, no Conn.
* ``"crgnn"`` CRGNN real videos: like ``"hr"``, but the ground truth exists for every 10th frame only;
  sorted GT frame ``i`` pairs with prediction frame ``10*i`` and dtSSD runs between consecutive sampled
  frames.

Reported scales: MAD and MSE x1e3, Grad and Conn /1e3 (sums over the frame, so they grow with its size),
dtSSD x1e2. dtSSD of a clip's first (sampled) frame is 0 and counts in the clip mean.

Everything is plain PyTorch on the device of ``pred``; alphas are ``[T,H,W]`` float tensors in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

METRIC_NAMES = ("MAD", "MSE", "Grad", "Conn", "dtSSD")
# Frame indices the paper-style spreadsheet averages over (columns C..ZZ, one per frame index).
MAX_AGGREGATED_FRAMES = 700


@dataclass(frozen=True)
class Protocol:
    """How one benchmark is scored."""

    name: str
    minmax_grad: bool  # min-max normalise each frame before Grad
    conn: bool  # Conn is computed
    gt_stride: int  # ground truth exists for every ``gt_stride``-th predicted frame

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(m for m in METRIC_NAMES if m != "Conn" or self.conn)


PROTOCOLS: dict[str, Protocol] = {
    "lr": Protocol("lr", minmax_grad=True, conn=True, gt_stride=1),
    "hr": Protocol("hr", minmax_grad=False, conn=False, gt_stride=1),
    "crgnn": Protocol("crgnn", minmax_grad=False, conn=False, gt_stride=10),
}


def get_protocol(protocol: str | Protocol) -> Protocol:
    """The :class:`Protocol` called ``protocol`` (``"lr"``, ``"hr"`` or ``"crgnn"``)."""
    if isinstance(protocol, Protocol):
        return protocol
    try:
        return PROTOCOLS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {sorted(PROTOCOLS)}") from None


# --------------------------------------------------------------------------------------------- helpers


def quantize_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """Round alpha to 8 bits and back, as saving a PNG and reading it again does.

    ``round(clip(alpha * 255, 0, 255)) / 255`` in float32; ``torch.round`` rounds halves to even like
    ``numpy.round``.
    """
    a = alpha.to(torch.float32)
    return torch.round((a * 255.0).clamp(0.0, 255.0)) / 255.0


def _acc_dtype(device: torch.device) -> torch.dtype:
    # MPS has no float64; elsewhere sums are accumulated in float64 to stay exact at 1920x1080.
    return torch.float32 if device.type == "mps" else torch.float64


def _check_alpha(name: str, alpha: torch.Tensor) -> torch.Tensor:
    if not isinstance(alpha, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [T,H,W], got {type(alpha).__name__}")
    if alpha.ndim != 3:
        raise ValueError(f"{name} must have shape [T,H,W], got {tuple(alpha.shape)}")
    if alpha.shape[0] == 0 or alpha.shape[1] == 0 or alpha.shape[2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(alpha.shape)}")
    if not alpha.is_floating_point():
        raise TypeError(f"{name} must be a float tensor with values in [0, 1], got dtype {alpha.dtype}")
    a = alpha.to(torch.float32)
    if not bool(torch.isfinite(a).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]")
    return a


def gaussian_derivative_kernels(
    sigma: float = 1.4, epsilon: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor]:
    """The x and y derivative-of-Gaussian kernels of the Grad metric (9x9 for sigma=1.4), float64.

    ``kx[i, j] = G(i - h) * G'(j - h)`` with ``h = ceil(sigma * sqrt(-2 ln(sqrt(2 pi) sigma epsilon)))``,
    divided by its L2 norm; ``ky = kx.T``.
    """
    half = math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2.0 * math.pi) * sigma * epsilon)))
    x = torch.arange(-half, half + 1, dtype=torch.float64)
    g = torch.exp(-(x**2) / (2.0 * sigma**2)) / (sigma * math.sqrt(2.0 * math.pi))
    dg = -x * g / sigma**2
    kx = g[:, None] * dg[None, :]
    kx = kx / torch.sqrt((kx**2).sum())
    return kx, kx.T.contiguous()


def minmax_normalize(alpha: torch.Tensor) -> torch.Tensor:
    """Per-frame min-max normalisation to [0, 1] (OpenCV NORM_MINMAX); a constant frame becomes all 0."""
    a = alpha.to(torch.float32)
    lo = a.amin(dim=(-2, -1), keepdim=True).to(torch.float64)
    hi = a.amax(dim=(-2, -1), keepdim=True).to(torch.float64)
    rng = hi - lo
    eps = torch.finfo(torch.float64).eps
    ok = rng > eps
    scale = torch.where(ok, 1.0 / torch.where(ok, rng, torch.ones_like(rng)), torch.zeros_like(rng))
    shift = -lo * scale
    return (a * scale.to(torch.float32) + shift.to(torch.float32)).to(torch.float32)


def gradient_magnitude(alpha: torch.Tensor, sigma: float = 1.4) -> torch.Tensor:
    """``sqrt(gx^2 + gy^2)`` of ``[T,H,W]`` alphas: correlation with the derivative-of-Gaussian kernels,
    replicate border, float32 (as OpenCV ``filter2D`` and kornia ``filter2d`` compute it)."""
    kx, ky = gaussian_derivative_kernels(sigma)
    h = kx.shape[0] // 2
    weight = torch.stack([kx, ky])[:, None].to(device=alpha.device, dtype=torch.float32)
    x = F.pad(alpha.to(torch.float32)[:, None], (h, h, h, h), mode="replicate")
    g = F.conv2d(x, weight)  # conv2d is a correlation, like filter2D
    return torch.sqrt(g[:, 0] ** 2 + g[:, 1] ** 2)


# ------------------------------------------------------------------------------ connected components


def _neighbour_min(labels: torch.Tensor, fg: torch.Tensor, sentinel: int) -> torch.Tensor:
    """Minimum label over each foreground pixel and its 4-neighbours (``labels`` is [B,H,W] and holds
    ``sentinel`` on the background, which is therefore never the minimum of a foreground pixel)."""
    out = labels.clone()
    torch.minimum(out[:, 1:, :], labels[:, :-1, :], out=out[:, 1:, :])
    torch.minimum(out[:, :-1, :], labels[:, 1:, :], out=out[:, :-1, :])
    torch.minimum(out[:, :, 1:], labels[:, :, :-1], out=out[:, :, 1:])
    torch.minimum(out[:, :, :-1], labels[:, :, 1:], out=out[:, :, :-1])
    return out.masked_fill_(~fg, sentinel)


def connected_components(mask: torch.Tensor) -> torch.Tensor:
    """4-connected component labels of a batch of binary masks ``[B,H,W]``.

    Every foreground pixel gets the flat index (within its own image, ``y*W + x``) of the first pixel of
    its component in raster order; background pixels get -1. Label-equivalence algorithm: horizontal
    runs labelled at once, then neighbour minimum, hooking of equivalent labels with a scatter-min and
    pointer jumping, repeated to a fixed point.
    """
    if mask.ndim != 3:
        raise ValueError(f"mask must have shape [B,H,W], got {tuple(mask.shape)}")
    b, h, w = mask.shape
    fg = mask.to(torch.bool)
    n = b * h * w
    device = mask.device
    itype = torch.int32 if n < 2**31 - 1 else torch.int64
    flat_idx = torch.arange(n, device=device, dtype=itype).view(b, h, w)
    # Start each pixel at the first index of its horizontal run: one cummax instead of W iterations.
    run_start = fg.clone()
    run_start[:, :, 1:] &= ~fg[:, :, :-1]
    starts = torch.where(run_start, flat_idx, torch.full_like(flat_idx, -1))
    labels = torch.where(fg, torch.cummax(starts, dim=2).values, torch.full_like(flat_idx, n))
    parent = torch.arange(n + 1, device=device, dtype=itype)
    while True:
        nmin = _neighbour_min(labels, fg, n)
        # Background pixels carry label n and hook n onto n, which changes nothing.
        parent.scatter_reduce_(0, labels.reshape(-1).long(), nmin.reshape(-1), reduce="amin")
        while True:  # pointer jumping until every label points at a root
            nxt = parent[parent]
            if torch.equal(nxt, parent):
                break
            parent = nxt
        new = parent[labels]
        if torch.equal(new, labels):
            break
        labels = new
    local = labels.long() - (torch.arange(b, device=device, dtype=torch.int64) * (h * w)).view(b, 1, 1)
    return torch.where(fg, local, torch.full_like(local, -1))


def largest_component(mask: torch.Tensor) -> torch.Tensor:
    """Boolean mask ``[B,H,W]`` of the largest 4-connected component of each mask (ties: the component
    whose first pixel comes first in raster order, as OpenCV's label order gives; empty mask: empty)."""
    b, h, w = mask.shape
    labels = connected_components(mask)
    fg = labels >= 0
    counts = torch.zeros(b, h * w, dtype=torch.int64, device=mask.device)
    counts.scatter_add_(1, labels.clamp(min=0).reshape(b, -1), fg.reshape(b, -1).to(torch.int64))
    best = counts.argmax(dim=1)  # first maximum = raster-first component on ties
    keep = fg & (labels == best.view(b, 1, 1))
    return keep & (counts.amax(dim=1) > 0).view(b, 1, 1)


# The thresholds exactly as arange(0, 1.1, 0.1) yields them in float64 (0.30000000000000004, ...).
_CONN_THRESHOLDS = np.arange(0, 1 + 0.1, 0.1)


def _float32_ceil(t: float) -> float:
    """Smallest float32 >= t: for float32 x, ``x >= t`` (compared in float64) iff ``x >= this``."""
    c = np.float32(t)
    if float(c) < t:
        c = np.nextafter(c, np.float32(np.inf))
    return float(c)


def conn_error(pred: torch.Tensor, gt: torch.Tensor, theta: float = 0.15) -> torch.Tensor:
    """Per-frame connectivity error ``[T]`` (unscaled sum; the reported Conn is this / 1000)."""
    ceil_t = torch.tensor([_float32_ceil(t) for t in _CONN_THRESHOLDS[1:]], device=pred.device)
    level_t = torch.tensor(_CONN_THRESHOLDS[:-1], dtype=torch.float32, device=pred.device)
    out = []
    for p, g in zip(pred, gt, strict=True):  # one frame at a time bounds memory (10 masks per frame)
        inter = (g[None] >= ceil_t.view(-1, 1, 1)) & (p[None] >= ceil_t.view(-1, 1, 1))
        omega = largest_component(inter)
        dropped = ~omega  # [10,H,W]; level = t_{k-1} for the first k whose component misses the pixel
        first = dropped.to(torch.uint8).argmax(dim=0)
        level = torch.where(dropped.any(dim=0), level_t[first], torch.ones_like(p))
        d_g = g - level
        d_p = p - level
        phi_g = 1.0 - d_g * (d_g >= theta).to(torch.float32)
        phi_p = 1.0 - d_p * (d_p >= theta).to(torch.float32)
        out.append((phi_g - phi_p).abs().sum(dtype=_acc_dtype(p.device)))
    return torch.stack(out)


# ------------------------------------------------------------------------------------------- metrics


def _pair_frames(pred: torch.Tensor, gt: torch.Tensor, proto: Protocol) -> tuple[torch.Tensor, torch.Tensor]:
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(
            f"pred and gt must have the same frame size, got {tuple(pred.shape[1:])} and "
            f"{tuple(gt.shape[1:])}"
        )
    if proto.gt_stride == 1:
        if pred.shape[0] != gt.shape[0]:
            raise ValueError(
                f"protocol {proto.name!r} needs one gt frame per predicted frame, got {pred.shape[0]} "
                f"predicted and {gt.shape[0]} gt frames"
            )
        return pred, gt
    # GT frame i pairs with prediction frame stride*i; GT frames past the prediction's end are dropped.
    sampled = pred[:: proto.gt_stride]
    n = min(sampled.shape[0], gt.shape[0])
    return sampled[:n], gt[:n]


def per_frame_metrics(
    pred: torch.Tensor, gt: torch.Tensor, *, protocol: str | Protocol = "lr"
) -> dict[str, list[float]]:
    """Per-frame metric values at the reported scale, one list per metric of the protocol.

    For ``"crgnn"``, ``pred`` holds every frame and ``gt`` every 10th; the lists have one entry per
    evaluated GT frame.
    """
    proto = get_protocol(protocol)
    p = _check_alpha("pred", pred)
    g = _check_alpha("gt", gt).to(p.device)
    p, g = _pair_frames(p, g, proto)
    acc = _acc_dtype(p.device)
    n_px = p.shape[1] * p.shape[2]

    diff = p - g
    res: dict[str, torch.Tensor] = {
        "MAD": diff.abs().sum(dim=(1, 2), dtype=acc) / n_px * 1e3,
        "MSE": (diff**2).sum(dim=(1, 2), dtype=acc) / n_px * 1e3,
    }
    gp, gg = (minmax_normalize(p), minmax_normalize(g)) if proto.minmax_grad else (p, g)
    res["Grad"] = ((gradient_magnitude(gg) - gradient_magnitude(gp)) ** 2).sum(dim=(1, 2), dtype=acc) / 1e3
    if proto.conn:
        res["Conn"] = conn_error(p, g).to(acc) / 1e3
    dt = torch.zeros(p.shape[0], dtype=acc, device=p.device)
    if p.shape[0] > 1:
        d = (p[1:] - p[:-1]) - (g[1:] - g[:-1])
        dt[1:] = torch.sqrt((d**2).sum(dim=(1, 2), dtype=acc) / n_px) * 1e2
    res["dtSSD"] = dt
    return {k: [float(v) for v in res[k].cpu()] for k in proto.metrics}


def evaluate_sequence(
    pred: torch.Tensor, gt: torch.Tensor, *, protocol: str | Protocol = "lr"
) -> dict[str, float]:
    """Clip means of the protocol's metrics (keys ``MAD``, ``MSE``, ``Grad``, [``Conn``], ``dtSSD``)."""
    per_frame = per_frame_metrics(pred, gt, protocol=protocol)
    return {k: float(np.mean(v)) for k, v in per_frame.items()}


def aggregate_clips(
    clips: Sequence[Mapping[str, Sequence[float]]], *, max_frames: int = MAX_AGGREGATED_FRAMES
) -> dict[str, float]:
    """The paper-style benchmark number from per-frame values of several clips.

    For each metric: the mean over the clips that have frame index ``j``, for ``j < max_frames``, then
    the mean of those per-index means. Frames at index ``max_frames`` (700) or later are ignored, as
    the official spreadsheet's columns end there; clips of different lengths therefore weigh frames
    unequally. Metrics missing from any clip are left out.
    """
    if not clips:
        raise ValueError("aggregate_clips needs at least one clip")
    names = [m for m in METRIC_NAMES if all(m in c for c in clips)]
    out: dict[str, float] = {}
    for m in names:
        length = min(max(len(c[m]) for c in clips), max_frames)
        if length == 0:
            continue
        col_means = []
        for j in range(length):
            vals = [float(c[m][j]) for c in clips if len(c[m]) > j]
            col_means.append(sum(vals) / len(vals))
        out[m] = sum(col_means) / len(col_means)
    return out
