"""Reading frames and masks, writing alphas and foregrounds (PIL; PyAV only for video files)."""

from __future__ import annotations

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
    """A mask image as `[H,W]` float in [0,1] (converted to 8-bit grey first, like the official driver)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("L"), dtype=np.float32) / 255.0)


def frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no image frames ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files


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
        try:
            import av
        except ImportError as exc:
            raise RuntimeError(f"reading {source} needs PyAV (pip install av), or pass a folder of frames") from exc
        container = av.open(str(source))
        stream = container.streams.video[0]
        count = stream.frames or None

        def from_video() -> Iterator[torch.Tensor]:
            with container:
                for frame in container.decode(stream):
                    yield torch.from_numpy(frame.to_ndarray(format="rgb24").astype(np.float32) / 255.0)

        return count, from_video()
    raise FileNotFoundError(f"frames not found: {source} is neither a folder of images nor a video file")


def save_alpha(alpha: torch.Tensor, path: Path) -> None:
    Image.fromarray(to_uint8(alpha), mode="L").save(path)


def save_foreground(frame: torch.Tensor, alpha: torch.Tensor, path: Path) -> None:
    """RGBA PNG: the frame's colours with the alpha as transparency."""
    rgba = np.concatenate([to_uint8(frame), to_uint8(alpha)[..., None]], axis=-1)
    Image.fromarray(rgba, mode="RGBA").save(path)
