"""Sample inputs for the example workflows: a synthetic clip written as ComfyUI input files.

The clip comes from `matanyone2_core.synthetic.make_clip`, whose alpha is exact, so a workflow's output can
be scored against ground truth. Videos are written losslessly as PNG frames in an mp4 container: they decode
to `rgb24`, the pixel format that every ComfyUI's Load Video turns into `value / 255` (0.33 sends other
formats, such as the `gbrp` of H.264 RGB, through a float conversion that lands off the 8-bit levels), so
every host sees exactly the frames that were generated (after 8-bit quantisation), and so does `read_video`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from matanyone2_core.io import to_uint8

CLIP_FILE = "ma2_sample_clip.mp4"
FIRST_MASK_FILE = "ma2_sample_first_mask.png"
KEYFRAME_MASKS_FILE = "ma2_sample_keyframe_masks.mp4"
BACKGROUND_FILE = "ma2_sample_background.png"
FPS = 8


@dataclass
class SampleInputs:
    """What was written, plus the tensors exactly as ComfyUI will read them back."""

    frames: torch.Tensor  # [T,H,W,3] float32, 8-bit quantised
    first_mask: torch.Tensor  # [H,W] float32, 8-bit quantised
    keyframe_masks: torch.Tensor  # [T,H,W] float32: non-zero only on keyframes
    keyframes: list[int]
    alpha: torch.Tensor  # [T,H,W] exact ground truth


#: Pixel formats that every host's Load Video decodes as value / 255 (see the module docstring).
EXACT_PIXEL_FORMATS = ("rgb24",)


def write_video(path: Path, frames_u8: np.ndarray, fps: int = FPS) -> None:
    """Lossless mp4 of PNG frames (decodes to rgb24) from uint8 frames [T,H,W,3]."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=fps)
        stream.width, stream.height = frames_u8.shape[2], frames_u8.shape[1]
        stream.pix_fmt = "rgb24"
        for frame in frames_u8:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path: Path) -> torch.Tensor:
    """Frames [T,H,W,3] float32 as every host's Load Video gives them (only for EXACT_PIXEL_FORMATS clips)."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            if frame.format.name not in EXACT_PIXEL_FORMATS:
                raise ValueError(f"{path} decodes as {frame.format.name}; hosts may decode it differently")
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")) / 255.0)
    return torch.stack(frames)


def background_image(height: int, width: int) -> np.ndarray:
    """A new background for the compositing example: sky gradient over a green field, uint8 [H,W,3]."""
    y = np.linspace(0.0, 1.0, height)[:, None, None]
    sky = (1 - y) * np.array([90, 150, 230]) + y * np.array([200, 225, 250])
    field = np.array([70, 140, 60]) * (1.1 - 0.4 * y)
    image = np.where(y < 0.62, sky, field) * np.ones((1, width, 1))
    return image.clip(0, 255).astype(np.uint8)


def make_sample_clip(height: int, width: int, frames: int, seed: int = 0):
    from matanyone2_core.synthetic import make_clip

    return make_clip(height, width, frames, seed)


def write_sample_inputs(input_dir: Path, height: int, width: int, frames: int, seed: int = 0) -> SampleInputs:
    """Write the clip, its first-frame mask and a keyframe-mask video into ComfyUI's input folder."""
    input_dir.mkdir(parents=True, exist_ok=True)
    clip = make_sample_clip(height, width, frames, seed)
    frames_u8 = to_uint8(clip.frames)
    write_video(input_dir / CLIP_FILE, frames_u8)
    first_u8 = to_uint8(clip.first_mask)
    Image.fromarray(np.stack([first_u8] * 3, axis=-1)).save(input_dir / FIRST_MASK_FILE)

    # Keyframe masks: frame 0 (the first mask) and one correction in the second half, taken from the
    # exact alpha; every other frame black (= no keyframe there).
    count = clip.frames.shape[0]
    keyframes = [0, max(1, (2 * count) // 3)] if count > 1 else [0]
    masks_u8 = np.zeros((count, height, width), dtype=np.uint8)
    masks_u8[0] = first_u8
    for k in keyframes[1:]:
        masks_u8[k] = np.where(clip.alpha[k].cpu().numpy() > 0.5, 255, 0).astype(np.uint8)
    write_video(input_dir / KEYFRAME_MASKS_FILE, np.repeat(masks_u8[..., None], 3, axis=-1))
    # Another aspect ratio than the clip on purpose: the example scales it to cover the frame.
    Image.fromarray(background_image(height * 3 // 2, width * 2)).save(input_dir / BACKGROUND_FILE)
    return SampleInputs(
        frames=torch.from_numpy(frames_u8).float() / 255.0,
        first_mask=torch.from_numpy(first_u8).float() / 255.0,
        keyframe_masks=torch.from_numpy(masks_u8).float() / 255.0,
        keyframes=keyframes,
        alpha=clip.alpha.float(),
    )
