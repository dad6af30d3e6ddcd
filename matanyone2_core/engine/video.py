"""Whole-clip matting: stream a `[T,H,W,3]` clip through sessions into a CPU alpha buffer, for one object
(`matte_video`) or several at once (`matte_objects`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..network.model import MatAnyone2Network
from .anchors import BLENDS, KEYFRAME_MODES, run_anchor_passes
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
    check_object_keyframes,
    check_object_masks,
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
    keyframe_mode: str = "reprompt",
    blend: str = "quality",
    evaluator: Any = None,
) -> torch.Tensor:
    """Alpha matte `[T,H,W]` float32 (CPU) in [0,1] for `frames` `[T,H,W,3]` float in [0,1].

    `first_mask` `[H,W]` in [0,1] is the mask of frame `anchor` (treated as round(mask*255) read as an
    8-bit image, then dilated and eroded). `keyframes` maps other frame indices to masks that re-prompt the
    matting there (kept as permanent memory). With `anchor > 0` matting runs backward to frame 0 and forward
    to the end, both from the anchor, which both passes matte identically. `progress(done, total)` is
    called after every output frame, `check_interrupt()` before every network step (warm-up steps
    included); an exception raised from either stops matting and propagates.
    `options`, when given, supplies every setting and overrides the keyword arguments.

    `keyframe_mode="reprompt"` (the default, the official semantics) is the above. `"anchors"` makes the first
    mask and every keyframe an anchor matted in both directions, each segment between two anchors matted
    forward from the earlier and backward from the later and joined by `blend` (`"quality"`: per pixel, from
    `evaluator`'s error maps (analytic when None); `"linear"` / `"cosine"`: by distance to the anchors), see
    `engine.anchors`; then `progress` counts frame visits (frames inside segments are visited twice).

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
    options = _checked_settings(options, size, progress, check_interrupt, keyframe_mode, blend, evaluator,
                                warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size,
                                long_term=long_term)  # fmt: skip

    alphas = torch.empty(total, height, width, dtype=torch.float32)
    if keyframe_mode == "anchors":
        run_anchor_passes(model, frames, {anchor: first_mask, **keyframes}, options, alphas, num_objects=None,
                          blend=blend, evaluator=evaluator, progress=progress, check_interrupt=check_interrupt)
        return alphas

    def store(index: int, alpha: torch.Tensor) -> None:
        alphas[index] = alpha

    _run_passes(
        model,
        frames,
        first_mask,
        keyframes,
        anchor,
        options,
        store,
        num_objects=None,
        progress=progress,
        check_interrupt=check_interrupt,
    )
    return alphas


def matte_objects(
    model: MatAnyone2Network,
    frames: torch.Tensor,
    masks: Any,
    *,
    warmup: int = 10,
    erode: int = 10,
    dilate: int = 10,
    max_internal_size: int = -1,
    long_term: bool = False,
    keyframes: Mapping[int, Any] | None = None,
    anchor: int = 0,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
    options: MattingOptions | None = None,
    keyframe_mode: str = "reprompt",
    blend: str = "quality",
    evaluator: Any = None,
) -> torch.Tensor:
    """Alpha mattes `[N,T,H,W]` float32 (CPU) of N objects (people) in one pass over `frames` `[T,H,W,3]`.

    `masks` `[N,H,W]` in [0,1] (or a list of N `[H,W]` masks) holds one mask per object on frame `anchor`;
    none may be empty. `keyframes` maps other frame indices to masks for some or all objects, either
    `{frame: [N,H,W] tensor}` (an empty mask: no keyframe for that object there) or
    `{frame: {object index: [H,W] mask}}`. Every other argument is `matte_video`'s, and each object's alpha
    equals `matte_video(model, frames, masks[i], keyframes={frame: that object's masks}, ...)` with the same
    options, up to float rounding (batching changes the order of some sums: below 1e-6 in fp32 in the tests).

    The work that does not depend on an object is done once per frame for all objects: the image encoding
    (pixel encoder, key projection) always; the memory read (top-k) for every group of objects with the
    same keyframes so far. `progress(done, total)` is called once per output frame (all objects),
    `check_interrupt()` before every network step. Every input is checked before any work; a bad one raises
    ValueError naming it (and the object, for masks). `keyframe_mode`, `blend` and `evaluator` as in
    `matte_video`; in the anchors mode every keyframe needs a mask for every object (they are its anchors).
    """
    model = check_model(model)
    check_frames(frames)
    total, height, width = frames.shape[:3]
    size = (height, width)
    anchor_masks = check_object_masks(masks, size, name="masks")
    count = len(anchor_masks)
    anchor = check_index(anchor, name="anchor", count=total)
    keyframes = check_object_keyframes(keyframes, size, total, count, anchor=anchor)
    options = _checked_settings(options, size, progress, check_interrupt, keyframe_mode, blend, evaluator,
                                warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size,
                                long_term=long_term)  # fmt: skip

    alphas = torch.empty(count, total, height, width, dtype=torch.float32)
    if keyframe_mode == "anchors":
        anchors = {anchor: torch.stack([anchor_masks[i] for i in range(count)])}
        for index, per_object in keyframes.items():
            missing = [i for i in range(count) if i not in per_object]
            if missing:
                raise ValueError(f"keyframes[{index}]: the anchors mode needs a mask for every object; objects "
                                 f"{missing} have none")  # fmt: skip
            anchors[index] = torch.stack([per_object[i] for i in range(count)])
        run_anchor_passes(model, frames, anchors, options, alphas, num_objects=count, blend=blend,
                          evaluator=evaluator, progress=progress, check_interrupt=check_interrupt)
        return alphas

    def store(index: int, alpha: torch.Tensor) -> None:
        alphas[:, index] = alpha

    _run_passes(
        model,
        frames,
        anchor_masks,
        keyframes,
        anchor,
        options,
        store,
        num_objects=count,
        progress=progress,
        check_interrupt=check_interrupt,
    )
    return alphas


def _checked_settings(
    options: MattingOptions | None,
    size: tuple[int, int],
    progress: Any,
    check_interrupt: Any,
    keyframe_mode: Any,
    blend: Any,
    evaluator: Any,
    **loose: Any,
) -> MattingOptions:
    """The checks `matte_video` and `matte_objects` share: the callbacks, the options (`options`, else the loose
    keyword settings), the kernels against the frame size, the keyframe mode, blend and evaluator."""
    check_callable(progress, name="progress")
    check_callable(check_interrupt, name="check_interrupt")
    options = check_options(MattingOptions(**loose) if options is None else options)
    check_kernels(options, size)
    if keyframe_mode not in KEYFRAME_MODES:
        raise ValueError(f"keyframe_mode must be one of {KEYFRAME_MODES}, got {keyframe_mode!r}")
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
    check_callable(evaluator, name="evaluator")
    return options


def _prepared(session: MattingSession, frames: torch.Tensor, order: range, batch: int):
    """The frames of `order`, raw (batch 1) or encoded `batch` at a time by `session.prepare`."""
    if batch == 1:
        yield from (frames[index] for index in order)
        return
    indices = list(order)
    for start in range(0, len(indices), batch):
        yield from session.prepare([frames[index] for index in indices[start : start + batch]])


def _run_passes(
    model: MatAnyone2Network,
    frames: torch.Tensor,
    anchor_mask: Any,
    keyframes: Mapping[int, Any],
    anchor: int,
    options: MattingOptions,
    store: Callable[[int, torch.Tensor], None],
    *,
    num_objects: int | None,
    progress: Callable[[int, int], None] | None,
    check_interrupt: Callable[[], None] | None,
) -> None:
    """Forward from the anchor to the end, then (anchor > 0) backward from the anchor to frame 0, each pass a
    fresh session; `store(index, alpha)` receives every output frame once (the anchor from the first pass)."""
    total = frames.shape[0]
    done = 0
    passes = [range(anchor, total)]
    if anchor > 0:
        passes.append(range(anchor, -1, -1))
    for order in passes:
        session = MattingSession(model, options, check_interrupt=check_interrupt, num_objects=num_objects)
        try:
            batch = options.encode_batch
            for index, frame in zip(order, _prepared(session, frames, order, batch), strict=True):
                mask = anchor_mask if index == anchor else keyframes.get(index)
                alpha = session.step(frame, mask)
                if index == anchor and order is not passes[0]:
                    continue  # the forward pass already wrote the anchor
                store(index, alpha)
                done += 1
                if progress is not None:
                    progress(done, total)
        finally:
            session.close()
