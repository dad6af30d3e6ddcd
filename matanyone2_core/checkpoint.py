"""Checkpoint reading, verification and download (being written)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

OFFICIAL_WEIGHTS_URL = "https://github.com/pq-yang/MatAnyone2/releases/download/v1.0.0/matanyone2.pth"
OFFICIAL_WEIGHTS_FILENAME = "matanyone2.pth"
OFFICIAL_WEIGHTS_SHA256: str | None = None


class CheckpointError(ValueError):
    """A weights file that cannot be used, with the file and the reason in the message."""


def load_matting_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
    raise NotImplementedError


def download_official_weights(
    folder: str | Path,
    *,
    url: str = OFFICIAL_WEIGHTS_URL,
    filename: str = OFFICIAL_WEIGHTS_FILENAME,
    sha256: str | None = OFFICIAL_WEIGHTS_SHA256,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    raise NotImplementedError
