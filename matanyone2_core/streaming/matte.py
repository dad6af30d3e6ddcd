"""Matting a clip that never sits in memory: frames are decoded as they are needed and the results handed out
(or encoded) in frame order, so host memory does not grow with the clip's length.

With the anchor at frame 0 this is one forward pass. With `anchor > 0` the backward pass (anchor down to 0)
runs first, reading the source backward a chunk at a time (`reversed_frames`: one seek per chunk), and its
alphas go to a temporary spill file on disk as 16-bit integers (|error| <= 1/131070, far below the 8 bits
written); the forward pass then decodes from frame 0, hands out the spilled alphas before the anchor and mattes
from the anchor on. The frames and alphas are those of `matte_video` with the same anchor and keyframes.
The anchors keyframe mode (both directions at every keyframe) is not streamed: `matte_video` does it in
memory (see `engine.anchors` for how a two-pass stream would do it).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..engine.options import MattingOptions, check_options
from ..engine.session import MattingSession
from ..engine.validate import check_callable, check_index, check_kernels, check_keyframes, check_mask, check_model
from ..foreground import estimate_foreground
from ..io import save_png, to_uint8
from .sink import VIDEO_CODECS, AudioTrack, VideoSink
from .source import FrameSource, reversed_frames
from .threads import BackgroundWork, prefetched

SPILL_SCALE = 65535.0
SCOUT_SIZE = 256  # short side of the subject-crop scouting pass
CROP_THRESHOLD = 0.05  # alpha above this counts as subject for the crop box
CROP_MARGIN = 0.1  # of the box's size, on every side
MIN_MARGIN = 16  # pixels
FOREGROUND_COLORS = ("estimated", "frame")


def stream_mattes(
    model,
    source: FrameSource,
    first_mask: torch.Tensor,
    *,
    anchor: int = 0,
    keyframes: Mapping[int, torch.Tensor] | None = None,
    options: MattingOptions | None = None,
    chunk: int = 16,
    spill_dir: str | Path | None = None,
    crop: tuple[int, int, int, int] | None = None,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, frame `[H,W,3]`, alpha `[H,W]`) for every frame of `source`, in order (see the module docstring).

    `crop` `(top, bottom, left, right)`: only that box of every frame (and mask) is matted, the alpha outside
    it is 0 (see `subject_box`); the frames handed out stay whole.

    Inputs are checked when this is called, before anything is decoded. `progress(done, total)` counts network
    passes over frames (`count + 1` with `anchor > 0`: the backward pass's anchor..0, then the forward pass's
    anchor..end).
    """
    model = check_model(model)
    options = check_options(options)
    size, count = tuple(source.size), source.count
    anchor = check_index(anchor, name="anchor", count=count)
    first_mask = check_mask(first_mask, size, name="mask")
    keyframes = check_keyframes(keyframes, size, count, anchor=anchor)
    check_kernels(options, size)
    check_callable(progress, name="progress")
    check_callable(check_interrupt, name="check_interrupt")
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk must be a positive int, got {chunk!r}")
    if crop is not None:
        top, bottom, left, right = (int(v) for v in crop)
        if not (0 <= top < bottom <= size[0] and 0 <= left < right <= size[1]):
            raise ValueError(f"crop {tuple(crop)} is not a box (top, bottom, left, right) inside {size[0]}x{size[1]}")
        crop = (top, bottom, left, right)
        check_kernels(options, (bottom - top, right - left))
        check_mask(first_mask[top:bottom, left:right], (bottom - top, right - left), name="mask inside the crop")
    return _stream(model, source, first_mask, anchor, keyframes, options, chunk, spill_dir, crop, progress,
                   check_interrupt)  # fmt: skip


class _Cropped:
    """A source's frames cut to a box (the whole frames are kept for the caller), and masks and alphas with it."""

    def __init__(self, source: FrameSource, box: tuple[int, int, int, int] | None):
        self.source, self.box = source, box
        self.count, self.fps = source.count, source.fps
        self.size = source.size if box is None else (box[1] - box[0], box[3] - box[2])

    def cut(self, image: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            return image
        top, bottom, left, right = self.box
        return image[top:bottom, left:right].contiguous()

    def paste(self, alpha: torch.Tensor) -> torch.Tensor:
        if self.box is None:
            return alpha
        full = torch.zeros(self.source.size, dtype=alpha.dtype)
        top, bottom, left, right = self.box
        full[top:bottom, left:right] = alpha
        return full

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        return (self.cut(f) for f in self.source.frames(start, stop))


def _stream(model, source, first_mask, anchor, keyframes, options, chunk, spill_dir, crop, progress,
            check_interrupt):  # fmt: skip
    cropped = _Cropped(source, crop)
    first_mask = cropped.cut(first_mask)
    keyframes = {t: cropped.cut(m) for t, m in keyframes.items()}
    count, (height, width) = source.count, cropped.size
    total, done = count + (1 if anchor > 0 else 0), 0  # the anchor frame is matted by both passes

    def tick() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    def session() -> MattingSession:
        return MattingSession(model, options, check_interrupt=check_interrupt)

    spill = None
    frame_bytes = height * width * 2
    try:
        if anchor > 0:
            spill = tempfile.TemporaryFile(dir=spill_dir, prefix="matanyone2-spill-")
            spill.truncate(anchor * frame_bytes)
            backward = session()
            try:
                steps = ((t, None, f) for t, f in prefetched(reversed_frames(cropped, 0, anchor + 1, chunk=chunk)))
                for t, _, frame in _encoded(backward, steps, options):
                    alpha = backward.step(frame, first_mask if t == anchor else keyframes.get(t))
                    if t < anchor:
                        quantized = torch.round(alpha.clamp(0, 1) * SPILL_SCALE).to(torch.int32).numpy().astype("<u2")
                        os.pwrite(spill.fileno(), quantized.tobytes(), t * frame_bytes)
                    tick()
            finally:
                backward.close()
        forward = session()
        try:
            steps = ((t, f, cropped.cut(f)) for t, f in enumerate(prefetched(source.frames(0))))
            for t, frame, prepared in _encoded(forward, steps, options, skip=anchor):
                if t < anchor:
                    raw = os.pread(spill.fileno(), frame_bytes, t * frame_bytes)
                    alpha = torch.from_numpy(np.frombuffer(raw, dtype="<u2").reshape(height, width).astype(np.float32))
                    alpha /= SPILL_SCALE
                else:
                    alpha = forward.step(prepared, first_mask if t == anchor else keyframes.get(t))
                    tick()
                yield t, frame, cropped.paste(alpha)
        finally:
            forward.close()
    finally:
        if spill is not None:
            spill.close()


def _encoded(session, items, options: MattingOptions, *, skip: int = 0):
    """(index, whole frame, frame to step) triples, the frames to step encoded `options.encode_batch` at a time
    by `session.prepare` (as they are for a batch of 1). Frames before `skip` are not encoded (nothing to matte
    there)."""
    batch = options.encode_batch
    pending: list[tuple[int, Any, torch.Tensor]] = []

    def flush():
        steps = [f for _, _, f in pending]
        prepared = session.prepare(steps) if batch > 1 else steps
        out = [(t, whole, p) for (t, whole, _), p in zip(pending, prepared, strict=True)]
        pending.clear()
        return out

    for t, whole, frame in items:
        if t < skip:
            yield t, whole, frame
            continue
        pending.append((t, whole, frame))
        if len(pending) == batch:
            yield from flush()
    if pending:
        yield from flush()


def subject_box(
    model,
    source: FrameSource,
    first_mask: torch.Tensor,
    *,
    anchor: int = 0,
    keyframes: Mapping[int, torch.Tensor] | None = None,
    options: MattingOptions | None = None,
    scout_size: int = SCOUT_SIZE,
    margin: float = CROP_MARGIN,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> tuple[int, int, int, int]:
    """The box `(top, bottom, left, right)` the subject stays in over the whole clip, from a cheap pass at
    `scout_size` pixels on the short side: the union of every frame's `alpha > CROP_THRESHOLD` and of the masks,
    grown by `margin` of its size (at least `MIN_MARGIN` pixels) on every side, clipped to the frame. The whole
    frame when nothing is found."""
    options = check_options(options)
    scout = dataclasses.replace(options, max_internal_size=scout_size)
    height, width = source.size
    rows, cols = torch.zeros(height, dtype=torch.bool), torch.zeros(width, dtype=torch.bool)
    for mask in [first_mask, *(keyframes or {}).values()]:
        inside = torch.as_tensor(mask).reshape(height, width) > CROP_THRESHOLD
        rows |= inside.any(1)
        cols |= inside.any(0)
    for _, _, alpha in stream_mattes(model, source, first_mask, anchor=anchor, keyframes=keyframes, options=scout,
                                     progress=progress, check_interrupt=check_interrupt):  # fmt: skip
        inside = alpha > CROP_THRESHOLD
        rows |= inside.any(1)
        cols |= inside.any(0)
    if not rows.any():
        return 0, height, 0, width
    ys, xs = rows.nonzero().flatten(), cols.nonzero().flatten()
    top, bottom, left, right = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
    grow_y = max(MIN_MARGIN, int(margin * (bottom - top)))
    grow_x = max(MIN_MARGIN, int(margin * (right - left)))
    return max(0, top - grow_y), min(height, bottom + grow_y), max(0, left - grow_x), min(width, right + grow_x)


@dataclass
class StreamResult:
    """What `matte_to_files` wrote."""

    alpha_video: Path | None
    foreground_video: Path | None
    png_folder: Path | None
    frames: int
    fps: Any
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    crop: tuple[int, int, int, int] | None = None  # (top, bottom, left, right) with subject_crop


def matte_to_files(
    model,
    source: FrameSource,
    first_mask: torch.Tensor,
    out_dir: str | Path,
    stem: str,
    *,
    codec: str = "h264",
    foreground_colors: str = "estimated",
    png_sequence: bool = False,
    audio: AudioTrack | None = None,
    anchor: int = 0,
    keyframes: Mapping[int, torch.Tensor] | None = None,
    options: MattingOptions | None = None,
    subject_crop: bool = False,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> StreamResult:
    """Matte `source` and encode while it goes: `<stem>_alpha<ext>` (grey) and `<stem>_foreground<ext>` in
    `out_dir` (`codec` from `VIDEO_CODECS`: h264 gives the foreground premultiplied on black; png and
    prores4444 give RGBA, the straight colours with the alpha as transparency), optionally `<stem>_png/pha/`
    and `fgr/` PNG sequences (RGBA), and the source's audio in the foreground video. `foreground_colors`:
    `estimated` (colours solved from frame and alpha, `estimate_foreground`, one frame at a time on `device`) or
    `frame`. Nothing is left under the final names if anything fails or is interrupted (videos are renamed into
    place at the end; PNGs are atomic). `subject_crop`: a scouting pass first finds the box the subject stays in
    (`subject_box`, decoding the clip once more), then only that box is matted at full resolution and the alpha
    outside it is 0 (`StreamResult.crop`). `progress(done, total)` counts matting passes (the scouting pass's
    included)."""
    if codec not in VIDEO_CODECS:
        raise ValueError(f"codec must be one of {sorted(VIDEO_CODECS)}, got {codec!r}")
    if foreground_colors not in FOREGROUND_COLORS:
        raise ValueError(f"foreground_colors must be one of {FOREGROUND_COLORS}, got {foreground_colors!r}")
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise FileNotFoundError(f"output folder not found: {out_dir}")
    ext = VIDEO_CODECS[codec]
    alpha_path, fg_path = out_dir / f"{stem}_alpha{ext}", out_dir / f"{stem}_foreground{ext}"
    for path in (alpha_path, fg_path):
        if path.exists():
            raise FileExistsError(f"{path} exists: choose another file name prefix")
    crop = None
    if subject_crop:
        passes = source.count + (1 if anchor > 0 else 0)
        scouting = None if progress is None else (lambda done, total: progress(done, 2 * passes))
        crop = subject_box(model, source, first_mask, anchor=anchor, keyframes=keyframes, options=options,
                           progress=scouting, check_interrupt=check_interrupt)  # fmt: skip
        main_progress = None if progress is None else (lambda done, total: progress(passes + done, 2 * passes))
    else:
        main_progress = progress
    frames = stream_mattes(model, source, first_mask, anchor=anchor, keyframes=keyframes, options=options,
                           crop=crop, progress=main_progress, check_interrupt=check_interrupt)  # fmt: skip
    rgba = codec != "h264"
    start = time.perf_counter()
    timings = {"foreground": 0.0, "encode": 0.0}
    sinks: list[VideoSink] = []
    png_dir = None
    work = None
    try:
        alpha_sink = VideoSink(alpha_path, fps=source.fps, size=source.size, codec=codec, channels=1)
        sinks.append(alpha_sink)
        fg_sink = VideoSink(fg_path, fps=source.fps, size=source.size, codec=codec, channels=4 if rgba else 3,
                            audio=audio)  # fmt: skip
        sinks.append(fg_sink)
        if png_sequence:
            png_dir = out_dir / f"{stem}_png"
            (png_dir / "pha").mkdir(parents=True, exist_ok=False)
            (png_dir / "fgr").mkdir()
        work = BackgroundWork()  # encoding overlaps the matting of the next frames

        def encode(t: int, alpha: torch.Tensor, colours: torch.Tensor) -> None:
            tick = time.perf_counter()
            a8 = to_uint8(alpha)
            alpha_sink.write(a8)
            if rgba:
                fg8 = np.concatenate([to_uint8(colours), a8[..., None]], axis=-1)
            else:
                fg8 = to_uint8(colours * alpha[..., None])
            fg_sink.write(fg8)
            if png_dir is not None:
                from PIL import Image

                save_png(Image.fromarray(a8, mode="L"), png_dir / "pha" / f"{t:05d}.png")
                rgba8 = fg8 if rgba else np.concatenate([to_uint8(colours), a8[..., None]], axis=-1)
                save_png(Image.fromarray(rgba8, mode="RGBA"), png_dir / "fgr" / f"{t:05d}.png")
            timings["encode"] += time.perf_counter() - tick

        count = 0
        for t, frame, alpha in frames:
            tick = time.perf_counter()
            if foreground_colors == "estimated":
                colours = estimate_foreground(frame[None], alpha[None], device=device)[0]
            else:
                colours = frame
            timings["foreground"] += time.perf_counter() - tick
            work.submit(lambda t=t, alpha=alpha, colours=colours: encode(t, alpha, colours))
            count += 1
        work.close()
        for sink in sinks:
            sink.close()
    except BaseException:
        if work is not None:
            work.abandon()
        for sink in sinks:
            sink.abort()
        if png_dir is not None:
            shutil.rmtree(png_dir, ignore_errors=True)
        raise
    return StreamResult(alpha_path, fg_path, png_dir, count, source.fps, time.perf_counter() - start, timings, crop)
