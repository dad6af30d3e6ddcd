"""Several objects: masks from any mask node or from core SAM 3, one object picked out, for matting several
people in one pass and compositing them separately (thin nodes over matanyone2_core.segmentation)."""

from __future__ import annotations

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..matanyone2_core.segmentation import ObjectMasks, objects_from_masks, objects_from_track_data
from .schema import schema
from .types import MA2Objects, SAM3TrackData

CATEGORY = "video/matting/objects"


def parse_indices(text: str, *, name: str) -> list[int] | None:
    """'0, 2,3' -> [0, 2, 3]; empty -> None (all). Anything else is an error naming the input."""
    text = (text or "").strip()
    if not text:
        return None
    out = []
    for token in text.replace(";", ",").split(","):
        token = token.strip()
        if not token:
            continue
        if not token.isdigit():
            raise ValueError(f"{name}: {token!r} is not an object index (use e.g. '0, 2')")
        out.append(int(token))
    if len(set(out)) != len(out):
        raise ValueError(f"{name}: object indices repeat ({text!r})")
    return out


class MA2ObjectsFromMasks(io.ComfyNode):
    """Masks of several objects on one frame (a MASK batch, one mask per object) as objects."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2ObjectsFromMasks",
            display_name="MatAnyone 2 Objects from Masks",
            category=CATEGORY,
            description=(
                "Turns a MASK batch that holds one mask per object of ONE frame (e.g. core SAM3 Detect with "
                "individual_masks on one image, or several masks batched) into objects for matting several "
                "people in one pass. Not for a batch of one mask per frame: that is a keyframe batch."
            ),
            search_aliases=["several people", "multi object", "objects from masks", "sam3 detect"],
            inputs=[
                io.Mask.Input("masks", tooltip="One mask per object, all of the same frame [N,H,W]."),
                io.Int.Input("frame_index", default=0, min=0, max=1_000_000,
                             tooltip="The clip frame these masks belong to (matte with anchor_frame = this)."),
            ],
            outputs=[MA2Objects.Output(display_name="objects", tooltip="N objects on that frame.")],
        )

    @classmethod
    def execute(cls, masks: torch.Tensor, frame_index: int = 0) -> io.NodeOutput:
        return io.NodeOutput(objects_from_masks(masks.detach().cpu(), frame=frame_index))


class MA2ObjectsFromSAM3(io.ComfyNode):
    """ComfyUI core's SAM3 Video Track output as per-object masks for every frame."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2ObjectsFromSAM3",
            display_name="MatAnyone 2 Objects from SAM3 Track",
            category=CATEGORY,
            description=(
                "Unpacks core SAM3 Video Track data into one mask per object per frame, resized to the "
                "frame size: the seeds for matting each tracked person (MatAnyone 2 Matte Video's objects "
                "input) and per-object segmentations (Select Object) for Evaluate Matte."
            ),
            search_aliases=["sam3", "sam 3 track", "track data", "several people"],
            inputs=[
                SAM3TrackData.Input("track_data", tooltip="From core SAM3 Video Track."),
                io.String.Input("object_indices", default="",
                                tooltip="Objects to take, e.g. '0, 2' (as SAM3 Track Preview numbers them); "
                                "empty = all."),  # fmt: skip
            ],
            outputs=[MA2Objects.Output(display_name="objects", tooltip="The chosen objects on every frame.")],
        )

    @classmethod
    def execute(cls, track_data: dict, object_indices: str = "") -> io.NodeOutput:
        chosen = parse_indices(object_indices, name="object_indices")
        return io.NodeOutput(objects_from_track_data(track_data, objects=chosen))


class MA2SelectObject(io.ComfyNode):
    """One object's masks (or the union) as a plain MASK."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return schema(
            node_id="MA2SelectObject",
            display_name="MatAnyone 2 Select Object",
            category=CATEGORY,
            description=(
                "Picks one object out of several (e.g. one person's alpha from Matte Video's object_alphas, "
                "to composite each person separately), or their union with index -1."
            ),
            search_aliases=["pick object", "one person", "object alpha"],
            inputs=[
                MA2Objects.Input("objects", tooltip="Objects (masks or alphas of several objects)."),
                io.Int.Input("index", default=0, min=-1, max=1023, tooltip="Object index; -1 = all objects' union."),
            ],
            outputs=[io.Mask.Output(display_name="mask", tooltip="That object's masks [T,H,W].")],
        )

    @classmethod
    def execute(cls, objects: ObjectMasks, index: int = 0) -> io.NodeOutput:
        mask = objects.union() if index == -1 else objects.select(index)
        return io.NodeOutput(mask.to(mm.intermediate_device()))


OBJECT_NODES: list[type[io.ComfyNode]] = [MA2ObjectsFromMasks, MA2ObjectsFromSAM3, MA2SelectObject]
