"""MA2MatteVideo: IMAGE batch + seed MASK(s) -> per-frame alpha MASK and foreground IMAGE."""

from __future__ import annotations

from typing import Any

import comfy.model_management as mm
import comfy.utils
import torch
from comfy_api.latest import io

from ..matanyone2_core import estimate_foreground, matte_objects, matte_video
from ..matanyone2_core.engine.anchors import BLENDS, KEYFRAME_MODES
from ..matanyone2_core.engine.options import MAX_ENCODE_BATCH, MEMORY_READS, MattingOptions
from ..matanyone2_core.engine.validate import check_frames, check_index, check_mask
from ..matanyone2_core.segmentation import ObjectMasks
from .models import MattingModel
from .schema import advanced, schema
from .types import MA2Evaluator, MA2Model, MA2Objects

FOREGROUND_COLORS = ["estimated", "frame"]


def speed_inputs() -> list[io.Input]:
    """The fast-mode inputs both matting nodes share (advanced; the defaults are the exact official path)."""
    return [
        advanced(io.Combo.Input, "memory_read", options=list(MEMORY_READS), default="topk",
                 tooltip="topk (default, the official read): each pixel reads its 30 best memory matches. full: a "
                 "softmax over all of memory, faster on GPUs; alphas deviate slightly (see the README)."),
        advanced(io.Int.Input, "encode_batch", default=1, min=1, max=MAX_ENCODE_BATCH,
                 tooltip="Frames whose image features are computed together: 4-8 speed up a GPU, same alphas; "
                 "1 on a CPU."),
        advanced(io.Boolean.Input, "compile", default=False,
                 tooltip="torch.compile the network's steps (CUDA graphs on a GPU): faster once compiled, the "
                 "first frames slower; falls back to normal execution where compiling fails. Same alphas."),
    ]  # fmt: skip

#: A mask frame whose largest value is at or below this counts as empty (no keyframe there). One 8-bit
#: level, so that black frames of a slightly lossy mask video still read as empty.
EMPTY_MASK_LEVEL = 1.0 / 255.0


def split_seed_masks(
    mask: torch.Tensor, frames: int, height: int, width: int, anchor_frame: int
) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """The anchor mask `[H,W]` and the keyframe masks `{index: [H,W]}` from a MASK input.

    A single mask (`[H,W]` or `[1,H,W]`) belongs to frame `anchor_frame`. A batch of one mask per frame
    (`[T,H,W]`) marks keyframes with its non-empty frames; the anchor frame must be one of them. The checks
    are the core's, reported with this node's input names.
    """
    anchor_frame = check_index(anchor_frame, name="anchor_frame", count=frames)
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        shape = list(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise ValueError(f"mask must be a MASK [H,W] or [B,H,W], got {shape}")
    batch = mask.detach().to(device="cpu", dtype=torch.float32)
    if batch.ndim == 2 or batch.shape[0] == 1:
        return check_mask(batch, (height, width), name="mask"), {}
    if batch.shape[0] != frames:
        raise ValueError(
            f"mask batch has {batch.shape[0]} frames but images has {frames}: give one mask (anchor_frame) "
            "or one mask per frame (empty frames are skipped, non-empty ones are keyframes)"
        )
    masks = [check_mask(m, (height, width), name=f"mask frame {i}", require_subject=False) for i, m in enumerate(batch)]
    keyframes = [i for i, m in enumerate(masks) if float(m.max()) > EMPTY_MASK_LEVEL]
    if not keyframes:
        raise ValueError(f"mask batch is empty: all {frames} frames are zero, so there is nothing to matte")
    if anchor_frame not in keyframes:
        raise ValueError(
            f"anchor_frame {anchor_frame} has an empty mask in the mask batch; keyframes (non-empty) are "
            f"{keyframes}: set anchor_frame to one of them"
        )
    return masks[anchor_frame], {i: masks[i] for i in keyframes if i != anchor_frame}


class MA2MatteVideo(io.ComfyNode):
    """Propagates a seed mask through a clip with MatAnyone 2, one frame at a time."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2MatteVideo",
            display_name="MatAnyone 2 Matte Video",
            category="video/matting",
            essentials_category="Video Tools",
            description=(
                "Video matting with MatAnyone 2: from a mask of the subject on one frame (and optionally "
                "correction masks on later frames) to a soft alpha matte for every frame. Frames are "
                "processed one at a time; the clip may start before the anchor frame (matting then runs "
                "backward from it as well)."
            ),
            search_aliases=[
                "matanyone",
                "video matting",
                "remove background video",
                "alpha",
                "rotoscope",
                "matte",
                "green screen",
                "keyframe mask",
            ],
            inputs=[
                MA2Model.Input("model", tooltip="A MatAnyone 2 network from Load MatAnyone 2 Model."),
                io.Image.Input("images", tooltip="The video frames, an IMAGE batch [T,H,W,3] (e.g. from Load Video)."),
                io.Mask.Input(
                    "mask",
                    optional=True,
                    tooltip="Subject mask (white = subject). One MASK [H,W]/[1,H,W] for anchor_frame, or "
                    "a batch [T,H,W] with one mask per frame: non-empty frames are keyframes re-prompting "
                    "the matting there, black frames are ignored. Same HxW as the images. Give this or "
                    "objects.",
                ),
                MA2Objects.Input(
                    "objects",
                    optional=True,
                    tooltip="Several objects (people) to matte in one pass, each with its own alpha: from Mask "
                    "from Points, Segment Video, Objects from Masks or Objects from SAM3 Track. Their masks on "
                    "anchor_frame are the seeds. Give this or mask.",
                ),
                io.Int.Input(
                    "anchor_frame",
                    default=0,
                    min=0,
                    max=1_000_000,
                    tooltip="Index of the frame the (first) mask belongs to. Frames before it are matted "
                    "backward from it. With a mask batch this frame's mask must be non-empty.",
                ),
                io.Int.Input(
                    "erode",
                    default=10,
                    min=0,
                    max=100,
                    tooltip="Erosion kernel (pixels) applied to the seed masks: removes a thin border of "
                    "uncertain pixels. About 4 suits 512x288 clips, about 15 suits 1080p.",
                ),
                io.Int.Input(
                    "dilate",
                    default=10,
                    min=0,
                    max=100,
                    tooltip="Dilation kernel (pixels) applied to the seed masks: grows them so fine edges "
                    "(hair) are inside. Scale with the resolution like erode.",
                ),
                advanced(
                    io.Int.Input,
                    "warmup",
                    default=10,
                    min=0,
                    max=100,
                    tooltip="Refinement passes on the anchor frame before propagation; more give "
                    "a cleaner first alpha at a small time cost.",
                ),
                advanced(
                    io.Int.Input,
                    "max_internal_size",
                    default=-1,
                    min=-1,
                    max=8192,
                    tooltip="Process frames whose shorter side exceeds this at this size (alpha scaled "
                    "back to full size). -1 keeps full resolution; 0 = auto: full resolution when it fits the free "
                    "GPU memory, else the largest size that does (logged). Lower it to save memory on large clips."),
                advanced(
                    io.Boolean.Input,
                    "long_term_memory",
                    default=False,
                    tooltip="Keep a compact long-term memory of old frames: bounded memory and better "
                    "consistency on long clips (hundreds of frames).",
                ),
                # New widgets go last: saved workflows store widget values by position.
                advanced(
                    io.Combo.Input,
                    "foreground_colors",
                    options=FOREGROUND_COLORS,
                    default="estimated",
                    tooltip="estimated (default, the cleanest composite): the subject's true colours solved "
                    "from frame and alpha, so soft edges carry no halo of the old background (costs about as "
                    "much as matting on a CPU, little on a GPU); frame: the frame's own colours (the old "
                    "background stays inside semi-transparent pixels).",
                ),
                advanced(
                    io.Combo.Input,
                    "keyframe_mode",
                    options=list(KEYFRAME_MODES),
                    default="reprompt",
                    tooltip="reprompt (default, the official behaviour): a keyframe mask corrects the matting "
                    "from its frame on. anchors: the first mask and every keyframe are anchors matted in both "
                    "directions, so a keyframe also fixes the frames before it; each stretch between two "
                    "anchors is matted from both ends and the two joined by blend (frames inside are matted "
                    "twice: about twice the time there).",
                ),
                advanced(
                    io.Combo.Input,
                    "blend",
                    options=list(BLENDS),
                    default="quality",
                    tooltip="How anchors mode joins the two passes between anchors. quality: per pixel, the "
                    "pass the evaluator trusts more takes over (smoothed in space and time; by distance where "
                    "both look alike). linear / cosine: cross-fade by distance to each anchor. Each anchor "
                    "frame keeps its own mask's alpha.",
                ),
                *speed_inputs(),
                MA2Evaluator.Input(
                    "evaluator",
                    optional=True,
                    tooltip="The evaluator the quality blend trusts (from Load MatAnyone 2 Matte Evaluator); "
                    "the built-in analytic one when not connected.",
                ),
            ],
            outputs=[
                io.Mask.Output(
                    display_name="alpha",
                    tooltip="The alpha matte, a MASK [T,H,W] in 0..1 (1 = subject); with objects, their union.",
                ),
                io.Image.Output(
                    display_name="foreground",
                    tooltip="The foreground premultiplied by alpha (subject on black) [T,H,W,3], in the colours "
                    "foreground_colors chose; feed it with alpha to MatAnyone 2 Composite (premultiplied).",
                ),
                io.Image.Output(
                    display_name="foreground_straight",
                    tooltip="The foreground colours not multiplied by alpha [T,H,W,3]: for RGBA files (Join "
                    "Image with Alpha) and compositors that take straight colour.",
                ),
                MA2Objects.Output(
                    display_name="object_alphas",
                    tooltip="With objects: every object's own alpha [N,T,H,W] (Select Object picks one).",
                ),
            ],
        )

    @classmethod
    def execute(
        cls,
        model: MattingModel,
        images: torch.Tensor,
        mask: torch.Tensor | None = None,
        anchor_frame: int = 0,
        erode: int = 10,
        dilate: int = 10,
        warmup: int = 10,
        max_internal_size: int = -1,
        long_term_memory: bool = False,
        foreground_colors: str = "estimated",
        objects: ObjectMasks | None = None,
        keyframe_mode: str = "reprompt",
        blend: str = "quality",
        evaluator: Any = None,
        memory_read: str = "topk",
        encode_batch: int = 1,
        compile: bool = False,
    ) -> io.NodeOutput:
        if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
            shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(f"images must be an IMAGE batch [T,H,W,3], got {shape}")
        if foreground_colors not in FOREGROUND_COLORS:
            raise ValueError(f"foreground_colors must be one of {FOREGROUND_COLORS}, got {foreground_colors!r}")
        if (mask is None) == (objects is None):
            raise ValueError("give exactly one of mask (one subject, optional keyframes) and objects (several)")
        frames = images[..., :3].detach().to(device="cpu", dtype=torch.float32)
        check_frames(frames, name="images")
        count, height, width = frames.shape[:3]
        settings = MattingOptions(warmup=warmup, erode=erode, dilate=dilate, max_internal_size=max_internal_size,
                                  long_term=long_term_memory, memory_read=memory_read, encode_batch=encode_batch,
                                  compile=compile)
        options = dict(options=settings, anchor=anchor_frame, keyframe_mode=keyframe_mode, blend=blend,
                       evaluator=evaluator)  # fmt: skip
        if objects is not None:
            anchor_frame = check_index(anchor_frame, name="anchor_frame", count=count)
            if objects.size != (height, width):
                raise ValueError(f"objects are {objects.size[0]}x{objects.size[1]} (HxW) but images are "
                                 f"{height}x{width}")  # fmt: skip
            seeds = objects.at(anchor_frame)
        else:
            first_mask, keyframes = split_seed_masks(mask, count, height, width, anchor_frame)

        estimate = foreground_colors == "estimated"
        bar = comfy.utils.ProgressBar(count * (2 if estimate else 1))

        def on_frame(done: int, total: int) -> None:
            bar.update_absolute(done, total * (2 if estimate else 1))  # the hook may also raise the interrupt

        interrupt = mm.throw_exception_if_processing_interrupted
        try:
            if objects is not None:
                per_object = matte_objects(model.network(), frames, seeds, **options, progress=on_frame,
                                           check_interrupt=interrupt)  # fmt: skip
                alpha = per_object.amax(dim=0)
            else:
                per_object = None
                alpha = matte_video(model.network(), frames, first_mask, **options, keyframes=keyframes or None,
                                    progress=on_frame, check_interrupt=interrupt)  # fmt: skip
            if estimate:
                straight = estimate_foreground(
                    frames, alpha, device=model.device,
                    progress=lambda done, total: (interrupt(), bar.update_absolute(count + done, 2 * count)),
                )  # fmt: skip
            else:
                straight = frames
        finally:
            mm.soft_empty_cache()
        foreground = straight * alpha.unsqueeze(-1)
        out = mm.intermediate_device()
        alphas = None if per_object is None else ObjectMasks(per_object, first_frame=0)
        return io.NodeOutput(alpha.to(out), foreground.to(out), straight.to(out), alphas)
