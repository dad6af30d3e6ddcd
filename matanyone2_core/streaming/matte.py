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

SPILL_SCALE = 65535.0
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
    progress: Callable[[int, int], None] | None = None,
    check_interrupt: Callable[[], None] | None = None,
) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]:
    """(index, frame `[H,W,3]`, alpha `[H,W]`) for every frame of `source`, in order (see the module docstring).

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
    return _stream(model, source, first_mask, anchor, keyframes, options, chunk, spill_dir, progress, check_interrupt)


def _stream(model, source, first_mask, anchor, keyframes, options, chunk, spill_dir, progress, check_interrupt):
    count, (height, width) = source.count, source.size
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
                for t, frame in _encoded(backward, reversed_frames(source, 0, anchor + 1, chunk=chunk), options):
                    alpha = backward.step(frame, first_mask if t == anchor else keyframes.get(t))
                    if t < anchor:
                        quantized = torch.round(alpha.clamp(0, 1) * SPILL_SCALE).to(torch.int32).numpy().astype("<u2")
                        os.pwrite(spill.fileno(), quantized.tobytes(), t * frame_bytes)
                    tick()
            finally:
                backward.close()
        forward = session()
        try:
            for t, (frame, prepared) in _encoded(forward, enumerate(source.frames(0)), options, keep=True,
                                                 skip=anchor):  # fmt: skip
                if t < anchor:
                    raw = os.pread(spill.fileno(), frame_bytes, t * frame_bytes)
                    alpha = torch.from_numpy(np.frombuffer(raw, dtype="<u2").reshape(height, width).astype(np.float32))
                    alpha /= SPILL_SCALE
                else:
                    alpha = forward.step(prepared, first_mask if t == anchor else keyframes.get(t))
                    tick()
                yield t, frame, alpha
        finally:
            forward.close()
    finally:
        if spill is not None:
            spill.close()


def _encoded(session, items, options: MattingOptions, *, keep: bool = False, skip: int = 0):
    """(index, frame) pairs with the frames encoded `options.encode_batch` at a time by `session.prepare`
    (raw frames for a batch of 1); with `keep`, (index, (raw frame, prepared)). Frames before `skip` are
    handed out raw (nothing to matte there)."""
    batch = options.encode_batch
    pending: list[tuple[int, torch.Tensor]] = []

    def flush():
        prepared = session.prepare([f for _, f in pending]) if batch > 1 else [f for _, f in pending]
        out = [(t, (f, p) if keep else p) for (t, f), p in zip(pending, prepared, strict=True)]
        pending.clear()
        return out

    for t, frame in items:
        if t < skip:
            yield t, ((frame, None) if keep else frame)
            continue
        pending.append((t, frame))
        if len(pending) == batch:
            yield from flush()
    if pending:
        yield from flush()


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
    place at the end; PNGs are atomic). `progress(done, total)` counts matting passes, then finishing steps."""
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
    frames = stream_mattes(model, source, first_mask, anchor=anchor, keyframes=keyframes, options=options,
                           progress=progress, check_interrupt=check_interrupt)  # fmt: skip
    rgba = codec != "h264"
    start = time.perf_counter()
    timings = {"foreground": 0.0, "encode": 0.0}
    sinks: list[VideoSink] = []
    png_dir = None
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
        count = 0
        for t, frame, alpha in frames:
            tick = time.perf_counter()
            if foreground_colors == "estimated":
                colours = estimate_foreground(frame[None], alpha[None], device=device)[0]
            else:
                colours = frame
            timings["foreground"] += time.perf_counter() - tick
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
            count += 1
        for sink in sinks:
            sink.close()
    except BaseException:
        for sink in sinks:
            sink.abort()
        if png_dir is not None:
            shutil.rmtree(png_dir, ignore_errors=True)
        raise
    return StreamResult(alpha_path, fg_path, png_dir, count, source.fps, time.perf_counter() - start, timings)
