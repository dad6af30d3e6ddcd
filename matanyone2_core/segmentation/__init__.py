"""Segmentation for matting: click/box prompts, several objects, ComfyUI core's SAM 3 outputs, and SAM 2
(optional: `sam2_backend` imports the `sam2` package only when it is used)."""

from .objects import ObjectMasks
from .prompts import ObjectPrompt, build_prompts, parse_boxes, parse_points
from .sam3 import objects_from_masks, objects_from_track_data, track_object_count, unpack_bits

__all__ = [
    "ObjectMasks",
    "ObjectPrompt",
    "build_prompts",
    "objects_from_masks",
    "objects_from_track_data",
    "parse_boxes",
    "parse_points",
    "track_object_count",
    "unpack_bits",
]
