"""SAM 2 nodes: load a SAM 2 / 2.1 model, masks from clicks and boxes (one per object), and objects tracked
through a clip (thin nodes over matanyone2_core.segmentation; `sam2` is an optional dependency)."""

from __future__ import annotations

import logging
import os

import comfy.model_management as mm
import comfy.utils
import folder_paths
import torch
from comfy_api.latest import io

from ..matanyone2_core.segmentation import ObjectMasks, build_prompts, sam2_backend
from .models import ManagedModel, ManagedSAM2, managed
from .schema import advanced, schema
from .types import MA2Objects, MA2Sam2

log = logging.getLogger(__name__)

FOLDER_NAME = "sam2"
WEIGHT_EXTENSIONS = {".pt", ".pth"}
CATEGORY = "video/matting/segmentation"
OFFICIAL = {v.filename: v for v in sam2_backend.SAM2_VARIANTS.values() if v.version == "2.1"}
BoundingBox = io.Custom("BOUNDING_BOX")  # ComfyUI core's box (a dict x, y, width, height, or a list of them)
KJBBox = io.Custom("BBOX")  # KJNodes' boxes: a list of (x0, y0, x1, y1)


def register_sam2_folder() -> None:
    """Register `models/sam2` (extra_model_paths.yaml key `sam2` adds more folders)."""
    folder_paths.add_model_folder_path(FOLDER_NAME, os.path.join(folder_paths.models_dir, FOLDER_NAME))
    paths, extensions = folder_paths.folder_names_and_paths[FOLDER_NAME]
    folder_paths.folder_names_and_paths[FOLDER_NAME] = (paths, set(extensions) | WEIGHT_EXTENSIONS)


def sam2_choices() -> list[str]:
    """Files in the sam2 folders, plus Meta's SAM 2.1 file names (downloadable when missing)."""
    names = list(folder_paths.get_filename_list(FOLDER_NAME))
    return names + [name for name in OFFICIAL if name not in names]


class Sam2Model(ManagedModel):
    """A SAM 2 model owned by ComfyUI's model management (the MA2_SAM2 socket value)."""

    segmenter_: sam2_backend.Sam2Segmenter | None = None

    def segmenter(self) -> sam2_backend.Sam2Segmenter:
        """The segmenter with its network on the compute device (loaded again after an offload)."""
        module = self.module()
        self.segmenter_.device = next(module.parameters()).device
        return self.segmenter_


def resolve_sam2_weights(name: str, download: bool, progress=None) -> str:
    """The full path of SAM 2 weights `name`, downloading Meta's file first when allowed."""
    path = folder_paths.get_full_path(FOLDER_NAME, name)
    if path is not None:
        return path
    folders = folder_paths.get_folder_paths(FOLDER_NAME)
    variant = OFFICIAL.get(name)
    if variant is None:
        raise FileNotFoundError(f"SAM 2 weights '{name}' not found in {folders}")
    if not download:
        raise FileNotFoundError(
            f"SAM 2 weights '{name}' not found. Put Meta's file at {os.path.join(folders[0], name)} (download it "
            f"from {variant.url}), or enable download_if_missing on Load SAM 2."
        )
    done = sam2_backend.download_sam2_weights(folders[0], variant, progress=progress)
    log.info("MatAnyone 2: downloaded %s (sha256 %s)", done.path, done.sha256)
    return str(done.path)


class MA2LoadSAM2(io.ComfyNode):
    """Loader for SAM 2 / 2.1 (tiny, small, base+, large); needs the optional `sam2` package."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2LoadSAM2",
            display_name="Load SAM 2 (MatAnyone 2)",
            category=CATEGORY,
            description=(
                "Loads a SAM 2 / 2.1 checkpoint (Meta's .pt files, tiny / small / base+ / large) from "
                "models/sam2, or downloads Meta's file there. Needs the optional sam2 package: "
                f"`{sam2_backend.SAM2_INSTALL_COMMAND}` with ComfyUI's Python. SAM 2 is Apache-2.0."
            ),
            search_aliases=["sam2", "segment anything", "load sam", "click mask"],
            inputs=[
                io.Combo.Input("model_name", options=sam2_choices(), default="sam2.1_hiera_tiny.pt",
                               tooltip="A file in models/sam2; Meta's SAM 2.1 files are listed even when missing "
                               "so that they can be downloaded."),  # fmt: skip
                io.Boolean.Input("download_if_missing", default=False,
                                 tooltip="Download Meta's file into models/sam2 when missing (atomic; verified by "
                                 "size and by loading it; its SHA-256 is logged)."),  # fmt: skip
                advanced(io.Combo.Input, "device", options=["auto", "cpu"], default="auto",
                         tooltip="auto: ComfyUI's compute device; cpu: always the CPU."),  # fmt: skip
                advanced(io.Combo.Input, "precision", options=["fp32", "bf16", "fp16"], default="fp32",
                         tooltip="Compute precision (weights stay fp32): bf16/fp16 are faster on recent GPUs."),
                advanced(io.Int.Input, "image_size", default=1024, min=256, max=1024, step=256,
                         tooltip="SAM's input size: 1024 is the model's; smaller is faster and coarser."),
            ],
            outputs=[MA2Sam2.Output(display_name="sam2", tooltip="The loaded SAM 2 model.")],
        )

    @classmethod
    def fingerprint_inputs(cls, model_name: str, **_: object) -> str:
        path = folder_paths.get_full_path(FOLDER_NAME, model_name)
        if path is None:
            return f"{model_name}:missing"
        stat = os.stat(path)
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"

    @classmethod
    def execute(cls, model_name: str, download_if_missing: bool = False, device: str = "auto",
                precision: str = "fp32", image_size: int = 1024) -> io.NodeOutput:  # fmt: skip
        sam2_backend.require_sam2()  # before any download: without the package nothing here can run
        bar = comfy.utils.ProgressBar(1)
        path = resolve_sam2_weights(model_name, download_if_missing,
                                    progress=lambda done, total: total and bar.update_absolute(done, total))
        size = None if image_size == 1024 else image_size
        built: dict[str, sam2_backend.Sam2Segmenter] = {}

        def build(offload: torch.device, dtype: torch.dtype) -> torch.nn.Module:
            built["segmenter"] = sam2_backend.load_sam2(path, device=offload, dtype=dtype, image_size=size)
            return built["segmenter"].model

        model = managed(f"sam2 (image_size {image_size})", path, precision, device, build, wrapper=ManagedSAM2,
                        model_class=Sam2Model)  # fmt: skip
        if "segmenter" in built:
            model.segmenter_ = built["segmenter"]
        return io.NodeOutput(model)


def _prompt_inputs() -> list[io.Input]:
    return [
        io.String.Input("positive_points", multiline=True, default="",
                        tooltip="Clicks on the subject(s): KJNodes Points Editor JSON ([{\"x\": 120, \"y\": 80}], "
                        "a list of such lists = one per object) or text, one 'x,y' per line (pixels), an empty "
                        "line or --- between objects, '-x,y' for a negative click."),  # fmt: skip
        io.String.Input("negative_points", multiline=True, default="",
                        tooltip="Clicks NOT on the subject, same formats: one group for all objects or one per "
                        "object."),  # fmt: skip
        # forceInput: newer frontends draw BOUNDING_BOX as a box-editor widget with a default box; here it is
        # a socket, so that an unconnected input means "no box".
        BoundingBox.Input("bounding_box", optional=True, extra_dict={"forceInput": True},
                          tooltip="Core BOUNDING_BOX(es): each box is one object (pairs with the point groups by "
                          "order)."),  # fmt: skip
        KJBBox.Input("bbox", optional=True, tooltip="KJNodes BBOX list (x0, y0, x1, y1): each box is one object."),
    ]


def _prompts(height: int, width: int, positive: str, negative: str, bounding_box, bbox):
    if bounding_box is not None and bbox is not None:
        raise ValueError("give boxes in bounding_box or in bbox, not both")
    boxes, name = (bounding_box, "bounding_box") if bounding_box is not None else (bbox, "bbox")
    return build_prompts(positive, negative, boxes, size=(height, width),
                         names=("positive_points", "negative_points", name))  # fmt: skip


def _frames(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[-1] < 3:
        shape = list(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be an IMAGE batch [T,H,W,3], got {shape}")
    return images[..., :3].detach().to(device="cpu", dtype=torch.float32)


class MA2MaskFromPoints(io.ComfyNode):
    """SAM 2 masks from clicks and boxes on one frame, one mask per object."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2MaskFromPoints",
            display_name="MatAnyone 2 Mask from Points (SAM 2)",
            category=CATEGORY,
            description=(
                "Masks from a few clicks (and/or boxes) on one frame with SAM 2, one mask per object: the first "
                "mask for MatAnyone 2 Matte Video (mask for one subject, objects for several)."
            ),
            search_aliases=["click to mask", "points to mask", "sam2 points", "box to mask", "first mask"],
            inputs=[
                MA2Sam2.Input("sam2", tooltip="From Load SAM 2."),
                io.Image.Input("images", tooltip="An image or a clip [T,H,W,3]; frame_index picks the frame."),
                io.Int.Input("frame_index", default=0, min=0, max=1_000_000,
                             tooltip="The frame the clicks are on (use it as Matte Video's anchor_frame)."),
                *_prompt_inputs(),
            ],
            outputs=[
                MA2Objects.Output(display_name="objects", tooltip="One mask per object on that frame."),
                io.Mask.Output(display_name="mask", tooltip="The union of the objects' masks [1,H,W]."),
                io.Mask.Output(display_name="masks", tooltip="One mask per object [N,H,W]."),
            ],
        )

    @classmethod
    def execute(cls, sam2: Sam2Model, images: torch.Tensor, frame_index: int = 0, positive_points: str = "",
                negative_points: str = "", bounding_box=None, bbox=None) -> io.NodeOutput:  # fmt: skip
        frames = _frames(images)
        if not 0 <= frame_index < frames.shape[0]:
            raise ValueError(f"frame_index {frame_index} is out of range: images has {frames.shape[0]} frame(s)")
        prompts = _prompts(frames.shape[1], frames.shape[2], positive_points, negative_points, bounding_box, bbox)
        masks = sam2.segmenter().segment_image(frames[frame_index], prompts)
        out = mm.intermediate_device()
        objects = ObjectMasks(masks[:, None], first_frame=frame_index)
        return io.NodeOutput(objects, masks.amax(0, keepdim=True).to(out), masks.to(out))


class MA2SegmentVideo(io.ComfyNode):
    """SAM 2 tracking: the objects of one frame's prompts (or masks) through the whole clip."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2SegmentVideo",
            display_name="MatAnyone 2 Segment Video (SAM 2)",
            category=CATEGORY,
            description=(
                "Tracks objects through the clip with SAM 2's video predictor, one mask per object per frame, "
                "from clicks/boxes or seed masks on frame_index (forward to the end, backward to frame 0). "
                "Frames stream from memory and the tracker's per-frame state is pruned, so memory stays "
                "bounded. Per-frame masks are the segmentation that Evaluate Matte and Matte Frames take."
            ),
            search_aliases=["sam2 video", "track objects", "video segmentation", "rotoscope masks"],
            inputs=[
                MA2Sam2.Input("sam2", tooltip="From Load SAM 2."),
                io.Image.Input("images", tooltip="The clip [T,H,W,3]."),
                io.Int.Input("frame_index", default=0, min=0, max=1_000_000, tooltip="The prompted frame."),
                *_prompt_inputs(),
                MA2Objects.Input("objects", optional=True,
                                 tooltip="Seed masks instead of clicks (e.g. from Mask from Points)."),  # fmt: skip
            ],
            outputs=[
                MA2Objects.Output(display_name="objects", tooltip="One mask per object per frame [N,T,H,W]."),
                io.Mask.Output(display_name="mask", tooltip="The union of the objects on every frame [T,H,W]."),
            ],
        )

    @classmethod
    def execute(cls, sam2: Sam2Model, images: torch.Tensor, frame_index: int = 0, positive_points: str = "",
                negative_points: str = "", bounding_box=None, bbox=None,
                objects: ObjectMasks | None = None) -> io.NodeOutput:  # fmt: skip
        frames = _frames(images)
        count, height, width = frames.shape[:3]
        if not 0 <= frame_index < count:
            raise ValueError(f"frame_index {frame_index} is out of range: images has {count} frame(s)")
        if objects is not None:
            if positive_points.strip() or bounding_box is not None or bbox is not None:
                raise ValueError("give clicks/boxes or objects (seed masks), not both")
            if objects.size != (height, width):
                raise ValueError(f"objects are {objects.size[0]}x{objects.size[1]} but images are {height}x{width}")
            prompts, seeds = [], objects.at(frame_index)
        else:
            prompts, seeds = _prompts(height, width, positive_points, negative_points, bounding_box, bbox), None
        bar = comfy.utils.ProgressBar(count)
        masks = sam2.segmenter().segment_video(
            frames, prompts, frame_index=frame_index, masks=seeds,
            progress=lambda done, total: bar.update_absolute(done, total),
            check_interrupt=mm.throw_exception_if_processing_interrupted,
        )  # fmt: skip
        tracked = ObjectMasks(masks, first_frame=0)
        return io.NodeOutput(tracked, tracked.union().to(mm.intermediate_device()))


SEGMENTATION_NODES: list[type[io.ComfyNode]] = [MA2LoadSAM2, MA2MaskFromPoints, MA2SegmentVideo]
