"""The memory-aware internal size: the fitted size follows its stated formula, and a session asked for
"auto" mattes exactly as one given the fitted size (logged), or at full resolution when the clip fits."""

from __future__ import annotations

import logging
import math

import torch
from conftest import ellipse_mask, random_frames

from matanyone2_core import MattingOptions, matte_video
from matanyone2_core.engine import auto_size
from matanyone2_core.engine.auto_size import BYTES_PER_PIXEL, MIN_SIDE, SAFETY, fit_internal_size


def test_fitted_size_is_the_largest_multiple_of_16_that_fits():
    per_pixel = BYTES_PER_PIXEL[torch.float32] * SAFETY
    assert fit_internal_size(1080, 1920, int(1080 * 1920 * per_pixel) + 1) == -1  # fits: full resolution
    assert fit_internal_size(1080, 1920, None) == -1  # unknown: full resolution
    free = 6 * 2**30  # a 4K clip on a card with 6 GiB free
    side = fit_internal_size(2160, 3840, free)
    assert side % 16 == 0 and MIN_SIDE <= side < 2160
    scale = side / 2160
    assert (2160 * scale) * (3840 * scale) * per_pixel <= free  # it fits
    bigger = (side + 16) / 2160
    assert (2160 * bigger) * (3840 * bigger) * per_pixel > free  # the next multiple of 16 does not
    assert fit_internal_size(2160, 3840, 1) == MIN_SIDE
    half = fit_internal_size(2160, 3840, free, torch.bfloat16)
    assert half >= side and half == max(MIN_SIDE, int(2160 * math.sqrt(free / (BYTES_PER_PIXEL[torch.bfloat16] * SAFETY)
                                                                      / (2160 * 3840)) // 16) * 16)  # fmt: skip


def test_auto_mattes_as_the_fitted_size_and_logs_it(model, monkeypatch, caplog):
    clip, mask = random_frames(4, 64, 96), ellipse_mask(64, 96)
    # pretend only enough memory for a third of the pixels is free
    free = int(64 * 96 / 3 * BYTES_PER_PIXEL[torch.float32] * SAFETY)
    monkeypatch.setattr(auto_size, "free_memory", lambda device: free)
    monkeypatch.setattr(auto_size, "MIN_SIDE", 16)
    side = auto_size.fit_internal_size(64, 96, free)
    assert 16 <= side < 64
    with caplog.at_level(logging.INFO, logger="matanyone2"):
        auto = matte_video(model, clip, mask, options=MattingOptions(warmup=1, erode=3, dilate=3, max_internal_size=0))
    fixed = matte_video(model, clip, mask, options=MattingOptions(warmup=1, erode=3, dilate=3, max_internal_size=side))
    assert torch.equal(auto, fixed)
    assert f"matting at short side {side}" in caplog.text
    monkeypatch.setattr(auto_size, "free_memory", lambda device: 10**12)
    full = matte_video(model, clip, mask, options=MattingOptions(warmup=1, erode=3, dilate=3, max_internal_size=0))
    assert torch.equal(full, matte_video(model, clip, mask, warmup=1, erode=3, dilate=3))
