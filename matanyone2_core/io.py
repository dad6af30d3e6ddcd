"""Reading frames and masks, writing alphas and foregrounds (PIL; PyAV only for video files)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v"}


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float in [0,1] -> uint8 with round-half-to-even, as the official writer does."""
    return np.round(x.detach().float().clamp(0, 1).cpu().numpy() * 255).astype(np.uint8)


def read_rgb(path: str | Path) -> torch.Tensor:
    """An image file as `[H,W,3]` float32 in [0,1] (8-bit RGB / 255)."""
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.uint8).astype(np.float32) / 255.0)


def read_mask(path: str | Path) -> torch.Tensor:
    """A mask image as `[H,W]` float in [0,1].

    A cut-out (RGBA, LA, or a palette PNG with transparency) whose alpha is not fully opaque gives its alpha
    channel: a transparent PNG of the subject masks the subject. Any other image is converted to 8-bit grey
    first, like the official driver (an opaque RGBA image counts as a grey one: white = subject).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode == "P" and "transparency" in im.info:
                im = im.convert("RGBA")
            if "A" in im.getbands():
                alpha = np.asarray(im.getchannel("A").convert("L"), dtype=np.uint8)
                if alpha.min() < 255:
                    return torch.from_numpy(alpha.astype(np.float32) / 255.0)
            return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"mask {path} is not a readable image: {exc}") from exc


def frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no image frames ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels; PNGs are also verified
    (chunk checksums), which catches truncated and corrupted files cheaply. A bad file is a ValueError."""
    try:
        with Image.open(path) as im:
            width, height = im.size
            if im.format == "PNG":
                im.verify()
    except (OSError, SyntaxError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{path} is not a readable image: {exc}") from exc
    return height, width


def probe_frames(source: str | Path, *, name: str = "frames") -> tuple[int | None, tuple[int, int]]:
    """(frame count if known, (H, W)) of a frame folder or video, read from headers only.

    Every image of a folder is opened (header only) and must be readable and of one size; a video's size and
    frame count come from its stream header. Raises ValueError (or FileNotFoundError) naming the file.
    """
    source = Path(source)
    if source.is_dir():
        files = frame_files(source)
        size = image_size(files[0])
        for f in files[1:]:
            other = image_size(f)
            if other != size:
                raise ValueError(
                    f"{name}: {f.name} is {other[0]}x{other[1]} (HxW) but {files[0].name} is {size[0]}x{size[1]}; "
                    "all frames must have one size"
                )
        return len(files), size
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        av = _import_av(source)
        try:
            with av.open(str(source)) as container:
                stream = container.streams.video[0]
                size = (stream.codec_context.height, stream.codec_context.width)
                count = stream.frames or None
        except (av.FFmpegError, OSError, IndexError) as exc:
            raise ValueError(f"{name}: {source} is not a readable video: {exc}") from exc
        if min(size) <= 0:
            raise ValueError(f"{name}: {source} has no frame size in its header")
        return count, size
    raise FileNotFoundError(f"frames not found: {source} is neither a folder of images nor a video file")


def _import_av(source: Path):
    try:
        import av
    except ImportError as exc:
        raise RuntimeError(f"reading {source} needs PyAV (pip install av), or pass a folder of frames") from exc
    return av


def iter_frames(source: str | Path) -> tuple[int | None, Iterator[torch.Tensor]]:
    """(frame count if known, iterator of `[H,W,3]` float frames) from a folder of images or a video file."""
    source = Path(source)
    if source.is_dir():
        files = frame_files(source)

        def from_files() -> Iterator[torch.Tensor]:
            for f in files:
                yield read_rgb(f)

        return len(files), from_files()
    if source.is_file() and source.suffix.lower() in VIDEO_SUFFIXES:
        av = _import_av(source)
        container = av.open(str(source))
        stream = container.streams.video[0]
        count = stream.frames or None

        def from_video() -> Iterator[torch.Tensor]:
            with container:
                for frame in container.decode(stream):
                    yield torch.from_numpy(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)

        return count, from_video()
    raise FileNotFoundError(f"frames not found: {source} is neither a folder of images nor a video file")


def partial_name(path: Path) -> Path:
    """The temporary name a PNG is written under before it is renamed to `path` (same folder, not *.png)."""
    return path.with_name(f".{path.name}.partial")


def save_png(image: Image.Image, path: Path) -> None:
    """Write `image` as PNG atomically: to `partial_name(path)`, then renamed; an interrupted or failed write
    (KeyboardInterrupt included) removes the partial file, so `path` is either complete or absent."""
    tmp = partial_name(path)
    try:
        image.save(tmp, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_alpha(alpha: torch.Tensor, path: Path) -> None:
    """8-bit grey PNG of an alpha `[H,W]` in [0,1] (atomic)."""
    save_png(Image.fromarray(to_uint8(alpha), mode="L"), path)


def save_foreground(frame: torch.Tensor, alpha: torch.Tensor, path: Path) -> None:
    """RGBA PNG: the frame's colours with the alpha as transparency (atomic)."""
    rgba = np.concatenate([to_uint8(frame), to_uint8(alpha)[..., None]], axis=-1)
    save_png(Image.fromarray(rgba, mode="RGBA"), path)
