"""Mask morphology against OpenCV (the official driver's tool), padding and internal-size rules."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from matanyone2_core.engine.preprocess import elliptic_kernel, internal_size, padding_for, prepare_mask

cv2 = pytest.importorskip("cv2")


def test_ten_by_ten_ellipse_is_the_documented_asymmetric_kernel():
    rows = [(5, 5), (2, 8), (1, 9), (0, 9), (0, 9), (0, 9), (0, 9), (0, 9), (1, 9), (2, 8)]
    expected = torch.zeros(10, 10)
    for i, (a, b) in enumerate(rows):
        expected[i, a : b + 1] = 1
    assert torch.equal(elliptic_kernel(10), expected)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 10, 15])
def test_elliptic_kernel_matches_opencv(size):
    ref = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    assert np.array_equal(elliptic_kernel(size).numpy().astype(np.uint8), ref)


@pytest.mark.parametrize("erode, dilate", [(10, 10), (4, 4), (15, 15), (0, 7), (5, 0), (0, 0)])
def test_first_mask_morphology_matches_the_official_opencv_pipeline(erode, dilate):
    gen = torch.Generator().manual_seed(erode * 31 + dilate)
    mask = (torch.rand(60, 83, generator=gen) > 0.6).float() * torch.rand(60, 83, generator=gen)
    mask[10:40, 20:60] = 1.0
    m = np.round(mask.numpy().astype(np.float64) * 255).astype(np.uint8).astype(np.float32)
    if dilate:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dilate, dilate))
        m = cv2.dilate((m != 0).astype(np.float32), kernel) * 255
    if erode:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (erode, erode))
        m = cv2.erode((m == 255).astype(np.float32), kernel) * 255
    ours = prepare_mask(mask, erode, dilate).numpy()
    assert np.array_equal(ours, m)


def test_padding_splits_as_evenly_as_possible():
    assert padding_for(480, 853) == (5, 6, 0, 0)
    assert padding_for(426, 355) == (6, 7, 3, 3)
    assert padding_for(64, 96) == (0, 0, 0, 0)


def test_internal_size_truncates_like_the_official_resize():
    assert internal_size(720, 1280, 240) == (240, 426)
    assert internal_size(720, 1280, 720) is None
    assert internal_size(720, 1280, -1) is None
