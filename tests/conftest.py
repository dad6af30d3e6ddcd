"""Shared fixtures: seeded random weights in the official layout, the model, and small synthetic inputs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS.parent))

from weights import random_state_dict, write_random_checkpoint  # noqa: E402

from matanyone2_core import load_matting_model  # noqa: E402

torch.set_num_threads(max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def state_dict() -> dict[str, torch.Tensor]:
    return random_state_dict(0)


@pytest.fixture(scope="session")
def weights_path(tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("weights") / "matanyone2.pth", seed=0)


@pytest.fixture(scope="session")
def model(weights_path):
    return load_matting_model(weights_path)


def ellipse_mask(height: int, width: int) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2) < 1).float()


def random_frames(frames: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    """A smooth-ish random clip `[T,H,W,3]`: a random image drifting a pixel per frame plus noise."""
    gen = torch.Generator().manual_seed(seed)
    base = torch.rand(height + frames, width + frames, 3, generator=gen)
    clip = torch.stack([base[t : t + height, t : t + width] for t in range(frames)])
    return (0.8 * clip + 0.2 * torch.rand(clip.shape, generator=gen)).clamp(0, 1)
