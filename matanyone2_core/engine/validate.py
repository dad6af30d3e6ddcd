"""Input checks shared by `matte_video`, `MattingSession`, the CLI and the ComfyUI nodes.

Every check takes the caller's name for the input (`name=`), so that each front end reports errors in its
own words (`frames`, `images`, `--mask`, `anchor_frame`). Every bad input raises ValueError, wrong types
included, so that callers need to handle a single class; the message names the input and the problem.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..network.model import MatAnyone2Network

if TYPE_CHECKING:
    from .options import MattingOptions

#: Frames and masks may overshoot 0..1 by this much (resampling, colour conversion); such values are clamped.
VALUE_TOLERANCE = 1e-3


def describe(value: Any) -> str:
    """A short description of a bad value for an error message: its repr (shortened) and its type."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _is_int(value: Any) -> bool:
    # bool is an int subclass; True as a frame index or warm-up count is a mistake, never intended
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(value: Any, *, name: str, low: int, high: int | None = None, also: tuple[int, ...] = ()) -> int:
    """`value` as an int in `low..high` (or one of `also`, e.g. -1 for "off"); floats and bools are refused."""
    if _is_int(value):
        value = int(value)
        if value in also or (value >= low and (high is None or value <= high)):
            return value
    allowed = f"{low}.." + ("" if high is None else str(high))
    if also:
        allowed = " or ".join([*(str(a) for a in also), allowed])
    raise ValueError(f"{name} must be an int in {allowed}, got {describe(value)}")


def check_bool(value: Any, *, name: str) -> bool:
    """`value` as a bool; ints (0/1) and strings are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise ValueError(f"{name} must be True or False, got {describe(value)}")


def check_index(value: Any, *, name: str, count: int | None) -> int:
    """A frame index in `0..count-1` as an int (numpy ints are fine; floats, bools and strings are not).

    `count` None (a clip of unknown length) only requires `value >= 0`.
    """
    if not _is_int(value):
        raise ValueError(f"{name} must be an int frame index, got {describe(value)}")
    value = int(value)
    if count is None:
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    elif not 0 <= value < count:
        raise ValueError(f"{name} {value} is out of range for a clip of {count} frames (0..{count - 1})")
    return value


def check_callable(value: Any, *, name: str) -> None:
    """None or a callable."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be a callable or None, got {describe(value)}")


def check_model(model: Any, *, name: str = "model") -> MatAnyone2Network:
    """A loaded MatAnyone 2 network (from `load_matting_model`), not a path, a state dict or another module."""
    if isinstance(model, MatAnyone2Network):
        if model.device.type == "meta":
            raise ValueError(f"{name} has no weights (it is on the meta device); load it with load_matting_model")
        return model
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        hint = "a path; load it first with load_matting_model(path)"
    elif isinstance(model, Mapping):
        hint = "a mapping (a state dict?); load the file with load_matting_model(path)"
    elif model is None:
        hint = "None"
    elif isinstance(model, torch.nn.Module):
        hint = f"a {type(model).__name__} module, not a MatAnyone 2 network"
    else:
        hint = describe(model)
    raise ValueError(f"{name} must be a loaded MatAnyone 2 network (from load_matting_model), got {hint}")


def _check_tensor(t: Any, *, name: str, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name} must be a {what} tensor, got {describe(t)}")
    if t.device.type == "meta":
        raise ValueError(f"{name} is on the meta device, which holds no data; pass a tensor on the CPU or the GPU")
    if t.layout != torch.strided:
        raise ValueError(f"{name} must be a dense tensor, got layout {t.layout}")
    return t


def _range_problem(lo: float, hi: float, *, what: str) -> str | None:
    """Why per-frame extremes `lo`, `hi` are unusable, or None when they are fine."""
    if lo != lo or hi != hi or lo in (float("inf"), float("-inf")) or hi in (float("inf"), float("-inf")):
        return "contains NaN or infinite values"
    if lo < -VALUE_TOLERANCE or hi > 1 + VALUE_TOLERANCE:
        hint = ""
        if hi > 1.5:
            hint = " (0..255 data? divide by 255)"
        elif lo < -0.5:
            hint = " (-1..1 data? map it with (x + 1) / 2)"
        return (
            f"has values in {lo:.4g}..{hi:.4g}, outside 0..1 (tolerance {VALUE_TOLERANCE:g}){hint}; "
            f"{what} must be floats in 0..1"
        )
    return None


def _extremes(t: torch.Tensor, dims: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """Per-item (min, max) over `dims` (all but the first), as Python floats.

    Reductions, not elementwise tests: no temporary as large as the input, and NaN propagates into both
    extremes, so one pair of numbers per frame tells NaN, infinities and the range apart.
    """
    if t.is_contiguous():
        lo, hi = torch.aminmax(t.reshape(t.shape[0], -1), dim=1)  # one pass over the data
    else:  # a strided view (say the RGB slice of an RGBA batch): two passes rather than a copy
        lo, hi = t.amin(dim=dims), t.amax(dim=dims)
    return lo.float().tolist(), hi.float().tolist()


def check_frames(frames: Any, *, name: str = "frames") -> None:
    """A clip `[T,H,W,3]`: float, T >= 1, on a real device, every value finite and in 0..1 (within tolerance).

    One pass over the clip (a min and a max per frame); the message names the first bad frame.
    """
    frames = _check_tensor(frames, name=name, what="[T,H,W,3] float (RGB in 0..1)")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"{name} must be a [T,H,W,3] tensor (RGB, values in 0..1), got {list(frames.shape)}")
    if frames.shape[0] == 0:
        raise ValueError(f"{name} is empty (T = 0)")
    if frames.shape[1] == 0 or frames.shape[2] == 0:
        raise ValueError(f"{name} has frames of size {frames.shape[1]}x{frames.shape[2]} (HxW); both must be >= 1")
    if not frames.is_floating_point():
        raise ValueError(f"{name} must be floating point in 0..1, got {frames.dtype}")
    lows, highs = _extremes(frames, (1, 2, 3))
    for index, (lo, hi) in enumerate(zip(lows, highs, strict=True)):
        problem = _range_problem(lo, hi, what="frames")
        if problem is not None:
            raise ValueError(f"{name}: frame {index} {problem}")


def check_frame(frame: Any, *, name: str = "frame") -> torch.Tensor:
    """One frame `[H,W,3]` checked like `check_frames`; returns it clamped to 0..1 (a new tensor only if needed)."""
    frame = _check_tensor(frame, name=name, what="[H,W,3] float (RGB in 0..1)")
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"{name} must be a [H,W,3] tensor (RGB, values in 0..1), got {list(frame.shape)}")
    if not frame.is_floating_point():
        raise ValueError(f"{name} must be floating point in 0..1, got {frame.dtype}")
    (lo,), (hi,) = _extremes(frame[None], (1, 2, 3))
    problem = _range_problem(lo, hi, what="frames")
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    return frame.clamp(0, 1) if lo < 0 or hi > 1 else frame


def mask_is_empty(mask: torch.Tensor) -> bool:
    """True when no pixel marks the subject once the mask is read as 8 bits: round(mask * 255) == 0 everywhere."""
    return not bool((torch.round(mask.detach().float().clamp(0, 1) * 255) > 0).any())


def check_mask(mask: Any, size: tuple[int, int], *, name: str = "mask", require_subject: bool = True) -> torch.Tensor:
    """A mask `[H,W]` (or `[1,H,W]`) of the frame size, real-valued, finite and in 0..1; returns it as `[H,W]`.

    With `require_subject`, an empty mask (`mask_is_empty`) is refused: it would mark nothing to matte.
    """
    mask = _check_tensor(mask, name=name, what="[H,W] (values in 0..1)")
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2 or tuple(mask.shape) != tuple(size):
        raise ValueError(f"{name} must be [H,W] = {list(size)} like the frames, got {list(mask.shape)}")
    if mask.is_complex():
        raise ValueError(f"{name} must be real-valued in 0..1, got {mask.dtype}")
    if mask.dtype != torch.bool:
        (lo,), (hi,) = _extremes(mask[None], (1, 2))
        problem = _range_problem(lo, hi, what="masks")
        if problem is not None:
            raise ValueError(f"{name} {problem}")
    if require_subject and mask_is_empty(mask):
        raise ValueError(f"{name} is empty: round(mask * 255) is 0 everywhere, so it marks no subject to matte")
    return mask


def check_keyframes(
    keyframes: Any,
    size: tuple[int, int],
    count: int | None,
    *,
    name: str = "keyframes",
    anchor: int | None = None,
    labels: Mapping[int, str] | None = None,
) -> dict[int, torch.Tensor]:
    """A mapping {frame index: mask} with valid indices (not the anchor) and non-empty masks of the frame size.

    `labels` optionally names each index's mask in messages (e.g. its file); the default is `name[index]`.
    """
    if keyframes is None:
        return {}
    if not isinstance(keyframes, Mapping):
        raise ValueError(f"{name} must be a mapping {{frame index: mask}}, got {describe(keyframes)}")
    checked: dict[int, torch.Tensor] = {}
    for index, mask in keyframes.items():
        index = check_index(index, name=f"{name} index", count=count)
        if index == anchor:
            raise ValueError(f"{name} index {index} is the anchor frame; pass that mask as the anchor mask")
        label = (labels or {}).get(index, f"{name}[{index}]")
        checked[index] = check_mask(mask, size, name=label)
    return checked


def _object_label(name: str, index: int) -> str:
    return f"{name}: object {index}'s mask"


def check_object_masks(
    masks: Any,
    size: tuple[int, int],
    *,
    count: int | None = None,
    name: str = "masks",
    require_all: bool = True,
) -> dict[int, torch.Tensor]:
    """Masks of several objects as {object index: `[H,W]` mask}, for the objects that have one.

    `masks` is a `[N,H,W]` tensor or a list/tuple of `[H,W]` masks (mask i belongs to object i), or a mapping
    {object index: `[H,W]` mask} for some objects only (needs `count`). `count` is the number of objects;
    None takes it from the tensor or list, which must hold at least one mask.
    With `require_all` (anchor masks) every object needs a non-empty mask; an empty one is an error naming
    the object. Otherwise an empty mask in a tensor or list means "no mask for that object" and is left
    out, while an empty mask given explicitly in a mapping is an error (it would mark nothing).
    """
    if count is not None and count < 1:
        raise ValueError(f"{name}: the number of objects must be >= 1, got {count}")
    if isinstance(masks, Mapping):
        if count is None:
            raise ValueError(f"{name} must be a [N,H,W] tensor or a list of [H,W] masks, one per object")
        checked: dict[int, torch.Tensor] = {}
        for index, mask in masks.items():
            if not _is_int(index):
                raise ValueError(f"{name}: object index must be an int, got {describe(index)}")
            if not 0 <= int(index) < count:
                raise ValueError(f"{name}: object index {index} is out of range for {count} objects (0..{count - 1})")
            checked[int(index)] = check_mask(mask, size, name=_object_label(name, int(index)))
        missing = [i for i in range(count) if i not in checked]
        if require_all and missing:
            raise ValueError(f"{name} has no mask for object(s) {missing}; every object needs one")
        return dict(sorted(checked.items()))
    if isinstance(masks, (list, tuple)):
        items = list(masks)
    elif isinstance(masks, torch.Tensor):
        masks = _check_tensor(masks, name=name, what="[N,H,W] (one mask per object, values in 0..1)")
        if masks.ndim == 2:
            raise ValueError(
                f"{name} must be [N,H,W] (one mask per object), got a single [H,W] mask {list(masks.shape)}; "
                "add the object axis (mask[None]) for one object"
            )
        if masks.ndim != 3 or tuple(masks.shape[1:]) != tuple(size):
            raise ValueError(
                f"{name} must be [N,H,W] with [H,W] = {list(size)} like the frames, got {list(masks.shape)}"
            )
        items = list(masks.unbind(0))
    else:
        raise ValueError(
            f"{name} must be a [N,H,W] tensor, a list of [H,W] masks or a mapping {{object index: mask}}, "
            f"got {describe(masks)}"
        )
    if not items:
        raise ValueError(f"{name} holds no object (N = 0); pass at least one mask")
    if count is not None and len(items) != count:
        raise ValueError(f"{name} holds {len(items)} masks but there are {count} objects")
    checked = {}
    for index, mask in enumerate(items):
        mask = check_mask(mask, size, name=_object_label(name, index), require_subject=require_all)
        if require_all or not mask_is_empty(mask):
            checked[index] = mask
    return checked


def check_object_keyframes(
    keyframes: Any,
    size: tuple[int, int],
    count: int | None,
    num_objects: int,
    *,
    name: str = "keyframes",
    anchor: int | None = None,
) -> dict[int, dict[int, torch.Tensor]]:
    """Per-object keyframes {frame index: {object index: `[H,W]` mask}}, frames without any mask left out.

    `keyframes` maps frame indices (in range, not the anchor) to that frame's masks in any form
    `check_object_masks` takes with `require_all=False`: a `[N,H,W]` tensor or list whose empty masks mean
    "no keyframe for that object", or a mapping {object index: mask} for some objects.
    """
    if keyframes is None:
        return {}
    if not isinstance(keyframes, Mapping):
        raise ValueError(
            f"{name} must be a mapping {{frame index: [N,H,W] masks or {{object index: mask}}}}, "
            f"got {describe(keyframes)}"
        )
    checked: dict[int, dict[int, torch.Tensor]] = {}
    for index, masks in keyframes.items():
        index = check_index(index, name=f"{name} index", count=count)
        if index == anchor:
            raise ValueError(f"{name} index {index} is the anchor frame; pass those masks as the anchor masks")
        per_object = check_object_masks(masks, size, count=num_objects, name=f"{name}[{index}]", require_all=False)
        if per_object:
            checked[index] = per_object
    return checked


def check_kernels(options: MattingOptions, size: tuple[int, int]) -> None:
    """Erode and dilate kernels must fit in the frame (they are applied at the full frame size)."""
    side = min(size)
    for field in ("erode", "dilate"):
        kernel = getattr(options, field)
        if kernel > side:
            raise ValueError(
                f"{field} kernel {kernel} is larger than the frame ({size[0]}x{size[1]} HxW); use at most {side}"
            )


def available_devices() -> list[str]:
    """The devices this process can compute on: "cpu", then each CUDA device (and "mps" where present)."""
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: str | torch.device, *, name: str = "device") -> torch.device:
    """`device` ("cpu", "cuda", "cuda:1", a torch.device ...) as a torch.device that works in this process.

    An unknown name, a CUDA device without a GPU or beyond the ones present, or the meta device raises a
    ValueError that names the device and the available ones.
    """
    if not isinstance(device, (str, torch.device)):
        raise ValueError(f"{name} must be a device name such as 'cpu' or 'cuda:0', got {describe(device)}")
    available = ", ".join(available_devices())
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{name} {str(device)!r} is not a device name; available: {available}") from exc
    if resolved.type == "meta":
        raise ValueError(f"{name} 'meta' holds no data and cannot run the network; available: {available}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{name} {str(device)!r}: CUDA is not available here (no GPU); available: {available}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"{name} {str(device)!r}: there is no CUDA device {resolved.index} "
                f"({torch.cuda.device_count()} present); available: {available}"
            )
    try:  # other back ends (mps, xpu, ...) are only known to work once a tensor can live there
        torch.empty(1, device=resolved)
    except Exception as exc:  # each back end raises its own types
        raise ValueError(f"{name} {str(device)!r} cannot be used here; available: {available}") from exc
    return resolved

