"""MA2Composite: a matted foreground over a colour, an image, or a batch of background frames."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..matanyone2_core.compositing import composite, parse_color
from .schema import advanced, color_input, schema

FITS = ["cover", "stretch", "error"]
MODES = ["premultiplied", "straight"]


def fit_background(background: torch.Tensor, frames: int, height: int, width: int, fit: str) -> torch.Tensor:
    """Background frames `[1 or T, H, W, 3]` matching the foreground size, by the fit rule."""
    if background.ndim != 4 or background.shape[-1] < 3:
        raise ValueError(f"background must be an IMAGE [B,H,W,3], got shape {tuple(background.shape)}")
    if background.shape[0] not in (1, frames):
        raise ValueError(
            f"background batch has {background.shape[0]} images but foreground has {frames} frames: give one "
            "image (used for every frame) or one per frame"
        )
    background = background[..., :3].to(device="cpu", dtype=torch.float32)
    if tuple(background.shape[1:3]) == (height, width):
        return background
    if fit == "error":
        raise ValueError(
            f"background is {background.shape[1]}x{background.shape[2]} (HxW), foreground {height}x{width}; "
            "set background_fit to cover or stretch, or resize the background"
        )
    if fit not in FITS:
        raise ValueError(f"background_fit must be one of {FITS}, got {fit!r}")
    crop = "center" if fit == "cover" else "disabled"
    resized = comfy.utils.common_upscale(background.movedim(-1, 1), width, height, "bilinear", crop)
    return resized.movedim(1, -1).clamp(0.0, 1.0)


class MA2Composite(io.ComfyNode):
    """Alpha compositing: result = foreground * alpha + background * (1 - alpha)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2Composite",
            display_name="MatAnyone 2 Composite",
            category="video/matting",
            description=(
                "Puts a matted foreground over a new background: a solid colour (green screen), one image "
                "(used for every frame) or a batch of background frames. A background of another size is "
                "scaled to cover the frame and centre-cropped, stretched, or rejected (background_fit)."
            ),
            search_aliases=["green screen", "chroma key", "replace background", "alpha composite", "matte"],
            inputs=[
                io.Image.Input(
                    "foreground",
                    tooltip="Foreground frames [T,H,W,3], e.g. MatAnyone 2 Matte Video's "
                    "foreground output or the original frames (see foreground_mode).",
                ),
                io.Mask.Input(
                    "alpha",
                    tooltip="Alpha matte [T,H,W] (or one [1,H,W] for every frame), same HxW as the foreground.",
                ),
                color_input(
                    "background_color",
                    default="#00B140",
                    tooltip="Background colour (#RRGGBB), used when no background image is connected "
                    "(#00B140 is chroma green, #000000 black).",
                ),
                io.Image.Input(
                    "background",
                    optional=True,
                    tooltip="Background image(s): one image for every frame or one per frame. Overrides "
                    "background_color.",
                ),
                io.Combo.Input(
                    "background_fit",
                    options=FITS,
                    default="cover",
                    tooltip="When the background size differs from the foreground: cover scales it to fill "
                    "and centre-crops, stretch scales it to the exact size, error refuses.",
                ),
                advanced(
                    io.Combo.Input,
                    "foreground_mode",
                    options=MODES,
                    default="premultiplied",
                    tooltip="premultiplied: foreground is already multiplied by alpha (MatAnyone 2 Matte "
                    "Video's foreground); straight: plain frames (e.g. the original video).",
                ),
            ],
            outputs=[io.Image.Output(display_name="image", tooltip="The composited frames [T,H,W,3].")],
        )

    @classmethod
    def execute(
        cls,
        foreground: torch.Tensor,
        alpha: torch.Tensor,
        background_color: str = "#00B140",
        background: torch.Tensor | None = None,
        background_fit: str = "cover",
        foreground_mode: str = "premultiplied",
    ) -> io.NodeOutput:
        if foreground.ndim != 4 or foreground.shape[-1] < 3:
            raise ValueError(f"foreground must be an IMAGE [T,H,W,3], got shape {tuple(foreground.shape)}")
        if foreground_mode not in MODES:
            raise ValueError(f"foreground_mode must be one of {MODES}, got {foreground_mode!r}")
        fg = foreground[..., :3].to(device="cpu", dtype=torch.float32)
        frames, height, width = fg.shape[:3]
        if alpha.ndim == 2:
            alpha = alpha.unsqueeze(0)
        if alpha.ndim != 3 or tuple(alpha.shape[1:]) != (height, width):
            raise ValueError(
                f"alpha has shape {tuple(alpha.shape)} but foreground is {frames}x{height}x{width} (TxHxW); "
                "they must have the same HxW"
            )
        if alpha.shape[0] not in (1, frames):
            raise ValueError(f"alpha batch has {alpha.shape[0]} masks but foreground has {frames} frames")
        alpha = alpha.to(device="cpu", dtype=torch.float32).clamp(0.0, 1.0)
        if background is None:
            bg = parse_color(background_color).view(1, 1, 1, 3).expand(1, height, width, 3)
        else:
            bg = fit_background(background, frames, height, width, background_fit)

        out = composite(fg, alpha, bg, premultiplied=foreground_mode == "premultiplied")
        return io.NodeOutput(out.to(mm.intermediate_device()))
