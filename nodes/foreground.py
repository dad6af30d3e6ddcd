"""MA2EstimateForeground: the true foreground colours of any frames and alpha (thin over
matanyone2_core.estimate_foreground)."""

from __future__ import annotations

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..matanyone2_core import estimate_foreground
from ..matanyone2_core.engine.validate import check_frames
from .schema import advanced, schema


class MA2EstimateForeground(io.ComfyNode):
    """Solves frame = alpha * F + (1 - alpha) * B for the foreground colour F (and the background B)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2EstimateForeground",
            display_name="MatAnyone 2 Estimate Foreground",
            category="video/matting",
            description=(
                "Recovers the subject's true colours from frames and an alpha from any node (multi-level "
                "foreground estimation): composited on a new background, hair and soft edges then carry no "
                "halo of the old background. Outputs straight and premultiplied foreground and the background "
                "estimate."
            ),
            search_aliases=["foreground estimation", "decontaminate", "color spill", "halo removal", "unmix"],
            inputs=[
                io.Image.Input("images", tooltip="The frames [T,H,W,3]."),
                io.Mask.Input("alpha", tooltip="Their alpha matte [T,H,W] (or one [H,W] for every frame)."),
                advanced(io.Int.Input, "fine_iterations", default=2, min=1, max=50,
                         tooltip="Refinement passes on the full-resolution levels: more converge further (about "
                         "25 % less composite error at 10) and cost proportionally."),  # fmt: skip
            ],
            outputs=[
                io.Image.Output(display_name="foreground", tooltip="Straight foreground colours F [T,H,W,3]."),
                io.Image.Output(display_name="premultiplied", tooltip="alpha * F, for premultiplied compositing."),
                io.Image.Output(display_name="background", tooltip="The estimated background B [T,H,W,3]."),
            ],
        )

    @classmethod
    def execute(cls, images: torch.Tensor, alpha: torch.Tensor, fine_iterations: int = 2) -> io.NodeOutput:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be an IMAGE batch [T,H,W,3], got {shape}")
        frames = images[..., :3].detach().to(device="cpu", dtype=torch.float32)
        check_frames(frames, name="images")
        matte = alpha.detach().to(device="cpu", dtype=torch.float32)
        bar = comfy.utils.ProgressBar(frames.shape[0])

        def on_frame(done: int, total: int) -> None:
            mm.throw_exception_if_processing_interrupted()
            bar.update_absolute(done, total)

        fg, bg = estimate_foreground(frames, matte, big_iterations=fine_iterations, return_background=True,
                                     device=mm.get_torch_device(), progress=on_frame)  # fmt: skip
        a = matte if matte.ndim == 3 else matte[None]
        out = mm.intermediate_device()
        return io.NodeOutput(fg.to(out), (fg * a[..., None]).to(out), bg.to(out))
