"""fp32 parity with the official MatAnyone 2 inference code (PyPI matanyone2-runtime) as the oracle.

Random weights have randomised norms and biases and an alpha bias that keeps alphas strictly inside
(0, 1), so differences are never hidden by the final clamp.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import ellipse_mask, random_frames
from oracle import official_matte, requires_official

from matanyone2_core import MattingOptions, MattingSession, matte_video

TOLERANCE = 1e-5
REPORT = Path(__file__).parent.parent / "test-artifacts" / "parity.txt"

pytestmark = requires_official


def _record(name: str, frames: torch.Tensor, diff: float) -> None:
    REPORT.parent.mkdir(exist_ok=True)
    with REPORT.open("a") as f:
        f.write(f"{name} {tuple(frames.shape[:3])}: max |dalpha| = {diff:.3g}\n")


def _compare(state_dict, model, frames, mask, **kwargs):
    ref = official_matte(state_dict, frames, mask, **kwargs)
    ours = matte_video(model, frames, mask, **kwargs)
    assert torch.isfinite(ref).all(), "choose weights for which the official output is finite"
    inside = ((ref > 0) & (ref < 1)).float().mean().item()
    assert inside > 0.99, f"only {inside:.1%} of official alphas are off the clamp"
    diff = (ours - ref).abs().max().item()
    _record(str(kwargs or "defaults"), frames, diff)
    assert diff <= TOLERANCE, f"max |Δα| = {diff:.3g}"
    return diff


@pytest.mark.parametrize("height, width", [(96, 128), (100, 150)])
def test_default_settings_match_the_official_code(state_dict, model, height, width):
    frames = random_frames(12, height, width)
    _compare(state_dict, model, frames, ellipse_mask(height, width))


@pytest.mark.parametrize("warmup", [0, 3])
def test_warmup_variants_match(state_dict, model, warmup):
    frames = random_frames(12, 80, 112, seed=2)
    _compare(state_dict, model, frames, ellipse_mask(80, 112), warmup=warmup, erode=4, dilate=4)


def test_max_internal_size_matches(state_dict, model):
    frames = random_frames(12, 120, 168, seed=3)
    _compare(state_dict, model, frames, ellipse_mask(120, 168), warmup=2, max_internal_size=88)


def test_long_term_memory_with_consolidation_matches(state_dict, model):
    # Working capacity is 9 frames with a memory frame every 5: the first consolidation comes at frame 45.
    frames = random_frames(52, 96, 112, seed=4)
    mask = ellipse_mask(96, 112)
    ref = official_matte(state_dict, frames, mask, warmup=0, long_term=True)
    session = MattingSession(model, MattingOptions(warmup=0, long_term=True))
    ours = torch.stack([session.step(f, mask if i == 0 else None) for i, f in enumerate(frames)])
    assert session.memory.long.size == 128, "one consolidation into 128 prototypes was expected"
    assert torch.isfinite(ref).all() and ((ref > 0) & (ref < 1)).float().mean() > 0.99
    diff = (ours - ref).abs().max().item()
    _record("long_term, warmup 0", frames, diff)
    assert diff <= TOLERANCE
