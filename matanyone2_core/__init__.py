"""MatAnyone 2 video matting in plain PyTorch: network, checkpoint loading, streaming engine, metrics,
foreground colour estimation."""

from .checkpoint import (
    OFFICIAL_WEIGHTS_FILENAME,
    OFFICIAL_WEIGHTS_SHA256,
    OFFICIAL_WEIGHTS_URL,
    CheckpointError,
    download_official_weights,
    load_matting_model,
)
from .engine.options import MAX_INTERNAL_SIZE, MAX_KERNEL, MAX_WARMUP, MattingOptions
from .engine.session import MattingSession
from .engine.validate import VALUE_TOLERANCE, resolve_device
from .engine.video import matte_objects, matte_video
from .foreground import estimate_foreground

__all__ = [
    "MAX_INTERNAL_SIZE",
    "MAX_KERNEL",
    "MAX_WARMUP",
    "OFFICIAL_WEIGHTS_FILENAME",
    "OFFICIAL_WEIGHTS_SHA256",
    "OFFICIAL_WEIGHTS_URL",
    "VALUE_TOLERANCE",
    "CheckpointError",
    "MattingOptions",
    "MattingSession",
    "download_official_weights",
    "estimate_foreground",
    "load_matting_model",
    "matte_objects",
    "matte_video",
    "resolve_device",
]
