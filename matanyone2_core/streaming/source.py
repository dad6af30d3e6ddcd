"""Frame sources that decode lazily: a folder of images, a video file (PyAV; seeking for backward passes) or
frames already in memory. Every source gives frames `[H,W,3]` float32 in 0..1 by index range, holding at most
the frames it is asked for."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, frame_files, image_size, read_rgb

DEFAULT_FPS = Fraction(24)


class FrameSource(Protocol):
    """What the streaming engine reads: `count` frames of `size` (H, W) at `fps`."""

    count: int
    size: tuple[int, int]
    fps: Fraction

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        """Frames start..stop-1 in order (stop None: to the end)."""
        ...

    def close(self) -> None: ...


def _range(count: int, start: int, stop: int | None) -> tuple[int, int]:
    stop = count if stop is None else min(int(stop), count)
    if not 0 <= start <= stop:
        raise ValueError(f"frame range {start}..{stop} is outside the clip's {count} frames")
    return start, stop


class TensorSource:
    """Frames already in memory (an IMAGE batch, a VIDEO made of components): indexed, never copied."""

    def __init__(self, frames: torch.Tensor, fps: Fraction | float | None = None):
        if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[-1] < 3:
            raise ValueError(f"frames must be [T,H,W,3], got {getattr(frames, 'shape', type(frames).__name__)}")
        self.tensor = frames
        self.count, self.size = frames.shape[0], (frames.shape[1], frames.shape[2])
        self.fps = Fraction(fps).limit_denominator(1001000) if fps else DEFAULT_FPS

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        start, stop = _range(self.count, start, stop)
        for t in range(start, stop):
            yield self.tensor[t, ..., :3].float().cpu()

    def close(self) -> None:
        pass


class FolderSource:
    """A folder of images sorted by name (every header read up front: one size, all readable)."""

    def __init__(self, folder: str | Path, fps: Fraction | float | None = None):
        self.files = frame_files(Path(folder))
        if not self.files:
            raise ValueError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        sizes = {image_size(f) for f in self.files}
        if len(sizes) != 1:
            raise ValueError(f"the images in {folder} have different sizes: {sorted(sizes)}")
        self.count, self.size = len(self.files), sizes.pop()
        self.fps = Fraction(fps).limit_denominator(1001000) if fps else DEFAULT_FPS

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        start, stop = _range(self.count, start, stop)
        for f in self.files[start:stop]:
            yield read_rgb(f)

    def close(self) -> None:
        pass


def _import_av(what: Any):
    try:
        import av
    except ImportError as exc:
        raise RuntimeError(f"reading {what} needs PyAV (pip install av)") from exc
    return av


class VideoFileSource:
    """A video file (path or binary file object) decoded with PyAV, optionally trimmed to a time window.

    The frames are counted exactly once, from the demuxed packets' timestamps (no decoding), so every frame has
    an index and a presentation timestamp; `frames(start)` seeks to the key frame before `start` and decodes
    from there, which is what makes backward passes possible without holding the clip.
    """

    def __init__(self, file: str | Path | io.IOBase, *, start_time: float = 0.0, duration: float = 0.0):
        self.name = str(file) if isinstance(file, (str, Path)) else "the video"
        if isinstance(file, (str, Path)):
            path = Path(file)
            if not path.is_file():
                raise FileNotFoundError(f"video file not found: {path}")
            if path.suffix.lower() not in VIDEO_SUFFIXES:
                raise ValueError(f"{path} is not a video file ({', '.join(sorted(VIDEO_SUFFIXES))})")
            file = str(path)
        self.av = _import_av(self.name)
        try:
            self.container = self.av.open(file)
        except self.av.FFmpegError as exc:
            raise ValueError(f"{self.name} is not a readable video: {exc}") from exc
        if not self.container.streams.video:
            self.container.close()
            raise ValueError(f"{self.name} has no video stream")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame-threaded decoding on the codec's own threads
        base = self.stream.time_base
        self.time_base = base
        pts = sorted(p.pts for p in self.container.demux(self.stream) if p.pts is not None and p.size > 0)
        if not pts:
            self.container.close()
            raise ValueError(f"{self.name} holds no video frames")
        self.first_pts = pts[0]
        lo = start_time / base + self.first_pts if start_time > 0 else self.first_pts
        hi = (start_time + duration) / base + self.first_pts if duration > 0 else None
        self.pts = [p for p in pts if p >= lo and (hi is None or p < hi)]
        if not self.pts:
            self.container.close()
            raise ValueError(f"{self.name}: no frame inside the window start {start_time} s, duration {duration} s")
        self.window = (float((self.pts[0] - self.first_pts) * base), float(duration))
        self.count = len(self.pts)
        self.size = (self.stream.codec_context.height, self.stream.codec_context.width)
        rate = self.stream.average_rate or self.stream.guessed_rate
        self.fps = Fraction(rate) if rate else DEFAULT_FPS

    def frames(self, start: int = 0, stop: int | None = None) -> Iterator[torch.Tensor]:
        start, stop = _range(self.count, start, stop)
        if start == stop:
            return
        target = self.pts[start]
        self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        done = start
        for frame in self.container.decode(self.stream):
            if frame.pts is not None and frame.pts < target:
                continue  # decoded from the key frame on: not yet at the first frame asked for
            yield torch.from_numpy(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)
            done += 1
            if done >= stop:
                return

    def close(self) -> None:
        self.container.close()


def reversed_frames(
    source: FrameSource, start: int, stop: int, *, chunk: int = 16
) -> Iterator[tuple[int, torch.Tensor]]:
    """(index, frame) for frames stop-1 down to start: each chunk of `chunk` frames is read forward (one seek)
    and handed out backward, so at most `chunk` frames are held."""
    hi = stop
    while hi > start:
        lo = max(start, hi - chunk)
        block = list(source.frames(lo, hi))
        if len(block) != hi - lo:
            raise ValueError(f"frames {lo}..{hi - 1}: the source gave {len(block)} frames instead of {hi - lo}")
        for offset in range(len(block) - 1, -1, -1):
            yield lo + offset, block.pop()
        hi = lo


def open_source(path: str | Path, *, fps: Fraction | float | None = None) -> FrameSource:
    """A folder of images or a video file, by what `path` is."""
    path = Path(path)
    if path.is_dir():
        return FolderSource(path, fps=fps)
    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return VideoFileSource(path)
    raise FileNotFoundError(f"frames not found: {path} is neither a folder of images nor a video file")
