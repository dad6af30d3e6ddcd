"""True foreground colours from frames and their alpha: solve I = alpha*F + (1-alpha)*B for F (and B).

Multiplying a frame by its alpha ("premultiplied") keeps the old background inside every semi-transparent
pixel: composited onto a new background, soft edges (hair, motion blur, veils) carry a halo of the old one.
`estimate_foreground` recovers the straight (un-premultiplied) foreground colour F, and the background B,
so that ``compositing.composite(F, alpha, new_background, premultiplied=False)`` is clean.

Method: multi-level local smoothness (after Germer et al. 2020, "Fast Multi-Level Foreground Estimation")
----------------------------------------------------------------------------------------------------------
Over pixels i and pairs i~j of 4-neighbours, each colour channel on its own, the cost is

    sum_i (alpha_i F_i + (1 - alpha_i) B_i - I_i)^2  +  sum_{i~j} w_ij ((F_i - F_j)^2 + (B_i - B_j)^2),
    w_ij = REGULARIZATION + GRADIENT_WEIGHT * |alpha_i - alpha_j|.

The first term is the compositing equation; the second asks F and B to be locally smooth, most strongly
across alpha edges, which carries the colours of the opaque subject outward through the semi-transparent
band (and the background's inward). With its neighbours held fixed, the best (F_i, B_i) solves a 2x2 linear
system per pixel and channel,

    [ a^2 + W     a(1-a)   ] [F_i]   [ a I_i     + sum_j w_ij F_j ]
    [ a(1-a)    (1-a)^2 + W] [B_i] = [ (1-a) I_i + sum_j w_ij B_j ],   W = sum_j w_ij, a = alpha_i,

whose determinant is W (a^2 + (1-a)^2 + W) > 0; it is computed in that form (no cancellation in float32).
The solution is clipped to 0..1. One iteration updates every pixel this way; we update in red-black
(checkerboard) order, a Gauss-Seidel scheme that is fully vectorised: all "red" pixels at once from their
"black" neighbours, then all "black" ones from the fresh red values (pymatting sweeps the pixels in raster
order, the sequential Gauss-Seidel; both converge to the same minimiser, and they differ only in how far
a few iterations get).

Coarse to fine: with ``n = ceil(log2(max(H, W)))``, level k (0..n) has size ``round(H**(k/n)) x
round(W**(k/n))`` (1x1 up to the full frame, growing geometrically). Frame and alpha are resampled to each
level by nearest neighbour, the previous level's F and B (zeros before level 0) are upsampled by nearest
neighbour and then refined with ``SMALL_ITERATIONS`` iterations on levels no larger than ``SMALL_SIZE`` on
both sides, ``BIG_ITERATIONS`` on larger ones: the coarse levels propagate colour over long distances
cheaply, the fine ones only correct details. Neighbours outside the image are the pixel itself
(clamp-to-edge, weight REGULARIZATION, a mild damping at the border). Work is O(H*W) per frame.

Final projection (``project=True``, the default; not part of the paper or pymatting): the smoothness term
keeps the minimiser from satisfying the compositing equation exactly where alpha changes fast (one-pixel
strands, steep edges): on a 48x64 synthetic clip alpha F + (1-alpha) B misses the frame by up to 0.17
(mean 0.014 in the band), in pymatting's result as much as in ours. So F and B are then moved, per pixel and
channel, by the smallest change (along (alpha, 1-alpha), kept in 0..1) that makes the equation hold. The
frame is then reproduced exactly when F is composited back onto B, opaque pixels (alpha == 1) keep the
frame colour exactly (F = I) and clear ones B = I, and on synthetic clips F comes out closer to the exact
foreground (composite error in the band a few per cent lower at 288x512, a quarter lower at 48x64; see the
benchmark). ``project=False`` returns the solve as it is.

Constants (the defaults of pymatting's ``estimate_foreground_ml``, the reference implementation, so that
our results can be checked against it):

* ``REGULARIZATION`` = 1e-5: the smoothness weight between neighbours of equal alpha. Small, so it only
  decides F where alpha ~ 0 (and B where alpha ~ 1), where the compositing equation says nothing about
  it, and barely biases F where the equation determines it.
* ``GRADIENT_WEIGHT`` = 1.0: the extra smoothness per unit of alpha difference between neighbours, on the
  same scale as the data term (alpha^2 <= 1): it lets colours flow across soft edges.
* ``SMALL_ITERATIONS`` = 10, ``BIG_ITERATIONS`` = 2, ``SMALL_SIZE`` = 32: iterations on levels up to 32x32
  and on larger ones; more iterations on the cheap coarse levels, two on the expensive fine ones.

Measured agreement with pymatting 1.1.16 (`tests/test_foreground.py`: frames of synthetic clips at 48x64 and
37x53, |dF| per channel value in the band 0 < alpha < 1):

* converged (50 iterations on every level), the solve (``project=False``): max |dF| 2.0e-3, mean 4.6e-5 -- the
  same minimiser, up to float32 rounding on pymatting's side in nearly singular pixels (with 300 iterations
  our float32 result is within 2e-6 of our float64 solve, pymatting's within 2e-3 of it);
* default iterations, ``project=False``: max |dF| 0.04-0.09, mean 0.005-0.006 -- two sweeps on the large
  levels are not converged, and red-black and raster order get to different places;
* default iterations, default ``project=True``: max |dF| 0.17-0.25, mean 0.014-0.016, the projection (which
  pymatting does not do) included. pymatting itself moves opaque pixels off the frame colour by up to 0.11.

Composite error against the exact foreground, and speed: `benchmarks/foreground_quality.py`. On 3 synthetic
clips x 4 frames at 288x512, the composite's MAE in the band (x255) is 9.34 with today's premultiplied
frames, 6.54 with ours, 6.98 with pymatting's, and 4.90 with ours at ``big_iterations=10`` (the defaults stop
the fine levels far from converged; 10 sweeps cost about twice the time). One CPU thread: 0.31 s per 720p
frame, 0.9 s per 1080p frame.

Frames are processed one at a time on `device` (only one frame's temporaries exist at a time); the result
is float32 on the CPU, in 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .engine.validate import (
    check_bool,
    check_callable,
    check_frames,
    check_int,
    check_mask,
    describe,
    resolve_device,
)

#: Smoothness weight between neighbours of equal alpha (pymatting's `regularization` default).
REGULARIZATION = 1e-5
#: Extra smoothness per unit alpha difference between neighbours (pymatting's `gradient_weight` default).
GRADIENT_WEIGHT = 1.0
#: Iterations on levels no larger than SMALL_SIZE x SMALL_SIZE, and on larger levels.
SMALL_ITERATIONS = 10
BIG_ITERATIONS = 2
SMALL_SIZE = 32
#: The estimation methods `estimate_foreground` knows.
METHODS = ("multilevel",)
#: Upper limit on iteration counts (a typo like 2000 would otherwise run for minutes per frame).
MAX_ITERATIONS = 1000


def _check_positive_float(value: Any, *, name: str, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {describe(value)}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return float(value)


def _check_alpha(alpha: Any, count: int, size: tuple[int, int]) -> torch.Tensor:
    """`alpha` `[T,H,W]` or `[H,W]` (one matte for every frame) -> a `[T or 1,H,W]` tensor, each matte checked."""
    if not isinstance(alpha, torch.Tensor):
        raise ValueError(f"alpha must be a [T,H,W] or [H,W] tensor (values in 0..1), got {describe(alpha)}")
    shape = list(alpha.shape)
    if alpha.ndim == 2:
        alpha = alpha[None]
    if alpha.ndim != 3 or alpha.shape[0] not in (1, count) or tuple(alpha.shape[1:]) != size:
        raise ValueError(f"alpha must be [T,H,W] = {[count, *size]} like the frames (or one [H,W] matte), got {shape}")
    for t in range(alpha.shape[0]):
        name = "alpha" if alpha.shape[0] == 1 else f"alpha[{t}]"
        check_mask(alpha[t], size, name=name, require_subject=False)
    return alpha


def _level_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Sizes of the levels, 1x1 to height x width, growing geometrically (see the module docstring)."""
    levels = math.ceil(math.log2(max(height, width)))
    if levels == 0:  # a 1x1 frame: a single level
        return [(1, 1)]
    return [(round(height ** (k / levels)), round(width ** (k / levels))) for k in range(levels + 1)]


def _nearest(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resampling of `x` `[..., H, W]`: output (y, x) takes input (floor(y*H/h), floor(x*W/w))."""
    h_in, w_in = x.shape[-2:]
    if (h_in, w_in) == size:
        return x
    rows = (torch.arange(size[0], device=x.device) * h_in // size[0]).clamp(max=h_in - 1)
    cols = (torch.arange(size[1], device=x.device) * w_in // size[1]).clamp(max=w_in - 1)
    return x.index_select(-2, rows).index_select(-1, cols)


def _pad_edge(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """`x` `[..., H, W]` padded by one pixel on each side with copies of its edge (clamp-to-edge), into `out`
    (`[..., H+2, W+2]`) when given.

    Plain copies rather than `F.pad(mode="replicate")`, which parallelises over channels even for tiny
    tensors: with other work on the CPU its thread hand-offs cost milliseconds per call (measured 98% of
    the time of a 48x64 frame on a busy 2-core machine).
    """
    *lead, h, w = x.shape
    padded = x.new_empty(*lead, h + 2, w + 2) if out is None else out
    padded[..., 1:-1, 1:-1] = x
    padded[..., 0, 1:-1] = x[..., 0, :]
    padded[..., -1, 1:-1] = x[..., -1, :]
    padded[..., :, 0] = padded[..., :, 1]
    padded[..., :, -1] = padded[..., :, -2]
    return padded


def _neighbour_sum(
    x: torch.Tensor, weights: tuple[torch.Tensor, ...], padded: torch.Tensor, out: torch.Tensor
) -> torch.Tensor:
    """sum_j w_ij x_j over the 4 neighbours (clamp-to-edge) of every pixel of `x` `[..., H, W]`, into `out`
    (`padded`: scratch space `[..., H+2, W+2]`)."""
    _pad_edge(x, padded)
    up, down, left, right = weights
    torch.mul(up, padded[..., :-2, 1:-1], out=out)
    out.addcmul_(down, padded[..., 2:, 1:-1])
    out.addcmul_(left, padded[..., 1:-1, :-2])
    out.addcmul_(right, padded[..., 1:-1, 2:])
    return out


def _refine(
    image: torch.Tensor,
    alpha: torch.Tensor,
    fb: torch.Tensor,
    iterations: int,
    regularization: float,
    gradient_weight: float,
) -> torch.Tensor:
    """`iterations` red-black Gauss-Seidel sweeps of the per-pixel 2x2 systems at one level.

    image `[3,h,w]`, alpha `[h,w]`, fb `[2,3,h,w]` (F, then B); returns the refined fb.
    """
    if iterations == 0:
        return fb
    h, w = alpha.shape
    padded = _pad_edge(alpha)
    # w_ij towards the neighbour above, below, left and right, each [h,w].
    weights = tuple(
        regularization + gradient_weight * (alpha - padded[sl_y, sl_x]).abs()
        for sl_y, sl_x in (
            (slice(None, -2), slice(1, -1)),
            (slice(2, None), slice(1, -1)),
            (slice(1, -1), slice(None, -2)),
            (slice(1, -1), slice(2, None)),
        )
    )
    total = weights[0] + weights[1] + weights[2] + weights[3]
    a, b = alpha, 1.0 - alpha
    a11, a12, a22 = a * a + total, a * b, b * b + total
    det = total * (a * a + b * b + total)  # = a11 * a22 - a12^2, without the cancellation
    # Cramer's rule: F = (a22 rhs_F - a12 rhs_B) / det, B = (a11 rhs_B - a12 rhs_F) / det, with
    # rhs_F = a I + s_F and rhs_B = (1 - a) I + s_B (s: the weighted neighbour sums). The parts without s
    # do not change between sweeps; they simplify to a I / (a^2 + b^2 + W) and b I / (a^2 + b^2 + W).
    data = image / (a * a + b * b + total)
    const = torch.stack([a * data, b * data])  # [2,3,h,w]
    own = torch.stack([a22 / det, a11 / det])[:, None]  # [2,1,h,w]: factor of a value's own neighbour sum
    cross = -a12 / det  # [h,w]: factor of the other one's
    yy = torch.arange(h, device=alpha.device)[:, None]
    xx = torch.arange(w, device=alpha.device)[None, :]
    red = (yy + xx) % 2 == 0
    # Scratch space reused by every sweep (large frames: no fresh allocations, no page faults).
    fb = fb.contiguous().clone()
    padded = fb.new_empty(2, 3, h + 2, w + 2)
    s, new = torch.empty_like(fb), torch.empty_like(fb)
    for _ in range(iterations):
        for colour in (red, ~red):
            _neighbour_sum(fb, weights, padded, s)
            torch.addcmul(const, own, s, out=new)
            new[0].addcmul_(cross, s[1])
            new[1].addcmul_(cross, s[0])
            # Only this colour's pixels change: their neighbours all have the other colour, so each
            # half-sweep is an exact Gauss-Seidel step for the pixels it updates. (In place: `out` is `fb`
            # itself, element for element, which elementwise ops allow.)
            torch.where(colour, new.clamp_(0.0, 1.0), fb, out=fb)
    return fb


def _solve_frame(
    image: torch.Tensor,
    alpha: torch.Tensor,
    *,
    regularization: float,
    gradient_weight: float,
    small_iterations: int,
    big_iterations: int,
    small_size: int,
) -> torch.Tensor:
    """F and B `[2,3,H,W]` (float32, on the input's device) for one frame `[3,H,W]` and its alpha `[H,W]`."""
    height, width = alpha.shape
    fb = torch.zeros(2, 3, 1, 1, device=image.device, dtype=image.dtype)
    for size in _level_sizes(height, width):
        level_image = _nearest(image, size)
        level_alpha = _nearest(alpha[None], size)[0]
        fb = _nearest(fb, size)
        small = size[0] <= small_size and size[1] <= small_size
        fb = _refine(
            level_image,
            level_alpha,
            fb,
            small_iterations if small else big_iterations,
            regularization,
            gradient_weight,
        )
    return fb


def _project(image: torch.Tensor, alpha: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    """The smallest change to F and B (within 0..1) after which alpha F + (1 - alpha) B equals the frame.

    image `[3,H,W]`, alpha `[H,W]`, fb `[2,3,H,W]`. The first round moves F and B along (alpha, 1 - alpha),
    the least-squares correction; where that pushes one of them past 0 or 1 it is clipped, and the second
    round gives the rest of the residual to the other one. Opaque pixels get F = frame, clear ones B = frame.
    """
    f, b = fb[0], fb[1]
    a, ia = alpha, 1.0 - alpha
    for _ in range(2):
        residual = image - a * f - ia * b
        # A value at a bound cannot move further past it.
        free_f = ~(((f <= 0) & (residual < 0)) | ((f >= 1) & (residual > 0)))
        free_b = ~(((b <= 0) & (residual < 0)) | ((b >= 1) & (residual > 0)))
        wf, wb = a * free_f, ia * free_b
        norm = wf * a + wb * ia
        step = torch.where(norm > 0, residual / norm.clamp(min=1e-12), 0.0)
        f = (f + wf * step).clamp(0.0, 1.0)
        b = (b + wb * step).clamp(0.0, 1.0)
    # Bit-exact where the equation alone fixes the answer (f + (I - f) can be off by a rounding step).
    f = torch.where(alpha >= 1.0, image, f)
    b = torch.where(alpha <= 0.0, image, b)
    return torch.stack([f, b])


def estimate_foreground(
    frames: torch.Tensor,
    alpha: torch.Tensor,
    *,
    method: str = "multilevel",
    regularization: float = REGULARIZATION,
    gradient_weight: float = GRADIENT_WEIGHT,
    small_iterations: int = SMALL_ITERATIONS,
    big_iterations: int = BIG_ITERATIONS,
    small_size: int = SMALL_SIZE,
    project: bool = True,
    return_background: bool = False,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Straight foreground colours F `[T,H,W,3]` (float32, CPU, 0..1) with ``frames = alpha*F + (1-alpha)*B``.

    frames `[T,H,W,3]` floats in 0..1; alpha `[T,H,W]` in 0..1, or one `[H,W]` matte for every frame.
    With `return_background`, returns ``(F, B)``. Frames are solved one at a time on `device` (default: the
    frames' device); `progress(done, total)` is called after each frame. The method and its constants are
    described in the module docstring. Bad inputs raise ValueError naming the input, before any work.
    """
    check_frames(frames)
    count, height, width = frames.shape[:3]
    alpha = _check_alpha(alpha, count, (height, width))
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {describe(method)}")
    regularization = _check_positive_float(regularization, name="regularization", allow_zero=False)
    gradient_weight = _check_positive_float(gradient_weight, name="gradient_weight", allow_zero=True)
    small_iterations = check_int(small_iterations, name="small_iterations", low=0, high=MAX_ITERATIONS)
    big_iterations = check_int(big_iterations, name="big_iterations", low=0, high=MAX_ITERATIONS)
    small_size = check_int(small_size, name="small_size", low=1)
    project = check_bool(project, name="project")
    return_background = check_bool(return_background, name="return_background")
    check_callable(progress, name="progress")
    device = frames.device if device is None else resolve_device(device)

    foreground = torch.empty(count, height, width, 3, dtype=torch.float32)
    background = torch.empty_like(foreground) if return_background else None
    with torch.inference_mode():
        for t in range(count):
            # One frame's worth on the device at a time; values within the tolerance outside 0..1 are clamped.
            image = frames[t].to(device=device, dtype=torch.float32).clamp(0.0, 1.0).permute(2, 0, 1).contiguous()
            matte = alpha[t if alpha.shape[0] > 1 else 0].to(device=device, dtype=torch.float32).clamp(0.0, 1.0)
            fb = _solve_frame(
                image,
                matte,
                regularization=regularization,
                gradient_weight=gradient_weight,
                small_iterations=small_iterations,
                big_iterations=big_iterations,
                small_size=small_size,
            )
            if project:
                fb = _project(image, matte, fb)
            fb = fb.permute(0, 2, 3, 1).cpu()
            foreground[t] = fb[0]
            if background is not None:
                background[t] = fb[1]
            if progress is not None:
                progress(t + 1, count)
    if background is not None:
        return foreground, background
    return foreground
