"""The image branch from the MatAnyone 2 weights alone: every frame matted on its own, from its own mask."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..engine.options import MattingOptions
from ..engine.session import MattingSession
from ..engine.validate import check_callable, check_frames, check_kernels, check_mask, check_model, mask_is_empty
from ..network.model import MatAnyone2Network


def matte_frames(
    model: MatAnyone2Network,
    frames: torch.Tensor,
    seg: torch.Tensor,
    *,
    warmup: int = 10,
    erode: int = 10,
    dilate: int = 10,
    max_internal_size: int = -1,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> torch.Tensor:
    """Alpha `[T,H,W]` float32 (CPU): frame `t` matted from `seg[t]` alone, with no memory of other frames.

    Each frame runs a fresh one-frame session (its mask encoded, then `warmup + 1` predictions of the frame),
    exactly as `matte_video(model, frames[t:t+1], seg[t], ...)`: sharper than the video branch where the
    per-frame masks are good, but free to flicker. `seg` is `[T,H,W]` (or one `[H,W]` for every frame) in
    0..1; a frame whose mask is empty gets an all-zero alpha (nothing to matte there).
    """
    model = check_model(model)
    check_frames(frames, name="frames")
    count, height, width = frames.shape[:3]
    if isinstance(seg, torch.Tensor) and seg.ndim == 2:
        seg = seg[None].expand(count, height, width)
    if not isinstance(seg, torch.Tensor) or seg.ndim != 3 or seg.shape[0] != count:
        shape = list(seg.shape) if isinstance(seg, torch.Tensor) else type(seg).__name__
        raise ValueError(f"seg must be [T,H,W] with T = {count} (one mask per frame) or one [H,W], got {shape}")
    masks = [check_mask(seg[t], (height, width), name=f"seg frame {t}", require_subject=False) for t in range(count)]
    check_callable(progress, name="progress")
    check_callable(check_interrupt, name="check_interrupt")
    options = MattingOptions(warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size)
    check_kernels(options, (height, width))

    alphas = torch.zeros(count, height, width, dtype=torch.float32)
    for t in range(count):
        if not mask_is_empty(masks[t]):
            session = MattingSession(model, options, check_interrupt=check_interrupt)
            try:
                alphas[t] = session.step(frames[t], masks[t])
            finally:
                session.close()
        elif check_interrupt is not None:
            check_interrupt()
        if progress is not None:
            progress(t + 1, count)
    return alphas
