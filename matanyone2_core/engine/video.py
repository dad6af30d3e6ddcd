"""Whole-clip matting: stream a `[T,H,W,3]` clip through sessions into a CPU alpha buffer."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch

from ..network.model import MatAnyone2Network
from .options import MattingOptions, check_options
from .session import MattingSession
from .validate import (
    check_callable,
    check_frames,
    check_index,
    check_kernels,
    check_keyframes,
    check_mask,
    check_model,
)


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

    Every input is checked before any work (see `engine.validate`): frames must be finite floats in 0..1
    (within `VALUE_TOLERANCE`), masks non-empty and of the frame size, indices ints in range, options within
    the `MattingOptions` limits, kernels no larger than the frame. Any bad input raises ValueError naming it.
    """
    # Every input is checked here, before the first network step: a bad frame late in a long clip must
    # not cost the whole clip's work before it is reported.
    model = check_model(model)
    check_frames(frames)
    total, height, width = frames.shape[:3]
    size = (height, width)
    first_mask = check_mask(first_mask, size, name="first_mask")
    anchor = check_index(anchor, name="anchor", count=total)
    keyframes = check_keyframes(keyframes, size, total, anchor=anchor)
    check_callable(progress, name="progress")
    check_callable(check_interrupt, name="check_interrupt")
    if options is None:
        options = MattingOptions(
            warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size, long_term=long_term
        )
    options = check_options(options)
    check_kernels(options, size)

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
