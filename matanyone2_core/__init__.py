"""MatAnyone 2 video matting in plain PyTorch: network, checkpoint loading, streaming engine, metrics."""

from .checkpoint import (
    OFFICIAL_WEIGHTS_FILENAME,
    OFFICIAL_WEIGHTS_SHA256,
    OFFICIAL_WEIGHTS_URL,
    CheckpointError,
    download_official_weights,
    load_matting_model,
)
from .engine.options import MattingOptions
from .engine.session import MattingSession
from .engine.video import matte_video

__all__ = [
    "OFFICIAL_WEIGHTS_FILENAME",
    "OFFICIAL_WEIGHTS_SHA256",
    "OFFICIAL_WEIGHTS_URL",
    "CheckpointError",
    "MattingOptions",
    "MattingSession",
    "download_official_weights",
    "load_matting_model",
    "matte_video",
]
