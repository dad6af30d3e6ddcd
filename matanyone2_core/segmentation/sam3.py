"""ComfyUI core's SAM 3 / 3.1 outputs as per-object masks: the `SAM3_TRACK_DATA` of SAM3 Video Track and the
mask batches of SAM3 Detect.

`SAM3_TRACK_DATA` is a plain dict: `packed_masks` uint8 `[frames, objects, H_m, W_m / 8]` (or None when
nothing was tracked), each byte holding 8 horizontally adjacent pixels, least-significant bit first (bit i
of byte j is pixel 8j + i), thresholded at logit > 0, at the tracker's internal size `H_m x W_m`;
`n_frames`; `scores` (one per object) and `orig_size` `(H, W)` of the frames. Objects found later by text
are appended, with zeros on the frames before they appeared.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .objects import ObjectMasks

_BITS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor) -> torch.Tensor:
    """Bit-packed uint8 `[..., W/8]` -> bool `[..., W]`, least-significant bit first."""
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8 or packed.ndim < 1:
        raise ValueError(f"packed masks must be a uint8 tensor, got {getattr(packed, 'dtype', type(packed))}")
    return (packed.unsqueeze(-1) & _BITS.to(packed.device)).bool().flatten(-2)


def _check_track_data(track_data) -> tuple[torch.Tensor, tuple[int, int]]:
    if not isinstance(track_data, dict) or "packed_masks" not in track_data:
        kind = type(track_data).__name__
        raise ValueError(f"track_data must be SAM3 track data (a dict with packed_masks), got {kind}")
    packed = track_data["packed_masks"]
    if packed is None:
        raise ValueError("track_data holds no objects: SAM3 tracked nothing in this clip")
    if not isinstance(packed, torch.Tensor) or packed.ndim != 4 or packed.dtype != torch.uint8:
        raise ValueError(f"track_data packed_masks must be uint8 [frames, objects, H, W/8], got "
                         f"{getattr(packed, 'dtype', None)} {list(getattr(packed, 'shape', []))}")  # fmt: skip
    size = track_data.get("orig_size")
    if size is None:
        size = (packed.shape[2], packed.shape[3] * 8)
    return packed, (int(size[0]), int(size[1]))


def track_object_count(track_data) -> int:
    """How many objects the track data holds."""
    packed, _ = _check_track_data(track_data)
    return packed.shape[1]


def objects_from_track_data(
    track_data, *, objects: Sequence[int] | None = None, frames: Sequence[int] | None = None,
    size: tuple[int, int] | None = None,
) -> ObjectMasks:
    """Per-object masks `[N,T,H,W]` from SAM3 track data: the objects `objects` (default all, in that order),
    on clip frames `frames` (default all; consecutive), unpacked and resized bilinearly to `size` (default the
    track data's `orig_size`), as SAM3 Track to Mask resizes; float 0..1 (fractional at the edges). Only the
    requested frames are unpacked."""
    packed, orig = _check_track_data(track_data)
    n_frames, n_objects = packed.shape[:2]
    chosen = list(range(n_objects)) if objects is None else [int(i) for i in objects]
    for i in chosen:
        if not 0 <= i < n_objects:
            raise ValueError(f"object index {i} is out of range: the track data holds {n_objects} object(s) "
                             f"(0..{n_objects - 1})")  # fmt: skip
    if not chosen:
        raise ValueError("no object chosen from the track data")
    frame_list = list(range(n_frames)) if frames is None else [int(t) for t in frames]
    if any(not 0 <= t < n_frames for t in frame_list):
        raise ValueError(f"frames {frame_list} outside the track data's {n_frames} frames")
    if frame_list != list(range(frame_list[0], frame_list[0] + len(frame_list))):
        raise ValueError(f"frames must be consecutive, got {frame_list}")
    height, width = size or orig
    out = torch.empty(len(chosen), len(frame_list), height, width, dtype=torch.float32)
    for k, t in enumerate(frame_list):  # one frame of unpacked masks at a time
        bits = unpack_bits(packed[t, chosen].cpu()).float()[:, None]  # [N,1,H_m,W_m]
        if tuple(bits.shape[-2:]) != (height, width):
            bits = F.interpolate(bits, size=(height, width), mode="bilinear", align_corners=False)
        out[:, k] = bits[:, 0].clamp(0.0, 1.0)
    return ObjectMasks(out, first_frame=frame_list[0])


def objects_from_masks(masks: torch.Tensor, *, frame: int = 0) -> ObjectMasks:
    """Objects from a MASK batch `[N,H,W]` that holds one mask per object of one frame (e.g. SAM3 Detect with
    individual masks on one image), made on clip frame `frame`."""
    if not isinstance(masks, torch.Tensor) or masks.ndim not in (2, 3):
        shape = list(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must be [N,H,W] (one mask per object on one frame), got {shape}")
    masks = masks[None] if masks.ndim == 2 else masks
    return ObjectMasks(masks[:, None].float().clamp(0, 1), first_frame=frame)
