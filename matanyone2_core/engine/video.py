"""Whole-clip matting: stream a `[T,H,W,3]` clip through sessions into a CPU alpha buffer."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..network.model import MatAnyone2Network
from .options import MattingOptions
from .session import MattingSession


def _check_mask(mask: torch.Tensor, size: tuple[int, int], name: str) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor):
        raise ValueError(f"{name} must be a tensor, got {type(mask).__name__}")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2 or tuple(mask.shape) != size:
        raise ValueError(f"{name} must be [H,W] = {list(size)} like the frames, got {list(mask.shape)}")
    if not torch.isfinite(mask).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return mask


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] != 3:
        shape = list(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a [T,H,W,3] tensor (RGB, values in 0..1), got {shape}")
    if frames.shape[0] == 0:
        raise ValueError("frames is empty (T = 0)")
    if not frames.is_floating_point():
        raise ValueError(f"frames must be floating point in 0..1, got {frames.dtype}")


def matte_video(
    model: MatAnyone2Network,
    frames: torch.Tensor,
    first_mask: torch.Tensor,
    *,
    warmup: int = 10,
    erode: int = 10,
    dilate: int = 10,
    max_internal_size: int = -1,
    long_term: bool = False,
    keyframes: Mapping[int, torch.Tensor] | None = None,
    anchor: int = 0,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    options: MattingOptions | None = None,
) -> torch.Tensor:
    """Alpha matte `[T,H,W]` float32 (CPU) in [0,1] for `frames` `[T,H,W,3]` float in [0,1].

    `first_mask` `[H,W]` in [0,1] is the mask of frame `anchor` (treated as round(mask*255) read as an
    8-bit image, then dilated and eroded). `keyframes` maps other frame indices to masks that re-prompt the
    matting there (kept as permanent memory). With `anchor > 0` matting runs backward to frame 0 and forward
    to the end, both from the anchor, which both passes matte identically. `progress(done, total)` is
    called after every output frame, `check_interrupt()` before every network step (warm-up steps
    included); an exception raised from either stops matting and propagates.
    `options`, when given, supplies every setting and overrides the keyword arguments.
    """
    _check_frames(frames)
    total, height, width = frames.shape[:3]
    size = (height, width)
    first_mask = _check_mask(first_mask, size, "first_mask")
    if not (torch.round(first_mask.float().clamp(0, 1) * 255) > 0).any():
        raise ValueError("first_mask is empty: no pixel of the anchor mask marks the subject")
    if not 0 <= anchor < total:
        raise ValueError(f"anchor frame {anchor} is out of range for a clip of {total} frames")
    keyframes = dict(keyframes or {})
    for index, mask in list(keyframes.items()):
        if not 0 <= index < total:
            raise ValueError(f"keyframe index {index} is out of range for a clip of {total} frames")
        if index == anchor:
            raise ValueError(f"keyframe index {index} is the anchor frame; pass that mask as first_mask")
        keyframes[index] = _check_mask(mask, size, f"keyframe mask {index}")
    if options is None:
        options = MattingOptions(
            warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size, long_term=long_term
        )

    alphas = torch.empty(total, height, width, dtype=torch.float32)
    done = 0
    passes = [range(anchor, total)]
    if anchor > 0:
        passes.append(range(anchor, -1, -1))
    for order in passes:
        session = MattingSession(model, options, check_interrupt=check_interrupt)
        try:
            for index in order:
                mask = first_mask if index == anchor else keyframes.get(index)
                alpha = session.step(frames[index], mask)
                if index == anchor and order is not passes[0]:
                    continue  # the forward pass already wrote the anchor
                alphas[index] = alpha
                done += 1
                if progress is not None:
                    progress(done, total)
        finally:
            session.close()
    return alphas
